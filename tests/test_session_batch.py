"""Session.send_messages: transactions pipelined across messages, each message settled in order.

Every script is played whole and byte by byte (``run_both``): the writes must be the same, and so
must the outcomes.  With DATA and PIPELINING a message costs one write and one round trip: its
content, the end of data and the next message's MAIL, RCPT and DATA travel together (RFC 2920
§3.1).  With CHUNKING a window of whole ``MAIL … RCPT … BDAT LAST`` transactions does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from smtpproto import (
    Batch,
    DataRefused,
    MessageEncodingError,
    MessageOutcome,
    MessageTooLarge,
    OutgoingMessage,
    RecipientsRefused,
    RemoteProtocolError,
    SenderRefused,
    SendOptions,
    SendResult,
    ServiceClosing,
    Session,
    SessionOptions,
    SMTPError,
    TLSMode,
    TransactionWindow,
    UnexpectedReplyCode,
    prepare_message,
)
from smtpproto._operations.batch import PIPELINE_GROUP
from smtpproto._operations.message import CHUNK_SIZE
from smtpproto._operations.session import LISTEN_INTERVAL
from smtpproto.driver import Close, Operation, Receive, Request, Send, drive

from .scripted import EOF, Expect, Reply, Step, open_session, run, run_both

SENDER = "alice@example.org"
BOB, CAROL = "bob@example.net", "carol@example.net"
DOT = b".\r\n"
OK = b"250 2.1.0 ok\r\n"
GO = b"354 go ahead\r\n"
QUEUED = b"250 2.0.0 queued\r\n"
RSET = b"RSET\r\n"


def body(n: int) -> bytes:
    return b"Subject: %d\r\n\r\nmessage %d\r\n" % (n, n)


def message(n: int, *recipients: str) -> OutgoingMessage:
    return prepare_message(body(n), SENDER, list(recipients or (BOB,)))


def opening(*recipients: str, tail: bytes = b"DATA\r\n", size: int | None = None) -> bytes:
    mail = f"MAIL FROM:<{SENDER}>" + (f" SIZE={size}" if size is not None else "")
    return (
        mail.encode()
        + b"\r\n"
        + b"".join(b"RCPT TO:<%s>\r\n" % r.encode() for r in recipients or (BOB,))
        + tail
    )


def bdat(n: int, *recipients: str) -> bytes:
    content = body(n)
    return opening(*recipients, tail=b"BDAT %d LAST\r\n" % len(content)) + content


class Outcomes(list[MessageOutcome]):
    """Outcomes that compare errors by type and message (run_both compares the two runs)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Outcomes) and self.keys() == other.keys()

    __hash__ = None

    def keys(self) -> list[object]:
        return [o if isinstance(o, SendResult) else (type(o), str(o)) for o in self]


def every_outcome(batch: Batch) -> Operation[list[MessageOutcome]]:
    outcomes = Outcomes()
    while (outcome := (yield from batch.next_outcome())) is not None:
        outcomes.append(outcome)
    assert (yield from batch.next_outcome()) is None  # and it stays over
    return outcomes


def batch_of(
    *keywords: str, messages: Iterable[OutgoingMessage], quit: bool = False, **options: Any
) -> Callable[[], Operation[list[MessageOutcome]]]:
    def make() -> Operation[list[MessageOutcome]]:
        session = open_session(*keywords, **options)
        return every_outcome(session.send_messages(list(messages), quit=quit))

    return make


def kinds(outcomes: list[MessageOutcome]) -> list[str]:
    return [
        "delivered" if isinstance(o, SendResult) and o.all_delivered else type(o).__name__
        for o in outcomes
    ]


# -- DATA and PIPELINING: one write and one round trip per message -------------------------------


def test_R1_content_end_and_next_envelope_share_one_write() -> None:
    script = [
        Expect.send(opening()),
        Reply(OK * 2 + GO),
        Expect.send(body(1) + DOT + opening(), phase="DATA"),
        Reply(QUEUED + OK * 2 + GO),
        Expect.send(body(2) + DOT + opening()),
        Reply(QUEUED + OK * 2 + GO),
        Expect.send(body(3) + DOT),
        Reply(QUEUED),
    ]
    outcomes = run_both(batch_of("PIPELINING", messages=[message(i) for i in (1, 2, 3)]), script)
    assert kinds(outcomes) == ["delivered"] * 3


def test_C14_quit_rides_with_the_last_message_and_the_session_closes() -> None:
    script = [
        Expect.send(opening()),
        Reply(OK * 2 + GO),
        Expect.send(body(1) + DOT + opening()),
        Reply(QUEUED + OK * 2 + GO),
        Expect.send(body(2) + DOT + b"QUIT\r\n"),
        Reply(QUEUED + b"221 bye\r\n"),
        Expect.close(graceful=True),
    ]
    make = batch_of("PIPELINING", messages=[message(1), message(2)], quit=True)
    assert kinds(run_both(make, script)) == ["delivered"] * 2


def test_C14_quit_asked_of_an_empty_batch_is_a_plain_quit() -> None:
    script = [Expect.send(b"QUIT\r\n"), Reply(b"221 bye\r\n"), Expect.close(graceful=True)]
    assert list(run_both(batch_of("PIPELINING", messages=[], quit=True), script)) == []


def test_C4_without_pipelining_messages_go_one_after_the_other() -> None:
    one = [
        Expect.send(f"MAIL FROM:<{SENDER}>\r\n".encode()),
        Reply(OK),
        Expect.send(b"RCPT TO:<%s>\r\n" % BOB.encode()),
        Reply(OK),
        Expect.send(b"DATA\r\n"),
        Reply(GO),
    ]
    script = [
        *one,
        Expect.send(body(1) + DOT),
        Reply(QUEUED),
        *one,
        Expect.send(body(2) + DOT),
        Reply(QUEUED),
        Expect.send(b"QUIT\r\n"),
        Reply(b"221 bye\r\n"),
        Expect.close(graceful=True),
    ]
    make = batch_of(messages=[message(1), message(2)], quit=True)
    assert kinds(run_both(make, script)) == ["delivered"] * 2


# -- refusals touch only their own message -----------------------------------------------------


def test_C3_refused_MAIL_mid_batch_then_RSET_and_the_next_goes() -> None:
    script = [
        Expect.send(opening()),
        Reply(OK * 2 + GO),
        Expect.send(body(1) + DOT + opening()),
        Reply(QUEUED + b"550 5.7.1 no\r\n" + b"503 5.5.1 no MAIL\r\n" * 2),
        Expect.send(RSET),
        Reply(OK),
        Expect.send(opening()),
        Reply(OK * 2 + GO),
        Expect.send(body(3) + DOT),
        Reply(QUEUED),
    ]
    outcomes = run_both(batch_of("PIPELINING", messages=[message(i) for i in (1, 2, 3)]), script)
    assert kinds(outcomes) == ["delivered", "SenderRefused", "delivered"]
    refused = outcomes[1]
    assert isinstance(refused, SenderRefused) and refused.reply.code == 550


def test_C11_every_RCPT_refused_mid_batch_after_354_a_lone_dot_then_RSET() -> None:
    script = [
        Expect.send(opening()),
        Reply(OK * 2 + GO),
        Expect.send(body(1) + DOT + opening()),
        Reply(QUEUED + OK + b"550 5.1.1 unknown\r\n" + GO),
        Expect.send(DOT),
        Reply(b"554 5.5.1 no valid recipients\r\n"),
        Expect.send(RSET),
        Reply(OK),
        Expect.send(opening()),
        Reply(OK * 2 + GO),
        Expect.send(body(3) + DOT),
        Reply(QUEUED),
    ]
    outcomes = run_both(batch_of("PIPELINING", messages=[message(i) for i in (1, 2, 3)]), script)
    assert kinds(outcomes) == ["delivered", "RecipientsRefused", "delivered"]
    refused = outcomes[1]
    assert isinstance(refused, RecipientsRefused)
    assert refused.result[BOB].rcpt_reply.code == 550


def test_C4_refused_DATA_mid_batch_then_RSET_and_refused_content_is_a_result() -> None:
    script = [
        Expect.send(opening()),
        Reply(OK * 2 + GO),
        Expect.send(body(1) + DOT + opening()),
        Reply(b"554 5.7.1 spam\r\n" + OK * 2 + b"451 4.3.0 try later\r\n"),
        Expect.send(RSET),
        Reply(OK),
        Expect.send(opening()),
        Reply(OK * 2 + GO),
        Expect.send(body(3) + DOT),
        Reply(QUEUED),
    ]
    outcomes = run_both(batch_of("PIPELINING", messages=[message(i) for i in (1, 2, 3)]), script)
    assert kinds(outcomes) == ["DataRefused", "DataRefused", "delivered"]
    first, second = outcomes[0], outcomes[1]
    assert isinstance(first, DataRefused) and first.reply.code == 554  # the content refused
    assert isinstance(second, DataRefused) and second.reply.code == 451  # DATA refused


def test_message_too_large_settles_before_any_write_and_the_rest_go() -> None:
    big = prepare_message(b"x" * 2000, SENDER, [BOB])
    script = [
        Expect.send(opening(size=len(body(1)))),
        Reply(OK * 2 + GO),
        Expect.send(body(1) + DOT + opening(size=len(body(3)))),
        Reply(QUEUED + OK * 2 + GO),
        Expect.send(body(3) + DOT),
        Reply(QUEUED),
    ]
    make = batch_of("PIPELINING", "SIZE 1000", messages=[message(1), big, message(3)])
    outcomes = run_both(make, script)
    assert kinds(outcomes) == ["delivered", "MessageTooLarge", "delivered"]
    assert isinstance(outcomes[1], MessageTooLarge)


def test_per_message_options_and_recipients() -> None:
    dsn = prepare_message(body(2), SENDER, [BOB, CAROL], options=SendOptions(ret="HDRS"))
    script = [
        Expect.send(opening()),
        Reply(OK * 2 + GO),
        Expect.send(
            body(1)
            + DOT
            + f"MAIL FROM:<{SENDER}> RET=HDRS\r\n".encode()
            + opening(BOB, CAROL).split(b"\r\n", 1)[1]
        ),
        Reply(QUEUED + OK + OK + b"550 5.1.1 no carol\r\n" + GO),
        Expect.send(body(2) + DOT),
        Reply(QUEUED),
    ]
    outcomes = run_both(batch_of("PIPELINING", "DSN", messages=[message(1), dsn]), script)
    second = outcomes[1]
    assert isinstance(second, SendResult)
    assert second.delivered == [BOB] and not second[CAROL].accepted


# -- a 421 or a lost connection: nothing in flight was delivered -------------------------------


def test_C15_421_mid_batch_settles_the_messages_in_flight_and_the_rest_fail() -> None:
    script = [
        Expect.send(opening()),
        Reply(OK * 2 + GO),
        Expect.send(body(1) + DOT + opening()),
        Reply(b"421 4.3.2 shutting down\r\n"),
        Expect.close(),
    ]
    outcomes = run_both(batch_of("PIPELINING", messages=[message(i) for i in (1, 2, 3)]), script)
    assert kinds(outcomes) == ["ServiceClosing", "ServiceClosing", "ConnectionLostError"]
    assert all(not isinstance(o, SendResult) for o in outcomes)


def test_C16_connection_lost_mid_batch_delivers_nothing_in_flight() -> None:
    script = [
        Expect.send(opening()),
        Reply(OK * 2 + GO),
        Expect.send(body(1) + DOT + opening()),
        Reply(QUEUED),
        EOF,
        Expect.close(),
    ]
    outcomes = run_both(batch_of("PIPELINING", messages=[message(i) for i in (1, 2, 3)]), script)
    # The first was answered 250 before the loss: delivered; the second was in flight.
    assert kinds(outcomes) == ["delivered", "ConnectionLostError", "ConnectionLostError"]


def test_R5_unexpected_code_mid_batch_ends_only_its_transaction() -> None:
    script = [
        Expect.send(opening()),
        Reply(b"651 what\r\n" + b"503 5.5.1 no\r\n" * 2),
        Expect.send(RSET),
        Reply(OK),
        Expect.send(opening()),
        Reply(OK * 2 + GO),
        Expect.send(body(2) + DOT),
        Reply(QUEUED),
    ]
    outcomes = run_both(batch_of("PIPELINING", messages=[message(1), message(2)]), script)
    assert isinstance(outcomes[0], UnexpectedReplyCode)
    assert kinds(outcomes)[1] == "delivered"


# -- CHUNKING: a window of whole transactions -------------------------------------------------


def test_R1_chunking_window_writes_whole_transactions_and_refills_at_half() -> None:
    window = TransactionWindow(messages=4)
    script = [
        Expect.send(b"".join(bdat(i) for i in (1, 2, 3, 4)), phase="BDAT-LAST"),
        Reply(OK * 6),
        Expect.send(bdat(5) + bdat(6) + b"QUIT\r\n"),
        Reply(OK * 12 + b"221 bye\r\n"),
        Expect.close(graceful=True),
    ]
    make = batch_of(
        "PIPELINING",
        "CHUNKING",
        messages=[message(i) for i in range(1, 7)],
        quit=True,
        window=window,
    )
    assert kinds(run_both(make, script)) == ["delivered"] * 6


def test_chunking_window_is_bounded_by_octets_too() -> None:
    window = TransactionWindow(octets=len(body(1)) * 2 + 1)
    script = [
        Expect.send(bdat(1) + bdat(2) + bdat(3)),  # the third starts below the bound
        Reply(OK * 9),
        Expect.send(bdat(4)),
        Reply(OK * 3),
    ]
    make = batch_of(
        "PIPELINING", "CHUNKING", messages=[message(i) for i in (1, 2, 3, 4)], window=window
    )
    assert kinds(run_both(make, script)) == ["delivered"] * 4


def test_C3_refused_BDAT_mid_window_RSET_before_the_next_write_and_retry_once() -> None:
    window = TransactionWindow(messages=4)
    script = [
        Expect.send(b"".join(bdat(i) for i in (1, 2, 3))),
        # 2 is refused; 3's MAIL then meets a server still in 2's transaction.
        Reply(OK * 3 + OK + b"550 5.1.1 no\r\n" + b"554 5.5.1 no valid recipients\r\n"),
        Reply(b"503 5.5.1 nested MAIL\r\n" + b"503 5.5.1 no\r\n" * 2),
        Expect.send(RSET + bdat(3)),
        Reply(OK + OK * 3),
    ]
    make = batch_of(
        "PIPELINING", "CHUNKING", messages=[message(i) for i in (1, 2, 3)], window=window
    )
    assert kinds(run_both(make, script)) == ["delivered", "RecipientsRefused", "delivered"]


def test_refused_BDAT_alone_in_flight_is_reset_at_once() -> None:
    script = [
        Expect.send(bdat(1)),
        Reply(b"550 5.7.1 no\r\n" + b"503 5.5.1 no\r\n" * 2),
        Expect.send(RSET),
        Reply(OK),
    ]
    make = batch_of("PIPELINING", "CHUNKING", messages=[message(1)])
    assert kinds(run_both(make, script)) == ["SenderRefused"]


def test_C15_421_mid_window_settles_every_transaction_in_flight() -> None:
    script = [
        Expect.send(bdat(1) + bdat(2) + bdat(3)),
        Reply(OK * 3 + b"421 4.3.2 bye\r\n"),
        Expect.close(),
    ]
    make = batch_of("PIPELINING", "CHUNKING", messages=[message(i) for i in (1, 2, 3)])
    outcomes = run_both(make, script)
    assert kinds(outcomes) == ["delivered", "ServiceClosing", "ServiceClosing"]


def test_C10_too_many_recipients_in_a_window_follow_up_keeps_the_order() -> None:
    script = [
        Expect.send(bdat(1, BOB, CAROL) + bdat(2)),
        Reply(OK * 2 + b"452 4.5.3 too many\r\n" + OK + OK * 3),
        Expect.send(bdat(1, CAROL)),
        Reply(OK * 3),
    ]
    make = batch_of("PIPELINING", "CHUNKING", messages=[message(1, BOB, CAROL), message(2)])
    outcomes = run_both(make, script)
    assert kinds(outcomes) == ["delivered", "delivered"]
    first = outcomes[0]
    assert isinstance(first, SendResult) and first.delivered == [BOB, CAROL]


# -- the iterator's contract -----------------------------------------------------------------


def test_abandoning_with_a_transaction_in_flight_drops_the_connection() -> None:
    session = open_session("PIPELINING")
    batch = session.send_messages([message(1), message(2)])

    def first_then_abandon() -> Operation[MessageOutcome | None]:
        outcome = yield from batch.next_outcome()
        yield from batch.abandon()
        return outcome

    script = [
        Expect.send(opening()),
        Reply(OK * 2 + GO),
        Expect.send(body(1) + DOT + opening()),
        Reply(QUEUED),
        Expect.close(),
    ]
    outcome = run(first_then_abandon(), script)
    assert isinstance(outcome, SendResult) and outcome.all_delivered
    assert batch.finished and session.closed


def test_abandoning_with_nothing_in_flight_keeps_the_session() -> None:
    session = open_session()
    batch = session.send_messages([message(1)])
    run(batch.abandon(), [])
    assert batch.finished and not session.closed
    assert run(batch.next_outcome(), []) is None


def test_a_closed_session_fails_each_message_without_io() -> None:
    session = Session(SessionOptions(local_hostname="client.example.org"))
    outcomes = run(every_outcome(session.send_messages([message(1), message(2)])), [])
    assert kinds(outcomes) == ["ConnectionLostError"] * 2


# -- a reply before the end of data is never a delivery (C12) --------------------------------


class ListeningSink:
    """A driver whose ``Send`` with ``listen`` hands back what the server said meanwhile."""

    def __init__(self, early: bytes) -> None:
        self.early = early
        self.writes: list[bytes] = []
        self._out = b"220 mx.example.net\r\n"

    def perform(self, request: Request) -> Any:
        if isinstance(request, Send):
            self.writes.append(request.data)
            if request.data.startswith(b"EHLO"):
                self._out += b"250-mx\r\n250 PIPELINING\r\n"
            elif request.data.startswith(b"MAIL"):
                self._out += OK * 2 + GO
            elif request.listen:
                early, self.early = self.early, b""
                return early
            return None
        if isinstance(request, Receive):
            out, self._out = self._out, b""
            return out or b""
        if isinstance(request, Close):
            self.closed = True
        return None


@pytest.mark.parametrize(
    ("early", "error"),
    [
        (b"250 2.0.0 queued early\r\n", RemoteProtocolError),
        (b"421 4.3.2 bye\r\n", ServiceClosing),
    ],
)
def test_C12_reply_heard_while_writing_content_is_caught_before_the_end(
    early: bytes, error: type[Exception]
) -> None:
    sink = ListeningSink(early)
    session = Session(SessionOptions(local_hostname="client.example.org"))
    drive(session.open("mx.example.net", 25, tls=TLSMode.NONE), sink.perform)
    big = b"x" * (CHUNK_SIZE + 5000) + b"\r\n"  # two chunks: the first is written with listen
    with pytest.raises(error):
        drive(session.send_message(big, SENDER, [BOB]), sink.perform)
    assert not any(w.endswith(b"\r\n.\r\n") for w in sink.writes)  # the end never went out
    assert session.closed


def test_C12_the_first_write_of_content_listens_then_one_per_interval() -> None:
    # A listen costs the driver a system call or a loop turn: the first write of content
    # listens (a server that answers at once), then one write per LISTEN_INTERVAL octets.
    sink = ListeningSink(b"")
    session = Session(SessionOptions(local_hostname="client.example.org"))
    drive(session.open("mx.example.net", 25, tls=TLSMode.NONE), sink.perform)
    listened: list[bool] = []

    def perform(request: Request) -> Any:
        if isinstance(request, Send) and request.data[:1] == b"x":
            listened.append(request.listen)
        return sink.perform(request)

    line = b"x" * 1022 + b"\r\n"
    chunks = 3 * LISTEN_INTERVAL // CHUNK_SIZE  # written in chunks of CHUNK_SIZE
    with pytest.raises(SMTPError):  # the sink never answers the end of data
        drive(session.send_message(line * (chunks * CHUNK_SIZE // 1024), SENDER, [BOB]), perform)
    per_interval = -(-LISTEN_INTERVAL // CHUNK_SIZE)  # the first write at or past each interval
    assert len(listened) == chunks  # the last chunk goes with the end, without listening
    assert [i for i, listen in enumerate(listened) if listen] == [0, per_interval, 2 * per_interval]


def test_C12_a_reply_too_many_after_the_end_of_data_is_no_delivery() -> None:
    session = open_session("PIPELINING")
    script = [
        Expect.send(opening()),
        Reply(OK * 2 + GO),
        Expect.send(body(1) + DOT),
        Reply(b"250 2.0.0 early\r\n554 5.7.1 refused\r\n"),
        Expect.close(),
    ]
    with pytest.raises(RemoteProtocolError):
        run(session.send_message(body(1), SENDER, [BOB]), script)


def test_C12_staged_close_message_checks_for_a_reply_too_many() -> None:
    session = open_session()

    def staged() -> Operation[SendResult]:
        yield from session.create_message(SENDER)
        yield from session.add_recipient(BOB)
        yield from session.append_message(body(1))
        return (yield from session.close_message())

    script: list[Step] = [
        Expect.send(f"MAIL FROM:<{SENDER}>\r\n".encode()),
        Reply(OK),
        Expect.send(b"RCPT TO:<%s>\r\n" % BOB.encode()),
        Reply(OK),
        Expect.send(b"DATA\r\n"),
        Reply(GO),
        Expect.send(body(1)),
        Expect.send(DOT),
        Reply(b"250 2.0.0 early\r\n554 5.7.1 refused\r\n"),
        Expect.close(),
    ]
    with pytest.raises(RemoteProtocolError):
        run(staged(), script)


# -- the edges: prepared messages, follow-ups, QUIT in flight, interruptions ----------------


def many(n: int) -> list[str]:
    return [f"user{i}@example.net" for i in range(n)]


def test_R1_a_message_too_big_for_one_group_waits_until_nothing_is_in_flight() -> None:
    crowd = many(PIPELINE_GROUP)  # MAIL + 50 RCPT + DATA: more than one group
    rcpts = opening(*crowd).split(b"\r\n", 1)[1]
    first_group = b"".join(line + b"\r\n" for line in rcpts.split(b"\r\n")[: PIPELINE_GROUP - 1])
    mail = f"MAIL FROM:<{SENDER}>\r\n".encode()
    script = [
        Expect.send(opening()),
        Reply(OK * 2 + GO),
        Expect.send(body(1) + DOT),  # the next could not ride: it goes alone, in groups
        Reply(QUEUED),
        Expect.send(mail + first_group),
        Reply(OK * PIPELINE_GROUP),
        Expect.send(b"RCPT TO:<%s>\r\nDATA\r\n" % crowd[-1].encode()),
        Reply(OK + GO),
        Expect.send(body(2) + DOT + b"QUIT\r\n"),  # QUIT waited for the last message
        Reply(QUEUED + b"221 bye\r\n"),
        Expect.close(graceful=True),
    ]
    make = batch_of("PIPELINING", messages=[message(1), message(2, *crowd)], quit=True)
    assert kinds(run_both(make, script)) == ["delivered"] * 2


def test_C15_421_with_a_prepared_message_waiting_settles_it_too() -> None:
    crowd = many(PIPELINE_GROUP)
    script = [
        Expect.send(opening()),
        Reply(OK * 2 + GO),
        Expect.send(body(1) + DOT),
        Reply(b"421 4.3.2 bye\r\n"),
        Expect.close(),
    ]
    outcomes = run_both(batch_of("PIPELINING", messages=[message(1), message(2, *crowd)]), script)
    assert kinds(outcomes) == ["ServiceClosing"] * 2


def test_abandon_with_only_a_prepared_message_keeps_the_session() -> None:
    session = open_session("PIPELINING")
    batch = session.send_messages([message(1), message(2, *many(PIPELINE_GROUP))])

    def first_then_abandon() -> Operation[MessageOutcome | None]:
        outcome = yield from batch.next_outcome()
        yield from batch.abandon()
        yield from batch.abandon()  # once is enough
        return outcome

    script = [
        Expect.send(opening()),
        Reply(OK * 2 + GO),
        Expect.send(body(1) + DOT),
        Reply(QUEUED),
    ]
    assert isinstance(run(first_then_abandon(), script), SendResult)
    assert not session.closed


def test_C14_abandon_of_a_batch_that_was_to_quit_quits() -> None:
    session = open_session()
    batch = session.send_messages([message(1)], quit=True)
    script = [Expect.send(b"QUIT\r\n"), Reply(b"221 bye\r\n"), Expect.close(graceful=True)]
    run(batch.abandon(), script)
    assert session.closed


def test_C14_quit_in_flight_unanswered_still_closes() -> None:
    script = [
        Expect.send(bdat(1) + b"QUIT\r\n"),
        Reply(OK * 3),
        EOF,
        Expect.close(graceful=False),
    ]
    make = batch_of("PIPELINING", "CHUNKING", messages=[message(1)], quit=True)
    assert kinds(run_both(make, script)) == ["delivered"]


def test_C14_refused_BDAT_with_quit_in_flight_needs_no_RSET() -> None:
    script = [
        Expect.send(bdat(1) + b"QUIT\r\n"),
        Reply(b"550 5.7.1 no\r\n" + b"503 5.5.1 no\r\n" * 2 + b"221 bye\r\n"),
        Expect.close(graceful=True),
    ]
    make = batch_of("PIPELINING", "CHUNKING", messages=[message(1)], quit=True)
    assert kinds(run_both(make, script)) == ["SenderRefused"]


def test_C10_with_quit_in_flight_a_452_stays_the_recipient_s_result() -> None:
    script = [
        Expect.send(bdat(1, BOB, CAROL) + b"QUIT\r\n"),
        Reply(OK * 2 + b"452 4.5.3 too many\r\n" + OK + b"221 bye\r\n"),
        Expect.close(graceful=True),
    ]
    make = batch_of("PIPELINING", "CHUNKING", messages=[message(1, BOB, CAROL)], quit=True)
    (outcome,) = run_both(make, script)
    assert isinstance(outcome, SendResult)
    assert outcome.delivered == [BOB] and outcome[CAROL].rcpt_reply.code == 452


def test_C10_C15_follow_up_pending_when_421_comes_is_a_451_result(tmp_path: Path) -> None:
    path = tmp_path / "m.eml"
    path.write_bytes(body(2))
    script = [
        # The DATA of the second ends the group: the follow-up of the first waits behind it.
        Expect.send(bdat(1, BOB, CAROL) + opening()),
        Reply(OK * 2 + b"452 4.5.3 too many\r\n" + OK + b"421 4.3.2 bye\r\n"),
        Expect.close(),
    ]

    def make() -> Operation[list[MessageOutcome]]:
        session = open_session("PIPELINING", "CHUNKING")
        second = prepare_message(path, SENDER, [BOB])
        return every_outcome(session.send_messages([message(1, BOB, CAROL), second]))

    outcomes = run_both(make, script)
    first = outcomes[0]
    assert isinstance(first, SendResult)
    assert first.delivered == [BOB]
    assert first[CAROL].rcpt_reply.code == 451
    assert isinstance(outcomes[1], ServiceClosing)


def test_C10_follow_up_whose_body_is_gone_is_a_result(tmp_path: Path) -> None:
    path = tmp_path / "m.eml"
    path.write_bytes(body(1))

    def remove(sent: bytes) -> None:
        assert sent == body(1) + DOT
        path.unlink()

    session = open_session("PIPELINING")
    script = [
        Expect.send(opening(BOB, CAROL)),
        Reply(OK * 2 + b"452 4.5.3 too many\r\n" + GO),
        Expect.send(remove),
        Reply(QUEUED),
    ]
    result = run(session.send_message(path, SENDER, [BOB, CAROL]), script)
    assert result.delivered == [BOB]
    assert result[CAROL].rcpt_reply.code == 451
    assert not session.closed


def test_chunking_message_too_large_settles_before_any_write() -> None:
    big = prepare_message(b"x" * 2000, SENDER, [BOB])
    script = [
        Expect.send(
            bdat(1).replace(b"FROM:<alice@example.org>", b"FROM:<alice@example.org> SIZE=25")
        )
    ]
    script.append(Reply(OK * 3))
    make = batch_of("PIPELINING", "CHUNKING", "SIZE 1000", messages=[big, message(1)])
    assert kinds(run_both(make, script)) == ["MessageTooLarge", "delivered"]


def test_R5_unexpected_code_with_transactions_behind_drops_the_connection() -> None:
    script = [
        Expect.send(bdat(1) + bdat(2)),
        Reply(b"651 what\r\n"),
        Expect.close(),
    ]
    make = batch_of("PIPELINING", "CHUNKING", messages=[message(1), message(2)])
    outcomes = run_both(make, script)
    assert kinds(outcomes) == ["UnexpectedReplyCode", "ConnectionLostError"]


def test_C8_8bit_found_in_an_early_chunk_drops_the_connection(tmp_path: Path) -> None:
    path = tmp_path / "m.eml"
    path.write_bytes("é".encode() * CHUNK_SIZE + b"\r\n")  # two chunks, the first 8-bit
    session = open_session("PIPELINING")
    script = [
        Expect.send(opening()),
        Reply(OK * 2 + GO),
        Expect.close(),
    ]
    with pytest.raises(MessageEncodingError):
        run(session.send_message(path, SENDER, [BOB]), script)
    assert session.closed


def test_an_interrupted_batch_loses_the_session() -> None:
    session = open_session("PIPELINING")
    batch = session.send_messages([message(1)])

    def perform(request: Request) -> Any:
        if isinstance(request, Receive):
            raise KeyboardInterrupt
        return None

    with pytest.raises(KeyboardInterrupt):
        drive(batch.next_outcome(), perform)
    assert session.closed


def test_transaction_window_is_checked_when_made() -> None:
    with pytest.raises(ValueError, match="messages"):
        TransactionWindow(messages=0)
    with pytest.raises(ValueError, match="octets"):
        TransactionWindow(octets=True)


def test_abandoning_a_window_drops_the_transactions_in_flight() -> None:
    session = open_session("PIPELINING", "CHUNKING")
    batch = session.send_messages([message(1), message(2)])

    def first_then_abandon() -> Operation[MessageOutcome | None]:
        outcome = yield from batch.next_outcome()
        yield from batch.abandon()
        return outcome

    script = [Expect.send(bdat(1) + bdat(2)), Reply(OK * 3), Expect.close()]
    assert isinstance(run(first_then_abandon(), script), SendResult)
    assert session.closed


def test_a_prepared_message_sent_with_other_options() -> None:
    prepared = prepare_message(body(1), SENDER, [BOB])
    session = open_session("PIPELINING", "DSN")
    script = [
        Expect.send(opening().replace(b"org>", b"org> RET=FULL", 1)),
        Reply(OK * 2 + GO),
        Expect.send(body(1) + DOT),
        Reply(QUEUED),
    ]
    result = run(session.send_message(prepared, options=SendOptions(ret="FULL")), script)
    assert result.all_delivered


def test_a_file_too_large_is_refused_before_any_write_and_released(tmp_path: Path) -> None:
    path = tmp_path / "big.eml"
    path.write_bytes(b"x" * 2000)
    session = open_session("PIPELINING", "SIZE 1000")
    with pytest.raises(MessageTooLarge):
        run(session.send_message(path, SENDER, [BOB]), [])
    assert not session.closed


def test_C15_421_to_DATA_of_a_file_releases_it_and_closes(tmp_path: Path) -> None:
    path = tmp_path / "m.eml"
    path.write_bytes(body(1))
    session = open_session("PIPELINING")
    script = [
        Expect.send(opening()),
        Reply(OK * 2 + b"421 4.3.2 bye\r\n"),
        Expect.close(),
    ]
    with pytest.raises(ServiceClosing):
        run(session.send_message(path, SENDER, [BOB]), script)
    assert session.closed


def test_C4_refused_DATA_of_a_file_releases_it_and_the_session_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "m.eml"
    path.write_bytes(body(1))
    session = open_session("PIPELINING")
    script = [
        Expect.send(opening()),
        Reply(OK * 2 + b"554 5.7.1 not from you\r\n"),
        Expect.send(RSET),
        Reply(OK),
    ]
    with pytest.raises(DataRefused):
        run(session.send_message(path, SENDER, [BOB]), script)
    assert not session.closed
