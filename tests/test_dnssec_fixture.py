"""The DNSSEC test zone behind a validating Unbound, and the MTA-STS policy server, are real.

What phase 2's DANE and MTA-STS delivery tests stand on: answers for signed names carry the AD
bit, an insecure delegation's do not, a broken signature is SERVFAIL, and the records the zone
serves feed smtpproto's DANE and MTA-STS decisions as the driver will feed them.
"""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import time
from collections.abc import Iterator

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from smtpproto.dane import (
    DaneState,
    TLSAAnswer,
    TLSARecord,
    dane_state,
    tlsa_query_names,
    verify_chain,
)
from smtpproto.mta_sts import Mode, PolicyFetch, StsRecord, parse_txt_record, resolve_policy
from smtpproto.mx import DNSStatus
from tests import servers_dnssec as kit

pytestmark = pytest.mark.dns

if kit.tools_missing() and not os.environ.get("CI"):  # CI installs them: there it must fail
    pytest.skip(f"not installed: {kit.tools_missing()}", allow_module_level=True)


@pytest.fixture(scope="module")
def zone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kit.SignedZone]:
    with kit.signed_zone(tmp_path_factory.mktemp("dnssec")) as running:
        yield running


def authentic(message: dns.message.Message) -> bool:
    return bool(message.flags & dns.flags.AD)


def tlsa_answer(message: dns.message.Message) -> TLSAAnswer:
    """What a driver reports for a TLSA query: records, status and the AD bit."""
    rcode = message.rcode()
    if rcode == dns.rcode.SERVFAIL:
        return TLSAAnswer(DNSStatus.SERVFAIL)
    records = tuple(
        TLSARecord(rd.usage, rd.selector, rd.mtype, rd.cert)
        for rrset in message.answer
        if rrset.rdtype == dns.rdatatype.TLSA
        for rd in rrset
    )
    if rcode == dns.rcode.NXDOMAIN:
        return TLSAAnswer(DNSStatus.NXDOMAIN, authentic=authentic(message))
    status = DNSStatus.OK if records else DNSStatus.NODATA
    return TLSAAnswer(status, records, authentic=authentic(message))


def der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)


def test_signed_names_come_back_authentic(zone: kit.SignedZone) -> None:
    for name, rdtype in [("dane.test", "MX"), ("mx.dane.test", "A"), ("_mta-sts.dane.test", "TXT")]:
        reply = zone.query(name, rdtype)
        assert reply.rcode() == dns.rcode.NOERROR
        assert reply.answer
        assert authentic(reply), name


def test_authenticated_denial_is_no_tlsa(zone: kit.SignedZone) -> None:
    answer = tlsa_answer(zone.query("_25._tcp.nothere.dane.test", "TLSA"))
    assert answer.status is DNSStatus.NXDOMAIN
    assert dane_state(answer) is DaneState.NO_TLSA


def test_an_insecure_delegation_has_no_ad_bit(zone: kit.SignedZone) -> None:
    reply = zone.query("_25._tcp.mx.plain.dane.test", "TLSA")
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.answer and not authentic(reply)
    assert dane_state(tlsa_answer(reply)) is DaneState.INSECURE


def test_a_broken_signature_is_servfail(zone: kit.SignedZone) -> None:
    reply = zone.query("bogus.dane.test", "A")
    assert reply.rcode() == dns.rcode.SERVFAIL
    assert not reply.answer
    assert dane_state(TLSAAnswer(DNSStatus.SERVFAIL)) is DaneState.FAILED


def test_dane_ee_record_matches_the_mx_certificate(zone: kit.SignedZone) -> None:
    answer = tlsa_answer(zone.query("_25._tcp.mx.dane.test", "TLSA"))
    assert dane_state(answer) is DaneState.USABLE
    leaf = der(zone.certificates.mx.cert_chain_pems[0].bytes())
    result = verify_chain(answer.records, [leaf], reference_names=["mx.dane.test"], now=time.time())
    assert result.ok
    other = der(zone.certificates.ta_mx.cert_chain_pems[0].bytes())
    assert not verify_chain(answer.records, [other], reference_names=[], now=time.time()).ok


def test_dane_ta_record_matches_through_the_ca(zone: kit.SignedZone) -> None:
    answer = tlsa_answer(zone.query("_25._tcp.mx2.dane.test", "TLSA"))
    assert dane_state(answer) is DaneState.USABLE
    certs = zone.certificates
    chain = [der(certs.ta_mx.cert_chain_pems[0].bytes()), der(certs.ca.cert_pem.bytes())]
    assert verify_chain(
        answer.records, chain, reference_names=["mx2.dane.test"], now=time.time()
    ).ok
    wrong_name = verify_chain(
        answer.records, chain, reference_names=["mx.dane.test"], now=time.time()
    )
    assert not wrong_name.ok


def test_pkix_usages_are_authentic_but_unusable(zone: kit.SignedZone) -> None:
    answer = tlsa_answer(zone.query("_25._tcp.unusable.dane.test", "TLSA"))
    assert answer.authentic
    assert dane_state(answer) is DaneState.UNUSABLE


def https_get(server: kit.PolicyServer, host: str, path: str) -> http.client.HTTPResponse:
    """GET over TLS to the policy server's address, with SNI and the name check for ``host``."""
    raw = socket.create_connection((server.address, server.port), timeout=5)
    tls = server.client_context().wrap_socket(raw, server_hostname=host)
    tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    response = http.client.HTTPResponse(tls)
    response.begin()
    return response


def test_policy_server_serves_the_policy_the_txt_record_announces(zone: kit.SignedZone) -> None:
    txt = zone.query("_mta-sts.dane.test", "TXT")
    strings = [
        b"".join(rd.strings).decode()
        for rrset in txt.answer
        if rrset.rdtype == dns.rdatatype.TXT
        for rd in rrset
    ]
    record = parse_txt_record(strings)
    assert record is not None and record.id == kit.STS_ID
    with kit.policy_server(zone.certificates) as server:
        response = https_get(server, "mta-sts.dane.test", "/.well-known/mta-sts.txt")
        fetch = PolicyFetch(
            response.status, response.getheader("Content-Type", ""), response.read()
        )
        missing = https_get(server, "mta-sts.dane.test", "/elsewhere")
        assert missing.status == 404
    resolution = resolve_policy(record, None, fetch, now=time.time())
    assert resolution.policy is not None and resolution.mode is Mode.ENFORCE
    assert resolution.policy.allows("mx.dane.test")
    assert resolution.store is not None and resolution.store.policy_id == kit.STS_ID


def test_policy_server_certificate_is_checked(zone: kit.SignedZone) -> None:
    with (
        kit.policy_server(zone.certificates) as server,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        https_get(server, "mta-sts.other.test", "/.well-known/mta-sts.txt")


def handshake_chain(port: int) -> list[bytes]:
    """Connect as a DANE client does: no PKIX verification, then read what was presented."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection((kit.MX_ADDRESS, port), timeout=5)
    with context.wrap_socket(raw, server_hostname="mx2.dane.test") as tls:
        return kit.presented_chain(tls)


def test_a_handshake_gives_the_chain_that_dane_ta_authenticates(zone: kit.SignedZone) -> None:
    certs = zone.certificates
    answer = tlsa_answer(zone.query("_25._tcp.mx2.dane.test", "TLSA"))
    with kit.tls_listener(certs.server_context(certs.ta_mx, with_ca=True)) as port:
        chain = handshake_chain(port)
    assert len(chain) == 2
    assert verify_chain(
        answer.records, chain, reference_names=["mx2.dane.test"], now=time.time()
    ).ok
    # Without the trust anchor in the chain, DANE-TA cannot match (RFC 7672 §3.1.2).
    with kit.tls_listener(certs.server_context(certs.ta_mx, with_ca=False)) as port:
        alone = handshake_chain(port)
    assert len(alone) == 1
    result = verify_chain(answer.records, alone, reference_names=["mx2.dane.test"], now=time.time())
    assert not result.ok


def test_sts_domain_has_a_policy_and_no_tlsa(zone: kit.SignedZone) -> None:
    mx = zone.query(kit.STS_DOMAIN, "MX")
    assert authentic(mx)
    denial = tlsa_answer(zone.query(f"_25._tcp.mail.{kit.STS_DOMAIN}", "TLSA"))
    assert dane_state(denial) is DaneState.NO_TLSA
    with kit.policy_server(zone.certificates) as server:
        response = https_get(server, f"mta-sts.{kit.STS_DOMAIN}", "/.well-known/mta-sts.txt")
        body = response.read()
        server.policies.pop(f"mta-sts.{kit.STS_DOMAIN}")  # the policy server loses it
        assert (
            https_get(server, f"mta-sts.{kit.STS_DOMAIN}", "/.well-known/mta-sts.txt").status == 404
        )
    fetch = PolicyFetch(response.status, response.getheader("Content-Type", ""), body)
    resolution = resolve_policy(StsRecord(kit.STS_ID), None, fetch, now=time.time())
    assert resolution.policy is not None
    assert resolution.policy.allows(f"mail.{kit.STS_DOMAIN}")
    assert not resolution.policy.allows(f"other.{kit.STS_DOMAIN}")


def test_the_alias_expands_authentically_to_the_tlsa_base_domain(zone: kit.SignedZone) -> None:
    reply = zone.query("alias.dane.test", "A")
    assert authentic(reply)
    cname = next(r for r in reply.answer if r.rdtype == dns.rdatatype.CNAME)
    target = str(next(iter(cname)).target)
    assert target == "mx.dane.test."
    names = tlsa_query_names("alias.dane.test", cname_target=target)
    assert names == ("_25._tcp.mx.dane.test.", "_25._tcp.alias.dane.test.")
    assert dane_state(tlsa_answer(zone.query(names[0], "TLSA"))) is DaneState.USABLE
