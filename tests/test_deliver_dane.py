"""DANE (RFC 7672) in direct delivery, through the three adapters, with real parts: the signed
zone behind a validating Unbound (tests/servers_dnssec.py) and a scripted SMTP server with
STARTTLS on the zone's MX address, presenting the zone's trustme certificates.

Every host with usable, authentic TLSA records gets mandatory STARTTLS and its chain checked; a
host that fails is skipped, never sent mail in cleartext or over an unmatched certificate.
"""

from __future__ import annotations

import json
import os
import re
import ssl
from collections.abc import Iterator

import pytest
from smtpproto.testing import ConnectionRecord, ScriptedServer

from tests import servers_dnssec as kit
from tests.deliver_harness import Deliverer, Delivery
from tests.test_cli import run_cli

pytestmark = pytest.mark.dns

if kit.tools_missing() and not os.environ.get("CI"):  # CI installs them: there it must fail
    pytest.skip(f"not installed: {kit.tools_missing()}", allow_module_level=True)

RCPT = f"user@{kit.ZONE}"


@pytest.fixture(scope="module")
def zone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kit.SignedZone]:
    with kit.signed_zone(tmp_path_factory.mktemp("dnssec")) as running:
        yield running


@pytest.fixture
def deliver(adapter_name: str, zone: kit.SignedZone) -> Deliverer:
    """``deliver()`` of one adapter, asking the validating resolver."""
    return Deliverer(adapter_name, None, dns_address=(zone.resolver_address, zone.resolver_port))


def mx_server(context: ssl.SSLContext | None, address: str = kit.MX_ADDRESS) -> ScriptedServer:
    """Port 25 of an MX address: STARTTLS with ``context``, or none at all (stripped).  Each
    server needs a context of its own: it hooks the context's SNI callback."""
    return ScriptedServer(host=address, port=25, tls_context=context)


def mail_sent(connection: ConnectionRecord) -> bool:
    return "MAIL" in connection.verbs


def policies(sent: Delivery, recipient: str = RCPT) -> list[tuple[str, str, str | None]]:
    """(host, policy kind, RFC 8460 result type or None) per attempt."""
    rows = []
    for attempt in sent[recipient].attempts:
        assert attempt.policy is not None, attempt
        failure = attempt.policy.failure
        rows.append(
            (
                attempt.host,
                attempt.policy.kind.value,
                None if failure is None else failure.result_type.value,
            )
        )
    return rows


def test_dane_ee_match_delivers_authenticated(deliver: Deliverer, zone: kit.SignedZone) -> None:
    certs = zone.certificates
    with mx_server(certs.server_context(certs.mx, with_ca=False)) as server:
        sent = deliver([RCPT])
    outcome = sent[RCPT]
    assert outcome.status == "delivered"
    assert (outcome.server_host, outcome.tls, outcome.tls_verified) == ("mx.dane.test", True, True)
    assert policies(sent) == [("mx.dane.test", "dane", None)]
    policy = outcome.attempts[0].policy
    assert policy is not None and policy.met and policy.policy_domain == kit.ZONE
    assert policy.policy_strings and policy.policy_strings[0].startswith("3 1 1 ")
    [connection] = server.connections
    assert connection.tls and connection.sni == "mx.dane.test"  # the TLSA base domain
    assert connection.delivered
    assert "TLS policy dane: met" in str(sent.report)
    as_json = sent.report.to_dict()["recipients"][0]["attempts"][0]["policy"]
    assert (as_json["kind"], as_json["met"], as_json["policy_type"]) == ("dane", True, "tlsa")


def test_mismatch_skips_to_the_next_mx_never_downgrading(
    deliver: Deliverer, zone: kit.SignedZone
) -> None:
    """Both servers present mx2's certificate and its CA: mx.dane.test's DANE-EE record does not
    match it (skipped after EHLO, no MAIL); mx2.dane.test's DANE-TA record does."""
    certs = zone.certificates
    with (
        mx_server(certs.server_context(certs.ta_mx, with_ca=True)) as first,
        mx_server(certs.server_context(certs.ta_mx, with_ca=True), kit.MX2_ADDRESS) as second,
    ):
        sent = deliver([RCPT])
    outcome = sent[RCPT]
    assert (outcome.status, outcome.server_host, outcome.tls_verified) == (
        "delivered",
        "mx2.dane.test",
        True,
    )
    assert policies(sent) == [
        ("mx.dane.test", "dane", "tlsa-invalid"),
        ("mx2.dane.test", "dane", None),
    ]
    [skipped] = first.connections
    assert skipped.tls and not mail_sent(skipped) and "QUIT" in skipped.verbs
    [used] = second.connections
    assert used.sni == "mx2.dane.test" and used.delivered
    report = str(sent.report)
    assert "TLS policy dane not met: tlsa-invalid" in report
    assert "TLS policy dane: met" in report


def test_no_match_anywhere_is_a_temporary_failure(deliver: Deliverer, zone: kit.SignedZone) -> None:
    certs = zone.certificates
    with (
        mx_server(certs.server_context(certs.stranger, with_ca=False)) as first,
        mx_server(certs.server_context(certs.stranger, with_ca=False), kit.MX2_ADDRESS) as second,
    ):
        sent = deliver([RCPT])
    outcome = sent[RCPT]
    assert outcome.status == "temporary"
    assert [row[2] for row in policies(sent)] == ["tlsa-invalid", "tlsa-invalid"]
    assert "TLS policy dane not met" in outcome.detail
    connections = first.connections + second.connections
    assert len(connections) == 2 and all(c.tls for c in connections)
    assert not any(mail_sent(c) for c in connections)


def test_starttls_stripped_skips_the_host(deliver: Deliverer, zone: kit.SignedZone) -> None:
    """An attacker removing STARTTLS from the EHLO reply gets no mail in cleartext."""
    with mx_server(None) as first, mx_server(None, kit.MX2_ADDRESS) as second:
        sent = deliver([RCPT])
    assert sent[RCPT].status == "temporary"
    assert [row[2] for row in policies(sent)] == ["starttls-not-supported"] * 2
    connections = first.connections + second.connections
    assert len(connections) == 2
    assert not any(mail_sent(c) for c in connections)
    assert all(a.tls_failed for a in sent[RCPT].attempts)


def test_bogus_tlsa_skips_the_host_without_connecting(
    deliver: Deliverer, zone: kit.SignedZone
) -> None:
    """badtlsa.dane.test's TLSA answer is bogus (SERVFAIL from the validator): the host is not
    contacted at all; the next MX, mx.dane.test, takes the mail under DANE."""
    certs = zone.certificates
    rcpt = f"user@badmx.{kit.ZONE}"
    with (
        mx_server(certs.server_context(certs.mx, with_ca=False)) as server,
        mx_server(certs.server_context(certs.mx, with_ca=False), kit.MX2_ADDRESS) as bogus,
    ):
        sent = deliver([rcpt])
    assert sent[rcpt].status == "delivered"
    assert bogus.connections == []
    assert policies(sent, rcpt) == [
        ("badtlsa.dane.test", "dane", "dnssec-invalid"),
        ("mx.dane.test", "dane", None),
    ]
    assert [c.sni for c in server.connections] == ["mx.dane.test"]


def test_an_aliased_mx_host_uses_the_expanded_name(
    deliver: Deliverer, zone: kit.SignedZone
) -> None:
    """aliasmx.dane.test's MX host alias.dane.test is a CNAME to mx.dane.test, expanded
    authentically: the TLSA base domain (and the SNI) is mx.dane.test (RFC 7672 §2.2.2)."""
    certs = zone.certificates
    rcpt = f"user@aliasmx.{kit.ZONE}"
    with mx_server(certs.server_context(certs.mx, with_ca=False)) as server:
        sent = deliver([rcpt])
    assert sent[rcpt].status == "delivered"
    assert policies(sent, rcpt) == [("alias.dane.test", "dane", None)]
    assert server.connections[0].sni == "mx.dane.test"


def test_a_domain_without_mx_is_its_own_dane_host(deliver: Deliverer, zone: kit.SignedZone) -> None:
    """mx.dane.test has no MX record (authentic NODATA): mail goes to its own address, under
    its own TLSA record."""
    certs = zone.certificates
    rcpt = "user@mx.dane.test"
    with mx_server(certs.server_context(certs.stranger, with_ca=False)) as server:
        sent = deliver([rcpt])
    assert sent[rcpt].status == "temporary"
    assert policies(sent, rcpt) == [("mx.dane.test", "dane", "tlsa-invalid")]
    assert not any("MAIL" in c.verbs for c in server.connections)


def test_an_insecure_zone_is_opportunistic(deliver: Deliverer, zone: kit.SignedZone) -> None:
    """plain.dane.test is unsigned: its (wrong) TLSA record is not even looked up, and any
    certificate is accepted, unverified, as without DANE."""
    certs = zone.certificates
    rcpt = f"user@{kit.INSECURE_ZONE}"
    with mx_server(certs.server_context(certs.stranger, with_ca=False)) as server:
        sent = deliver([rcpt])
    outcome = sent[rcpt]
    assert (outcome.status, outcome.tls, outcome.tls_verified) == ("delivered", True, False)
    assert policies(sent, rcpt) == [("mx.plain.dane.test", "opportunistic", None)]
    assert server.connections[0].sni == "mx.plain.dane.test"


def test_dane_off_is_opportunistic(deliver: Deliverer, zone: kit.SignedZone) -> None:
    certs = zone.certificates
    with mx_server(certs.server_context(certs.stranger, with_ca=False)):
        sent = deliver([RCPT], dane=False, mta_sts=False)
    assert sent[RCPT].status == "delivered"
    assert policies(sent) == [("mx.dane.test", "opportunistic", None)]


# -- the command line ----------------------------------------------------------------------------


def test_cli_mx_shows_each_hosts_tls_policy(zone: kit.SignedZone) -> None:
    resolver = f"{zone.resolver_address}:{zone.resolver_port}"
    result = run_cli("mx", f"badmx.{kit.ZONE}", "--resolver", resolver, "--no-probe")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "MX records authentic (DNSSEC): yes" in out
    assert "MTA-STS: no policy" in out
    assert re.search(r"badtlsa\.dane\.test: dane, skipped: the TLSA lookup failed", out)
    assert re.search(r"mx\.dane\.test: dane, STARTTLS required, certificate checked: dane", out)
    assert "TLSA 3 1 1 " in out
    insecure = run_cli("mx", kit.INSECURE_ZONE, "--resolver", resolver, "--no-probe")
    assert "MX records authentic (DNSSEC): no" in insecure.stdout
    assert "mx.plain.dane.test: opportunistic" in insecure.stdout


def test_cli_send_direct_reports_the_policy(zone: kit.SignedZone) -> None:
    certs = zone.certificates
    resolver = f"{zone.resolver_address}:{zone.resolver_port}"
    args = ["send", "--from", "a@x.test", "--to", RCPT, "--direct", "--resolver", resolver]
    with mx_server(certs.server_context(certs.mx, with_ca=False)):
        text = run_cli(*args, "--verbose")
        as_json = run_cli(*args, "--json")
    assert text.returncode == 0, text.stdout + text.stderr
    assert re.search(
        r"mx\.dane\.test \[127\.0\.0\.119\], TLS verified, policy dane met", text.stdout
    )
    assert "tried mx.dane.test [127.0.0.119]:25: ok; TLS policy dane: met" in text.stdout
    [outcome] = json.loads(as_json.stdout)["recipients"]
    policy = outcome["attempts"][0]["policy"]
    assert (policy["kind"], policy["met"], policy["failure"]) == ("dane", True, None)
