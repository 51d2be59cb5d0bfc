"""``deliver(relay=Relay(...))`` for each adapter, against aiosmtpd with STARTTLS (or implicit
TLS) and AUTH: everything goes through the relay, whose replies decide each recipient's fate.

The resolver points where no DNS server answers, so a delivery that looked anything up would
fail: relay delivery needs no DNS.
"""

from __future__ import annotations

import pytest

from smtpproto import Relay, TLSMode
from tests.deliver_harness import Deliverer, received_by
from tests.servers.aiosmtpd_server import RunningSMTPServer
from tests.servers.fixtures import SMTPServerFactory
from tests.servers.net import pick_free_port
from tests.servers.tls import TLSMaterial

USER, PASSWORD = "relay-user", "relay-secret"
RCPTS = ["a@ordered.test", "b@elsewhere.example", "refused@elsewhere.example", "c@nullmx.test"]
REFUSED = "refused@elsewhere.example"


@pytest.fixture
def via_relay(deliver_without_dns: Deliverer) -> Deliverer:
    return deliver_without_dns


def relay_server(factory: SMTPServerFactory, **config: object) -> RunningSMTPServer:
    config.setdefault("starttls", "offer")
    return factory(
        host="127.0.0.1",
        auth=(USER, PASSWORD),
        auth_required=True,
        recipient_replies={
            REFUSED: "550 5.1.1 no such user",
            "busy@elsewhere.example": "451 4.3.0 later",
        },
        **config,
    )


def test_relay_delivers_everything_and_reports_the_refused_recipient(
    via_relay: Deliverer, smtp_server_factory: SMTPServerFactory, tls_material: TLSMaterial
) -> None:
    """One authenticated transaction over verified STARTTLS, whatever the recipients' domains
    (even a null-MX one: the relay decides)."""
    server = relay_server(smtp_server_factory)
    relay = Relay("127.0.0.1", server.port, USER, PASSWORD, tls=TLSMode.STARTTLS)
    sent = via_relay(RCPTS, relay=relay, ssl_context=tls_material.client_context())
    report = sent.report
    assert report.relay
    assert report.with_status("delivered") == [r for r in RCPTS if r != REFUSED]
    refused = report[REFUSED]
    assert refused.status == "permanent"
    assert refused.reply is not None and refused.reply.code == 550
    for outcome in report.outcomes:
        assert (outcome.server_host, outcome.tls, outcome.tls_verified) == ("127.0.0.1", True, True)
        assert [(a.host, a.port) for a in outcome.attempts] == [("127.0.0.1", server.port)]
    [message] = server.messages
    assert message.rcpt_tos == tuple(r for r in RCPTS if r != REFUSED)
    assert (message.auth_user, message.tls) == (USER, True)
    assert sent.marker.encode() in message.content
    assert not report.port_25_blocked


def test_relay_temporary_refusal_is_temporary(
    via_relay: Deliverer, smtp_server_factory: SMTPServerFactory, tls_material: TLSMaterial
) -> None:
    server = relay_server(smtp_server_factory)
    relay = Relay("127.0.0.1", server.port, USER, PASSWORD)
    sent = via_relay(
        ["a@ordered.test", "busy@elsewhere.example"],
        relay=relay,
        ssl_context=tls_material.client_context(),
    )
    busy = sent["busy@elsewhere.example"]
    assert busy.status == "temporary"
    assert busy.reply is not None and busy.reply.code == 451
    assert received_by(server, sent.marker) == [("a@ordered.test",)]


# aiosmtpd warns about AUTH without STARTTLS even when the whole connection is TLS.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_relay_implicit_tls(
    via_relay: Deliverer, smtp_server_factory: SMTPServerFactory, tls_material: TLSMaterial
) -> None:
    server = relay_server(smtp_server_factory, starttls="none", implicit_tls=True)
    relay = Relay("127.0.0.1", server.port, USER, PASSWORD, tls=TLSMode.IMPLICIT)
    sent = via_relay(["a@ordered.test"], relay=relay, ssl_context=tls_material.client_context())
    outcome = sent["a@ordered.test"]
    assert (outcome.status, outcome.tls, outcome.tls_verified) == ("delivered", True, True)
    assert received_by(server, sent.marker) == [("a@ordered.test",)]


def test_relay_wrong_password_is_permanent_535(
    via_relay: Deliverer, smtp_server_factory: SMTPServerFactory, tls_material: TLSMaterial
) -> None:
    server = relay_server(smtp_server_factory)
    relay = Relay("127.0.0.1", server.port, USER, "wrong", tls=TLSMode.STARTTLS)
    sent = via_relay(RCPTS, relay=relay, ssl_context=tls_material.client_context())
    assert sent.report.with_status("permanent") == RCPTS
    for outcome in sent.report.outcomes:
        assert outcome.reply is not None and outcome.reply.code == 535
        assert outcome.attempts[0].error is not None
    assert server.messages == []
    assert [verb for c in server.connections for verb in c.verbs if verb == "MAIL"] == []


def test_relay_with_an_untrusted_certificate_is_not_used(
    via_relay: Deliverer, smtp_server_factory: SMTPServerFactory
) -> None:
    """Without a context trusting the test CA, STARTTLS to the relay fails verification: the
    password is never sent, and nothing is delivered (a temporary failure)."""
    server = relay_server(smtp_server_factory)
    relay = Relay("127.0.0.1", server.port, USER, PASSWORD, tls=TLSMode.STARTTLS)
    sent = via_relay(["a@ordered.test"], relay=relay)
    outcome = sent["a@ordered.test"]
    assert outcome.status == "temporary"
    assert not outcome.tls_verified
    assert all("AUTH" not in c.verbs for c in server.connections)
    assert server.messages == []


def test_relay_unreachable_is_temporary(via_relay: Deliverer, tls_material: TLSMaterial) -> None:
    """Nothing listens at the relay's port: temporary, and not the "port 25 blocked" advice
    (that one is about direct delivery)."""
    port = pick_free_port("127.0.0.1")
    relay = Relay("127.0.0.1", port, USER, PASSWORD, tls=TLSMode.STARTTLS)
    sent = via_relay(RCPTS, relay=relay, ssl_context=tls_material.client_context())
    assert sent.report.with_status("temporary") == RCPTS
    for outcome in sent.report.outcomes:
        [attempt] = outcome.attempts
        assert (attempt.host, attempt.port, attempt.connect_failed) == ("127.0.0.1", port, True)
    assert not sent.report.port_25_blocked and sent.report.diagnosis is None
