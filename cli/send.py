"""``smtpproto send``: one message, through a server (``--server``) or to the MX hosts.

Both ways end in a :class:`~smtpproto.DeliveryReport`, so the table, the JSON and the exit code
are computed once.  Through a server the report is built from the :class:`~smtpproto.SendResult`
(or from the error that ended the session).
"""

from __future__ import annotations

import asyncio
import dataclasses
import getpass
import importlib
import os
import ssl
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from smtpproto import (
    AttemptRecord,
    DataRefused,
    DeliveryOptions,
    DeliveryReport,
    RecipientOutcome,
    RecipientsRefused,
    ReplyError,
    SendOptions,
    SendResult,
    SessionOptions,
    SMTPError,
    Timeouts,
    TLSMode,
    TLSPolicy,
)
from smtpproto._delivery.report import Status, failure_detail
from smtpproto._wire.dkim_sign import DKIMSigner
from smtpproto._wire.events import check_dsn_options
from smtpproto.mx import DEFAULT_MX_PORT

from .common import (
    PASSWORD_ENV,
    Endpoint,
    UsageError,
    exit_code_for,
    make_resolver,
    ssl_context_for,
)
from .hints import RelayRoute, explain, relay_route
from .message import POLICY, CountingBody, MessageSpec, build_message, envelope_address
from .output import (
    TranscriptPrinter,
    make_progress,
    print_json,
    print_report,
    report_dict,
    transcript,
)

__all__ = [
    "SendRequest",
    "read_password",
    "result_report",
    "run_send",
]

# A verified certificate is the default; these are the modes --direct understands.
_DIRECT_TLS = (TLSMode.OPPORTUNISTIC, TLSMode.STARTTLS)


@dataclass(frozen=True)
class SendRequest:
    """Everything ``send`` was asked to do, checked for consistency by :func:`run_send`."""

    spec: MessageSpec
    server: Endpoint | None
    # None: the default for the route (from the port via a server, else opportunistic)
    tls: TLSMode | None
    local_hostname: str
    auth_user: str | None = None
    allow_cleartext_auth: bool = False
    cafile: str | None = None
    insecure: bool = False
    adapter: str = "blocking"
    resolver: Endpoint | None = None
    port: int | None = None  # --direct only: the relay's port is part of --server
    timeouts: Timeouts = field(default_factory=lambda: Timeouts.uniform(60.0))  # --phase-timeout
    dns_lifetime: float = 60.0  # --timeout bounds each DNS lookup too
    verbose: bool = False
    notify: Sequence[str] | None = None
    ret: str | None = None
    envid: str | None = None
    dkim: tuple[DKIMSigner, ...] = ()  # --dkim-key and its selector and domain
    output: str = "text"  # text, quiet or json
    color: bool = False
    fancy: bool = True  # rich, when installed and on a terminal
    progress: str = "auto"

    @property
    def send_options(self) -> SendOptions:
        notify = tuple(self.notify) if self.notify is not None else None
        return SendOptions(notify=notify, ret=self.ret, envid=self.envid, dkim=self.dkim)  # type: ignore[arg-type]

    @property
    def session_options(self) -> SessionOptions:
        return SessionOptions(local_hostname=self.local_hostname, timeout=self.timeouts)


def read_password(user: str) -> str:
    """From ``$SMTPPROTO_PASSWORD``, else a prompt on the terminal (never echoed, never a flag)."""
    password = os.environ.get(PASSWORD_ENV)
    if password is not None:
        return password
    with warnings.catch_warnings():
        # Without a terminal getpass would read standard input and echo: refuse instead.
        warnings.simplefilter("error", getpass.GetPassWarning)
        try:
            return getpass.getpass(f"Password for {user}: ")
        except (getpass.GetPassWarning, EOFError):
            raise UsageError(
                f"no terminal to ask for the password of {user}: set {PASSWORD_ENV}"
            ) from None


def _check(request: SendRequest) -> None:
    if request.server is None:
        if request.auth_user is not None:
            raise UsageError("--auth-user needs --server: direct delivery does not authenticate")
        if request.tls not in (None, *_DIRECT_TLS):
            raise UsageError("--direct takes --tls opportunistic (the default) or starttls")
        if request.insecure:
            raise UsageError("--insecure applies to --server only")
    elif request.resolver is not None:
        raise UsageError("--resolver applies to --direct only")
    elif request.port is not None:
        raise UsageError("--port applies to --direct only: give the relay's as --server HOST:PORT")
    try:
        notify = tuple(request.notify) if request.notify is not None else None
        check_dsn_options(request.ret, request.envid, notify, None)
    except ValueError as exc:
        raise UsageError(f"--dsn options: {exc}") from None


def run_send(request: SendRequest, printer: TranscriptPrinter | None) -> int:
    _check(request)
    sender = envelope_address("--from", request.spec.sender)
    recipients = [envelope_address("--to", r) for r in request.spec.recipients]
    message = build_message(request.spec, local_hostname=request.local_hostname)
    international = not all(a.isascii() for a in [sender, *recipients])
    data = message.as_bytes(policy=POLICY.clone(utf8=international))
    password = read_password(request.auth_user) if request.auth_user else None
    context = ssl_context_for(request.cafile)
    progress = make_progress(len(data), mode=request.progress, fancy=request.fancy)
    body = CountingBody(data, progress.update)
    try:
        with transcript(printer):
            if request.server is None:
                report = _deliver(request, body, sender, recipients, context)
            else:
                report = _relay(
                    request,
                    body=body,
                    sender=sender,
                    recipients=recipients,
                    password=password,
                    context=context,
                    printer=printer,
                )
    finally:
        progress.close()
    if request.output == "json":
        print_json(report_dict(report))
    elif request.output == "text":
        print()
        print_report(report, color=request.color, fancy=request.fancy, verbose=request.verbose)
    return exit_code_for(report)


def _adapter(name: str) -> ModuleType:
    return importlib.import_module(f"smtpproto.adapters.{name}")


def _deliver(
    request: SendRequest,
    body: CountingBody,
    sender: str,
    recipients: list[str],
    context: ssl.SSLContext | None,
) -> DeliveryReport:
    domains = {r.rpartition("@")[2] for r in recipients}
    delivery_options = DeliveryOptions(
        session=request.session_options,
        send=request.send_options,
        port=DEFAULT_MX_PORT if request.port is None else request.port,
        # --tls starttls: every recipient domain must offer STARTTLS with a verified certificate.
        tls_policy=TLSPolicy(frozenset(domains))
        if request.tls is TLSMode.STARTTLS
        else TLSPolicy(),
    )
    options: dict[str, Any] = {"options": delivery_options, "ssl_context": context}
    asynchronous = request.adapter != "blocking"
    options["resolver"] = make_resolver(
        request.resolver, lifetime=request.dns_lifetime, asynchronous=asynchronous
    )
    deliver: Callable[..., Any] = _adapter(request.adapter).deliver
    report: DeliveryReport
    if not asynchronous:
        report = deliver(body, sender, recipients, **options)
        return report
    report = _run_async(request.adapter, lambda: deliver(body, sender, recipients, **options))
    return report


def _run_async(adapter: str, make: Callable[[], Any]) -> Any:
    if adapter == "trio":
        import trio  # noqa: PLC0415 -- an optional dependency, needed only here

        return trio.run(make)
    return asyncio.run(make())


@dataclass
class _Session:
    """What the relay session learnt, whatever happened."""

    tls: bool = False
    tls_verified: bool = False
    opened: bool = False  # the greeting, EHLO and TLS went through
    result: SendResult | None = None
    error: SMTPError | None = None


def _relay(
    request: SendRequest,
    *,
    body: CountingBody,
    sender: str,
    recipients: list[str],
    password: str | None,
    context: ssl.SSLContext | None,
    printer: TranscriptPrinter | None,
) -> DeliveryReport:
    assert request.server is not None
    route = relay_route(request.server, request.tls)
    if printer is not None:
        printer.note(f"connecting to {request.server.host} port {route.port} ({route.why})")
    steps = _Steps(request, route, body, sender, recipients, password, context)
    if request.adapter == "blocking":
        session = steps.blocking()
    else:
        session = _run_async(request.adapter, steps.asynchronous)
    message = None
    if session.error is not None:
        if printer is not None:
            printer.note(f"the session with {request.server.host} failed")
        message, hint = explain(session.error, request, route, tls_active=session.tls)
        print(f"smtpproto: {message}; {hint}" if hint else f"smtpproto: {message}", file=sys.stderr)
    return _relay_report(request.server.host, route.port, recipients, session, message)


@dataclass
class _Steps:
    """open, authenticate, send_message, disconnect: once blocking, once awaited."""

    request: SendRequest
    route: RelayRoute
    body: CountingBody
    sender: str
    recipients: list[str]
    password: str | None
    context: ssl.SSLContext | None

    def _client(self) -> Any:
        # Made inside the event loop that will drive it.
        return _adapter(self.request.adapter).SMTPClient(
            self.request.session_options, ssl_context=self.context
        )

    def _open_args(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        assert self.request.server is not None
        return (self.request.server.host, self.route.port), {
            "tls": self.route.tls,
            "verify": not self.request.insecure,
        }

    def _auth_args(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (self.request.auth_user, self.password), {
            "allow_cleartext": self.request.allow_cleartext_auth
        }

    def blocking(self) -> _Session:
        session, client = _Session(), self._client()
        try:
            args, kwargs = self._open_args()
            client.open(*args, **kwargs)
            session.opened = True
            if self.request.auth_user is not None:
                args, kwargs = self._auth_args()
                client.authenticate(*args, **kwargs)
            session.result = client.send_message(
                self.body, self.sender, self.recipients, options=self.request.send_options
            )
        except SMTPError as exc:
            session.error = exc
        finally:
            # Whatever happened: was TLS up when it did (a 421 greeting on port 465 came in TLS)?
            session.tls, session.tls_verified = client.tls_active, client.tls_verified
            client.disconnect()
        return session

    async def asynchronous(self) -> _Session:
        session, client = _Session(), self._client()
        try:
            args, kwargs = self._open_args()
            await client.open(*args, **kwargs)
            session.opened = True
            if self.request.auth_user is not None:
                args, kwargs = self._auth_args()
                await client.authenticate(*args, **kwargs)
            session.result = await client.send_message(
                self.body, self.sender, self.recipients, options=self.request.send_options
            )
        except SMTPError as exc:
            session.error = exc
        finally:
            # Whatever happened: was TLS up when it did (a 421 greeting on port 465 came in TLS)?
            session.tls, session.tls_verified = client.tls_active, client.tls_verified
            await client.disconnect()
        return session


def result_report(
    host: str,
    result: SendResult,
    *,
    tls: bool = False,
    tls_verified: bool = False,
    attempts: tuple[AttemptRecord, ...] = (),
) -> DeliveryReport:
    """A :class:`SendResult` from one server, as a report (for the table, JSON, exit code)."""
    outcomes = []
    for rcpt in result:
        status: Status = (
            "delivered" if rcpt.delivered else "temporary" if rcpt.temporary else "permanent"
        )
        reply = rcpt.rcpt_reply if rcpt.data_reply is None else rcpt.data_reply
        outcomes.append(
            RecipientOutcome(
                rcpt.recipient, status, reply, reply.text, host, None, tls, tls_verified, attempts
            )
        )
    return DeliveryReport(tuple(outcomes), relay=True)


def _relay_report(
    host: str, port: int, recipients: list[str], session: _Session, message: str | None
) -> DeliveryReport:
    """The report of the relay session; ``message`` is its error in command-line words."""
    tls = {"tls": session.tls, "tls_verified": session.tls_verified}
    attempt = AttemptRecord(host, host, port)
    error = session.error
    if error is None:
        assert session.result is not None
        return result_report(host, session.result, **tls, attempts=(attempt.connected(**tls),))
    failed = (attempt.connected(**tls) if session.opened else attempt).failed(error)
    if not isinstance(error, ReplyError):  # the reply's own text says it; ours names flags
        failed = dataclasses.replace(failed, error=message)
    if isinstance(error, (RecipientsRefused, DataRefused)):  # a result all the same
        return result_report(host, error.result, **tls, attempts=(failed,))
    reply = error.reply if isinstance(error, ReplyError) else None
    status: Status = "temporary" if error.temporary else "permanent"
    # The server column names the relay only when it said something (a reply) or the session
    # was open; a refused connection or a failed handshake shows as the attempt that failed.
    spoke = reply is not None or session.opened
    outcomes = [
        RecipientOutcome(
            rcpt,
            status,
            reply,
            failure_detail(error) if reply is not None else (message or str(error)),
            host if spoke else None,
            None,
            session.tls and spoke,
            session.tls_verified and spoke,
            (failed,),
        )
        for rcpt in recipients
    ]
    return DeliveryReport(tuple(outcomes), relay=True)
