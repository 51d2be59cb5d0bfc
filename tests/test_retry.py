"""Retry advice (RFC 5321 §4.5.4.1): when to try the recipients still open again, when to give
up; and the next attempt, through a sender, to those recipients only."""

from __future__ import annotations

import threading
import uuid
from typing import TYPE_CHECKING

import pytest
from smtpproto.testing import Answer, ScriptedServer, reply

from smtpproto import DeliveryReport, RecipientOutcome, Relay, TLSMode
from smtpproto.sending import RetryAdvice, RetryPolicy

if TYPE_CHECKING:
    from adapters.sender_blocking import Sender
else:
    from smtpproto.adapters.sender_blocking import Sender

DAY = 86400.0


def report_of(*statuses: str) -> DeliveryReport:
    return DeliveryReport(
        tuple(RecipientOutcome(f"r{i}@example.net", s, None, "") for i, s in enumerate(statuses))  # type: ignore[arg-type]
    )


def test_the_defaults_are_the_rfcs() -> None:
    """At least 30 minutes between attempts, doubling up to 4 hours; give up after 5 days."""
    policy = RetryPolicy()
    assert [policy.delay(n) for n in (1, 2, 3, 4, 5, 6, 20)] == [
        1800.0, 3600.0, 7200.0, 14400.0, 14400.0, 14400.0, 14400.0,
    ]  # fmt: skip
    report = report_of("delivered", "temporary", "permanent", "temporary")
    advice = policy.advise(report, attempts=1, first_tried=0.0, now=10.0)
    assert advice == RetryAdvice(("r1@example.net", "r3@example.net"), 1800.0, give_up=False)
    assert advice.retry
    late = policy.advise(report, attempts=30, first_tried=0.0, now=5 * DAY - 3600)
    assert late.give_up and not late.retry and late.recipients == advice.recipients


def test_nothing_open_needs_no_advice() -> None:
    advice = RetryPolicy().advise(
        report_of("delivered", "permanent"), attempts=1, first_tried=0, now=0
    )
    assert advice == RetryAdvice((), None, give_up=False) and not advice.retry


@pytest.mark.parametrize(
    "fields", [{"first": 0.0}, {"backoff": 0.5}, {"first": 10.0, "longest": 5.0}]
)
def test_a_policy_that_makes_no_sense_is_refused(fields: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="first <= longest"):
        RetryPolicy(**fields)
    with pytest.raises(ValueError, match="from 1"):
        RetryPolicy().delay(0)


def test_the_next_attempt_goes_to_the_recipients_still_open_only() -> None:
    """A recipient refused with 451 once: the second attempt carries it alone."""
    seen: set[bytes] = set()
    lock = threading.Lock()

    def rcpt(line: bytes) -> bytes:
        with lock:
            first = b"later" in line and line not in seen
            seen.add(line)
        return bytes(reply(451, "4.2.1 later") if first else reply(250, "ok"))

    marker = uuid.uuid4().hex
    body = f"Subject: {marker}\r\nMessage-ID: <{marker}@client.test>\r\n\r\nx\r\n".encode()
    rcpts = ["a@example.net", "later@example.net", "b@example.net"]
    with ScriptedServer({"RCPT": Answer(rcpt)}) as server:
        host, port = server.address
        relay = Relay(host, port, tls=TLSMode.NONE)
        policy = RetryPolicy(first=1.0, longest=1.0)
        with Sender(relay=relay) as sender:
            report = sender.send(body, "me@client.test", rcpts)
            advice = policy.advise(report, attempts=1, first_tried=0.0, now=0.0)
            assert advice.recipients == ("later@example.net",) and advice.delay == 1.0
            again = sender.send(body, "me@client.test", report.still_open())
        assert again.all_delivered and again.still_open() == []
        [record] = server.finish()
        rcpt_lines = [c for c in record.commands if c.startswith(b"RCPT")]
        assert rcpt_lines == [
            b"RCPT TO:<a@example.net>",
            b"RCPT TO:<later@example.net>",
            b"RCPT TO:<b@example.net>",
            b"RCPT TO:<later@example.net>",
        ]
