"""When ``deliver()`` moves on to the next MX, and when it stops (X10, X5), for each adapter.

Postfix's rules (``smtp_trouble.c``): a connection failure, a timeout, a 4xx/5xx greeting or a
4xx reply moves on; a 5xx to MAIL, RCPT or the data is final, and the next MX never hears of
the recipient.  Every case checks the report and which server actually got the message.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from tests.deliver_harness import (
    TEST_TIMEOUTS,
    Deliverer,
    MXServers,
    SilentListener,
    received_by,
)

pytestmark = pytest.mark.dns

GOOD, BAD, BUSY = "good@ordered.test", "bad@ordered.test", "busy@ordered.test"


# -- connection failures ------------------------------------------------------------------------


def test_x10_dead_first_mx_delivered_by_the_next(deliver: Deliverer, mx: MXServers) -> None:
    """Nothing listens at dead.deadmx.test: refused, then live.deadmx.test takes the mail."""
    live = mx("live.deadmx.test")
    sent = deliver(["user@deadmx.test"])
    outcome = sent["user@deadmx.test"]
    assert (outcome.status, outcome.server_host, outcome.server_address) == (
        "delivered",
        "live.deadmx.test",
        "127.0.0.32",
    )
    dead, ok = outcome.attempts
    assert (dead.host, dead.address, dead.port, dead.connect_failed) == (
        "dead.deadmx.test",
        "127.0.0.31",
        25,
        True,
    )
    assert dead.error is not None and "127.0.0.31" in dead.error
    assert (ok.host, ok.error, ok.connect_failed) == ("live.deadmx.test", None, False)
    assert received_by(live, sent.marker) == [("user@deadmx.test",)]
    assert not sent.report.port_25_blocked


def test_x10_refused_connection_is_named_in_the_report(deliver: Deliverer, mx: MXServers) -> None:
    """A person reading the report can tell a refused connection from other failures."""
    mx("live.deadmx.test")
    sent = deliver(["user@deadmx.test"])
    error = sent["user@deadmx.test"].attempts[0].error
    assert error is not None and "refused" in error.lower()
    assert "refused" in str(sent.report).lower()


def test_x10_silent_first_mx_times_out_and_the_next_delivers(
    deliver: Deliverer, mx: MXServers, silent: Callable[[str], SilentListener]
) -> None:
    """mx1 accepts the connection and never greets: after the greeting timeout, mx2."""
    listener = silent("mx1.ordered.test")
    mx2 = mx("mx2.ordered.test")
    sent = deliver(["user@ordered.test"], timeout=dataclasses.replace(TEST_TIMEOUTS, greeting=1))
    outcome = sent["user@ordered.test"]
    assert (outcome.status, outcome.server_host) == ("delivered", "mx2.ordered.test")
    first = outcome.attempts[0]
    assert first.host == "mx1.ordered.test" and not first.connect_failed
    assert first.error is not None and "timed out" in first.error
    assert listener.connections == 1
    assert received_by(mx2, sent.marker) == [("user@ordered.test",)]


@pytest.mark.parametrize(
    "greeting", ["554 5.3.2 no service here", "421 4.3.2 closing"], ids=["554", "421"]
)
def test_x10_refusing_greeting_moves_to_the_next_mx(
    deliver: Deliverer, mx: MXServers, greeting: str
) -> None:
    """A 5xx greeting is a soft error too (Postfix's smtp_skip_5xx_greeting)."""
    mx1 = mx("mx1.ordered.test", greeting=greeting)
    mx2 = mx("mx2.ordered.test")
    sent = deliver(["user@ordered.test"])
    outcome = sent["user@ordered.test"]
    assert (outcome.status, outcome.server_host) == ("delivered", "mx2.ordered.test")
    assert outcome.attempts[0].host == "mx1.ordered.test" and outcome.attempts[0].error
    assert mx1.messages == []
    assert received_by(mx2, sent.marker) == [("user@ordered.test",)]


# -- X5: the addresses of one host, and the limits ------------------------------------------------


def flip_dnsmasq_rotation(deliver: Deliverer) -> None:
    """dnsmasq rotates a name's records by one on every query of that name, and a delivery asks
    twice (AAAA, then A), so each delivery would see the same order.  One more query here
    makes consecutive deliveries see the two addresses in opposite orders."""
    assert deliver.dns is not None
    deliver.dns.resolver().resolve("mx.multihomed.test", "A")


def test_x5_second_address_of_a_multihomed_mx(deliver: Deliverer, mx: MXServers) -> None:
    """mx.multihomed.test is 127.0.0.61 (dead) and 127.0.0.62: both orders of the addresses
    end on the second one, and the client keeps the resolver's order."""
    server = mx("mx.multihomed.test", at="127.0.0.62")
    tried = []
    for _ in range(2):
        flip_dnsmasq_rotation(deliver)
        sent = deliver(["user@multihomed.test"])
        outcome = sent["user@multihomed.test"]
        assert (outcome.status, outcome.server_host, outcome.server_address) == (
            "delivered",
            "mx.multihomed.test",
            "127.0.0.62",
        )
        assert received_by(server, sent.marker) == [("user@multihomed.test",)]
        tried.append([(a.address, a.connect_failed) for a in outcome.attempts])
    assert sorted(tried) == [
        [("127.0.0.61", True), ("127.0.0.62", False)],
        [("127.0.0.62", False)],
    ]


def test_x5_address_limit_stops_before_the_second_address(
    deliver: Deliverer, mx: MXServers
) -> None:
    """With ``address_limit=1`` only the first address the resolver gave is tried: of the two
    orders, the one with the dead address first is deferred."""
    server = mx("mx.multihomed.test", at="127.0.0.62")
    outcomes = []
    for _ in range(2):
        flip_dnsmasq_rotation(deliver)
        outcomes.append(deliver(["user@multihomed.test"], address_limit=1)["user@multihomed.test"])
    assert sorted((o.status, tuple(a.address for a in o.attempts)) for o in outcomes) == [
        ("delivered", ("127.0.0.62",)),
        ("temporary", ("127.0.0.61",)),
    ]
    assert len(server.connections) == 1


@pytest.mark.parametrize(("limit", "tried"), [(None, 2), (3, 3)], ids=["default", "three"])
def test_x5_session_limit_counts_sessions_that_got_a_greeting(
    deliver: Deliverer, mx: MXServers, limit: int | None, tried: int
) -> None:
    """Every MX answers 450 to the recipient: Postfix's default of two sessions leaves mx3
    alone; the outcome is the last server's temporary reply."""
    busy = {BUSY: "450 4.2.1 mailbox busy"}
    servers = [mx(f"mx{n}.ordered.test", recipient_replies=busy) for n in (1, 2, 3)]
    options: dict[str, Any] = {} if limit is None else {"session_limit": limit}
    sent = deliver([BUSY], **options)
    outcome = sent[BUSY]
    assert outcome.status == "temporary"
    assert outcome.reply is not None and outcome.reply.code == 450
    assert [len(s.connections) for s in servers] == [1] * tried + [0] * (3 - tried)
    assert [a.host for a in outcome.attempts] == [f"mx{n}.ordered.test" for n in (1, 2, 3)][:tried]
    assert all(s.messages == [] for s in servers)


# -- replies to MAIL, RCPT and the data ------------------------------------------------------


def test_x10_5xx_to_rcpt_is_permanent_and_not_retried(deliver: Deliverer, mx: MXServers) -> None:
    """bad@ is refused for good by mx1; good@ is delivered there; mx2 hears of neither."""
    mx1 = mx("mx1.ordered.test", recipient_replies={BAD: "550 5.1.1 no such user"})
    mx2 = mx("mx2.ordered.test")
    sent = deliver([GOOD, BAD])
    assert sent.report.with_status("delivered") == [GOOD]
    bad = sent[BAD]
    assert (bad.status, bad.server_host) == ("permanent", "mx1.ordered.test")
    assert bad.reply is not None and bad.reply.code == 550
    assert str(bad.reply.enhanced_status) == "5.1.1"
    assert received_by(mx1, sent.marker) == [(GOOD,)]
    assert mx2.connections == []


def test_x10_5xx_to_the_only_rcpt_is_permanent_and_not_retried(
    deliver: Deliverer, mx: MXServers
) -> None:
    mx1 = mx("mx1.ordered.test", recipient_replies={BAD: "550 5.1.1 no such user"})
    mx2 = mx("mx2.ordered.test")
    outcome = deliver([BAD])[BAD]
    assert (outcome.status, outcome.server_host) == ("permanent", "mx1.ordered.test")
    assert mx1.messages == []
    assert mx2.connections == []


def test_x10_4xx_to_rcpt_is_retried_at_the_next_mx(deliver: Deliverer, mx: MXServers) -> None:
    """busy@ gets 450 at mx1 and goes to mx2 alone; good@ stays delivered by mx1, once."""
    mx1 = mx("mx1.ordered.test", recipient_replies={BUSY: "450 4.2.1 mailbox busy"})
    mx2 = mx("mx2.ordered.test")
    mx3 = mx("mx3.ordered.test")
    sent = deliver([GOOD, BUSY])
    assert sent.report.all_delivered
    assert sent[GOOD].server_host == "mx1.ordered.test"
    busy = sent[BUSY]
    assert (busy.server_host, busy.server_address) == ("mx2.ordered.test", "127.0.0.12")
    assert [a.host for a in busy.attempts] == ["mx1.ordered.test", "mx2.ordered.test"]
    assert received_by(mx1, sent.marker) == [(GOOD,)]
    assert received_by(mx2, sent.marker) == [(BUSY,)]
    assert mx3.connections == []


def test_x10_5xx_to_mail_is_permanent_for_all_without_next_mx(
    deliver: Deliverer, mx: MXServers
) -> None:
    mx1 = mx("mx1.ordered.test", mail_reply="550 5.7.1 sender refused")
    mx2 = mx("mx2.ordered.test")
    sent = deliver([GOOD, BUSY])
    assert sent.report.with_status("permanent") == [GOOD, BUSY]
    for outcome in sent.report.outcomes:
        assert outcome.reply is not None and outcome.reply.code == 550
        assert outcome.server_host == "mx1.ordered.test"
    assert mx1.messages == []
    assert mx2.connections == []


def test_x10_4xx_to_mail_moves_to_the_next_mx(deliver: Deliverer, mx: MXServers) -> None:
    mx1 = mx("mx1.ordered.test", mail_reply="451 4.3.0 try later")
    mx2 = mx("mx2.ordered.test")
    sent = deliver([GOOD, BUSY])
    assert sent.report.all_delivered
    assert {o.server_host for o in sent.report.outcomes} == {"mx2.ordered.test"}
    assert mx1.messages == []
    assert received_by(mx2, sent.marker) == [(GOOD, BUSY)]


def test_x10_5xx_after_the_data_is_permanent_without_next_mx(
    deliver: Deliverer, mx: MXServers
) -> None:
    mx1 = mx("mx1.ordered.test", data_reply="554 5.6.0 content refused")
    mx2 = mx("mx2.ordered.test")
    sent = deliver([GOOD])
    outcome = sent[GOOD]
    assert (outcome.status, outcome.server_host) == ("permanent", "mx1.ordered.test")
    assert outcome.reply is not None and outcome.reply.code == 554
    assert len(mx1.messages) == 1  # aiosmtpd records the content before it replies
    assert mx2.connections == []


def test_x10_4xx_after_the_data_moves_to_the_next_mx(deliver: Deliverer, mx: MXServers) -> None:
    mx1 = mx("mx1.ordered.test", data_reply="451 4.3.0 queue full")
    mx2 = mx("mx2.ordered.test")
    sent = deliver([GOOD])
    outcome = sent[GOOD]
    assert (outcome.status, outcome.server_host) == ("delivered", "mx2.ordered.test")
    assert outcome.attempts[0].error is not None and "451" in outcome.attempts[0].error
    assert received_by(mx2, sent.marker) == [(GOOD,)]
    assert len(mx1.messages) == 1


def test_x10_soft_error_on_the_last_mx_defers(deliver: Deliverer, mx: MXServers) -> None:
    """Only mx3 is up, and it says 421 at the greeting: nothing delivered, temporary."""
    mx3 = mx("mx3.ordered.test", greeting="421 4.3.2 closing")
    sent = deliver([GOOD])
    outcome = sent[GOOD]
    assert outcome.status == "temporary"
    assert [a.host for a in outcome.attempts] == [f"mx{n}.ordered.test" for n in (1, 2, 3)]
    assert mx3.messages == [] and len(mx3.connections) == 1
    assert not sent.report.port_25_blocked  # mx3 did answer
