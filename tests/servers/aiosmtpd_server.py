"""A scriptable SMTP server: aiosmtpd in a thread, bound to a loopback address.

What aiosmtpd does by itself, and how this wrapper adjusts it:

- ``decode_data`` stays False, so the content is the exact bytes after dot-unstuffing (CRLF kept)
  and 8BITMIME is advertised. BODY=BINARYMIME is refused (501) and BDAT is unknown (500):
  aiosmtpd has no CHUNKING; use Postfix for that.
- SMTPUTF8 is advertised only with ``smtputf8=True``; without it, a non-ASCII command gets
  ``500 Error: strict ASCII mode`` and ``MAIL ... SMTPUTF8`` gets 501.
- PIPELINING is never advertised by aiosmtpd although it reads pipelined commands correctly;
  ``pipelining=True`` (the default) adds the keyword.
- MAIL and RCPT parameters other than SIZE/BODY/SMTPUTF8 get 555; list extra names (DSN's RET,
  ENVID, NOTIFY, ORCPT) in ``accept_params`` to let them through. aiosmtpd upper-cases the
  parameters it hands over (``mail_options``/``rcpt_options``); the raw command lines are in
  :attr:`ConnectionRecord.lines`.
- aiosmtpd rejects the null reverse-path ``MAIL FROM:<>`` with 501; this wrapper accepts it
  and records ``mail_from == ""``.
- ``auth_require_tls`` only counts STARTTLS, not implicit TLS; with ``implicit_tls=True`` AUTH is
  therefore offered from the start (the connection is already encrypted).
- A handler's ``handle_RCPT``/``handle_MAIL`` must fill the envelope itself, which is how
  per-recipient replies and the per-recipient option lists are done here.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from .net import check_loopback, pick_free_port
from .tls import CertKind, TLSMaterial

StartTLSMode = Literal["none", "offer", "require"]


@dataclass(frozen=True)
class SMTPServerConfig:
    """How one aiosmtpd server behaves. Replies are full reply lines, e.g. ``"550 5.1.1 no"``."""

    host: str = "127.0.0.1"
    #: 0 picks a free port; 25 works on any 127.0.0.x since the tests run as root.
    port: int = 0
    #: Name in the greeting and in the first EHLO line.
    hostname: str = "mx.aiosmtpd.test"
    #: Certificates for STARTTLS / implicit TLS (required by either).
    tls: TLSMaterial | None = None
    #: Which of ``tls``'s certificates the server presents.
    cert_kind: CertKind = "good"
    starttls: StartTLSMode = "none"
    implicit_tls: bool = False
    #: ``(user, password)`` enables AUTH PLAIN and LOGIN with that one account.
    auth: tuple[str, str] | None = None
    #: Offer AUTH only after STARTTLS (aiosmtpd's default).
    auth_require_tls: bool = True
    #: Refuse MAIL until the client authenticated.
    auth_required: bool = False
    smtputf8: bool = False
    pipelining: bool = True
    #: SIZE value advertised and enforced (552); None advertises no SIZE and enforces nothing.
    size_limit: int | None = 2**25
    #: Further EHLO keywords, e.g. ``("DSN", "ENHANCEDSTATUSCODES")``.
    extra_ehlo: Sequence[str] = ()
    #: EHLO keywords to leave out (compared on the keyword), e.g. ``("8BITMIME",)``.
    omit_ehlo: Sequence[str] = ()
    #: MAIL/RCPT parameter names (upper case) to let through aiosmtpd's 555 check.
    accept_params: Sequence[str] = ()
    #: Replaces the ``220`` greeting line, e.g. ``"554 5.3.2 no service"``.
    greeting: str | None = None
    #: Replaces the whole EHLO reply with this line, e.g. ``"502 5.5.2 not implemented"``.
    ehlo_reply: str | None = None
    #: Reply to every MAIL instead of 250.
    mail_reply: str | None = None
    #: Replies for particular recipients, keyed by the address in lower case.
    recipient_replies: Mapping[str, str] = field(default_factory=dict)
    #: Accept at most this many recipients per transaction, then ``452 4.5.3``.
    max_recipients: int | None = None
    #: Reply after the final dot instead of ``250 OK`` (the message is recorded all the same).
    data_reply: str | None = None
    #: Close the connection right after the final dot without any reply.
    drop_after_data: bool = False

    def __post_init__(self) -> None:
        check_loopback(self.host)
        if (self.starttls != "none" or self.implicit_tls) and self.tls is None:
            raise ValueError("STARTTLS or implicit TLS needs tls=TLSMaterial")
        if self.starttls != "none" and self.implicit_tls:
            raise ValueError("choose STARTTLS or implicit TLS, not both")


@dataclass(frozen=True)
class ReceivedMessage:
    """One message accepted up to the final dot (recorded before the reply is sent)."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes
    mail_options: tuple[str, ...]
    #: Options of each accepted recipient, in the order of ``rcpt_tos``.
    rcpt_options: tuple[tuple[str, ...], ...]
    smtp_utf8: bool
    tls: bool
    #: The user name that authenticated on this connection, if any.
    auth_user: str | None


@dataclass
class ConnectionRecord:
    """One client connection: its command lines as received (raw bytes, CRLF kept)."""

    peer: tuple[Any, ...]
    lines: list[bytes] = field(default_factory=list)

    @property
    def verbs(self) -> list[str]:
        """The command verbs in order, e.g. ``["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]``."""
        return [
            line.split(b" ", 1)[0].strip().upper().decode("ascii", "replace") for line in self.lines
        ]


class Recorder:
    """Thread-safe store of what the server saw; the server thread writes, the test reads."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._messages: list[ReceivedMessage] = []
        self._connections: list[ConnectionRecord] = []

    def add_message(self, message: ReceivedMessage) -> None:
        with self._changed:
            self._messages.append(message)
            self._changed.notify_all()

    def add_connection(self, peer: tuple[Any, ...]) -> ConnectionRecord:
        record = ConnectionRecord(peer=peer)
        with self._changed:
            self._connections.append(record)
            self._changed.notify_all()
        return record

    def add_line(self, record: ConnectionRecord, line: bytes) -> None:
        with self._changed:
            record.lines.append(line)
            self._changed.notify_all()

    @property
    def messages(self) -> list[ReceivedMessage]:
        with self._changed:
            return list(self._messages)

    @property
    def connections(self) -> list[ConnectionRecord]:
        with self._changed:
            return [ConnectionRecord(c.peer, list(c.lines)) for c in self._connections]

    def wait_for_messages(self, count: int, timeout: float = 5.0) -> list[ReceivedMessage]:
        """Block until at least ``count`` messages arrived; AssertionError on timeout."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._messages) >= count, timeout):
                raise AssertionError(f"expected {count} messages, got {len(self._messages)}")
            return list(self._messages)

    def clear(self) -> None:
        with self._changed:
            self._messages.clear()
            self._connections.clear()


class _Handler:
    """aiosmtpd hooks implementing :class:`SMTPServerConfig`'s behaviour."""

    def __init__(self, config: SMTPServerConfig, recorder: Recorder) -> None:
        self.config = config
        self.recorder = recorder
        # Per-envelope recipient options; keyed by id() because Envelope is not hashable-safe.
        self._rcpt_options: dict[int, list[tuple[str, ...]]] = {}

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        if self.config.ehlo_reply is not None:
            return [self.config.ehlo_reply]
        session.host_name = hostname
        omitted = {keyword.upper() for keyword in self.config.omit_ehlo}
        keywords = [line[4:] for line in responses[1:] if line[4:].split(" ")[0] not in omitted]
        keywords[-1:-1] = [
            *(["PIPELINING"] if self.config.pipelining else []),
            *self.config.extra_ehlo,
        ]
        lines = [responses[0], *(f"250-{keyword}" for keyword in keywords)]
        lines[-1] = "250 " + lines[-1][4:]
        return lines

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.config.mail_reply is not None:
            return self.config.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        self._rcpt_options[id(envelope)] = []
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = self.config.recipient_replies.get(address.lower())
        if reply is not None:
            return reply
        limit = self.config.max_recipients
        if limit is not None and len(envelope.rcpt_tos) >= limit:
            return "452 4.5.3 Too many recipients"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        self._rcpt_options.setdefault(id(envelope), []).append(tuple(options))
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content
        assert content is not None
        mail_from = envelope.mail_from or ""
        self.recorder.add_message(
            ReceivedMessage(
                mail_from="" if mail_from == "<>" else mail_from,
                rcpt_tos=tuple(envelope.rcpt_tos),
                content=content,
                mail_options=tuple(envelope.mail_options),
                rcpt_options=tuple(self._rcpt_options.pop(id(envelope), [])),
                smtp_utf8=envelope.smtp_utf8,
                tls=server.transport is not None
                and server.transport.get_extra_info("sslcontext") is not None,
                auth_user=session.auth_data if isinstance(session.auth_data, str) else None,
            )
        )
        if self.config.drop_after_data:
            assert isinstance(server, _RecordingSMTP)
            server.hang_up()
        return self.config.data_reply or "250 OK"


class _QuietSession(Session):
    """aiosmtpd itself sets the deprecated ``login_data`` on every AUTH; skip its warning."""

    @property
    def login_data(self) -> Any:
        return self._login_data

    @login_data.setter
    def login_data(self, value: Any) -> None:
        self._login_data = value


class _RecordingSMTP(SMTP):
    """aiosmtpd's SMTP with a transcript, a replaceable greeting, null sender and a hang-up."""

    def __init__(self, handler: _Handler, *, accept_params: Sequence[str], **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._recorder = handler.recorder
        self._greeting = handler.config.greeting
        self._greeted = False
        self._silenced = False
        self._accept_params = {name.upper() for name in accept_params}
        self._record: ConnectionRecord | None = None

    def _cb_client_connected(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        super()._cb_client_connected(reader, writer)
        original_readuntil = reader.readuntil

        async def readuntil(separator: bytes = b"\n") -> bytes:
            line = await original_readuntil(separator)
            # Commands and AUTH continuation lines are read up to LF; message content up to CRLF.
            if separator == b"\n" and self._record is not None:
                self._recorder.add_line(self._record, bytes(line))
            return line

        reader.readuntil = readuntil  # type: ignore[method-assign,assignment]

    def _create_session(self) -> Session:
        return _QuietSession(self.loop)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._record is None:
            self._record = self._recorder.add_connection(transport.get_extra_info("peername"))
        super().connection_made(transport)

    async def push(self, status: str) -> None:  # type: ignore[override]
        # aiosmtpd pushes str replies only; the greeting is the first one.
        if self._silenced:
            return
        if not self._greeted:
            self._greeted = True
            if self._greeting is not None:
                status = self._greeting
        await super().push(status)

    def hang_up(self) -> None:
        """Close the connection now; replies still queued by aiosmtpd are dropped."""
        self._silenced = True
        if self.transport is not None:
            self.transport.close()

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        stripped = arg.strip()
        if stripped.startswith("<>"):
            # aiosmtpd treats the empty address as a syntax error; keep it truthy for its checks.
            return "<>", stripped[2:]
        return super()._getaddr(arg)

    def _getparams(self, params: Sequence[str]) -> dict[str, str | bool] | None:
        result = super()._getparams(params)
        if result is None:
            return None
        return {name: value for name, value in result.items() if name not in self._accept_params}


def _authenticate(
    account: tuple[str, str],
) -> Any:
    user, password = account

    def authenticator(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            given = (
                auth_data.login.decode("utf-8", "replace"),
                auth_data.password.decode("utf-8", "replace"),
            )
            if given == (user, password):
                return AuthResult(success=True, auth_data=user)
        return AuthResult(success=False, handled=False)

    return authenticator


class _Controller(Controller):
    def factory(self) -> SMTP:
        return _RecordingSMTP(self.handler, **self.SMTP_kwargs)


class RunningSMTPServer:
    """A started aiosmtpd server; ``stop()`` (or the fixture) shuts it down."""

    def __init__(
        self, config: SMTPServerConfig, controller: Controller, recorder: Recorder, port: int
    ):
        self.config = config
        self.host = config.host
        self.port = port
        self.recorder = recorder
        self._controller = controller
        self._stopped = False

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def messages(self) -> list[ReceivedMessage]:
        return self.recorder.messages

    @property
    def connections(self) -> list[ConnectionRecord]:
        return self.recorder.connections

    def wait_for_messages(self, count: int = 1, timeout: float = 5.0) -> list[ReceivedMessage]:
        return self.recorder.wait_for_messages(count, timeout)

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self._controller.stop(no_assert=True)

    def __enter__(self) -> RunningSMTPServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<RunningSMTPServer {self.host}:{self.port}>"


def _smtp_kwargs(config: SMTPServerConfig) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "server_hostname": config.hostname,
        "data_size_limit": config.size_limit,
        "enable_SMTPUTF8": config.smtputf8,
        "decode_data": False,
        "accept_params": tuple(config.accept_params),
        # aiosmtpd would otherwise offer AUTH only after STARTTLS, even on implicit TLS.
        "auth_require_tls": config.auth_require_tls and not config.implicit_tls,
        "auth_required": config.auth_required,
    }
    if config.auth is not None:
        kwargs["authenticator"] = _authenticate(config.auth)
    if config.starttls != "none":
        assert config.tls is not None
        kwargs["tls_context"] = config.tls.server_context(config.cert_kind)
        kwargs["require_starttls"] = config.starttls == "require"
    if config.implicit_tls:
        assert config.tls is not None
        kwargs["ssl_context"] = config.tls.server_context(config.cert_kind)
    return kwargs


def start_smtp_server(config: SMTPServerConfig, *, attempts: int = 5) -> RunningSMTPServer:
    """Start a server in its own thread; returns once it answers on its port."""
    last_error: OSError | None = None
    for _ in range(attempts):
        port = config.port or pick_free_port(config.host)
        recorder = Recorder()
        controller = _Controller(
            _Handler(config, recorder),
            hostname=config.host,
            port=port,
            ready_timeout=10.0,
            **_smtp_kwargs(config),
        )
        try:
            controller.start()
        except OSError as error:  # the picked port was taken meanwhile
            last_error = error
            if config.port:
                raise
            time.sleep(0.05)
            continue
        # Controller.start() opens one connection to make sure the server runs: not the test's.
        recorder.clear()
        return RunningSMTPServer(config, controller, recorder, port)
    raise RuntimeError(f"could not start aiosmtpd on {config.host}: {last_error}")
