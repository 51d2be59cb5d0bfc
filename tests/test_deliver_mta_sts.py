"""MTA-STS (RFC 8461) in direct delivery, through the three adapters, with real parts: the
signed zone's ``_mta-sts`` records behind a validating Unbound, the HTTPS policy server on
``mta-sts.<domain>`` port 443, and scripted SMTP servers with STARTTLS on the MX addresses.

sts.dane.test lists mail.sts.dane.test (127.0.0.119) in its enforce policy, not
other.sts.dane.test (127.0.0.121); neither has TLSA records.  The caller's ``ssl_context``
trusts the zone's test CA, for the policy fetch and the MX certificates alike.
"""

from __future__ import annotations

import os
import ssl
import time
from collections.abc import Iterator

import pytest
from smtpproto.testing import ScriptedServer

from smtpproto.mta_sts import CachedPolicy, InMemoryPolicyCache, parse_policy
from tests import servers_dnssec as kit
from tests.deliver_harness import Deliverer, Delivery

pytestmark = pytest.mark.dns

if kit.tools_missing() and not os.environ.get("CI"):  # CI installs them: there it must fail
    pytest.skip(f"not installed: {kit.tools_missing()}", allow_module_level=True)

RCPT = f"user@{kit.STS_DOMAIN}"
MAIL_HOST = f"mail.{kit.STS_DOMAIN}"
OTHER_HOST = f"other.{kit.STS_DOMAIN}"
POLICY_HOST = f"mta-sts.{kit.STS_DOMAIN}"
ONLY_OTHER = parse_policy(f"version: STSv1\nmode: enforce\nmx: {OTHER_HOST}\nmax_age: 86400\n")


@pytest.fixture(scope="module")
def zone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[kit.SignedZone]:
    with kit.signed_zone(tmp_path_factory.mktemp("dnssec")) as running:
        yield running


@pytest.fixture
def policies(zone: kit.SignedZone) -> Iterator[kit.PolicyServer]:
    with kit.policy_server(zone.certificates, port=443) as server:
        yield server


@pytest.fixture
def deliver(adapter_name: str, zone: kit.SignedZone) -> Deliverer:
    return Deliverer(adapter_name, None, dns_address=(zone.resolver_address, zone.resolver_port))


def trusting(server: kit.PolicyServer) -> ssl.SSLContext:
    return server.client_context()


def mx_server(zone: kit.SignedZone, address: str, *, good: bool = True) -> ScriptedServer:
    """STARTTLS with a certificate for both MX names from the trusted CA, or (``good=False``)
    one from a CA nobody trusts."""
    certs = zone.certificates
    leaf = certs.sts_mx if good else certs.stranger
    return ScriptedServer(
        host=address, port=25, tls_context=certs.server_context(leaf, with_ca=False)
    )


def rows(sent: Delivery, recipient: str = RCPT) -> list[tuple[str, str, str | None]]:
    result = []
    for attempt in sent[recipient].attempts:
        assert attempt.policy is not None, attempt
        failure = attempt.policy.failure
        kind = attempt.policy.kind.value
        result.append((attempt.host, kind, None if failure is None else failure.result_type.value))
    return result


def test_enforce_delivers_to_a_listed_mx_with_a_verified_certificate(
    deliver: Deliverer, zone: kit.SignedZone, policies: kit.PolicyServer
) -> None:
    with mx_server(zone, kit.MX_ADDRESS) as server:
        sent = deliver([RCPT], ssl_context=trusting(policies))
    outcome = sent[RCPT]
    assert (outcome.status, outcome.server_host, outcome.tls_verified) == (
        "delivered",
        MAIL_HOST,
        True,
    )
    assert rows(sent) == [(MAIL_HOST, "mta-sts-enforce", None)]
    policy = outcome.attempts[0].policy
    assert policy is not None and "mode: enforce" in policy.policy_strings
    assert server.connections[0].sni == MAIL_HOST
    as_json = sent.report.to_dict()["recipients"][0]["attempts"][0]["policy"]
    assert (as_json["kind"], as_json["policy_type"], as_json["met"]) == (
        "mta-sts-enforce",
        "sts",
        True,
    )


def test_enforce_skips_a_bad_certificate_and_an_unlisted_mx(
    deliver: Deliverer, zone: kit.SignedZone, policies: kit.PolicyServer
) -> None:
    """mail.sts presents an untrusted certificate: skipped after the handshake, no MAIL.
    other.sts is not in the policy: skipped without a connection.  Nothing is delivered."""
    with (
        mx_server(zone, kit.MX_ADDRESS, good=False) as listed,
        mx_server(zone, kit.MX2_ADDRESS) as unlisted,
    ):
        sent = deliver([RCPT], ssl_context=trusting(policies))
    assert sent[RCPT].status == "temporary"
    assert rows(sent) == [
        (MAIL_HOST, "mta-sts-enforce", "certificate-not-trusted"),
        (OTHER_HOST, "mta-sts-enforce", "validation-failure"),
    ]
    assert not any("MAIL" in c.verbs for c in listed.connections)
    assert unlisted.connections == []
    assert "matches no mx pattern" in str(sent.report)


def test_testing_mode_delivers_and_reports_the_failure(
    deliver: Deliverer, zone: kit.SignedZone, policies: kit.PolicyServer
) -> None:
    policies.policies[POLICY_HOST] = kit.STS_POLICY.replace("enforce", "testing")
    with mx_server(zone, kit.MX_ADDRESS, good=False) as server:
        sent = deliver([RCPT], ssl_context=trusting(policies))
    outcome = sent[RCPT]
    assert (outcome.status, outcome.tls, outcome.tls_verified) == ("delivered", True, False)
    assert rows(sent) == [(MAIL_HOST, "mta-sts-testing", "certificate-not-trusted")]
    assert "TLS policy mta-sts-testing: not met (certificate-not-trusted)" in str(sent.report)
    # The verifying handshake failed; the mail went over a second, unverified one.
    assert len(server.connections) == 2 and server.connections[1].delivered


def test_a_cached_policy_is_used_while_its_id_holds(
    deliver: Deliverer, zone: kit.SignedZone, policies: kit.PolicyServer
) -> None:
    """The cache holds, under the TXT record's id, a policy naming only other.sts: it is used
    without a fetch (the server's policy, naming mail.sts, would send the mail there)."""
    cache = InMemoryPolicyCache(
        [(kit.STS_DOMAIN, CachedPolicy(ONLY_OTHER, kit.STS_ID, time.time()))]
    )
    with (
        mx_server(zone, kit.MX_ADDRESS) as listed_on_server,
        mx_server(zone, kit.MX2_ADDRESS) as cached_mx,
    ):
        sent = deliver([RCPT], ssl_context=trusting(policies), sts_cache=cache)
    assert sent[RCPT].server_host == OTHER_HOST
    assert rows(sent) == [
        (MAIL_HOST, "mta-sts-enforce", "validation-failure"),
        (OTHER_HOST, "mta-sts-enforce", None),
    ]
    assert listed_on_server.connections == [] and cached_mx.connections[0].delivered


def test_a_new_id_fetches_the_policy_again(
    deliver: Deliverer, zone: kit.SignedZone, policies: kit.PolicyServer
) -> None:
    cache = InMemoryPolicyCache([(kit.STS_DOMAIN, CachedPolicy(ONLY_OTHER, "older", time.time()))])
    with mx_server(zone, kit.MX_ADDRESS) as server:
        sent = deliver([RCPT], ssl_context=trusting(policies), sts_cache=cache)
    assert rows(sent) == [(MAIL_HOST, "mta-sts-enforce", None)]
    assert server.connections[0].delivered
    entry = cache.get(kit.STS_DOMAIN)
    assert entry is not None and entry.policy_id == kit.STS_ID
    assert entry.policy.allows(MAIL_HOST)


def test_a_cached_policy_outlives_a_failed_fetch(
    deliver: Deliverer, zone: kit.SignedZone, policies: kit.PolicyServer
) -> None:
    """The id changed but the policy server lost the policy (404): the cached, unexpired policy
    still protects the domain (RFC 8461 §3.3), and stays cached."""
    del policies.policies[POLICY_HOST]
    cached = CachedPolicy(ONLY_OTHER, "older", time.time())
    cache = InMemoryPolicyCache([(kit.STS_DOMAIN, cached)])
    with mx_server(zone, kit.MX2_ADDRESS) as server:
        sent = deliver([RCPT], ssl_context=trusting(policies), sts_cache=cache)
    assert sent[RCPT].server_host == OTHER_HOST
    assert [r[1] for r in rows(sent)] == ["mta-sts-enforce"] * 2
    assert server.connections[0].delivered
    assert cache.get(kit.STS_DOMAIN) == cached


def test_without_a_reachable_policy_delivery_is_opportunistic(
    deliver: Deliverer, zone: kit.SignedZone
) -> None:
    """No policy server (the fetch is refused), nothing cached: as without MTA-STS."""
    with mx_server(zone, kit.MX_ADDRESS, good=False) as server:
        sent = deliver([RCPT])
    assert sent[RCPT].status == "delivered"
    assert rows(sent) == [(MAIL_HOST, "opportunistic", None)]
    assert server.connections[0].delivered


def test_dane_wins_over_mta_sts(
    deliver: Deliverer, zone: kit.SignedZone, policies: kit.PolicyServer
) -> None:
    """dane.test has both an enforce policy (fetched: it is in the cache after) and TLSA
    records: DANE decides (RFC 8461 §2), the SNI is the TLSA base domain."""
    certs = zone.certificates
    context = certs.server_context(certs.mx, with_ca=False)
    cache = InMemoryPolicyCache()
    with ScriptedServer(host=kit.MX_ADDRESS, port=25, tls_context=context) as server:
        sent = deliver([f"user@{kit.ZONE}"], ssl_context=trusting(policies), sts_cache=cache)
    assert rows(sent, f"user@{kit.ZONE}") == [("mx.dane.test", "dane", None)]
    assert server.connections[0].delivered
    entry = cache.get(kit.ZONE)
    assert entry is not None and entry.policy.allows("mx.dane.test")


def test_mta_sts_off_ignores_the_policy(
    deliver: Deliverer, zone: kit.SignedZone, policies: kit.PolicyServer
) -> None:
    with mx_server(zone, kit.MX_ADDRESS, good=False) as server:
        sent = deliver([RCPT], ssl_context=trusting(policies), mta_sts=False)
    assert rows(sent) == [(MAIL_HOST, "opportunistic", None)]
    assert server.connections[0].delivered


ENCRYPT_RCPT = f"user@{kit.ENCRYPT_DOMAIN}"


def test_unusable_tlsa_under_testing_mode_keeps_tls(
    deliver: Deliverer, zone: kit.SignedZone, policies: kit.PolicyServer
) -> None:
    """unusable.dane.test has authentic TLSA records, none usable: TLS is required but not
    authenticated.  The testing policy's check fails (wrong name), is reported, and the mail
    goes over a second, unverified TLS session, never in cleartext."""
    certs = zone.certificates
    context = certs.server_context(certs.mx, with_ca=False)  # mx.dane.test's name
    with ScriptedServer(host=kit.MX_ADDRESS, port=25, tls_context=context) as server:
        sent = deliver([ENCRYPT_RCPT], ssl_context=trusting(policies))
    outcome = sent[ENCRYPT_RCPT]
    assert (outcome.status, outcome.tls, outcome.tls_verified) == ("delivered", True, False)
    assert rows(sent, ENCRYPT_RCPT) == [
        ("unusable.dane.test", "mta-sts-testing", "certificate-host-mismatch")
    ]
    checked, used = server.connections  # the verifying handshake failed; then unverified TLS
    assert "STARTTLS" in checked.verbs and "MAIL" not in checked.verbs
    assert used.tls and used.delivered


def test_unusable_tlsa_alone_requires_tls(
    deliver: Deliverer, zone: kit.SignedZone, policies: kit.PolicyServer
) -> None:
    """Without MTA-STS, the unusable records still demand STARTTLS: any certificate will do,
    but a server without STARTTLS gets nothing."""
    certs = zone.certificates
    context = certs.server_context(certs.stranger, with_ca=False)
    with ScriptedServer(host=kit.MX_ADDRESS, port=25, tls_context=context):
        sent = deliver([ENCRYPT_RCPT], mta_sts=False)
    assert sent[ENCRYPT_RCPT].status == "delivered"
    assert rows(sent, ENCRYPT_RCPT) == [("unusable.dane.test", "dane-encrypt-only", None)]
    with ScriptedServer(host=kit.MX_ADDRESS, port=25) as stripped:
        refused = deliver([ENCRYPT_RCPT], mta_sts=False)
    assert refused[ENCRYPT_RCPT].status == "temporary"
    assert rows(refused, ENCRYPT_RCPT) == [
        ("unusable.dane.test", "dane-encrypt-only", "starttls-not-supported")
    ]
    assert not any("MAIL" in c.verbs for c in stripped.connections)
