"""The scripted driver itself must catch every way an operation can stray from its script."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from smtpproto import SMTPTimeoutError
from smtpproto.driver import Close, Receive, Request, Send

from .scripted import EOF, Expect, Fail, Reply, open_session, run, run_both


def _reader() -> Generator[Request, Any, list[bytes]]:
    """Reads until the end of the stream and returns the pieces it got."""
    pieces = []
    while data := (yield Receive(1.0, "TEST")):
        pieces.append(data)
    return pieces


def test_run_hands_out_pieces_whole_or_byte_by_byte() -> None:
    script = [Reply(b"ab", b"c"), EOF]
    assert run(_reader(), script) == [b"ab", b"c"]
    assert run(_reader(), script, bytewise=True) == [b"a", b"b", b"c"]


def test_run_both_sees_an_outcome_that_depends_on_the_split() -> None:
    with pytest.raises(AssertionError):
        run_both(_reader, [Reply(b"ab"), EOF])


def test_wrong_bytes_are_caught() -> None:
    session = open_session()
    with pytest.raises(AssertionError, match="sent b'NOOP"):
        run(session.noop(), [Expect.send(b"RSET\r\n"), Reply(b"250 ok\r\n")])


def test_wrong_phase_is_caught() -> None:
    session = open_session()
    with pytest.raises(AssertionError, match="phase"):
        run(session.noop(), [Expect.send(b"NOOP\r\n", phase="RSET"), Reply(b"250 ok\r\n")])


def test_unplayed_script_is_caught() -> None:
    session = open_session()
    with pytest.raises(AssertionError, match="unplayed"):
        run(session.noop(), [Expect.send(b"NOOP\r\n"), Reply(b"250 ok\r\n"), Expect.close()])


def test_unread_server_bytes_are_caught() -> None:
    session = open_session()
    with pytest.raises(AssertionError, match="never read"):
        run(
            session.noop(),
            [Expect.send(b"NOOP\r\n"), Reply(b"250 ok\r\n250 extra\r\n")],
            bytewise=True,
        )


def test_sending_before_the_server_spoke_is_caught() -> None:
    session = open_session()
    with pytest.raises(AssertionError, match="script has Reply"):
        run(session.noop(), [Reply(b"250 ok\r\n"), Expect.send(b"NOOP\r\n")])


def test_waiting_for_a_reply_the_script_does_not_have_is_caught() -> None:
    session = open_session()
    with pytest.raises(AssertionError, match="waits for a reply"):
        run(session.noop(), [Expect.send(b"NOOP\r\n"), Expect.close()])
    with pytest.raises(AssertionError, match="script is over"):
        run(open_session().noop(), [Expect.send(b"NOOP\r\n")])


def test_a_failure_for_another_request_is_caught() -> None:
    session = open_session()
    with pytest.raises(AssertionError):
        run(session.noop(), [Fail(SMTPTimeoutError("NOOP", 1.0), on=Receive)])


def test_request_types_are_checked() -> None:
    def closer() -> Generator[Request, Any, None]:
        yield Close()

    with pytest.raises(AssertionError, match="expected"):
        run(closer(), [Expect.send(b"x")])
    with pytest.raises(AssertionError):
        run(closer(), [Expect.connect("h", 25)])

    def sender() -> Generator[Request, Any, None]:
        yield Send(b"x", 1.0, "T")

    run(sender(), [Expect.send(b"x", timeout=1.0, phase="T")])
