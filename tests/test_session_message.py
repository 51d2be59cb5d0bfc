"""prepare_message: every kind of body, the envelope from headers, and sending them."""

from __future__ import annotations

import copy
import email.message
import email.policy
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from smtpproto import BodyReadError, OutgoingMessage, prepare_message
from smtpproto._operations.message import CHUNK_SIZE
from smtpproto.driver import Operation, drive

if TYPE_CHECKING:  # mypy knows adapters/ as "adapters" (package-dir mapping)
    from adapters.bodies import perform_body_request
else:
    from smtpproto.adapters.bodies import perform_body_request

from .scripted import Expect, Reply, open_session, run

SENDER = "alice@example.org"
BOB = "bob@example.net"


def chunks(message: OutgoingMessage) -> list[bytes]:
    """One pass over the body, as a driver reads it."""

    def read_all() -> Operation[list[bytes]]:
        reader = yield from message.body.open()
        pieces = []
        while piece := (yield from reader.next_chunk()):
            pieces.append(piece)
        yield from reader.close()
        return pieces

    return drive(read_all(), perform_body_request)  # type: ignore[arg-type]


def content(message: OutgoingMessage) -> bytes:
    return b"".join(chunks(message))


# -- in-memory bodies ------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"hello\r\n", bytearray(b"hello\r\n"), memoryview(b"hello\r\n")])
def test_bytes_like_bodies(body: bytes) -> None:
    message = prepare_message(body, SENDER, [BOB])
    assert message.size == 7
    assert message.eight_bit is False
    assert not message.smtputf8
    assert not message.single_use
    assert not message.single_reader
    assert content(message) == b"hello\r\n"
    assert content(message) == b"hello\r\n"  # re-readable


def test_str_body_is_utf8_and_may_be_8bit() -> None:
    message = prepare_message("café\r\n", SENDER, [BOB])
    assert content(message) == "café\r\n".encode()
    assert message.size == 7
    assert message.eight_bit is True


def test_large_body_comes_in_bounded_chunks() -> None:
    message = prepare_message(b"x" * 200_000, SENDER, [BOB])
    assert [len(c) for c in chunks(message)] == [CHUNK_SIZE, 200_000 - CHUNK_SIZE]


def test_envelope_is_kept_in_order_and_recipients_copied() -> None:
    recipients = (r for r in [BOB, "carol@example.net"])
    message = prepare_message(b"x", SENDER, recipients)
    assert message.recipients == [BOB, "carol@example.net"]
    assert message.sender == SENDER


def test_C19_null_reverse_path_given_explicitly() -> None:
    assert prepare_message(b"x", "", [BOB]).sender == ""


def test_non_ASCII_address_needs_SMTPUTF8() -> None:
    assert prepare_message(b"x", "jöran@example.org", [BOB]).smtputf8
    assert prepare_message(b"x", SENDER, ["jöran@example.org"]).smtputf8


@pytest.mark.parametrize(
    ("sender", "recipients", "match"),
    [
        (None, [BOB], "give a sender and recipients"),
        (SENDER, None, "give a sender and recipients"),
        (SENDER, [], "at least one recipient"),
    ],
)
def test_missing_envelope_is_a_ValueError(
    sender: str | None, recipients: list[str] | None, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        prepare_message(b"x", sender, recipients)


# -- email.message.Message bodies --------------------------------------------------------------


def _message() -> email.message.EmailMessage:
    message = email.message.EmailMessage()
    message["From"] = "Alice <alice@example.org>"
    message["To"] = "Bob <bob@example.net>, carol@example.net"
    message["Cc"] = "dave@example.net"
    message["Bcc"] = "eve@example.net"
    message["Subject"] = "hello"
    message.set_content("hi\n")
    return message


def test_Message_envelope_from_headers_and_Bcc_never_sent() -> None:
    message = _message()
    before = copy.deepcopy(message)
    prepared = prepare_message(message)
    assert prepared.sender == SENDER
    assert prepared.recipients == [BOB, "carol@example.net", "dave@example.net", "eve@example.net"]
    data = content(prepared)
    assert b"Bcc" not in data
    assert b"eve@example.net" not in data
    assert b"\r\nSubject: hello\r\n" in data
    assert b"\n" not in data.replace(b"\r\n", b"")  # CRLF line ends throughout
    assert prepared.size == len(data)
    assert prepared.eight_bit is False
    # The caller's object is left alone.
    assert message["Bcc"] == "eve@example.net"
    assert message.as_bytes() == before.as_bytes()


def test_Message_without_Bcc_is_sent_as_it_is() -> None:
    message = _message()
    del message["Bcc"]
    assert content(prepare_message(message)) == message.as_bytes(
        policy=message.policy.clone(linesep="\r\n")
    )


def test_Message_Sender_header_wins_over_From() -> None:
    message = _message()
    message["Sender"] = "secretary@example.org"
    assert prepare_message(message).sender == "secretary@example.org"


def test_Message_explicit_envelope_overrides_headers() -> None:
    prepared = prepare_message(_message(), "bounce@example.org", ["x@example.net"])
    assert prepared.sender == "bounce@example.org"
    assert prepared.recipients == ["x@example.net"]


def test_Message_Resent_headers_give_the_envelope() -> None:
    message = _message()
    message["Resent-Date"] = "Mon, 1 Jan 2024 00:00:00 +0000"
    message["Resent-From"] = "relay@example.org"
    message["Resent-To"] = "new@example.net"
    message["Resent-Bcc"] = "hidden@example.net"
    prepared = prepare_message(message)
    assert prepared.sender == "relay@example.org"
    assert prepared.recipients == ["new@example.net", "hidden@example.net"]
    data = content(prepared)
    assert b"hidden@example.net" not in data
    assert b"eve@example.net" not in data


def test_Message_two_Resent_blocks_is_a_ValueError() -> None:
    message = _message()
    message["Resent-Date"] = "Mon, 1 Jan 2024 00:00:00 +0000"
    message["Resent-Date"] = "Tue, 2 Jan 2024 00:00:00 +0000"
    with pytest.raises(ValueError, match="several Resent- blocks"):
        prepare_message(message)


def test_Message_without_recipients_is_a_ValueError() -> None:
    message = email.message.EmailMessage()
    message["From"] = SENDER
    with pytest.raises(ValueError, match="at least one recipient"):
        prepare_message(message)


def test_C19_Message_without_a_sender_is_a_ValueError() -> None:
    message = email.message.EmailMessage()
    message["To"] = BOB
    with pytest.raises(ValueError, match="sender"):
        prepare_message(message)


def test_SMTPUTF8_Message_with_a_non_ASCII_address_is_sent_as_UTF8() -> None:
    message = email.message.EmailMessage()
    message["From"] = "Jöran <jöran@example.org>"
    message["To"] = BOB
    message.set_content("hi\n")
    prepared = prepare_message(message)
    assert prepared.smtputf8
    assert prepared.eight_bit is True
    # utf8 policy: the address stays readable UTF-8, never an RFC 2047 encoded-word.
    assert "From: Jöran <jöran@example.org>\r\n".encode() in content(prepared)
    assert message.policy is email.policy.default  # the caller's policy object is untouched


def test_SMTPUTF8_compat32_Message_with_a_non_ASCII_address() -> None:
    message = email.message.Message()
    message["From"] = "jöran@example.org"
    message["To"] = BOB
    message.set_payload("hi")
    try:
        prepared = prepare_message(message)
    except ValueError:
        return
    assert "jöran@example.org".encode() in content(prepared)


def test_Message_sent_with_Bcc_in_the_envelope_only() -> None:
    message = _message()
    data = content(prepare_message(message))
    session = open_session("PIPELINING", "8BITMIME")
    envelope = (
        b"MAIL FROM:<alice@example.org>\r\n"
        + b"".join(
            b"RCPT TO:<%s>\r\n" % r
            for r in [
                b"bob@example.net",
                b"carol@example.net",
                b"dave@example.net",
                b"eve@example.net",
            ]
        )
        + b"DATA\r\n"
    )
    script = [
        Expect.send(envelope),
        Reply(b"250 ok\r\n" * 5 + b"354 go\r\n"),
        Expect.send(data + b".\r\n"),
        Reply(b"250 queued\r\n"),
    ]
    assert run(session.send_message(message), script).all_delivered


# -- files and streams ---------------------------------------------------------------------------


def test_path_body_size_from_stat_and_re_readable(tmp_path: Path) -> None:
    path = tmp_path / "m.eml"
    path.write_bytes(b"x" * 150_000)
    message = prepare_message(path, SENDER, [BOB])
    assert message.size is None  # the driver stats it when it opens it: the core does no I/O
    assert [len(c) for c in chunks(message)] == [CHUNK_SIZE, 150_000 - CHUNK_SIZE]
    assert message.size == 150_000
    assert message.eight_bit is None  # unknown until read
    assert not message.single_use
    assert content(message) == b"x" * 150_000


def test_missing_path_is_a_BodyReadError_when_opened(tmp_path: Path) -> None:
    message = prepare_message(tmp_path / "missing", SENDER, [BOB])
    with pytest.raises(BodyReadError, match="cannot read the message body"):
        content(message)


def test_missing_path_fails_before_MAIL_and_the_session_stays_open(tmp_path: Path) -> None:
    session = open_session("PIPELINING")
    with pytest.raises(BodyReadError):
        run(session.send_message(tmp_path / "missing", SENDER, [BOB]), [])
    assert not session.closed
    script = [Expect.send(b"NOOP\r\n"), Reply(b"250 ok\r\n")]
    assert run(session.noop(), script).code == 250


def test_seekable_file_size_is_what_remains_and_it_is_re_readable() -> None:
    file = io.BytesIO(b"skip:the body")
    file.seek(5)
    message = prepare_message(file, SENDER, [BOB])
    assert message.single_reader  # one file position: never two readers at once
    assert content(message) == b"the body"
    assert message.size == 8
    assert message.eight_bit is None
    assert not message.single_use
    assert content(message) == b"the body"


def test_non_seekable_stream_is_single_use() -> None:
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "wb") as writer:
        writer.write(b"from a pipe\r\n")
    with os.fdopen(read_end, "rb") as pipe:
        message = prepare_message(pipe, SENDER, [BOB])
        assert message.single_reader
        assert content(message) == b"from a pipe\r\n"
        assert message.size is None
        assert message.single_use  # found out when it was opened
        with pytest.raises(ValueError, match="one-shot stream"):
            content(message)


class _BrokenSeek(io.RawIOBase):
    """A file that claims to seek but fails to (some sockets' and devices' files do)."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        return self._data.readinto(buffer)

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        raise OSError("illegal seek")


def test_file_that_cannot_tell_is_treated_as_a_stream() -> None:
    message = prepare_message(_BrokenSeek(b"data"), SENDER, [BOB])
    assert content(message) == b"data"
    assert message.size is None
    assert message.single_use


def test_iterable_of_chunks_is_single_use_and_skips_empty_chunks() -> None:
    parts: list[Any] = [b"a", b"", bytearray(b"b"), memoryview(b"c")]  # bytes-like chunks too
    message = prepare_message(parts, SENDER, [BOB])
    assert message.size is None
    assert message.eight_bit is None
    assert message.single_use
    assert message.single_reader
    assert chunks(message) == [b"a", b"b", b"c"]
    with pytest.raises(ValueError, match="one-shot"):
        chunks(message)


def test_seekable_file_sent_twice_after_452(tmp_path: Path) -> None:
    """C10: a re-readable body may go in a second transaction."""
    file = io.BytesIO(b"body\r\n")
    session = open_session("PIPELINING")
    script = [
        Expect.send(
            b"MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.net>\r\n"
            b"RCPT TO:<carol@example.net>\r\nDATA\r\n"
        ),
        Reply(b"250 ok\r\n250 ok\r\n452 4.5.3 too many\r\n354 go\r\n"),
        Expect.send(b"body\r\n.\r\n"),
        Reply(b"250 queued\r\n"),
        Expect.send(b"MAIL FROM:<alice@example.org>\r\nRCPT TO:<carol@example.net>\r\nDATA\r\n"),
        Reply(b"250 ok\r\n250 ok\r\n354 go\r\n"),
        Expect.send(b"body\r\n.\r\n"),
        Reply(b"250 queued\r\n"),
    ]
    result = run(session.send_message(file, SENDER, [BOB, "carol@example.net"]), script)
    assert result.all_delivered


def test_prepared_message_for_other_recipients_shares_its_body() -> None:
    prepared = prepare_message(b"body\r\n", SENDER, [BOB])
    other = prepared.with_recipients(r for r in ["x@example.net", "y@example.net"])
    assert other.recipients == ["x@example.net", "y@example.net"]
    assert other.body is prepared.body
    assert prepared.recipients == [BOB]
    session = open_session("PIPELINING")
    script = [
        Expect.send(b"MAIL FROM:<alice@example.org>\r\nRCPT TO:<x@example.net>\r\nDATA\r\n"),
        Reply(b"250 ok\r\n250 ok\r\n354 go\r\n"),
        Expect.send(b"body\r\n.\r\n"),
        Reply(b"250 queued\r\n"),
    ]
    result = run(session.send_message(prepared, recipients=["x@example.net"]), script)
    assert result.delivered == ["x@example.net"]


def test_prepared_message_with_no_recipients_is_a_ValueError() -> None:
    prepared = prepare_message(b"body\r\n", SENDER, [BOB])
    session = open_session("PIPELINING")
    with pytest.raises(ValueError, match="recipient"):
        run(session.send_message(prepared, recipients=[]), [])
