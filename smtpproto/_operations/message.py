"""What can be sent as a message, and its envelope.

Bodies come as ``bytes``, ``str``, an ``email.message.Message``, a path, a binary file object or
an iterable of byte chunks.  All of them become an :class:`OutgoingMessage`.  The core reads only
what is already in memory: a path, a file or an iterable is read by the driver, chunk by chunk,
through the body requests of :mod:`smtpproto.driver` (``OpenBody``, ``ReadBody``, ``CloseBody``),
so sending a 1 GB file costs roughly constant memory and never blocks an event loop.
"""

from __future__ import annotations

import copy
import email.header
import email.message
import email.policy
import email.utils
import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Union

from smtpproto._wire.addresses import format_mailbox, needs_smtputf8, rcpt_path
from smtpproto._wire.encoder import is_pure_crlf
from smtpproto._wire.errors import BodyReadError
from smtpproto.driver import (
    BodyStream,
    CloseBody,
    OpenBody,
    OpenedBody,
    Operation,
    ReadBody,
    RemoveSpool,
)

from .options import SendOptions

__all__ = [
    "CHUNK_SIZE",
    "Body",
    "BodyReader",
    "BodySource",
    "OutgoingMessage",
    "body_source",
    "chunks_of",
    "prepare_message",
]

#: The most a driver is asked to read at once, and the size of an in-memory body's chunks.
#: Every chunk costs a round of requests and Python calls, so bigger is cheaper, until a chunk
#: (or its encoding, a little longer) reaches glibc's 128 KiB mmap threshold: then each one is
#: a fresh mapping, paid in page faults (128 KiB: blocking D 0.28 -> 0.41 s; 256 KiB slower for
#: every adapter).  bench_clients D (a 200 MB file, medians of 4 interleaved runs, 2026-12-03),
#: blocking / asyncio / trio: 64 KiB 0.333 / 0.394 / 0.479 s, 112 KiB 0.280 / 0.335 / 0.389 s.
CHUNK_SIZE = 112 << 10

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


class BodyReader:
    """One pass over a body: its chunks, from memory or through the driver.

    A signed body read through the driver first yields its signature fields (``memory``), and
    checks that its octets are those that were hashed (``expected``): a file that changed
    since is a :exc:`BodyReadError` before its end, so it is never delivered.
    """

    def __init__(
        self,
        size: int | None,
        memory: Iterator[bytes],
        opened: OpenedBody | None,
        expected: bytes | None = None,
        spool: os.PathLike[str] | None = None,
    ):
        self.size = size  # octets, when known without reading the body (for SIZE)
        self._memory = memory
        self._opened = opened
        self._expected = expected
        self._seen = hashlib.sha256() if expected is not None else None
        self._spool = spool  # a spool to remove once read

    def next_chunk(self) -> Operation[bytes]:
        """The next chunk, ``b""`` at the end: taken from memory, or asked of the driver with a
        ``ReadBody`` request (the core never reads a file or a stream itself)."""
        chunk = next(self._memory, b"")
        if chunk or self._opened is None:
            return chunk
        read: bytes = yield ReadBody(self._opened.reader, CHUNK_SIZE)
        if self._seen is not None:
            self._seen.update(read)
            if not read and self._seen.digest() != self._expected:
                raise BodyReadError(
                    "the message body changed after it was signed: it was not sent whole"
                )
        return read

    @property
    def handle(self) -> object:
        """The driver's handle of the opened body (for ``SpoolBody``)."""
        assert self._opened is not None  # only a body the driver reads has one
        return self._opened.reader

    def close(self) -> Operation[None]:
        if self._opened is not None:
            opened, self._opened = self._opened, None
            yield CloseBody(opened.reader)
        if self._spool is not None:
            spool, self._spool = self._spool, None
            yield RemoveSpool(spool)


class BodySource:
    """Where a body's chunks come from; shared by every envelope that sends the same body.

    In memory (``data``), or a :data:`~smtpproto.driver.BodyStream` that the driver reads.
    """

    def __init__(
        self, data: bytes | None, stream: BodyStream | None, size: int | None = None
    ) -> None:
        self.data = data
        self.stream = stream
        self.size = size  # octets on the wire; for a stream, learnt when it is first opened
        # Content that needs 8BITMIME; None: unknown until the body has been read.
        self.eight_bit = None if data is None else not data.isascii()
        file = hasattr(stream, "read")
        # A stream that can be read only once: an iterable (a file that cannot seek is found
        # out when it is first opened).
        self.single_use = stream is not None and not file and not isinstance(stream, os.PathLike)
        # A file object has one position, and a stream one pass: one reader at a time.
        self.single_reader = file or self.single_use
        self._start: int | None = None
        self._used = False
        # Signed (see signed_copy): the fields to send first, and the digest of what was hashed.
        self._prefix = b""
        self._expected: bytes | None = None
        self._spool: os.PathLike[str] | None = None  # removed after its one pass

    def signed_copy(
        self,
        fields: bytes,
        size: int,
        digest: bytes,
        spool: os.PathLike[str] | None,
    ) -> BodySource:
        """This body, read through the driver, with the signature ``fields`` first: ``size``
        octets on the wire, ``digest`` the SHA-256 of what was hashed.  ``spool``: the
        temporary file it is read from instead, deleted after its one pass."""
        copy_ = BodySource(None, self.stream if spool is None else spool, size)
        copy_._start = self._start if spool is None else 0
        copy_.single_use = spool is not None
        copy_.single_reader = self.single_reader
        copy_._prefix, copy_._expected = fields, digest
        copy_._spool = spool
        return copy_

    def open(self) -> Operation[BodyReader]:
        """Start a pass over the body.  Raises for a second pass over a one-shot stream, and
        :exc:`BodyReadError` when the driver cannot open it."""
        if self.stream is None:
            return BodyReader(self.size, chunks_of(self.data or b""), None)
        if self.single_use and self._used:
            raise ValueError(
                "this body is a one-shot stream and was already sent; pass bytes, a path or a "
                "seekable file to send it again"
            )
        first = not self._used and self._expected is None  # a signed copy knows its start
        self._used = True
        opened: OpenedBody = yield OpenBody(self.stream, self._start)
        if first:
            self._start, self.size = opened.start, opened.size
            self.single_use = self.single_use or opened.start is None
        if self._expected is None:
            return BodyReader(opened.size, iter(()), opened)
        spool, self._spool = self._spool, None
        prefix = iter((self._prefix,))
        return BodyReader(self.size, prefix, opened, self._expected, spool)


_NO_OPTIONS = SendOptions()


@dataclass(frozen=True)
class OutgoingMessage:
    """A message ready to send: its envelope, the source of its body, and what to ask of the
    server for it.  Made by :func:`prepare_message`; ``Session.send_messages`` takes these."""

    sender: str
    recipients: list[str]
    body: BodySource = field(repr=False)
    options: SendOptions = field(default=_NO_OPTIONS, repr=False)
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
        """The same message (same body source and options) for other recipients."""
        return OutgoingMessage(self.sender, list(recipients), self.body, self.options)

    def with_options(self, options: SendOptions) -> OutgoingMessage:
        """The same message with other options."""
        return OutgoingMessage(self.sender, self.recipients, self.body, options)


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


def chunks_of(data: bytes) -> Iterator[bytes]:
    """An in-memory body's chunks, of :data:`CHUNK_SIZE` at most."""
    if len(data) <= CHUNK_SIZE:  # most messages: one chunk, the bytes themselves
        return iter((data,) if data else ())
    view = memoryview(data)
    return (bytes(view[at : at + CHUNK_SIZE]) for at in range(0, len(view), CHUNK_SIZE))


def prepare_message(
    body: Body,
    sender: str | None = None,
    recipients: Iterable[str] | None = None,
    *,
    options: SendOptions | None = None,
) -> OutgoingMessage:
    """Turn any supported body into an :class:`OutgoingMessage`.

    ``sender`` and ``recipients`` default, for an ``email.message.Message``, to what its headers
    say (From/Sender, To/Cc/Bcc, or the Resent- variants), as ``smtplib.send_message`` does;
    when both are given, the address headers are not parsed at all.
    """
    rcpts = list(recipients) if recipients is not None else None
    if isinstance(body, email.message.Message):
        if sender is None or rcpts is None:
            header_sender, header_rcpts = _envelope_from_headers(body)
            sender = header_sender if sender is None else sender
            rcpts = header_rcpts if rcpts is None else rcpts
        international = needs_smtputf8(sender) or any(map(needs_smtputf8, rcpts))
        body = _message_bytes(body, international)
    if sender is None or rcpts is None:
        raise ValueError("give a sender and recipients (only an email Message carries its own)")
    return OutgoingMessage(sender, rcpts, body_source(body), options or _NO_OPTIONS)


def body_source(body: Body) -> BodySource:
    """The source of any supported body; its size when that is known without reading it."""
    if isinstance(body, email.message.Message):
        body = _message_bytes(body, international=False)
    if isinstance(body, str):
        body = body.encode("utf-8")
    if not isinstance(body, (bytes, bytearray, memoryview)):
        return BodySource(None, body)
    data = bytes(body)
    # The size on the wire (RFC 1870 §4): every bare CR or LF will become a CRLF.  Counting
    # octets is slow next to finding them, so the usual texts (all CRLF, or Unix LF) take
    # the quick way.
    if b"\r" not in data:
        size = len(data) + data.count(b"\n")
    elif is_pure_crlf(data):
        size = len(data)
    else:
        crlf = data.count(b"\r\n")
        size = len(data) + data.count(b"\r") + data.count(b"\n") - 2 * crlf
    if data and not data.endswith((b"\r", b"\n")):
        size += 2  # the CRLF the end of data adds (RFC 5321 §4.1.1.4)
    return BodySource(data, None, size)
