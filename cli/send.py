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
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from smtpproto import (
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
from smtpproto._delivery.report import Status
from smtpproto._operations.channel import DEFAULT_PORTS
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
from .message import POLICY, CountingBody, MessageSpec, build_message, envelope_address
from .output import TranscriptPrinter, make_progress, print_json, print_report, transcript

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
    tls: (
        TLSMode | None
    )  # None: the default for the route (STARTTLS via a server, else opportunistic)
    local_hostname: str
    auth_user: str | None = None
    allow_cleartext_auth: bool = False
    cafile: str | None = None
    insecure: bool = False
    adapter: str = "blocking"
    resolver: Endpoint | None = None
    port: int | None = None  # --direct only: the relay's port is part of --server
    timeout: float = Timeouts().connect  # the connection's; replies keep the RFC's limits
    notify: Sequence[str] | None = None
    ret: str | None = None
    envid: str | None = None
    output: str = "text"  # text, quiet or json
    color: bool = False
    fancy: bool = True  # rich, when installed and on a terminal
    progress: str = "auto"

    @property
    def send_options(self) -> SendOptions:
        notify = tuple(self.notify) if self.notify is not None else None
        return SendOptions(notify=notify, ret=self.ret, envid=self.envid)  # type: ignore[arg-type]

    @property
    def session_options(self) -> SessionOptions:
        timeouts = dataclasses.replace(Timeouts(), connect=self.timeout)
        return SessionOptions(local_hostname=self.local_hostname, timeout=timeouts)


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
        print_json(report.to_dict())
    elif request.output == "text":
        print()
        print_report(report, color=request.color, fancy=request.fancy)
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
    if request.resolver is not None:
        options["resolver"] = make_resolver(request.resolver, asynchronous=asynchronous)
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
    tls = request.tls or TLSMode.STARTTLS
    port = request.server.port or DEFAULT_PORTS.get(tls, DEFAULT_MX_PORT)
    if printer is not None:
        printer.note(f"connecting to {request.server.host} port {port} (TLS: {tls.value})")
    steps = _Steps(request, port, tls, body, sender, recipients, password, context)
    if request.adapter == "blocking":
        session = steps.blocking()
    else:
        session = _run_async(request.adapter, steps.asynchronous)
    if session.error is not None:
        print(f"smtpproto: {session.error}", file=sys.stderr)
    return _relay_report(request.server.host, recipients, session)


@dataclass
class _Steps:
    """open, authenticate, send_message, disconnect: once blocking, once awaited."""

    request: SendRequest
    port: int
    tls: TLSMode
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
        return (self.request.server.host, self.port), {
            "tls": self.tls,
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
            session.tls, session.tls_verified = client.tls_active, client.tls_verified
            if self.request.auth_user is not None:
                args, kwargs = self._auth_args()
                client.authenticate(*args, **kwargs)
            session.result = client.send_message(
                self.body, self.sender, self.recipients, options=self.request.send_options
            )
        except SMTPError as exc:
            session.error = exc
        finally:
            client.disconnect()
        return session

    async def asynchronous(self) -> _Session:
        session, client = _Session(), self._client()
        try:
            args, kwargs = self._open_args()
            await client.open(*args, **kwargs)
            session.tls, session.tls_verified = client.tls_active, client.tls_verified
            if self.request.auth_user is not None:
                args, kwargs = self._auth_args()
                await client.authenticate(*args, **kwargs)
            session.result = await client.send_message(
                self.body, self.sender, self.recipients, options=self.request.send_options
            )
        except SMTPError as exc:
            session.error = exc
        finally:
            await client.disconnect()
        return session


def result_report(
    host: str, result: SendResult, *, tls: bool = False, tls_verified: bool = False
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
                rcpt.recipient, status, reply, reply.text, host, None, tls, tls_verified
            )
        )
    return DeliveryReport(tuple(outcomes), relay=True)


def _relay_report(host: str, recipients: list[str], session: _Session) -> DeliveryReport:
    if session.result is not None:
        return result_report(
            host, session.result, tls=session.tls, tls_verified=session.tls_verified
        )
    error = session.error
    assert error is not None
    if isinstance(error, (RecipientsRefused, DataRefused)):  # a result all the same
        return result_report(host, error.result, tls=session.tls, tls_verified=session.tls_verified)
    outcomes = []
    for rcpt in recipients:
        reply = error.reply if isinstance(error, ReplyError) else None
        temporary = error.temporary
        status: Status = "temporary" if temporary else "permanent"
        detail = reply.text if reply else str(error)
        outcomes.append(
            RecipientOutcome(
                rcpt, status, reply, detail, host, None, session.tls, session.tls_verified
            )
        )
    return DeliveryReport(tuple(outcomes), relay=True)
