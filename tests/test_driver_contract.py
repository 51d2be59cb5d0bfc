"""The driver contract and the options, through the public names only: what a driver sees when
bodies fail, when it is interrupted, when no EHLO name was given; and the options' checks."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from collections.abc import Iterator
from typing import Any

import pytest

from smtpproto import (
    BodyReadError,
    DeliveryOptions,
    SendOptions,
    Session,
    SessionOptions,
    Timeouts,
    TLSMode,
    UnexpectedReplyCode,
    delivery,
)
from smtpproto.driver import (
    Connect,
    LocalHostname,
    Receive,
    ReplyClock,
    Request,
    RunConcurrently,
    Send,
    drive,
)

from .scripted import EOF, Expect, Reply, open_session, run

SENDER, BOB = "alice@example.org", "bob@example.net"
MAIL_RCPT_DATA = b"MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.net>\r\nDATA\r\n"


def failing_stream() -> Iterator[bytes]:
    yield b"Subject: half\r\n\r\n"
    raise OSError("the pipe broke")


def test_a_body_failing_mid_data_drops_the_connection() -> None:
    """Half a message must never be delivered: no end of data, the connection is dropped."""
    session = open_session("PIPELINING")
    script = [
        Expect.send(MAIL_RCPT_DATA),
        Reply(b"250 ok\r\n250 ok\r\n354 go\r\n"),
        # Each chunk waits for the next one, so the part read is never even written.
        Expect.close(graceful=False),
    ]
    with pytest.raises(BodyReadError, match="the pipe broke"):
        run(session.send_message(failing_stream(), SENDER, [BOB]), script)
    assert session.closed


def test_a_staged_part_that_cannot_be_opened_after_the_data_began_drops_the_connection(
    tmp_path: Any,
) -> None:
    session = open_session()
    run(session.create_message(SENDER), [Expect.send(b"MAIL FROM:<alice@example.org>\r\n"),
                                         Reply(b"250 ok\r\n")])  # fmt: skip
    run(session.add_recipient(BOB), [Expect.send(b"RCPT TO:<bob@example.net>\r\n"),
                                     Reply(b"250 ok\r\n")])  # fmt: skip
    run(session.append_message(b"part 1\r\n"), [Expect.send(b"DATA\r\n"), Reply(b"354 go\r\n"),
                                                Expect.send(b"part 1\r\n")])  # fmt: skip
    with pytest.raises(BodyReadError):
        run(session.append_message(tmp_path / "missing.eml"), [Expect.close(graceful=False)])
    assert session.closed


def test_a_staged_part_that_cannot_be_opened_before_the_data_keeps_the_message(
    tmp_path: Any,
) -> None:
    session = open_session()
    run(session.create_message(SENDER), [Expect.send(b"MAIL FROM:<alice@example.org>\r\n"),
                                         Reply(b"250 ok\r\n")])  # fmt: skip
    with pytest.raises(BodyReadError):
        run(session.append_message(tmp_path / "missing.eml"), [])
    assert not session.closed
    run(session.reset(), [Expect.send(b"RSET\r\n"), Reply(b"250 ok\r\n")])


def test_create_message_takes_notify_per_recipient_only() -> None:
    session = open_session()
    with pytest.raises(ValueError, match="add_recipient"):
        session.create_message(SENDER, options=SendOptions(notify=("FAILURE",)))


def test_an_interrupted_quit_leaves_the_session_closed() -> None:
    session = open_session()
    op = session.quit()
    assert op.send(None) == Send(b"QUIT\r\n", 180.0, "QUIT")
    op.close()  # a cancellation while QUIT was on its way
    assert session.closed


def test_R5_651_to_a_command_outside_a_transaction_leaves_the_session_as_it_was() -> None:
    session = open_session()
    with pytest.raises(UnexpectedReplyCode):
        run(session.noop(), [Expect.send(b"NOOP\r\n"), Reply(b"651 odd\r\n")])
    assert not session.closed


def test_R5_a_lost_connection_while_ending_the_transaction_closes_it() -> None:
    session = open_session()
    script = [
        Expect.send(b"MAIL FROM:<alice@example.org>\r\n"),
        Reply(b"250 ok\r\n"),
        Expect.send(b"RCPT TO:<bob@example.net>\r\n"),
        Reply(b"651 odd\r\n"),
        Expect.send(b"RSET\r\n"),
        EOF,
        Expect.close(graceful=False),
    ]
    with pytest.raises(UnexpectedReplyCode):
        run(session.send_message(b"x\r\n", SENDER, [BOB]), script)
    assert session.closed


def test_a_session_without_a_name_asks_the_driver_once() -> None:
    """The EHLO name is this machine's, asked of the driver (it may take DNS): the core does no
    I/O of its own."""
    session = Session()
    asked: list[Request] = []
    served = iter([b"220 mx ESMTP\r\n", b"250 mx\r\n"])

    def perform(request: Request) -> Any:
        asked.append(request)
        if isinstance(request, LocalHostname):
            return "client.example.org"
        if isinstance(request, Send):
            assert request.data == b"EHLO client.example.org\r\n"
        return next(served) if isinstance(request, Receive) else None

    drive(session.open("mx.example.net", 25, tls=TLSMode.NONE), perform)
    assert isinstance(asked[0], LocalHostname) and isinstance(asked[1], Connect)
    assert sum(isinstance(r, LocalHostname) for r in asked) == 1


def test_delivery_asks_the_local_name_once_for_all_its_sessions() -> None:
    asked: list[Request] = []

    def perform(request: Request) -> Any:
        asked.append(request)
        if isinstance(request, LocalHostname):
            return "client.example.org"
        assert isinstance(request, RunConcurrently)
        return [drive(op, perform) for op in request.operations]

    recipients = ["u@[192.0.2.1]", "v@[192.0.2.2]"]  # literals: no DNS; no session allowed
    op = delivery(b"x\r\n", SENDER, recipients, options=DeliveryOptions(session_limit=0))
    report = drive(op, perform)
    assert [type(r) for r in asked] == [LocalHostname, RunConcurrently]
    assert [o.status for o in report.outcomes] == ["temporary", "temporary"]


def test_reply_clock_without_a_limit() -> None:
    clock = ReplyClock(lambda: 0.0)
    assert clock.remaining(Receive(None, "MAIL")) is None
    assert clock.remaining(Receive(None, "MAIL", fresh=False)) is None


# -- the options check themselves --------------------------------------------------------------


def test_timeouts_are_positive_finite_numbers() -> None:
    with pytest.raises(TypeError, match="greeting"):
        Timeouts(greeting=True)
    with pytest.raises(TypeError, match="mail"):
        Timeouts(mail="5")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rcpt"):
        Timeouts(rcpt=0)
    with pytest.raises(ValueError, match="connect"):
        Timeouts(connect=float("inf"))


def test_one_number_is_every_phase() -> None:
    options = SessionOptions(timeout=7)
    assert options.timeouts == Timeouts.uniform(7)
    assert {f.name: getattr(options.timeouts, f.name) for f in dataclasses.fields(Timeouts)} == (
        dict.fromkeys((f.name for f in dataclasses.fields(Timeouts)), 7)
    )
    assert options.updated() is options
    assert options.updated(local_hostname="me.test").local_hostname == "me.test"


@pytest.mark.parametrize("duplicate", [copy.deepcopy, lambda o: pickle.loads(pickle.dumps(o))])
def test_options_survive_a_deep_copy_and_pickling(duplicate: Any) -> None:
    # A worker process (Celery) or a caller's copy gets options that still work; the timeouts'
    # mapping for the machine is worked out once, and must not stop them from being copied.
    options = SessionOptions(timeout=Timeouts(mail=7), local_hostname="me.test")
    copied = duplicate(options)
    assert copied == options
    assert copied.timeouts.by_kind() == options.timeouts.by_kind()
    assert copied.timeouts.by_kind()["MAIL"] == 7
    with pytest.raises(TypeError):
        copied.timeouts.by_kind()["MAIL"] = 1  # read-only: every session shares it


def test_delivery_options_check_their_concurrency_and_take_a_name() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        DeliveryOptions(concurrency=0)
    named = DeliveryOptions().named("me.test")
    assert named.session.local_hostname == "me.test"
    assert named.new_session().options.local_hostname == "me.test"
