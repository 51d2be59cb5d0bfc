"""Operations: every SMTP client policy, written once as generators that yield I/O requests.

A :class:`Session` wraps a :class:`ClientConnection`.  Each public method returns a generator; an
adapter drives it (``request = op.send(result)``) and performs the requests of :mod:`._io`.
Nothing here blocks, sleeps or touches a socket, so the three adapters share every decision:
HELO fallback, STARTTLS policy, the choice of SASL mechanism, pipelining, SIZE/BODY/SMTPUTF8,
per-recipient results, RSET after failures, and what counts as delivered.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from collections.abc import Generator, Iterable, Sequence
from typing import Any, TypeVar

from . import sasl
from ._addresses import needs_smtputf8
from ._connection import NEED_DATA, PAUSED, ClientConnection, Limits, kind_of
from ._encoder import CRLFNormalizer
from ._errors import (
    AuthenticationError,
    AuthNotSupported,
    CleartextAuthRefused,
    ConnectionLostError,
    DataRefused,
    GreetingRefused,
    LocalProtocolError,
    MessageEncodingError,
    MessageTooLarge,
    ProtocolError,
    RecipientsRefused,
    ReplyError,
    SenderRefused,
    ServiceClosing,
    SMTPError,
    SMTPTimeoutError,
    TLSError,
    TLSRequiredError,
)
from ._events import (
    Auth,
    AuthResponse,
    Bdat,
    BodyType,
    Command,
    ConnectionClosed,
    Data,
    Ehlo,
    EndOfMessage,
    Helo,
    Lhlo,
    MailFrom,
    MessageData,
    Noop,
    NotifyCondition,
    Quit,
    RcptTo,
    Reply,
    Rset,
    StartTLS,
    Vrfy,
)
from ._io import Close, Connect, IORequest, Receive, Send, StartTLSHandshake, TLSMode
from ._message import Body, OutgoingMessage, prepare_message
from ._results import RecipientResult, SendResult
from ._state import State
from ._transcript import log_reply, log_sent
from ._wire import COMMAND_LINE_LIMIT

__all__ = ["DEFAULT_PORTS", "Operation", "Session"]

T = TypeVar("T")
Operation = Generator[IORequest, Any, T]

DEFAULT_PORTS = {TLSMode.IMPLICIT: 465, TLSMode.STARTTLS: 587}
DEFAULT_CONNECT_TIMEOUT = 30.0  # Postfix's smtp_connect_timeout
# Commands written before reading replies under PIPELINING: small enough that neither side's
# socket buffer can fill and deadlock (RFC 2920 §3.1), large enough to cost few round trips.
PIPELINE_GROUP = 50
# An in-memory body up to this size goes in the same flight as MAIL and RCPT with CHUNKING.
ONE_FLIGHT_BDAT_LIMIT = 8 << 20
# Servers answer "not recognized" to EHLO with these; then HELO is worth a try (checklist G4).
HELO_FALLBACK_CODES = frozenset({500, 502, 504})
# Errors after which the connection cannot be trusted: close it, never reuse it.
FATAL_ERRORS = (
    ProtocolError,
    SMTPTimeoutError,
    ConnectionLostError,
    ServiceClosing,
    TLSError,
    TLSRequiredError,
)


class Session:
    """One SMTP (or LMTP) session, as a set of I/O-free operations."""

    def __init__(
        self,
        *,
        local_hostname: str = "localhost",
        lmtp: bool = False,
        limits: Limits | None = None,
        timeouts: dict[str, float] | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    ) -> None:
        self._conn_options: dict[str, Any] = {
            "local_hostname": local_hostname,
            "lmtp": lmtp,
            "limits": limits,
            "timeouts": timeouts,
        }
        self.conn = ClientConnection(**self._conn_options)
        self.connect_timeout = connect_timeout
        self.server_hostname = ""
        self.tls_verified = False
        self.closed = True
        self._staged: _Staged | None = None

    @property
    def extensions(self) -> Any:
        return self.conn.extensions

    @property
    def tls_active(self) -> bool:
        return self.conn.tls

    # -- low-level steps ---------------------------------------------------------------------

    def _send(self, *events: Command) -> Operation[None]:
        wires = []
        for event in events:
            wire = self.conn.send(event)
            log_sent(event, wire)
            wires.append(wire)
        data = b"".join(wires)
        if data:  # a chunk may encode to nothing yet (a CR held back for its LF)
            yield Send(data, self.conn.timeouts["DATA-BLOCK"], kind_of(events[-1]))

    def _read_reply(self) -> Operation[Reply]:
        while True:
            pending = self.conn.pending
            phase = kind_of(pending[0]) if pending else "GREETING"
            event = self.conn.next_event()
            if isinstance(event, Reply):
                log_reply(event)
                if event.code == 421:
                    # The server is closing the session (C15): everything outstanding failed
                    # temporarily, and nothing more can be said on this connection.
                    raise ServiceClosing("the server is closing the connection", event)
                return event
            if isinstance(event, ConnectionClosed):
                raise ConnectionLostError(phase, "the server closed the connection")
            # PAUSED only follows a 220 to STARTTLS, which _starttls reads itself.
            assert event is NEED_DATA
            data = yield Receive(self.conn.recommended_timeout, phase)
            self.conn.receive_data(data)

    def command(self, event: Command) -> Operation[Reply]:
        """Send one command and return its reply (any code: deciding is the caller's job)."""
        yield from self._send(event)
        return (yield from self._read_reply())

    def _guarded(self, op: Operation[T], *, opening: bool = False) -> Operation[T]:
        """Run ``op``; on an error that leaves the connection untrustworthy, close it."""
        if self.closed and not opening:
            op.close()
            raise ConnectionLostError(
                "the next command", "the connection is closed; open a new one"
            )
        try:
            return (yield from op)
        except FATAL_ERRORS:
            yield from self._close()
            raise

    def _close(self) -> Operation[None]:
        if not self.closed:
            self.closed = True
            yield Close()

    def _quit_and_close(self) -> Operation[None]:
        """QUIT politely when the machine allows it, then close; never raise (checklist C14)."""
        with contextlib.suppress(SMTPError):
            yield from self.command(Quit())
        yield from self._close()

    # -- opening -----------------------------------------------------------------------------

    def open(
        self,
        host: str,
        port: int | None = None,
        *,
        tls: TLSMode = TLSMode.STARTTLS,
        server_hostname: str | None = None,
        verify: bool = True,
    ) -> Operation[Reply]:
        """Connect, read the greeting, say EHLO (or HELO), and start TLS as ``tls`` asks.

        Returns the greeting.  ``verify=False`` accepts any certificate (opportunistic MX
        delivery only; :attr:`tls_verified` records it).
        """
        return self._guarded(self._open(host, port, tls, server_hostname, verify), opening=True)

    def _open(
        self, host: str, port: int | None, tls: TLSMode, server_hostname: str | None, verify: bool
    ) -> Operation[Reply]:
        implicit = tls is TLSMode.IMPLICIT
        self.conn = ClientConnection(tls=implicit, **self._conn_options)
        self._staged = None
        self.server_hostname = server_hostname or host
        yield Connect(
            host,
            DEFAULT_PORTS.get(tls, 25) if port is None else port,
            self.connect_timeout,
            implicit_tls=implicit,
            server_hostname=self.server_hostname,
            verify=verify,
        )
        self.closed = False
        self.tls_verified = implicit and verify
        try:
            greeting = yield from self._read_reply()
            if not greeting.is_positive:
                yield from self._quit_and_close()
                raise GreetingRefused("the server refused the session", greeting)
            yield from self._hello()
        except ServiceClosing as exc:  # 421 before the session is open: it is refused, for now
            yield from self._close()
            raise GreetingRefused("the server is not available", exc.reply) from None
        if tls in (TLSMode.STARTTLS, TLSMode.OPPORTUNISTIC):
            yield from self._starttls(required=tls is TLSMode.STARTTLS, verify=verify)
        return greeting

    def _hello(self) -> Operation[Reply]:
        if self.conn.lmtp:
            reply = yield from self.command(Lhlo())
        else:
            reply = yield from self.command(Ehlo())
            if reply.code in HELO_FALLBACK_CODES:
                reply = yield from self.command(Helo())
        if not reply.is_positive:
            yield from self._quit_and_close()
            raise GreetingRefused("the server refused our greeting", reply)
        return reply

    def _starttls(self, *, required: bool, verify: bool) -> Operation[None]:
        if not self.conn.extensions.starttls:
            if required:
                yield from self._quit_and_close()
                raise TLSRequiredError("TLS is required but the server does not offer STARTTLS")
            return
        reply = yield from self.command(StartTLS())
        if not reply.is_positive:
            if required:
                yield from self._quit_and_close()
                raise TLSRequiredError(
                    f"TLS is required but STARTTLS failed: {reply.code} {reply.text}"
                )
            return
        event = self.conn.next_event()  # PAUSED, or RemoteProtocolError on injected data (S4)
        assert event is PAUSED
        yield StartTLSHandshake(self.server_hostname, self.conn.timeouts["STARTTLS"], verify)
        self.conn.tls_established()
        self.tls_verified = verify
        yield from self._hello()

    # -- authentication ----------------------------------------------------------------------

    def authenticate(
        self,
        username: str,
        password: str | None = None,
        *,
        token: str | None = None,
        mechanism: str | None = None,
        allow_cleartext: bool = False,
    ) -> Operation[Reply]:
        """AUTH with the strongest mechanism the server offers for these credentials.

        Never sends a password or token where an eavesdropper or an impostor could read it —
        without TLS, or over TLS whose certificate was not verified (RFC 4954 §14) — unless
        ``allow_cleartext=True`` (checklist S8).  Returns the 235 reply.
        """
        offered = self.conn.extensions.auth
        if not offered:
            raise AuthNotSupported("the server does not offer AUTH")
        protected = self.conn.tls and self.tls_verified
        clear_ok = protected or allow_cleartext
        if mechanism is None:
            chosen = sasl.choose_mechanism(
                offered,
                have_password=password is not None,
                have_token=token is not None,
                tls_active=protected,
                allow_cleartext=allow_cleartext,
            )
            if chosen is None:
                if not clear_ok and sasl.choose_mechanism(
                    offered,
                    have_password=password is not None,
                    have_token=token is not None,
                    tls_active=True,
                ):
                    raise CleartextAuthRefused(
                        "the server offers only mechanisms that would expose the credentials "
                        "without verified TLS; use TLS, or pass allow_cleartext=True"
                    )
                raise AuthNotSupported(
                    f"no usable mechanism for these credentials among {sorted(offered)}"
                )
            mechanism = chosen
        mech = sasl.create_mechanism(mechanism, username=username, password=password, token=token)
        if mech.sends_secret_in_clear and not clear_ok:
            raise CleartextAuthRefused(
                f"{mech.name} would expose the credentials without verified TLS"
            )
        return self._guarded(self._authenticate(mech))

    def _authenticate(self, mech: sasl.Mechanism) -> Operation[Reply]:
        initial = mech.initial_response()
        if initial is not None:
            line = 6 + len(mech.name) + len(base64.b64encode(initial)) + 2
            if line > COMMAND_LINE_LIMIT:  # RFC 4954 §4: send it after an empty 334 instead
                initial = None
        reply = yield from self.command(Auth(mech.name, initial))
        while reply.is_intermediate:
            try:
                challenge = base64.b64decode(reply.text.strip(), validate=True)
                response = mech.respond(challenge)
            except (binascii.Error, sasl.SASLError) as exc:
                reply = yield from self.command(AuthResponse(cancel=True))
                if isinstance(exc, sasl.ServerNotAuthenticated):
                    yield from self._quit_and_close()  # possibly an impostor: trust it no further
                raise AuthenticationError(f"authentication cancelled ({exc})", reply) from None
            reply = yield from self.command(AuthResponse(response))
        if not reply.is_positive:
            raise AuthenticationError("authentication failed", reply)
        try:
            mech.verify_success()
        except sasl.SASLError as exc:
            # The server did not prove it knows the password (SCRAM): do not trust it.
            yield from self._quit_and_close()
            raise AuthenticationError(
                f"the server failed to authenticate itself ({exc})", reply
            ) from None
        return reply

    # -- simple commands ---------------------------------------------------------------------

    def noop(self) -> Operation[Reply]:
        return self._guarded(self.command(Noop()))

    def verify(self, address: str) -> Operation[Reply]:
        return self._guarded(self.command(Vrfy(address)))

    def reset(self) -> Operation[Reply]:
        self._staged = None
        return self._guarded(self.command(Rset()))

    def quit(self) -> Operation[None]:
        """QUIT and close; safe to call in any state, and more than once."""
        if self.closed:
            return
        staged, self._staged = self._staged, None
        if self.conn.pending or (staged is not None and staged.data_started):
            yield from self._close()  # mid-transaction or mid-data: just drop the connection
            return
        yield from self._quit_and_close()

    # -- sending -----------------------------------------------------------------------------

    def send_message(
        self,
        message: Body | OutgoingMessage,
        sender: str | None = None,
        recipients: Iterable[str] | None = None,
        *,
        ret: str | None = None,
        envid: str | None = None,
        notify: Sequence[NotifyCondition] | None = None,
        requiretls: bool = False,
        mt_priority: int | None = None,
    ) -> Operation[SendResult]:
        """Send one message; a refused recipient is a result, not an exception.

        Raises :class:`MessageTooLarge`, :class:`MessageEncodingError` (before anything is sent),
        :class:`SenderRefused`, :class:`RecipientsRefused` (nobody accepted) or
        :class:`DataRefused` (the message itself was refused).
        """
        if not isinstance(message, OutgoingMessage):
            message = prepare_message(message, sender, recipients)
        elif recipients is not None:
            message = message.with_recipients(recipients)
        options = _Options(ret, envid, tuple(notify) if notify else None, requiretls, mt_priority)
        return self._guarded(self._send_message(message, options))

    def _send_message(self, message: OutgoingMessage, options: _Options) -> Operation[SendResult]:
        results: dict[str, RecipientResult] = {}
        remaining = list(message.recipients)
        while True:
            if results:
                batch = yield from self._follow_up(message, remaining, options)
            else:
                batch = yield from self._transaction(message, remaining, options)
            results.update(batch)
            # 452 "too many recipients" (C10): the rest go in a further transaction.
            deferred = [r for r in remaining if _too_many(results[r])]
            if not deferred or len(deferred) == len(remaining) or message.single_use:
                return SendResult(tuple(results[r] for r in message.recipients))
            remaining = deferred

    def _follow_up(
        self, message: OutgoingMessage, recipients: list[str], options: _Options
    ) -> Operation[dict[str, RecipientResult]]:
        """A further transaction after a 452.  Its failures become results, never an exception:
        recipients of the first transaction are already delivered and must stay reported so
        (C10, C12)."""
        try:
            return (yield from self._transaction(message, recipients, options))
        except SMTPError as exc:
            if isinstance(exc, FATAL_ERRORS):
                yield from self._close()
            if isinstance(exc, RecipientsRefused):
                return {r: RecipientResult(r, reply, False) for r, reply in exc.results.items()}
            # Without a reply (a lost connection), it counts as a 451 (C16).
            reply = exc.reply if isinstance(exc, ReplyError) else None
            reply = reply or Reply.synthesized(451, f"4.4.2 {exc}")
            return {r: RecipientResult(r, reply, False) for r in recipients}

    def _mail_command(self, message: OutgoingMessage, options: _Options) -> MailFrom:
        """MAIL FROM with every parameter the message needs and the server allows."""
        ext = self.conn.extensions
        if message.size is not None and ext.size and message.size > ext.size:
            raise MessageTooLarge(message.size, ext.size)
        if message.smtputf8 and not ext.smtputf8:
            raise MessageEncodingError("a non-ASCII address needs SMTPUTF8, which the server lacks")
        body: BodyType | None = None
        if ext.eightbitmime and message.eight_bit is not False:
            body = "8BITMIME"  # for a stream of unknown content, declaring 8 bits is always safe
        elif message.eight_bit and not message.smtputf8:
            raise MessageEncodingError("8-bit content needs 8BITMIME, which the server lacks")
        if options.requiretls and not (ext.requiretls and self.conn.tls):
            # RFC 8689 §4.2.1: without TLS and the extension, the message must not go here.
            raise TLSRequiredError("REQUIRETLS needs a TLS session with a server that offers it")
        dsn = ext.dsn
        return MailFrom(
            message.sender,
            size=message.size if ext.size is not None else None,
            body=body,
            smtputf8=message.smtputf8,
            ret=options.ret if dsn else None,  # type: ignore[arg-type]
            envid=options.envid if dsn else None,
            requiretls=options.requiretls,
            mt_priority=options.mt_priority if ext.mt_priority else None,
        )

    def _transaction(
        self, message: OutgoingMessage, recipients: list[str], options: _Options
    ) -> Operation[dict[str, RecipientResult]]:
        mail = self._mail_command(message, options)
        notify = options.notify if self.conn.extensions.dsn else None
        rcpts = [RcptTo(r, notify=notify) for r in recipients]
        one_flight = self._one_flight_body(message)
        tail: list[Command] = []
        if self.conn.extensions.pipelining:
            tail = [Bdat(one_flight, last=True)] if one_flight is not None else [Data()]
        replies = yield from self._exchange([mail, *rcpts, *tail])
        mail_reply, rcpt_replies = replies[0], replies[1 : 1 + len(rcpts)]
        results = {
            r: RecipientResult(r, reply, reply.is_positive and mail_reply.is_positive)
            for r, reply in zip(recipients, rcpt_replies, strict=False)
        }
        accepted = [r for r in recipients if r in results and results[r].accepted]
        tail_reply = replies[-1] if tail else None
        if not mail_reply.is_positive or not accepted:
            yield from self._abandon(tail_reply)
            if not mail_reply.is_positive:
                raise SenderRefused("the server refused the sender", mail_reply)
            raise RecipientsRefused({r: results[r].reply for r in recipients})
        if one_flight is not None:
            assert tail_reply is not None  # the one-flight BDAT exists only with PIPELINING
            finals = [tail_reply] + (yield from self._lmtp_more(len(accepted)))
            if self.conn.state is State.BDAT_FAILED:
                yield from self.command(Rset())  # after a refused chunk (RFC 3030 §2)
        else:
            finals = yield from self._send_body(message, tail_reply, len(accepted))
        return self._final_results(results, accepted, finals)

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

    def _abandon(self, tail_reply: Reply | None) -> Operation[None]:
        """End a transaction that will not carry a message, leaving the session usable."""
        if tail_reply is not None and tail_reply.is_intermediate:
            # DATA got 354 although nobody was accepted: end it with a lone dot (RFC 2920 §3.1).
            yield from self._send(EndOfMessage())
            yield from self._read_reply()
        yield from self.command(Rset())

    def _one_flight_body(self, message: OutgoingMessage) -> bytes | None:
        """The whole body for a single ``BDAT LAST``, when CHUNKING and PIPELINING make that one
        round trip and the body is small and in memory; else ``None`` (use DATA)."""
        ext = self.conn.extensions
        if not (ext.chunking and ext.pipelining) or message.size is None:
            return None
        if message.size > ONE_FLIGHT_BDAT_LIMIT or message.eight_bit is None:
            return None
        normalizer = CRLFNormalizer()  # BDAT text is CRLF text too (S2)
        return b"".join(normalizer.feed(chunk) for chunk in message.chunks()) + normalizer.flush()

    def _send_body(
        self, message: OutgoingMessage, data_reply: Reply | None, accepted: int
    ) -> Operation[list[Reply]]:
        if data_reply is None:
            data_reply = yield from self.command(Data())
        if not data_reply.is_intermediate:
            yield from self.command(Rset())
            raise DataRefused("the server refused DATA", data_reply)
        try:
            for chunk in message.chunks():
                yield from self._send(MessageData(chunk))
        except LocalProtocolError as exc:
            # Content the server cannot take (8-bit without 8BITMIME) found mid-stream: the only
            # safe way out of DATA is to drop the connection, so the partial message is discarded.
            yield from self._close()
            raise MessageEncodingError(str(exc)) from None
        yield from self._send(EndOfMessage())
        first = yield from self._read_reply()
        return [first] + (yield from self._lmtp_more(accepted))

    def _lmtp_more(self, accepted: int) -> Operation[list[Reply]]:
        """LMTP answers the end of data once per accepted recipient (RFC 2033 §4.2)."""
        more = []
        if self.conn.lmtp:
            for _ in range(accepted - 1):
                more.append((yield from self._read_reply()))
        return more

    def _final_results(
        self, results: dict[str, RecipientResult], accepted: list[str], finals: list[Reply]
    ) -> dict[str, RecipientResult]:
        if not self.conn.lmtp:
            finals = finals[:1] * len(accepted)
        for rcpt, final in zip(accepted, finals, strict=True):
            results[rcpt] = RecipientResult(rcpt, final, True, final.is_positive)
        if not any(results[r].delivered for r in accepted):
            raise DataRefused("the server refused the message", finals[0])
        return results

    # -- the staged transaction --------------------------------------------------------------

    def create_message(
        self,
        sender: str,
        *,
        size: int | None = None,
        body: BodyType | None = None,
        smtputf8: bool | None = None,
        ret: str | None = None,
        envid: str | None = None,
        requiretls: bool = False,
    ) -> Operation[Reply]:
        """``MAIL FROM``: start a message; then add recipients, append content, close it."""
        ext = self.conn.extensions
        if size is not None and ext.size and size > ext.size:
            raise MessageTooLarge(size, ext.size)
        if body is None and ext.eightbitmime:
            body = "8BITMIME"
        mail = MailFrom(
            sender,
            size=size if ext.size is not None else None,
            body=body,
            smtputf8=needs_smtputf8(sender) if smtputf8 is None else smtputf8,
            ret=ret if ext.dsn else None,  # type: ignore[arg-type]
            envid=envid if ext.dsn else None,
            requiretls=requiretls,
        )
        return self._guarded(self._create_message(mail))

    def _create_message(self, mail: MailFrom) -> Operation[Reply]:
        reply = yield from self.command(mail)
        if not reply.is_positive:
            yield from self.command(Rset())
            raise SenderRefused("the server refused the sender", reply)
        self._staged = _Staged(mail.body == "BINARYMIME")
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
        result = RecipientResult(event.recipient, reply, reply.is_positive)
        staged.results.append(result)
        return result

    def append_message(self, content: Body) -> Operation[None]:
        """Append content (bytes, str, a Message, a path, a file, or chunks) to the message."""
        staged = self._require_staged()
        return self._guarded(self._append(staged, content))

    def _append(self, staged: _Staged, content: Body) -> Operation[None]:
        if not staged.data_started:
            accepted = [r for r in staged.results if r.accepted]
            if not accepted:
                self._staged = None
                yield from self.command(Rset())
                raise RecipientsRefused({r.recipient: r.reply for r in staged.results})
            if staged.binary:
                raise MessageEncodingError("BODY=BINARYMIME content needs send_message (BDAT)")
            reply = yield from self.command(Data())
            if not reply.is_intermediate:
                self._staged = None
                yield from self.command(Rset())
                raise DataRefused("the server refused DATA", reply)
            staged.data_started = True
        source = prepare_message(content, "", ["-"])
        try:
            for chunk in source.chunks():
                yield from self._send(MessageData(chunk))
        except LocalProtocolError as exc:
            self._staged = None
            yield from self._close()
            raise MessageEncodingError(str(exc)) from None

    def close_message(self) -> Operation[SendResult]:
        """End the data and return the result per recipient.  The message can still be refused
        here (:class:`DataRefused`); only a 2xx now means it was delivered."""
        staged = self._require_staged()
        self._staged = None
        return self._guarded(self._close_message(staged))

    def _close_message(self, staged: _Staged) -> Operation[SendResult]:
        if not staged.data_started:
            yield from self._append(staged, b"")
        yield from self._send(EndOfMessage())
        accepted = [r.recipient for r in staged.results if r.accepted]
        finals = [(yield from self._read_reply())] + (yield from self._lmtp_more(len(accepted)))
        results = {r.recipient: r for r in staged.results}
        results = self._final_results(results, accepted, finals)
        return SendResult(tuple(results.values()))

    def _require_staged(self) -> _Staged:
        if self._staged is None:
            raise LocalProtocolError("no message is open: call create_message first")
        return self._staged


class _Staged:
    """The open staged message: recipient results so far, and whether DATA has begun."""

    def __init__(self, binary: bool) -> None:
        self.binary = binary
        self.results: list[RecipientResult] = []
        self.data_started = False


class _Options:
    __slots__ = ("envid", "mt_priority", "notify", "requiretls", "ret")

    def __init__(
        self,
        ret: str | None,
        envid: str | None,
        notify: tuple[NotifyCondition, ...] | None,
        requiretls: bool,
        mt_priority: int | None,
    ) -> None:
        self.ret, self.envid, self.notify = ret, envid, notify
        self.requiretls, self.mt_priority = requiretls, mt_priority


def _too_many(result: RecipientResult) -> bool:
    """A 452 to RCPT that means "too many recipients" (RFC 5321 §4.5.3.1.10, checklist C10)."""
    reply = result.reply
    if result.accepted:
        return False
    status = None if reply.enhanced_status is None else str(reply.enhanced_status)
    if reply.code == 452:
        return status in (None, "4.5.3")
    # A 552 with 5.5.3 is the old way of saying it (RFC 5321 §4.5.3.1.10); a 552 for size is not.
    return reply.code == 552 and status == "5.5.3"
