"""Operations: every SMTP client policy, written once as generators that yield I/O requests.

A :class:`Session` wraps a :class:`ClientConnection`.  Each public method returns an operation,
which a driver runs with :func:`smtpproto.driver.drive`, performing the requests of
:mod:`smtpproto.driver`.
Nothing here blocks, sleeps or touches a socket, so the three adapters share every decision:
HELO fallback, STARTTLS policy, the choice of SASL mechanism, pipelining, SIZE/BODY/SMTPUTF8,
per-recipient results, RSET after failures, and what counts as delivered.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import TypeVar, cast

from smtpproto._wire.addresses import needs_smtputf8
from smtpproto._wire.dkim_hash import SigningError
from smtpproto._wire.dkim_sign import DKIMSigner
from smtpproto._wire.encoder import CRLFNormalizer
from smtpproto._wire.errors import (
    BodyReadError,
    DataRefused,
    LocalProtocolError,
    MessageEncodingError,
    MessageTooLarge,
    RecipientsRefused,
    SenderRefused,
    SMTPError,
    TLSRequiredError,
)
from smtpproto._wire.events import (
    BodyType,
    Command,
    Data,
    EndOfMessage,
    MailFrom,
    MessageData,
    NotifyCondition,
    RcptTo,
    Reply,
    Rset,
)
from smtpproto._wire.results import RecipientResult, SendResult
from smtpproto.driver import Operation, RemoveSpool, SpoolBody

from .batch import PIPELINE_GROUP, Batch, result_of
from .channel import (
    DEFAULT_PORTS,
    HELO_FALLBACK_CODES,
    Channel,
)
from .message import (
    Body,
    BodyReader,
    BodySource,
    OutgoingMessage,
    body_source,
    chunks_of,
    prepare_message,
)
from .options import SendOptions, SessionOptions
from .signing import signed_source

__all__ = [
    "DEFAULT_PORTS",
    "HELO_FALLBACK_CODES",
    "ONE_FLIGHT_BDAT_LIMIT",
    "PIPELINE_GROUP",
    "Session",
]

T = TypeVar("T")

# An in-memory body up to this size goes in the same flight as MAIL and RCPT with CHUNKING.
ONE_FLIGHT_BDAT_LIMIT = 8 << 20
# The first write of content listens for an early reply (C12), then one write per this many
# octets: a listen costs asyncio a turn of its loop and the blocking driver a system call, and
# on every 64 KiB chunk that was 17 % and 5 % of bench_clients D (2026-12-03).
LISTEN_INTERVAL = 1 << 20
_NO_OPTIONS = SendOptions()
# Commands without arguments are all alike: one instance each serves every message.
_DATA = Data()
_END_OF_MESSAGE = EndOfMessage()


class Session(Channel):
    """One SMTP (or LMTP) session, as a set of I/O-free operations: the :class:`Channel`'s
    connecting, TLS and AUTH, plus sending messages, in one call or staged."""

    def __init__(self, options: SessionOptions | None = None) -> None:
        super().__init__(options)
        self._staged: _Staged | None = None

    def _forget_message(self) -> bool:
        staged, self._staged = self._staged, None
        return staged is not None and staged.data_started

    # -- sending -----------------------------------------------------------------------------

    def send_message(
        self,
        message: Body | OutgoingMessage,
        sender: str | None = None,
        recipients: Iterable[str] | None = None,
        *,
        options: SendOptions | None = None,
    ) -> Operation[SendResult]:
        """Send one message; a refused recipient is a result, not an exception.

        Raises :class:`MessageTooLarge`, :class:`MessageEncodingError` (before anything is sent),
        :class:`SenderRefused`, :class:`RecipientsRefused` (nobody accepted) or
        :class:`DataRefused` (the message itself was refused).  The batch of one of
        :meth:`send_messages`.
        """
        self._refuse_if_staged()
        if not isinstance(message, OutgoingMessage):
            message = prepare_message(message, sender, recipients, options=options)
        else:
            if recipients is not None:
                message = message.with_recipients(recipients)
            if options is not None:
                message = message.with_options(options)
        # Bad input was a ValueError before the operation started (the OutgoingMessage checked
        # the addresses, SendOptions its values), so the connection stays usable.
        # The batch of one raises its message's error: its outcome is then a SendResult.
        return cast("Operation[SendResult]", Batch(self, (message,), raising=True).next_outcome())

    def send_messages(self, messages: Iterable[OutgoingMessage], *, quit: bool = False) -> Batch:
        """Send ``messages`` over this session, pipelined across messages where the server
        allows it; :meth:`Batch.next_outcome` hands out each message's outcome in order (a
        :class:`SendResult`, or the error that stopped that message).

        With PIPELINING, a message's end of data and the next message's MAIL, RCPT and DATA go
        in one write (one round trip per message); with CHUNKING too, a window of whole
        transactions (``SessionOptions.window``).  ``quit=True`` sends QUIT with the last one
        and closes the session.  ``messages`` is read lazily, as outcomes are asked for.
        """
        self._refuse_if_staged()
        return Batch(self, messages, quit=quit)

    def _mail_command(
        self, message: OutgoingMessage, size: int | None, options: SendOptions
    ) -> MailFrom:
        """MAIL FROM for ``message``: BODY from what its content is known to need."""
        ext = self.conn.extensions
        body: BodyType | None = None
        if ext.eightbitmime and message.eight_bit is not False:
            body = "8BITMIME"  # for a stream of unknown content, declaring 8 bits is always safe
        elif message.eight_bit and not message.smtputf8:
            raise MessageEncodingError("8-bit content needs 8BITMIME, which the server lacks")
        return self._mail_from(message.sender, size, body, message.smtputf8, options)

    def _mail_from(
        self,
        sender: str,
        size: int | None,
        body: BodyType | None,
        smtputf8: bool,
        options: SendOptions,
    ) -> MailFrom:
        """MAIL FROM with every parameter the server allows, or the error that says why the
        message cannot go to this server, before anything is sent (one-shot and staged alike)."""
        ext = self.conn.extensions
        if size is not None and ext.size and size > ext.size:
            raise MessageTooLarge(size, ext.size)
        if smtputf8 and not ext.smtputf8:
            raise MessageEncodingError("a non-ASCII address needs SMTPUTF8, which the server lacks")
        if body is not None and not (ext.binarymime if body == "BINARYMIME" else ext.eightbitmime):
            needed = "BINARYMIME" if body == "BINARYMIME" else "8BITMIME"
            raise MessageEncodingError(f"BODY={body} needs {needed}, which the server lacks")
        if options.requiretls and not (ext.requiretls and self.conn.tls):
            # RFC 8689 §4.2.1: without TLS and the extension, the message must not go here.
            raise TLSRequiredError("REQUIRETLS needs a TLS session with a server that offers it")
        dsn = ext.dsn
        return MailFrom(
            sender,
            size=size if ext.size is not None else None,
            body=body,
            smtputf8=smtputf8,
            ret=options.ret if dsn else None,
            envid=options.envid if dsn else None,
            requiretls=options.requiretls,
            mt_priority=options.mt_priority if ext.mt_priority else None,
        )

    def _exchange(self, commands: list[Command]) -> Operation[list[Reply]]:
        """Send ``commands`` and read their replies, pipelined in bounded groups when allowed."""
        pipelining = self.conn.extensions.pipelining
        replies: list[Reply] = []
        sent = 0
        while len(replies) < len(commands):
            outstanding = sent - len(replies)
            if sent < len(commands) and (
                outstanding < PIPELINE_GROUP if pipelining else not outstanding
            ):
                group = commands[sent : sent + (PIPELINE_GROUP if pipelining else 1)]
                yield from self._send(*group)
                sent += len(group)
            reply = yield from self._read_reply()
            replies.append(reply)
            if not pipelining and len(replies) == 1 and not reply.is_positive:
                break  # MAIL refused: no RCPT is worth sending
        return replies

    def _one_flight_body(self, message: OutgoingMessage) -> bytes | None:
        """The whole body for a single ``BDAT LAST``, when CHUNKING and PIPELINING make that one
        round trip and the body is small and in memory; else ``None`` (use DATA)."""
        ext = self.conn.extensions
        data = message.body.data
        if (
            not (ext.chunking and ext.pipelining)
            or data is None
            or len(data) > ONE_FLIGHT_BDAT_LIMIT
        ):
            return None
        normalizer = CRLFNormalizer()  # BDAT text is CRLF text too (S2)
        return normalizer.feed(data) + normalizer.flush()

    def _start_data(self, data_reply: Reply | None) -> Operation[Reply | None]:
        """DATA, unless its reply came with the pipelined group.  Returns ``None`` on 354, else
        the refusal, after an RSET that leaves the session usable."""
        if data_reply is None:
            data_reply = yield from self.command(_DATA)
        if data_reply.is_intermediate:
            return None
        yield from self.command(Rset())
        return data_reply

    def _final_replies(self, accepted: int) -> Operation[list[Reply]]:
        """The answer to the end of the data: one, or in LMTP one per accepted recipient."""
        return [(yield from self._read_reply())] + (yield from self._lmtp_more(accepted))

    def _stream(self, reader: BodyReader) -> Operation[None]:
        """Send content, without its end (the staged API's append)."""
        held = yield from self._stream_but_last(reader)
        yield from self._end_content(held, None)

    def _stream_but_last(self, source: BodyReader | bytes) -> Operation[list[Command]]:
        """Send content but its last chunk, which is returned: it goes out with the end of data,
        so a small message costs one write, not two (and no Nagle stall).  An in-memory body
        (``bytes``) is cut in chunks here, with no request to the driver."""
        reader = None if isinstance(source, bytes) else source
        memory = chunks_of(source) if isinstance(source, bytes) else iter(())
        try:
            held: list[Command] = []
            unheard = LISTEN_INTERVAL  # octets written since the driver last listened
            while chunk := (
                next(memory, b"") if reader is None else (yield from reader.next_chunk())
            ):
                if held:
                    # The driver hands back what the server said meanwhile (C12, below).
                    listen = unheard >= LISTEN_INTERVAL
                    yield from self._send(*held, listen=listen)
                    if listen:
                        unheard = 0
                held = [MessageData(chunk)]
                unheard += len(chunk)
            return held
        except LocalProtocolError as exc:
            yield from self._close()
            raise MessageEncodingError(str(exc)) from None
        except BodyReadError:
            yield from self._close()  # a half-read body must never be delivered
            raise

    def _end_content(self, held: list[Command], after: list[Command] | None) -> Operation[None]:
        """The last of the content, then (unless ``after`` is ``None``) the end of data and the
        commands ``after`` it, in one write."""
        try:
            if after is not None:
                # A reply before the end of data answers nothing the client sent (C12): the
                # message must not be reported delivered on the strength of it.
                self._no_unsolicited_reply()
                held = [*held, _END_OF_MESSAGE, *after]
            if held:
                yield from self._send(*held)
        except LocalProtocolError as exc:
            # Content the server cannot take (8-bit without 8BITMIME) found mid-stream: the only
            # safe way out of DATA is to drop the connection, so the partial message is discarded.
            yield from self._close()
            raise MessageEncodingError(str(exc)) from None

    def _no_unsolicited_reply(self) -> None:
        """Raise if the server said something no command outstanding asks for (a reply during
        the content, or one too many after the end of data): a protocol error, a 421 or the end
        of the connection, all fatal to the session."""
        if self.conn.unread:
            # With nothing outstanding the machine takes no reply but a 421, which raises, as
            # the end of the connection does; a line not yet whole cannot be judged.
            self._next_reply()

    def _lmtp_more(self, accepted: int) -> Operation[list[Reply]]:
        """LMTP answers the end of data once per accepted recipient (RFC 2033 §4.2)."""
        more = []
        if self.conn.lmtp:
            for _ in range(accepted - 1):
                more.append((yield from self._read_reply()))
        return more

    def _final_results(
        self,
        recipients: list[str],
        rcpt_replies: list[Reply],
        accepted: list[str],
        finals: list[Reply],
        mail_reply: Reply | None,
    ) -> SendResult:
        """Each recipient's result once the data was answered (LMTP: one answer per accepted
        recipient, in order); :class:`DataRefused` when no answer took the message."""
        if self.conn.lmtp:
            final_of = dict(zip(accepted, finals, strict=True))
        else:
            final_of = dict.fromkeys(accepted, finals[0])
        result = result_of(recipients, rcpt_replies, final_of, mail_reply, finals[0])
        if not any(final.is_positive for final in finals):
            raise DataRefused("the server refused the message", finals[0], result)
        return result

    # -- the staged transaction --------------------------------------------------------------

    def create_message(
        self,
        sender: str,
        *,
        size: int | None = None,
        body: BodyType | None = None,
        smtputf8: bool | None = None,
        options: SendOptions | None = None,
    ) -> Operation[Reply]:
        """``MAIL FROM``: start a message; then add recipients, append content, close it.

        Raises before anything is sent, as :meth:`send_message` does, when the server cannot
        take the message (:class:`MessageTooLarge`, :class:`MessageEncodingError`,
        :class:`TLSRequiredError`).  DSN's ``notify`` is given per recipient, to
        :meth:`add_recipient`.  With signers (``options.dkim``) the parts appended are spooled
        by the driver, and the message is signed and sent at :meth:`close_message`.
        """
        self._refuse_if_staged()
        options = options or _NO_OPTIONS
        if options.notify is not None:
            raise ValueError("notify is per recipient here: give it to add_recipient()")
        if options.dkim and body == "BINARYMIME":
            # Binary content is not CRLF text: what DKIM hashes would not be what is sent.
            raise SigningError("BODY=BINARYMIME content cannot be signed with DKIM")
        if body is None and self.conn.extensions.eightbitmime:
            body = "8BITMIME"
        international = needs_smtputf8(sender) if smtputf8 is None else smtputf8
        mail = self._mail_from(sender, size, body, international, options)
        return self._guarded(self._create_message(mail, options.dkim))

    def _create_message(self, mail: MailFrom, signers: tuple[DKIMSigner, ...]) -> Operation[Reply]:
        reply = yield from self.command(mail)
        if not reply.is_positive:
            yield from self.command(Rset())
            raise SenderRefused("the server refused the sender", reply)
        self._staged = _Staged(mail.body == "BINARYMIME", reply, signers)
        return reply

    def add_recipient(
        self,
        recipient: str,
        *,
        notify: Sequence[NotifyCondition] | None = None,
        orcpt: str | None = None,
    ) -> Operation[RecipientResult]:
        """``RCPT TO``: a refusal comes back as a result, not an exception."""
        staged = self._require_staged()
        dsn = self.conn.extensions.dsn
        event = RcptTo(
            recipient,
            notify=tuple(notify) if notify and dsn else None,
            orcpt=orcpt if dsn else None,
        )
        return self._guarded(self._add_recipient(staged, event))

    def _add_recipient(self, staged: _Staged, event: RcptTo) -> Operation[RecipientResult]:
        reply = yield from self.command(event)
        result = RecipientResult(event.recipient, reply)
        staged.results.append(result)
        return result

    def append_message(self, content: Body) -> Operation[None]:
        """Append content (bytes, str, a Message, a path, a file, or chunks) to the message."""
        staged = self._require_staged()
        return self._guarded(self._append(staged, content))

    def _append(self, staged: _Staged, content: Body) -> Operation[None]:
        if staged.signers:
            yield from self._spool_part(staged, body_source(content))
            self._staged = staged
            return
        try:
            reader = yield from body_source(content).open()
        except BodyReadError:
            if staged.data_started:  # a message missing a part must never be delivered
                self._staged = None
                yield from self._close()
            raise
        yield from _reading(reader, self._append_from(staged, reader))
        self._staged = staged

    def _append_from(self, staged: _Staged, reader: BodyReader) -> Operation[None]:
        if not staged.data_started:
            yield from self._start_staged_data(staged)
        self._staged = None  # content the server cannot take ends the message and the session
        yield from self._stream(reader)

    def _spool_part(self, staged: _Staged, source: BodySource) -> Operation[None]:
        """A part of a message to sign, added to its spool; a part that cannot be read ends the
        message (RSET), since a message missing a part must never be sent."""
        try:
            if source.data is not None:
                staged.spool = yield SpoolBody(source.data, staged.spool)
            else:
                reader = yield from source.open()
                staged.spool = yield from _reading(reader, _spooled(reader, staged.spool))
        except BodyReadError:
            self._staged = None
            yield from _remove(staged.spool)
            yield from self.command(Rset())
            raise

    def _send_signed(self, staged: _Staged) -> Operation[None]:
        """Sign the spooled message, then DATA and the signed message; the spool is removed
        whatever happens in SMTP terms."""
        spool, staged.spool = staged.spool, None
        source = body_source(b"") if spool is None else BodySource(None, spool)
        try:
            if not any(result.accepted for result in staged.results):
                yield from self._start_staged_data(staged)  # raises RecipientsRefused, after RSET
            try:
                body = yield from signed_source(source, staged.signers)
            except (SigningError, BodyReadError):  # nothing of the message was sent
                yield from self.command(Rset())
                raise
            yield from self._start_staged_data(staged)
            self._staged = None
            reader = yield from body.open()
            yield from _reading(reader, self._stream(reader))
        except SMTPError:
            yield from _remove(spool)
            raise
        yield from _remove(spool)

    def _start_staged_data(self, staged: _Staged) -> Operation[None]:
        accepted = [r for r in staged.results if r.accepted]
        if not accepted:
            self._staged = None
            yield from self.command(Rset())
            raise RecipientsRefused(SendResult(tuple(staged.results), staged.mail_reply))
        if staged.binary:
            raise MessageEncodingError("BODY=BINARYMIME content needs send_message (BDAT)")
        self._staged = None  # until the 354: a refused DATA ends the message
        refusal = yield from self._start_data(None)
        if refusal is not None:
            recipients, replies = staged.envelope()
            data_replies = dict.fromkeys((r.recipient for r in accepted), refusal)
            result = result_of(recipients, replies, data_replies, staged.mail_reply, refusal)
            raise DataRefused("the server refused DATA", refusal, result)
        self._staged, staged.data_started = staged, True

    def close_message(self) -> Operation[SendResult]:
        """End the data and return the result per recipient.  The message can still be refused
        here (:class:`DataRefused`); only a 2xx now means it was delivered."""
        staged = self._require_staged()
        self._staged = None
        return self._guarded(self._close_message(staged))

    def _close_message(self, staged: _Staged) -> Operation[SendResult]:
        if staged.signers:
            yield from self._send_signed(staged)
        elif not staged.data_started:
            yield from self._append(staged, b"")
        yield from self._end_content([], [])
        accepted = [r.recipient for r in staged.results if r.accepted]
        finals = yield from self._final_replies(len(accepted))
        self._no_unsolicited_reply()  # a reply too many: the last one proves nothing
        recipients, replies = staged.envelope()
        return self._final_results(recipients, replies, accepted, finals, staged.mail_reply)

    def reset(self) -> Operation[Reply]:
        """``RSET``: also abandons a staged message (and removes what was spooled for it)."""
        spool = self._staged.spool if self._staged is not None else None
        op = super().reset()
        return op if spool is None else _after(_remove(spool), op)

    def _refuse_if_staged(self) -> None:
        if self._staged is not None:
            raise LocalProtocolError(
                "a staged message is open: call close_message() or reset() first"
            )

    def _require_staged(self) -> _Staged:
        if self._staged is None:
            raise LocalProtocolError("no message is open: call create_message first")
        return self._staged


class _Staged:
    """The open staged message: recipient results so far, and whether DATA has begun."""

    def __init__(self, binary: bool, mail_reply: Reply, signers: tuple[DKIMSigner, ...]) -> None:
        self.binary = binary
        self.mail_reply = mail_reply
        self.results: list[RecipientResult] = []
        self.data_started = False
        self.signers = signers  # sign at close_message: the parts go to a spool till then
        self.spool: os.PathLike[str] | None = None

    def envelope(self) -> tuple[list[str], list[Reply]]:
        """The recipients so far, and the answer to each one's RCPT."""
        return [r.recipient for r in self.results], [r.rcpt_reply for r in self.results]


def _reading(reader: BodyReader, op: Operation[T]) -> Operation[T]:
    """Run ``op``, which reads ``reader``; release the body after it, however it ends in SMTP
    terms.  (An interrupted operation yields nothing more: its driver drops what it holds.)"""
    try:
        result = yield from op
    except SMTPError:
        yield from reader.close()
        raise
    yield from reader.close()
    return result


def _spooled(reader: BodyReader, spool: os.PathLike[str] | None) -> Operation[os.PathLike[str]]:
    path: os.PathLike[str] = yield SpoolBody(reader.handle, spool)
    return path


def _remove(spool: os.PathLike[str] | None) -> Operation[None]:
    if spool is not None:
        yield RemoveSpool(spool)


def _after(first: Operation[None], op: Operation[T]) -> Operation[T]:
    yield from first
    return (yield from op)
