"""``ClientConnection``: the SMTP client protocol machine.  Events in, bytes out; no I/O."""

from __future__ import annotations

import base64
import enum
from collections import deque
from collections.abc import Callable, Mapping
from types import MappingProxyType

from smtpproto._wire.addresses import ehlo_domain, needs_smtputf8
from smtpproto._wire.command_lines import COMMAND_LINE_LIMIT, auth_line, render_mail, render_rcpt
from smtpproto._wire.encoder import DataEncoder, check_crlf_chunk
from smtpproto._wire.errors import (
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    UnexpectedReplyCode,
)
from smtpproto._wire.events import (
    Auth,
    AuthResponse,
    Bdat,
    Command,
    ConnectionClosed,
    Ehlo,
    Helo,
    Lhlo,
    MailFrom,
    MessageData,
    RcptTo,
    Reply,
    Vrfy,
)
from smtpproto._wire.extensions import Extensions, parse_ehlo
from smtpproto._wire.limits import DEFAULT_LIMITS, Limits
from smtpproto._wire.receivebuffer import ReceiveBuffer
from smtpproto._wire.replies import ReplyAssembler, parse_enhanced_status

from .state import (
    DATA_BLOCK,
    GROUP_CONTINUABLE,
    INTERMEDIATE_ALLOWED,
    LMTP_REPLY_TRANSITIONS,
    OUTCOME_BY_DIGIT,
    POSITIVE_REFUSED,
    REPLY_TRANSITIONS,
    SEND_TRANSITIONS,
    TIMEOUTS,
    TRIGGER_TRANSITIONS,
    CommandKind,
    Outcome,
    State,
    Trigger,
    kind_of,
)

__all__ = ["NEED_DATA", "PAUSED", "ClientConnection", "Sentinel"]


class Sentinel(enum.Enum):
    """The type of ``NEED_DATA`` and ``PAUSED``."""

    NEED_DATA = "NEED_DATA"
    PAUSED = "PAUSED"

    def __repr__(self) -> str:
        return self.value


#: ``next_event()`` needs more bytes from the server before it can say anything.
NEED_DATA = Sentinel.NEED_DATA
#: The connection waits for the TLS handshake (after the 220 to STARTTLS).
PAUSED = Sentinel.PAUSED

Event = Reply | ConnectionClosed | Sentinel


K = CommandKind

_STATIC_LINES: Mapping[CommandKind, bytes] = {
    K.STARTTLS: b"STARTTLS\r\n",
    K.DATA: b"DATA\r\n",
    K.RSET: b"RSET\r\n",
    K.NOOP: b"NOOP\r\n",
    K.QUIT: b"QUIT\r\n",
}

_HELLO_KINDS = frozenset({K.EHLO, K.HELO, K.LHLO})
_LMTP_DATA_END = frozenset({K.END_OF_MESSAGE, K.BDAT_LAST})
_AUTH_KINDS = frozenset({K.AUTH, K.AUTH_RESPONSE})
# Replies to these carry no enhanced status code (RFC 2034 §4).
_NO_ENHANCED_STATUS = frozenset({K.GREETING, *_HELLO_KINDS})


# Looking a member up on an Enum class costs about 0.2 µs on CPython 3.11; the hot paths use
# these module-level names instead: worth 5 % of bench_clients C and 4 % of A (blocking adapter;
# 6.3 % of the client's own CPU in bench_session A and C), 2026-12-02.
_ERROR, _GREETING, _TLS_PAUSED = State.ERROR, State.GREETING, State.TLS_PAUSED
_SENDING_CONTENT = frozenset({State.MESSAGE, State.BDAT})
_POSITIVE, _INTERMEDIATE = Outcome.POSITIVE, Outcome.INTERMEDIATE
_UNEXPECTED = Outcome.UNEXPECTED
_GREETING_KIND, _MESSAGE_DATA = K.GREETING, K.MESSAGE_DATA

# Immutable, so one instance serves every connection.
_NO_EXTENSIONS = Extensions()


class _Transaction:
    """What the machine must remember about one mail transaction."""

    __slots__ = ("accepted", "body", "pending_cr", "smtputf8")

    def __init__(self, mail: MailFrom) -> None:
        self.body = mail.body
        self.smtputf8 = mail.smtputf8
        self.accepted = 0
        self.pending_cr = False  # a BDAT chunk ended with CR: the next must start with LF


class _Pending:
    """A command sent and not yet (fully) answered."""

    __slots__ = ("command", "kind", "replies_left", "transaction")

    def __init__(
        self, command: Command, kind: CommandKind, transaction: _Transaction | None
    ) -> None:
        self.command = command
        self.kind = kind
        self.transaction = transaction
        self.replies_left = 0  # LMTP: set when the final reply(ies) to the data become due


class ClientConnection:
    """The client side of one SMTP (or LMTP) session.

    Feed what the server sends to :meth:`receive_data` and read events with :meth:`next_event`;
    turn commands into bytes with :meth:`send`.  Nothing here touches a socket or a clock.
    """

    def __init__(
        self,
        local_hostname: str = "localhost",
        *,
        lmtp: bool = False,
        tls: bool = False,
        limits: Limits | None = None,
        timeouts: Mapping[str, float] | None = None,
    ) -> None:
        self.local_hostname = ehlo_domain(local_hostname)
        self.lmtp = lmtp
        self.limits = limits or DEFAULT_LIMITS
        self.timeouts: Mapping[str, float] = TIMEOUTS
        if isinstance(timeouts, MappingProxyType) and timeouts.keys() == TIMEOUTS.keys():
            self.timeouts = timeouts  # complete and read-only (Timeouts.by_kind()): shared
        elif timeouts:
            unknown = set(timeouts) - set(TIMEOUTS)
            if unknown:
                raise ValueError(f"unknown timeout names: {sorted(unknown)}")
            self.timeouts = {**TIMEOUTS, **timeouts}
        # Read-only from outside (the properties below): only the tables move the state.
        self._state = State.GREETING
        self._extensions = _NO_EXTENSIONS
        self._tls = tls
        self._authenticated = False
        self._reply_transitions = LMTP_REPLY_TRANSITIONS if lmtp else REPLY_TRANSITIONS
        self._buffer = ReceiveBuffer()
        self._assembler = ReplyAssembler(
            max_lines=self.limits.max_reply_lines, max_bytes=self.limits.max_reply_bytes
        )
        # A reply to AUTH may carry a challenge up to the AUTH line limit (RFC 4954 §4).
        self._auth_reply_bytes = max(self.limits.max_reply_bytes, self.limits.max_auth_line_length)
        self._pending: deque[_Pending] = deque()
        self._ready_replies: deque[Reply] = deque()
        self._transaction: _Transaction | None = None
        self._encoder: DataEncoder | None = None
        self._eof = False
        # Which side broke the rules, so later calls blame the right one.
        self._error_class: type[ProtocolError] = LocalProtocolError

    # Read-only views, documented in docs/api.rst (docstrings here would document them twice).

    @property
    def state(self) -> State:  # where the dialogue stands
        return self._state

    @property
    def extensions(self) -> Extensions:  # from the last successful EHLO or LHLO reply
        return self._extensions

    @property
    def tls(self) -> bool:  # implicit TLS from the start, or STARTTLS done
        return self._tls

    @property
    def authenticated(self) -> bool:  # AUTH succeeded since the last hello or TLS handshake
        return self._authenticated

    def _trigger(self, trigger: Trigger) -> None:
        self._state = TRIGGER_TRANSITIONS[self._state, trigger]

    def _fail(self, error_class: type[ProtocolError]) -> None:
        if self._state is not _ERROR:  # the first violation decides who is to blame
            self._trigger(Trigger.PROTOCOL_ERROR)
            self._error_class = error_class

    # -- receiving ---------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Give the machine bytes from the server; ``b""`` means the server closed."""
        if self._eof:
            if data:
                raise RuntimeError("received data after the end of the stream")
            return
        if data:
            self._buffer.feed(data)
        else:
            self._eof = True

    def next_event(self) -> Event:
        """The next thing the server said: a ``Reply``, ``ConnectionClosed``, or a sentinel."""
        if self._state is _ERROR:
            raise self._error_class("the connection is in the ERROR state")
        if self._ready_replies:
            return self._ready_replies.popleft()
        try:
            return self._next_event()
        except UnexpectedReplyCode:
            raise  # consumed like any reply: the dialogue is still in step
        except RemoteProtocolError:
            self._fail(RemoteProtocolError)
            raise

    def _next_event(self) -> Event:
        if self._state is _TLS_PAUSED:
            if self._eof:  # the server hung up instead of starting TLS
                return self._closed()
            if len(self._buffer):
                # Plaintext that arrived behind the 220 could be an attacker's (response
                # injection, checklist S4): never parse it.
                raise RemoteProtocolError(
                    "the server sent data after its 220 to STARTTLS", line=self._buffer.take_all()
                )
            return PAUSED
        pending = self._pending
        limits = self.limits
        assembler = self._assembler
        while True:
            # The limits follow the command being answered: AUTH's replies may be longer.
            if pending and pending[0].kind in _AUTH_KINDS:
                limit, assembler.max_bytes = limits.max_auth_line_length, self._auth_reply_bytes
            else:
                limit, assembler.max_bytes = limits.max_line_length, limits.max_reply_bytes
            line = self._buffer.next_line(limit)
            if line is None:
                if self._eof:
                    return self._closed()
                return NEED_DATA
            parsed = assembler.feed_line(line)
            if parsed is not None:
                return self._reply(*parsed)

    def _closed(self) -> ConnectionClosed:
        unanswered = tuple(p.command for p in self._pending)
        self._pending.clear()
        self._trigger(Trigger.END_OF_INPUT)
        return ConnectionClosed(unanswered)

    def _reply(self, code: int, texts: tuple[str, ...]) -> Reply:
        pending = self._pending[0] if self._pending else None
        if pending is None:
            kind = _GREETING_KIND
            if self._state is not _GREETING:
                if code != 421:
                    raise RemoteProtocolError(f"reply {code:03d} with no command outstanding")
                # A server may announce its shutdown at any moment (checklist C15).
                self._trigger(Trigger.SERVICE_CLOSING)
                return Reply(code, texts, None, None, True)
        else:
            kind = pending.kind
        outcome = OUTCOME_BY_DIGIT[code // 100]
        if outcome is _INTERMEDIATE and kind not in INTERMEDIATE_ALLOWED:
            raise RemoteProtocolError(f"unexpected {code} reply to {kind}")
        if outcome is _POSITIVE and kind in POSITIVE_REFUSED:
            raise RemoteProtocolError(
                f"{kind} got {code}; it must be answered with 354 or an error"
            )
        command = None
        if pending is not None:
            command = pending.command
            if not self.lmtp or self._answered(pending):
                self._pending.popleft()
        if outcome is _UNEXPECTED:
            raise self._unexpected(code, texts, command, kind)
        enhanced = None
        if kind not in _NO_ENHANCED_STATUS:
            enhanced = parse_enhanced_status(code, texts[0])[0]
        reply = Reply(code, texts, enhanced, command, True)
        effect = _REPLY_EFFECTS.get(kind)
        if effect is not None:
            effect(self, reply, pending)
        after = self._reply_transitions.get((self._state, kind, outcome))
        if after is not None:
            self._state = after
        if code == 421:
            self._service_closing(reply)
        return reply

    def _unexpected(
        self, code: int, texts: tuple[str, ...], command: Command | None, kind: CommandKind
    ) -> UnexpectedReplyCode:
        """A reply whose first digit is outside 2-5, consumed: the error to raise (R5).

        It answered its command like any reply, so the count stays right, and the state moves as
        the tables say; it has no other effect (no capabilities, no accepted recipient, no 354).
        """
        after = self._reply_transitions.get((self._state, kind, _UNEXPECTED))
        if after is not None:
            self._state = after
        return UnexpectedReplyCode(code, texts, command)

    def _answered(self, pending: _Pending) -> bool:
        """Count one LMTP reply against ``pending``; True when it has had all its replies."""
        if pending.kind in _LMTP_DATA_END:
            # LMTP answers the end of data once per accepted recipient (RFC 2033 §4.2).
            if not pending.replies_left:
                transaction = pending.transaction
                pending.replies_left = max(1, transaction.accepted if transaction else 0)
            pending.replies_left -= 1
            return pending.replies_left == 0
        return True

    def _service_closing(self, reply: Reply) -> None:
        # 421: the server is going away; everything still outstanding failed with it (C15).
        for pending in self._pending:
            self._ready_replies.append(
                Reply(reply.code, reply.lines, reply.enhanced_status, pending.command, True)
            )
        self._pending.clear()
        self._trigger(Trigger.SERVICE_CLOSING)

    def tls_established(self) -> None:
        """Tell the machine the TLS handshake after STARTTLS succeeded.

        Everything learnt before it is forgotten (RFC 3207 §4.2): a new EHLO is required.
        """
        after = TRIGGER_TRANSITIONS.get((self._state, Trigger.TLS_ESTABLISHED))
        if after is None:
            self._fail(LocalProtocolError)
            raise LocalProtocolError("tls_established() is only valid after a 220 to STARTTLS")
        self._tls = True
        self._extensions = _NO_EXTENSIONS
        self._authenticated = False
        self._state = after

    # -- sending -----------------------------------------------------------------------------

    def send(self, event: Command) -> bytes:
        """The bytes to write for ``event``.

        Raises ``LocalProtocolError`` (and enters ``ERROR``) if ``event`` is not allowed now.
        """
        try:
            kind = kind_of(event)
            after = SEND_TRANSITIONS.get((self._state, kind))
            if after is None:
                raise LocalProtocolError(f"cannot send {kind} in state {self._state.value}")
            pending = self._pending
            # Under PIPELINING more may follow, unless the last command ends its group
            # (RFC 2920 §3.1); nothing is ever queued behind such a command.
            if pending and not (
                self._extensions.pipelining and pending[-1].kind in GROUP_CONTINUABLE
            ):
                raise LocalProtocolError(
                    f"cannot send {kind} before the reply to {pending[-1].kind}"
                )
            data = _RENDERERS[kind](self, event)
        except LocalProtocolError:
            self._fail(LocalProtocolError)
            raise
        if kind is not _MESSAGE_DATA:
            pending.append(_Pending(event, kind, self._transaction))
        self._state = after
        return data

    @property
    def unread(self) -> bool:
        """Whether the server said something not yet taken with :meth:`next_event` (octets, or
        the end of the stream): while no command is outstanding, something it should not have."""
        return bool(self._ready_replies or self._eof or self._buffer)

    @property
    def awaiting(self) -> CommandKind | None:
        """The kind of the oldest command awaiting its reply (``"MAIL"``...), or ``None``."""
        return self._pending[0].kind if self._pending else None

    @property
    def pending(self) -> tuple[Command, ...]:
        """The commands sent and not yet answered, oldest first."""
        return tuple(p.command for p in self._pending)

    @property
    def recommended_timeout(self) -> float | None:
        """Seconds to allow for what the machine waits for now (RFC 5321 §4.5.3.2), or ``None``.

        While the client is sending message content it is the time allowed for each write.
        """
        if self._pending:
            return self.timeouts[self._pending[0].kind]
        if self._state is _GREETING:
            return self.timeouts[_GREETING_KIND]
        if self._state in _SENDING_CONTENT:
            return self.timeouts[DATA_BLOCK]
        return None

    # -- renderers (one per command kind) ----------------------------------------------------

    def _render_hello(self, event: Command) -> bytes:
        assert isinstance(event, (Ehlo, Helo, Lhlo))
        kind = kind_of(event)
        if (kind is K.LHLO) != self.lmtp:
            mode = "an LMTP" if self.lmtp else "an SMTP"
            raise LocalProtocolError(f"{kind} cannot be used on {mode} connection")
        hostname = self.local_hostname if event.hostname is None else ehlo_domain(event.hostname)
        # A new greeting ends any transaction and forgets the old capabilities.
        self._transaction = None
        return f"{kind} {hostname}\r\n".encode("ascii")

    def _render_starttls(self, event: Command) -> bytes:
        if not self._extensions.starttls:
            raise LocalProtocolError("the server did not advertise STARTTLS")
        if self._tls:
            raise LocalProtocolError("TLS is already active; STARTTLS cannot be used twice")
        return _STATIC_LINES[K.STARTTLS]

    def _render_auth(self, event: Command) -> bytes:
        assert isinstance(event, Auth)
        mechanism = event.mechanism.upper()
        if self._authenticated:
            raise LocalProtocolError("already authenticated (RFC 4954 §4)")
        if mechanism not in self._extensions.auth:
            raise LocalProtocolError(f"the server did not advertise AUTH {mechanism}")
        line = auth_line(mechanism, event.initial_response)
        if len(line) > COMMAND_LINE_LIMIT:
            raise LocalProtocolError(
                "the initial response makes the AUTH line longer than 512 octets: "
                "send AUTH without it and answer the empty 334 challenge (RFC 4954 §4)"
            )
        return line

    def _render_auth_response(self, event: Command) -> bytes:
        assert isinstance(event, AuthResponse)
        if event.cancel:
            return b"*\r\n"
        return base64.b64encode(event.data) + b"\r\n"

    def _render_mail(self, event: Command) -> bytes:
        assert isinstance(event, MailFrom)
        line = render_mail(event, self._extensions)
        self._transaction = _Transaction(event)
        return line

    def _render_rcpt(self, event: Command) -> bytes:
        assert isinstance(event, RcptTo)
        transaction = self._current_transaction()
        if needs_smtputf8(event.recipient) and not transaction.smtputf8:
            raise LocalProtocolError(
                "a non-ASCII recipient needs a MAIL with smtputf8=True (RFC 6531 §3.4)"
            )
        return render_rcpt(event, self._extensions)

    def _current_transaction(self) -> _Transaction:
        transaction = self._transaction
        assert transaction is not None  # the state tables allow RCPT/DATA/BDAT only after MAIL
        return transaction

    def _render_data(self, event: Command) -> bytes:
        if self._current_transaction().body == "BINARYMIME":
            raise LocalProtocolError("BODY=BINARYMIME content must be sent with BDAT (RFC 3030 §3)")
        return _STATIC_LINES[K.DATA]

    def _render_message_data(self, event: Command) -> bytes:
        assert isinstance(event, MessageData)
        transaction = self._current_transaction()
        if not event.data:
            return b""
        if not transaction.accepted:
            raise LocalProtocolError(
                "no recipient was accepted: end the data with EndOfMessage and send nothing else "
                "(RFC 2920 §3.1)"
            )
        self._check_eight_bit(event.data, transaction)
        assert self._encoder is not None  # made when DATA got its 354
        return self._encoder.encode(event.data)

    def _render_end_of_message(self, event: Command) -> bytes:
        encoder = self._encoder
        assert encoder is not None  # made when DATA got its 354
        self._encoder = None
        return encoder.end()

    def _render_bdat(self, event: Command) -> bytes:
        assert isinstance(event, Bdat)
        if not self._extensions.chunking:
            raise LocalProtocolError("the server did not advertise CHUNKING")
        transaction = self._current_transaction()
        chunk = event.chunk
        if transaction.body != "BINARYMIME":
            self._check_eight_bit(chunk, transaction)
            transaction.pending_cr = check_crlf_chunk(chunk, transaction.pending_cr)
        if event.last:
            if transaction.pending_cr:
                raise LocalProtocolError("the last BDAT chunk ends with a bare CR")
            header = b"BDAT %d LAST\r\n" % len(chunk)
        else:
            header = b"BDAT %d\r\n" % len(chunk)
        return header + chunk

    def _check_eight_bit(self, data: bytes, transaction: _Transaction) -> None:
        if transaction.body in (None, "7BIT") and not transaction.smtputf8 and not data.isascii():
            raise LocalProtocolError(
                "8-bit message content needs MAIL with body='8BITMIME' (RFC 6152) or smtputf8"
            )

    def _render_vrfy(self, event: Command) -> bytes:
        assert isinstance(event, Vrfy)
        if needs_smtputf8(event.string) and not self._extensions.smtputf8:
            raise LocalProtocolError("a non-ASCII VRFY argument needs SMTPUTF8")
        return f"VRFY {event.string}\r\n".encode()

    def _render_static(self, event: Command) -> bytes:
        return _STATIC_LINES[kind_of(event)]


_Renderer = Callable[[ClientConnection, Command], bytes]
_RENDERERS: Mapping[CommandKind, _Renderer] = {
    K.EHLO: ClientConnection._render_hello,
    K.HELO: ClientConnection._render_hello,
    K.LHLO: ClientConnection._render_hello,
    K.STARTTLS: ClientConnection._render_starttls,
    K.AUTH: ClientConnection._render_auth,
    K.AUTH_RESPONSE: ClientConnection._render_auth_response,
    K.MAIL: ClientConnection._render_mail,
    K.RCPT: ClientConnection._render_rcpt,
    K.DATA: ClientConnection._render_data,
    K.MESSAGE_DATA: ClientConnection._render_message_data,
    K.END_OF_MESSAGE: ClientConnection._render_end_of_message,
    K.BDAT: ClientConnection._render_bdat,
    K.BDAT_LAST: ClientConnection._render_bdat,
    K.RSET: ClientConnection._render_static,
    K.NOOP: ClientConnection._render_static,
    K.VRFY: ClientConnection._render_vrfy,
    K.QUIT: ClientConnection._render_static,
}


# -- what a reply changes besides the state ----------------------------------------------------

_Effect = Callable[[ClientConnection, Reply, "_Pending | None"], None]


def _hello_effect(conn: ClientConnection, reply: Reply, pending: _Pending | None) -> None:
    if not reply.is_positive:
        return
    assert pending is not None
    conn._authenticated = False
    if pending.kind is K.HELO:
        conn._extensions = _NO_EXTENSIONS
    else:
        conn._extensions = parse_ehlo(reply.lines)


def _auth_effect(conn: ClientConnection, reply: Reply, pending: _Pending | None) -> None:
    if reply.is_positive:
        conn._authenticated = True


def _rcpt_effect(conn: ClientConnection, reply: Reply, pending: _Pending | None) -> None:
    assert pending is not None
    assert pending.transaction is not None
    if reply.is_positive:
        pending.transaction.accepted += 1


def _data_effect(conn: ClientConnection, reply: Reply, pending: _Pending | None) -> None:
    if reply.is_intermediate:
        conn._encoder = DataEncoder()


_REPLY_EFFECTS: Mapping[CommandKind, _Effect] = {
    K.EHLO: _hello_effect,
    K.HELO: _hello_effect,
    K.LHLO: _hello_effect,
    K.AUTH: _auth_effect,
    K.AUTH_RESPONSE: _auth_effect,
    K.RCPT: _rcpt_effect,
    K.DATA: _data_effect,
}
