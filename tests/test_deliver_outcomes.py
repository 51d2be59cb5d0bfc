"""Issue 14, on the library's side, for each adapter: a temporary outcome from a server's reply
names that server, the details do not repeat the reply code, a multi-line reply keeps
``str(report)``'s layout, one dead MX is no "port 25 blocked", and the ``smtpproto.delivery``
logger says each connection, each failed handshake and cleartext retry, each host given up and
which host settled which recipient."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pytest

from smtpproto import Relay, TLSMode, TLSPolicy
from tests.deliver_harness import Deliverer, MXServers, address

if TYPE_CHECKING:  # mypy knows testing/ as "testing" (package-dir mapping)
    from testing import Action, Peer, ScriptedServer
else:
    from smtpproto.testing import Action, Peer, ScriptedServer

from tests.servers.fixtures import SMTPServerFactory
from tests.servers.tls import TLSMaterial

pytestmark = pytest.mark.dns

GOOD, BUSY = "good@ordered.test", "busy@ordered.test"


def test_a_temporary_reply_names_the_server_that_gave_it(deliver: Deliverer, mx: MXServers) -> None:
    """busy@ gets 450 at mx1, and no other MX is up: its outcome is temporary, with mx1's reply
    and mx1 as its server (the docs say host and address name the server that replied)."""
    mx("mx1.ordered.test", recipient_replies={BUSY: "450 4.2.1 mailbox busy"})
    sent = deliver([GOOD, BUSY])
    busy = sent[BUSY]
    assert busy.status == "temporary"
    assert busy.reply is not None and busy.reply.code == 450
    assert (busy.server_host, busy.server_address) == ("mx1.ordered.test", "127.0.0.11")
    assert (busy.tls, busy.tls_verified) == (False, False)
    assert "busy@ordered.test: temporary via mx1.ordered.test [127.0.0.11]: 450 4.2.1" in str(
        sent.report
    )


def test_a_421_greeting_names_its_server_and_a_dead_one_does_not(
    deliver: Deliverer, mx: MXServers
) -> None:
    """implicit.test's only MX says 421 at the greeting: the outcome carries that reply and that
    server; ordered.test's MXs all refuse: no server, and the words say so."""
    mx("implicit.test", greeting="421 4.3.2 busy")
    sent = deliver(["d@implicit.test", GOOD])
    busy = sent["d@implicit.test"]
    assert busy.reply is not None and busy.reply.code == 421
    assert (busy.server_host, busy.server_address) == ("implicit.test", "127.0.0.51")
    assert busy.detail == "the server is not available: 4.3.2 busy"
    dead = sent[GOOD]
    assert (dead.reply, dead.server_host) == (None, None)
    assert dead.detail == "no mail server could be reached"


def test_one_dead_mx_is_not_a_blocked_port(deliver: Deliverer) -> None:
    """implicit.test has one address, and it refuses: that says nothing about port 25."""
    report = deliver(["d@implicit.test"]).report
    assert report.with_status("temporary") == ["d@implicit.test"]
    assert report["d@implicit.test"].attempts[0].connect_failed
    assert not report.port_25_blocked and report.diagnosis is None


def test_required_tls_failure_says_why_not_that_nobody_answered(
    deliver: Deliverer, mx: MXServers
) -> None:
    """mx1 answered but offers no STARTTLS where TLS is required: the outcome says that, not
    "no mail server could be reached", and names no server (none gave a reply)."""
    mx("mx1.ordered.test")
    outcome = deliver([GOOD], tls_policy=TLSPolicy(frozenset({"ordered.test"})))[GOOD]
    assert outcome.status == "temporary"
    assert "STARTTLS" in outcome.detail and outcome.server_host is None
    assert outcome.attempts[0].tls_failed


def test_relay_wrong_password_detail_has_the_code_once(
    deliver_without_dns: Deliverer,
    smtp_server_factory: SMTPServerFactory,
    tls_material: TLSMaterial,
) -> None:
    server = smtp_server_factory(starttls="offer", auth=("u", "right"), auth_required=True)
    relay = Relay("127.0.0.1", server.port, "u", "wrong", tls=TLSMode.STARTTLS)
    sent = deliver_without_dns([GOOD], relay=relay, ssl_context=tls_material.client_context())
    outcome = sent[GOOD]
    assert outcome.reply is not None and outcome.reply.code == 535
    assert outcome.detail == f"authentication failed: {outcome.reply.text}"
    line = str(sent.report).splitlines()[1]
    assert line.count("535") == 1, line
    assert (outcome.server_host, outcome.tls, outcome.tls_verified) == ("127.0.0.1", True, True)


def test_a_multi_line_reply_keeps_the_report_layout(deliver_without_dns: Deliverer) -> None:
    """A two-line reply to the end of data (the shape of Exim's to BDAT LAST): its second line
    is indented under the recipient's line in ``str(report)``."""
    dot = b"250-1234 byte chunk, total 1234\r\n250 OK id=1tXyZ-0A\r\n"
    with ScriptedServer({"DOT": dot}) as server:
        host, port = server.address
        sent = deliver_without_dns([GOOD], relay=Relay(host, port, tls=TLSMode.NONE))
    lines = str(sent.report).splitlines()
    assert lines[1].endswith(": 250 1234 byte chunk, total 1234")
    assert lines[2] == "      OK id=1tXyZ-0A"
    assert lines[3].startswith("    tried 127.0.0.1 [127.0.0.1]:")


def not_tls(peer: Peer) -> None:
    """After the 220 to STARTTLS: read the ClientHello, answer with plain text."""
    peer.receive()
    peer.send(b"this is not TLS\r\n")


def test_the_delivery_logger_tells_the_story(
    deliver: Deliverer,
    mx: MXServers,
    tls_material: TLSMaterial,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """mx1's STARTTLS handshake fails, so it is retried in cleartext and takes good@ but defers
    busy@; mx2 refuses; mx3 takes busy@.  Each step is one INFO line of smtpproto.delivery."""
    rules: dict[str, Action] = {"HANDSHAKE": not_tls, "RCPT2": b"450 4.2.1 mailbox busy\r\n"}
    mx("mx3.ordered.test")
    context = tls_material.server_context()
    with (
        ScriptedServer(rules, host=address("mx1.ordered.test"), port=25, tls_context=context),
        caplog.at_level(logging.INFO, logger="smtpproto.delivery"),
    ):
        sent = deliver([GOOD, BUSY])
    assert sent.report.all_delivered
    lines = [r.getMessage() for r in caplog.records if r.name == "smtpproto.delivery"]
    mx1, mx2, mx3 = (f"mx{n}.ordered.test [127.0.0.{10 + n}] port 25" for n in (1, 2, 3))
    assert lines[0] == f"connecting to {mx1} (TLS: opportunistic)"
    assert lines[1].startswith(f"TLS handshake with {mx1} failed (")
    assert lines[1].endswith("); connecting again, in cleartext")
    assert lines[2] == f"outcome at {mx1}: delivered: {GOOD}; not settled here: {BUSY}"
    assert lines[3] == f"connecting to {mx2} (TLS: opportunistic)"
    assert lines[4].startswith(f"giving up on {mx2}: cannot connect to 127.0.0.12 port 25")
    assert lines[5] == f"connecting to {mx3} (TLS: opportunistic)"
    assert lines[6] == f"outcome at {mx3}: delivered: {BUSY}"
    assert len(lines) == 7


def test_the_delivery_logger_through_a_relay(
    deliver_without_dns: Deliverer, caplog: pytest.LogCaptureFixture
) -> None:
    """The relay's connection, its failed transaction (451 to MAIL) and nothing settled; then a
    relay that refuses the session (554 greeting)."""
    with ScriptedServer({"MAIL": b"451 4.3.0 later\r\n"}) as server:
        host, port = server.address
        with caplog.at_level(logging.INFO, logger="smtpproto.delivery"):
            sent = deliver_without_dns([GOOD], relay=Relay(host, port, tls=TLSMode.NONE))
        with ScriptedServer({"GREETING": b"554 5.3.2 no service\r\n"}) as refusing:
            h2, p2 = refusing.address
            with caplog.at_level(logging.INFO, logger="smtpproto.delivery"):
                refused = deliver_without_dns([GOOD], relay=Relay(h2, p2, tls=TLSMode.NONE))
    lines = [r.getMessage() for r in caplog.records if r.name == "smtpproto.delivery"]
    where = f"127.0.0.1 [127.0.0.1] port {port}"
    assert lines[0] == f"connecting to the relay {where} (TLS: none)"
    assert lines[2] == f"outcome at {where}: not settled here: {GOOD}"
    assert lines[1].startswith(f"the transaction with {where} failed: ")
    assert sent[GOOD].status == "temporary" and sent[GOOD].server_host == "127.0.0.1"
    assert lines[4].startswith(f"the relay 127.0.0.1 [127.0.0.1] port {p2} failed: ")
    assert refused[GOOD].status == "permanent" and refused[GOOD].reply is not None
