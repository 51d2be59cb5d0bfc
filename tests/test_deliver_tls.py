"""TLS in MX delivery, for each adapter: opportunistic STARTTLS by default (RFC 7435), verified
STARTTLS for the domains a :class:`TLSPolicy` names; recorded per recipient."""

from __future__ import annotations

import pytest

from smtpproto import TLSPolicy
from tests.deliver_harness import Deliverer, MXServers, received_by
from tests.servers.tls import TLSMaterial

pytestmark = pytest.mark.dns

RCPT = "user@ordered.test"
REQUIRE_ORDERED = TLSPolicy(required_domains=frozenset({"ordered.test"}))


@pytest.mark.parametrize("cert_kind", ["good", "untrusted", "wrong-name", "expired"])
def test_opportunistic_starttls_is_used_unverified(
    deliver: Deliverer, mx: MXServers, cert_kind: str
) -> None:
    """STARTTLS offered: encrypted, whatever the certificate, and reported as unverified."""
    server = mx("mx1.ordered.test", starttls="offer", cert_kind=cert_kind)
    sent = deliver([RCPT])
    outcome = sent[RCPT]
    assert (outcome.status, outcome.tls, outcome.tls_verified) == ("delivered", True, False)
    assert (outcome.attempts[0].tls, outcome.attempts[0].tls_verified) == (True, False)
    assert "TLS (unverified)" in str(sent.report)
    [message] = server.messages
    assert message.tls and sent.marker.encode() in message.content


def test_opportunistic_without_starttls_goes_in_cleartext(
    deliver: Deliverer, mx: MXServers
) -> None:
    server = mx("mx1.ordered.test")
    sent = deliver([RCPT])
    outcome = sent[RCPT]
    assert (outcome.status, outcome.tls, outcome.tls_verified) == ("delivered", False, False)
    [message] = server.messages
    assert not message.tls


def test_required_tls_refuses_a_server_without_starttls(deliver: Deliverer, mx: MXServers) -> None:
    """ordered.test requires TLS; its only live MX has no STARTTLS: nothing is sent, deferred."""
    server = mx("mx1.ordered.test")
    sent = deliver([RCPT], tls_policy=REQUIRE_ORDERED)
    outcome = sent[RCPT]
    assert outcome.status == "temporary"
    assert outcome.attempts[0].error is not None and "STARTTLS" in outcome.attempts[0].error
    assert server.messages == []
    assert [verb for c in server.connections for verb in c.verbs if verb == "MAIL"] == []


def test_required_tls_delivers_with_a_verified_certificate(
    deliver: Deliverer, mx: MXServers, tls_material: TLSMaterial
) -> None:
    """The caller's ``ssl_context`` (trusting the test CA) is used for the verified handshake."""
    server = mx("mx1.ordered.test", starttls="offer")
    sent = deliver([RCPT], tls_policy=REQUIRE_ORDERED, ssl_context=tls_material.client_context())
    outcome = sent[RCPT]
    assert (outcome.status, outcome.tls, outcome.tls_verified) == ("delivered", True, True)
    assert received_by(server, sent.marker) == [(RCPT,)]
    assert server.messages[0].tls
    assert "TLS (unverified)" not in str(sent.report)


def test_required_tls_is_only_for_the_named_domains(
    deliver: Deliverer, mx: MXServers, tls_material: TLSMaterial
) -> None:
    """implicit.test is not required: its untrusted certificate is fine, and unverified."""
    mx("mx1.ordered.test", starttls="offer")
    mx("implicit.test", starttls="offer", cert_kind="untrusted")
    sent = deliver(
        [RCPT, "user@implicit.test"],
        tls_policy=REQUIRE_ORDERED,
        ssl_context=tls_material.client_context(),
    )
    assert sent.report.all_delivered
    assert sent[RCPT].tls_verified
    other = sent["user@implicit.test"]
    assert (other.tls, other.tls_verified) == (True, False)


@pytest.mark.parametrize("cert_kind", ["wrong-name", "untrusted", "expired"])
def test_required_tls_failure_moves_to_the_next_mx(
    deliver: Deliverer, mx: MXServers, tls_material: TLSMaterial, cert_kind: str
) -> None:
    """mx1's certificate does not verify: a TLS failure is a soft error (X10), so mx2, whose
    certificate does, gets the mail."""
    mx1 = mx("mx1.ordered.test", starttls="offer", cert_kind=cert_kind)
    mx2 = mx("mx2.ordered.test", starttls="offer")
    sent = deliver([RCPT], tls_policy=REQUIRE_ORDERED, ssl_context=tls_material.client_context())
    outcome = sent[RCPT]
    assert (outcome.status, outcome.server_host, outcome.tls_verified) == (
        "delivered",
        "mx2.ordered.test",
        True,
    )
    first = outcome.attempts[0]
    assert first.host == "mx1.ordered.test" and first.error is not None
    assert mx1.messages == []
    assert received_by(mx2, sent.marker) == [(RCPT,)]


def test_required_tls_without_a_trusting_context_is_deferred(
    deliver: Deliverer, mx: MXServers
) -> None:
    """Without ``ssl_context`` the system's trust store is used, which knows no test CA."""
    server = mx("mx1.ordered.test", starttls="offer")
    outcome = deliver([RCPT], tls_policy=REQUIRE_ORDERED)[RCPT]
    assert outcome.status == "temporary"
    assert not outcome.tls_verified
    assert server.messages == []
