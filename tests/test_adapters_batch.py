"""``send_messages`` through the three adapters, against a sink that records each of its reads.

With DATA and PIPELINING a message costs one write (its content, its end and the next message's
envelope travel together: RFC 2920 §3.1); with CHUNKING a window of whole transactions goes in
one write.  Refusals touch only their own message; a 421 or a lost connection leaves every
message in flight undelivered, and says so per message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from smtpproto import (
    ConnectionLostError,
    DataRefused,
    MessageOutcome,
    OutgoingMessage,
    RecipientsRefused,
    RemoteProtocolError,
    SenderRefused,
    SendResult,
    ServiceClosing,
    TLSMode,
    prepare_message,
)

from .batch_sink import CLOSE, SERVICE_CLOSING, BatchSink

if TYPE_CHECKING:  # imported for real by pytest_plugins, which rewrites its asserts
    from tests.adapters_harness import Adapter, Client

pytest_plugins = ["tests.adapters_harness"]

SENDER = "sender@client.test"
RECIPIENT = "rcpt@example.org"


def messages(count: int) -> list[OutgoingMessage]:
    return [
        prepare_message(b"Subject: %d\r\n\r\nmessage %d\r\n" % (i, i), SENDER, [RECIPIENT])
        for i in range(1, count + 1)
    ]


def connect(adapter: Adapter, sink: BatchSink) -> Client:
    return adapter.connect(*sink.address, tls=TLSMode.NONE, local_hostname="client.test")


def delivered(outcome: MessageOutcome) -> bool:
    return isinstance(outcome, SendResult) and outcome.all_delivered


def test_R1_with_DATA_one_write_per_message(adapter: Adapter) -> None:
    with BatchSink() as sink:
        client = connect(adapter, sink)
        outcomes = list(client.send_messages(messages(5), quit=True))
    assert all(map(delivered, outcomes)) and len(outcomes) == 5
    # EHLO; the first envelope; then one write per message: its content and end, and the
    # next envelope (or QUIT, after the last).
    assert len(sink.reads) == 7, sink.reads
    assert sink.reads[1].startswith(b"MAIL") and sink.reads[1].endswith(b"DATA\r\n")
    for n, read in enumerate(sink.reads[2:6], start=1):
        assert read.startswith(b"Subject: %d\r\n" % n) and read.endswith(b"DATA\r\n")
    assert sink.reads[6].startswith(b"Subject: 5") and sink.reads[6].endswith(b".\r\nQUIT\r\n")
    assert len(sink.delivered) == 5


def test_R1_with_CHUNKING_the_whole_window_in_one_write(adapter: Adapter) -> None:
    with BatchSink(chunking=True) as sink:
        client = connect(adapter, sink)
        outcomes = list(client.send_messages(messages(20), quit=True))
    assert all(map(delivered, outcomes)) and len(outcomes) == 20
    assert len(sink.reads) == 2, sink.reads  # EHLO, then 20 transactions and QUIT
    assert sink.reads[1].count(b" LAST\r\n") == 20 and sink.reads[1].endswith(b"QUIT\r\n")
    assert len(sink.delivered) == 20


@pytest.mark.parametrize("chunking", [False, True], ids=["DATA", "CHUNKING"])
def test_C3_C11_refusals_mid_batch_touch_only_their_message(
    adapter: Adapter, chunking: bool
) -> None:
    plan = {
        2: {"MAIL": b"550 5.7.1 sender refused\r\n"},
        3: {"RCPT": b"550 5.1.1 no such user\r\n"},
        4: {"DOT": b"554 5.7.1 content refused\r\n"},
    }
    if not chunking:
        plan[5] = {"DATA": b"451 4.3.0 not now\r\n"}
    with BatchSink(chunking=chunking, plan=plan) as sink:
        client = connect(adapter, sink)
        outcomes = list(client.send_messages(messages(6)))
        assert delivered(client.send_message(b"after\r\n", SENDER, [RECIPIENT]))
        client.disconnect()
    expected = [SendResult, SenderRefused, RecipientsRefused, DataRefused]
    expected += [SendResult if chunking else DataRefused, SendResult]
    assert [type(o) for o in outcomes] == expected
    assert [delivered(o) for o in outcomes] == [t is SendResult for t in expected]
    assert len(sink.delivered) == expected.count(SendResult) + 1


def test_C15_421_mid_batch_leaves_every_message_in_flight_undelivered(adapter: Adapter) -> None:
    with BatchSink(plan={2: {"MAIL": SERVICE_CLOSING}}) as sink:
        client = connect(adapter, sink)
        outcomes = list(client.send_messages(messages(4)))
    assert delivered(outcomes[0])
    assert [type(o) for o in outcomes[1:]] == [ServiceClosing, *[ConnectionLostError] * 2]
    assert len(sink.delivered) == 1


@pytest.mark.parametrize("chunking", [False, True], ids=["DATA", "CHUNKING"])
def test_C16_connection_lost_mid_batch_delivers_nothing_in_flight(
    adapter: Adapter, chunking: bool
) -> None:
    with BatchSink(chunking=chunking, plan={2: {"DOT": CLOSE}}) as sink:
        client = connect(adapter, sink)
        outcomes = list(client.send_messages(messages(4)))
    assert delivered(outcomes[0])
    assert all(isinstance(o, ConnectionLostError) for o in outcomes[1:]), outcomes
    assert len(sink.delivered) == 1


def test_C4_without_pipelining_the_messages_go_one_by_one(adapter: Adapter) -> None:
    with BatchSink(pipelining=False) as sink:
        client = connect(adapter, sink)
        outcomes = list(client.send_messages(messages(3), quit=True))
    assert all(map(delivered, outcomes)) and len(outcomes) == 3
    # EHLO, then MAIL, RCPT, DATA and the content for each, then QUIT: one command a write.
    assert len(sink.reads) == 1 + 3 * 4 + 1
    assert len(sink.delivered) == 3


def test_C12_an_early_reply_is_heard_while_a_large_body_is_written(adapter: Adapter) -> None:
    """The sink answers 250 as the content starts and stops reading: the client, still writing
    a 16 MB body, hears it before its end of data, which it then never sends."""
    body = (b"x" * 998 + b"\r\n") * (16 << 10)
    with BatchSink(early=b"250 2.0.0 too early\r\n") as sink:
        client = connect(adapter, sink)
        with pytest.raises(RemoteProtocolError, match="no command outstanding"):
            client.send_message(body, SENDER, [RECIPIENT])
    assert not sink.delivered
    assert not b"".join(sink.reads).endswith(b"\r\n.\r\n")
