"""Operations up to the mail transaction: connect, greet, start TLS, authenticate.

Part of the operations layer (see :mod:`._session`).  A :class:`Channel` wraps a
:class:`ClientConnection`.  Each public method returns an operation, which a driver runs with
:func:`smtpproto.driver.drive`, performing the requests of :mod:`smtpproto.driver`.
Nothing here blocks, sleeps or touches a socket, so the three adapters share every decision:
HELO fallback, STARTTLS policy, the choice of SASL mechanism, pipelining, SIZE/BODY/SMTPUTF8,
per-recipient results, RSET after failures, and what counts as delivered.
"""

from __future__ import annotations

import abc
import base64
import binascii
import contextlib
from typing import Any, TypeVar

from smtpproto import sasl
from smtpproto._machine.connection import NEED_DATA, PAUSED, ClientConnection
from smtpproto._machine.state import State, kind_of
from smtpproto._wire.command_lines import COMMAND_LINE_LIMIT, auth_line
from smtpproto._wire.errors import (
    AuthenticationError,
    AuthNotSupported,
    CleartextAuthRefused,
    ConnectionLostError,
    GreetingRefused,
    ProtocolError,
    ServiceClosing,
    SMTPError,
    SMTPTimeoutError,
    TLSError,
    TLSRequiredError,
    UnexpectedReplyCode,
)
from smtpproto._wire.events import (
    Auth,
    AuthResponse,
    Command,
    ConnectionClosed,
    Ehlo,
    Helo,
    Lhlo,
    Noop,
    Quit,
    Reply,
    Rset,
    StartTLS,
    Vrfy,
)
from smtpproto._wire.extensions import Extensions
from smtpproto.driver import (
    Close,
    Connect,
    LocalHostname,
    Operation,
    Receive,
    Send,
    StartTLSHandshake,
)

from .options import SessionOptions, TLSMode
from .transcript import log_reply, log_sent, transcript_enabled

__all__ = ["DEFAULT_PORTS", "FATAL_ERRORS", "HELO_FALLBACK_CODES", "Channel"]

T = TypeVar("T")

DEFAULT_PORTS = {TLSMode.IMPLICIT: 465, TLSMode.STARTTLS: 587}
# Servers answer "not recognized" to EHLO with these; then HELO is worth a try (checklist G4).
HELO_FALLBACK_CODES = frozenset({500, 502, 504})
# States with a mail transaction open, which RSET ends.
_IN_TRANSACTION = frozenset({State.MAIL, State.RCPT, State.DATA, State.BDAT, State.BDAT_FAILED})
# Errors after which the connection cannot be trusted: close it, never reuse it.
FATAL_ERRORS = (
    ProtocolError,
    SMTPTimeoutError,
    ConnectionLostError,
    ServiceClosing,
    TLSError,
    TLSRequiredError,
)


_DEFAULT_OPTIONS = SessionOptions()


class Channel(abc.ABC):
    """An SMTP (or LMTP) session up to the mail transactions: connecting, greeting, TLS,
    authentication and the simple commands, as I/O-free operations."""

    def __init__(self, options: SessionOptions | None = None) -> None:
        self.options = options = options or _DEFAULT_OPTIONS
        # Without a name, the first open() asks the driver for this machine's (LocalHostname).
        self._named = options.local_hostname is not None
        self._conn_options: dict[str, Any] = {
            "local_hostname": options.local_hostname or "localhost",
            "lmtp": options.lmtp,
            "limits": options.limits,
            "timeouts": options.timeouts.by_kind(),
        }
        self.conn = ClientConnection(**self._conn_options)  # checks the options now
        self._conn_unused = True  # ...and serves the first open() too
        self.server_hostname = ""
        self.tls_verified = False
        self._closed = True

    @property
    def closed(self) -> bool:
        """Whether the session has no usable connection: never opened, closed, or lost."""
        return self._closed

    def connection_lost(self) -> None:
        """Tell the session that the driver dropped its connection without being asked to (a
        cancellation, an interrupt): later operations fail at once, without I/O, until the next
        :meth:`open`.  :func:`~smtpproto.driver.drive` calls it through the interrupted
        operation; a driver calls it when it drops the connection between operations."""
        self._closed = True
        self._forget_message()

    @property
    def extensions(self) -> Extensions:
        """What the server advertised in its last EHLO reply."""
        return self.conn.extensions

    @property
    def tls_active(self) -> bool:
        return self.conn.tls

    # -- low-level steps ---------------------------------------------------------------------

    def _send(self, *events: Command, listen: bool = False) -> Operation[None]:
        """Write ``events`` in one write.  With ``listen``, the driver hands back what the
        server has sent meanwhile, if it can (the machine reads it with the replies)."""
        conn = self.conn
        wires = [conn.send(event) for event in events]
        if transcript_enabled():  # only what is really about to be written
            for event, wire in zip(events, wires, strict=True):
                log_sent(event, wire)
        data = wires[0] if len(wires) == 1 else b"".join(wires)
        if data:  # a chunk may encode to nothing yet (a CR held back for its LF)
            heard = yield Send(data, conn.timeouts["DATA-BLOCK"], kind_of(events[-1]), listen)
            if heard:
                conn.receive_data(heard)

    def _next_reply(self) -> Reply | None:
        """The next reply if it has arrived whole, else ``None`` (read more, then ask again).

        Plain, not a generator: replies to a pipelined group mostly arrive together, and the
        second and later ones cost no I/O request.
        """
        event = self.conn.next_event()
        if type(event) is Reply:
            log_reply(event)
            if event.code == 421:
                # The server is closing the session (C15): everything outstanding failed
                # temporarily, and nothing more can be said on this connection.
                raise ServiceClosing("the server is closing the connection", event)
            return event
        if type(event) is ConnectionClosed:
            unanswered = event.unanswered
            phase = kind_of(unanswered[0]) if unanswered else "GREETING"
            raise ConnectionLostError(phase, "the server closed the connection")
        # PAUSED only follows a 220 to STARTTLS, which _starttls reads itself.
        assert event is NEED_DATA
        return None

    def _read_reply(self) -> Operation[Reply]:
        return self._next_reply() or (yield from self._await_reply())

    def _await_reply(self) -> Operation[Reply]:
        """Read until the next reply is whole; call it when :meth:`_next_reply` said ``None``."""
        conn = self.conn
        fresh = True  # the first read of this reply starts its deadline
        while True:
            phase = conn.awaiting or "GREETING"
            conn.receive_data((yield Receive(conn.recommended_timeout, phase, fresh)))
            fresh = False
            reply = self._next_reply()
            if reply is not None:
                return reply

    def command(self, event: Command) -> Operation[Reply]:
        """Send one command and return its reply (any code: deciding is the caller's job)."""
        yield from self._send(event)
        return (yield from self._read_reply())

    def _guarded(self, op: Operation[T], *, opening: bool = False) -> Operation[T]:
        """Run ``op``; on an error that leaves the connection untrustworthy, close it."""
        if self._closed and not opening:
            op.close()
            raise ConnectionLostError(
                "the next command", "the connection is closed; open a new one"
            )
        try:
            return (yield from op)
        except UnexpectedReplyCode:
            yield from self._end_transaction()  # the session itself goes on (R5, C14)
            raise
        except FATAL_ERRORS:
            yield from self._close()
            raise
        except GeneratorExit:  # the driver was interrupted mid-exchange and dropped the line
            self.connection_lost()
            raise

    def _end_transaction(self) -> Operation[None]:
        """After a reply code outside 2-5, which RFC 5321 §4.2 asks to treat as fatal to the
        mail transaction: read the replies still due, then RSET.  A DATA that got its 354 can
        only be left by dropping the connection (a lone dot would deliver an empty message)."""
        self._forget_message()
        try:
            while self.conn.pending:
                yield from self._read_reply()
            if self.conn.state is State.MESSAGE:
                yield from self._close()
            elif self.conn.state in _IN_TRANSACTION:
                yield from self.command(Rset())
        except SMTPError:
            yield from self._close()

    def _close(self, *, graceful: bool = False) -> Operation[None]:
        if not self._closed:
            self._closed = True
            yield Close(graceful)

    def _quit_and_close(self) -> Operation[None]:
        """QUIT politely when the machine allows it, then close; never raise (checklist C14)."""
        answered = False
        with contextlib.suppress(SMTPError):
            yield from self.command(Quit())
            answered = True
        yield from self._close(graceful=answered)

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
        if not self._named:
            self._conn_options["local_hostname"] = yield LocalHostname()
            self._named, self._conn_unused = True, False
        if implicit or not self._conn_unused:
            self.conn = ClientConnection(tls=implicit, **self._conn_options)
        self._conn_unused = False
        self._forget_message()
        self.server_hostname = server_hostname or host
        self._closed = True  # the Connect replaces any connection the driver had
        yield Connect(
            host,
            DEFAULT_PORTS.get(tls, 25) if port is None else port,
            self.options.timeouts.connect,
            implicit_tls=implicit,
            server_hostname=self.server_hostname,
            verify=verify,
        )
        self._closed = False
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
        if initial is not None and len(auth_line(mech.name, initial)) > COMMAND_LINE_LIMIT:
            initial = None  # RFC 4954 §4: send it after an empty 334 instead
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
        self._forget_message()
        return self._guarded(self.command(Rset()))

    def quit(self) -> Operation[None]:
        """QUIT and close; safe to call in any state, and more than once."""
        if self._closed:
            return
        if self._forget_message() or self.conn.pending:
            yield from self._close()  # mid-transaction or mid-data: just drop the connection
            return
        try:
            yield from self._quit_and_close()
        except GeneratorExit:  # interrupted: the driver dropped the connection
            self.connection_lost()
            raise

    @abc.abstractmethod
    def _forget_message(self) -> bool:
        """Drop any message being built; True if its content had begun."""
