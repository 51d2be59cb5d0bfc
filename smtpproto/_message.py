"""What can be sent as a message, and its envelope.

Bodies come as ``bytes``, ``str``, an ``email.message.Message``, a path, a binary file object or
an iterable of byte chunks.  All of them become an :class:`OutgoingMessage` that streams bounded
chunks, so sending a 1 GB file costs roughly constant memory, and knows its size when that can be
had without reading the body (for SIZE, RFC 1870).
"""

from __future__ import annotations

import copy
import email.header
import email.message
import email.policy
import email.utils
import io
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Union

from ._addresses import format_mailbox, needs_smtputf8, rcpt_path
from ._encoder import is_pure_crlf

__all__ = ["Body", "BodySource", "OutgoingMessage", "body_source", "prepare_message"]

CHUNK_SIZE = 1 << 16

Body = Union[
    bytes,
    bytearray,
    memoryview,
    str,
    email.message.Message,
    "os.PathLike[str]",
    BinaryIO,
    Iterable[bytes],
]


class BodySource:
    """Where a body's chunks come from; shared by every envelope that sends the same body."""

    def __init__(
        self,
        opener: Callable[[], Iterator[bytes]],
        size: int | None,
        eight_bit: bool | None,
        *,
        single_use: bool = False,
        file: bool = False,
    ) -> None:
        self._open = opener
        self.size = size  # octets, when known without reading the body
        self.eight_bit = eight_bit  # None: unknown until the body has been read
        self.single_use = single_use  # a stream that can be read only once
        self.single_reader = single_use or file  # a file object: one reader at a time
        self._used = False

    def chunks(self) -> Iterator[bytes]:
        """The body, in chunks of at most 64 KiB.  Raises for a second pass over a stream."""
        if self.single_use and self._used:
            raise ValueError(
                "this body is a one-shot stream and was already sent; pass bytes, a path or a "
                "seekable file to send it again"
            )
        self._used = True
        return self._open()


@dataclass(frozen=True)
class OutgoingMessage:
    """A message ready to send: its envelope, and the source of its body."""

    sender: str
    recipients: list[str]
    body: BodySource = field(repr=False)
    #: An address needs SMTPUTF8 (RFC 6531); worked out once, when the addresses are checked.
    smtputf8: bool = field(init=False, repr=False, compare=False)

    @property
    def size(self) -> int | None:
        return self.body.size

    @property
    def eight_bit(self) -> bool | None:
        return self.body.eight_bit

    @property
    def single_use(self) -> bool:
        return self.body.single_use

    @property
    def single_reader(self) -> bool:
        return self.body.single_reader

    def chunks(self) -> Iterator[bytes]:
        return self.body.chunks()

    def __post_init__(self) -> None:
        if not self.recipients:
            raise ValueError("a message needs at least one recipient")
        # A bad address is a ValueError here, before any operation starts (S1).
        if self.sender:
            format_mailbox(self.sender)
        for rcpt in self.recipients:
            rcpt_path(rcpt)
        smtputf8 = needs_smtputf8(self.sender) or any(map(needs_smtputf8, self.recipients))
        object.__setattr__(self, "smtputf8", smtputf8)  # a frozen dataclass's own field

    def with_recipients(self, recipients: Iterable[str]) -> OutgoingMessage:
        """The same message (same body source) for other recipients."""
        return OutgoingMessage(self.sender, list(recipients), self.body)


def _envelope_from_headers(message: email.message.Message) -> tuple[str, list[str]]:
    """Sender and recipients as ``smtplib.send_message`` derives them."""
    resent = message.get_all("Resent-Date") or []
    if len(resent) > 1:
        raise ValueError("the message has several Resent- blocks; give sender and recipients")
    prefix = "Resent-" if resent else ""
    sender_field = message[prefix + "Sender"] or message[prefix + "From"]
    senders = email.utils.getaddresses([_header_text(sender_field)] if sender_field else [])
    if not senders or not senders[0][1]:
        # The null reverse-path is for notifications only (C19): never guess it.
        raise ValueError(f"the message has no {prefix}From or {prefix}Sender; pass sender=")
    sender = senders[0][1]
    fields = [
        _header_text(v) for h in ("To", "Cc", "Bcc") for v in message.get_all(prefix + h) or []
    ]
    recipients = [addr for _, addr in email.utils.getaddresses(fields) if addr]
    return sender, recipients


def _header_text(value: object) -> str:
    """A header's text with RFC 2047 encoded-words decoded (compat32 Messages keep them)."""
    return str(email.header.make_header(email.header.decode_header(str(value))))


def _message_bytes(message: email.message.Message, international: bool) -> bytes:
    # The sent copy never carries Bcc (RFC 5322 §3.6.3); the caller's object is left alone.
    if message.get("Bcc") is not None or message.get("Resent-Bcc") is not None:
        message = copy.copy(message)
        del message["Bcc"]
        del message["Resent-Bcc"]
    policy = message.policy.clone(linesep="\r\n")
    if international:
        # UTF-8 headers (RFC 6532); a compat32 policy would RFC 2047-encode the addresses.
        base = policy if isinstance(policy, email.policy.EmailPolicy) else email.policy.SMTP
        policy = base.clone(utf8=True, linesep="\r\n")
    return message.as_bytes(policy=policy)


def _chunks_of(data: bytes) -> Callable[[], Iterator[bytes]]:
    if len(data) <= CHUNK_SIZE:  # most messages: one chunk, the bytes themselves
        return lambda: iter((data,) if data else ())
    view = memoryview(data)

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(view), CHUNK_SIZE):
            yield bytes(view[start : start + CHUNK_SIZE])

    return chunks


def _read_file(file: BinaryIO, start: int | None) -> Iterator[bytes]:
    if start is not None:
        file.seek(start)
    while chunk := file.read(CHUNK_SIZE):
        yield chunk


def _read_path(path: os.PathLike[str]) -> Iterator[bytes]:
    with open(path, "rb") as file:
        yield from _read_file(file, None)


def _file_size(file: BinaryIO) -> tuple[int | None, int | None]:
    """(start offset, remaining size) of a seekable file; (None, None) for a pipe or socket."""
    try:
        if not file.seekable():
            return None, None
        start = file.tell()
        end = file.seek(0, io.SEEK_END)
        file.seek(start)
    except (OSError, ValueError):
        return None, None
    return start, end - start


def prepare_message(
    body: Body, sender: str | None = None, recipients: Iterable[str] | None = None
) -> OutgoingMessage:
    """Turn any supported body into an :class:`OutgoingMessage`.

    ``sender`` and ``recipients`` default, for an ``email.message.Message``, to what its headers
    say (From/Sender, To/Cc/Bcc, or the Resent- variants), as ``smtplib.send_message`` does.
    """
    rcpts = list(recipients) if recipients is not None else None
    if isinstance(body, email.message.Message):
        header_sender, header_rcpts = _envelope_from_headers(body)
        sender = header_sender if sender is None else sender
        rcpts = header_rcpts if rcpts is None else rcpts
        international = any(needs_smtputf8(a) for a in [sender, *rcpts])
        body = _message_bytes(body, international)
    if sender is None or rcpts is None:
        raise ValueError("give a sender and recipients (only an email Message carries its own)")
    return OutgoingMessage(sender, rcpts, body_source(body))


def body_source(body: Body) -> BodySource:
    """The chunks of any supported body, with its size when that is known without reading."""
    single_use = is_file = False
    if isinstance(body, email.message.Message):
        body = _message_bytes(body, international=False)
    if isinstance(body, str):
        body = body.encode("utf-8")
    if isinstance(body, (bytes, bytearray, memoryview)):
        data = bytes(body)
        # The size on the wire (RFC 1870 §4): every bare CR or LF will become a CRLF.  Counting
        # octets is slow next to finding them, so the usual texts (all CRLF, or Unix LF) take
        # the quick way.
        if b"\r" not in data:
            wire_size = len(data) + data.count(b"\n")
        elif is_pure_crlf(data):
            wire_size = len(data)
        else:
            crlf = data.count(b"\r\n")
            wire_size = len(data) + data.count(b"\r") + data.count(b"\n") - 2 * crlf
        if data and not data.endswith((b"\r", b"\n")):
            wire_size += 2  # the CRLF the end of data adds (RFC 5321 §4.1.1.4)
        size: int | None = wire_size
        eight_bit: bool | None = not data.isascii()
        opener = _chunks_of(data)
    elif isinstance(body, os.PathLike):
        path = body
        size, eight_bit = os.stat(path).st_size, None
        opener = lambda: _read_path(path)  # noqa: E731 -- a fresh file each pass
    elif hasattr(body, "read"):
        file: BinaryIO = body  # type: ignore[assignment]
        start, size = _file_size(file)
        eight_bit, single_use, is_file = None, start is None, True
        opener = lambda: _read_file(file, start)  # noqa: E731
    else:
        chunks: Iterable[bytes] = body
        size, eight_bit, single_use = None, None, True
        opener = lambda: (bytes(c) for c in chunks if c)  # noqa: E731
    return BodySource(opener, size, eight_bit, single_use=single_use, file=is_file)
