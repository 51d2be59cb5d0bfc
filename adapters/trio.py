"""smtpproto over trio streams.

The driver loop performs the I/O requests of :mod:`smtpproto._io`; every SMTP decision is made
by the operations in :mod:`smtpproto._session`.  Timeouts are enforced per request with
``trio.fail_after``.  A client serves one task at a time.
"""

from __future__ import annotations

import contextlib
import functools
import math
import socket
import ssl
from collections.abc import Awaitable, Callable, Generator, Iterable, Sequence
from types import TracebackType
from typing import Any, TypeVar

import dns.asyncresolver
import trio

from smtpproto import (
    Body,
    ConnectError,
    ConnectionLostError,
    DeliveryReport,
    Extensions,
    Limits,
    RecipientOutcome,
    RecipientResult,
    Relay,
    Reply,
    SendResult,
    SMTPError,
    SMTPTimeoutError,
    TLSError,
    TLSMode,
    TLSPolicy,
)
from smtpproto._delivery import DeliveryJob, DeliveryOptions
from smtpproto._io import (
    Close,
    Connect,
    IORequest,
    Receive,
    Send,
    StartTLSHandshake,
)
from smtpproto._session import Operation, Session

from ._dns import resolve_async
from ._tls import client_context

__all__ = ["Relay", "SMTPClient", "TLSMode", "TLSPolicy", "deliver"]

T = TypeVar("T")
RECEIVE_SIZE = 1 << 16
# RFC 8305's recommended delay before racing the next address of a name.
HAPPY_EYEBALLS_DELAY = 0.25
# How long a graceful close (TLS close_notify) may take before the stream is closed forcefully.
CLOSE_GRACE = 5.0
# What trio raises when the connection under a stream breaks or was closed.
BROKEN = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)


class SMTPClient:
    """A trio SMTP client.  Use :meth:`connect`, then the methods below, in ``async with``.

    Leaving the block sends QUIT and closes the connection (cancellation just closes it).
    """

    def __init__(
        self,
        *,
        local_hostname: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        timeouts: dict[str, float] | None = None,
        connect_timeout: float = 30.0,
        lmtp: bool = False,
        limits: Limits | None = None,
    ) -> None:
        self._options: dict[str, Any] = {
            "lmtp": lmtp,
            "limits": limits,
            "timeouts": timeouts,
            "connect_timeout": connect_timeout,
        }
        # socket.getfqdn() can block on DNS, so the default name is looked up in open().
        self._local_hostname = local_hostname
        self._session = Session(local_hostname=local_hostname or "localhost", **self._options)
        self._driver = _Driver(ssl_context)

    @classmethod
    def connect(
        cls,
        host: str,
        port: int | None = None,
        *,
        tls: TLSMode = TLSMode.STARTTLS,
        server_hostname: str | None = None,
        verify: bool = True,
        **options: Any,
    ) -> Connecting:
        """Connect to ``host`` and open the session (greeting, EHLO, TLS as ``tls`` says).

        Use as ``client = await SMTPClient.connect(...)`` or ``async with SMTPClient.connect(...)
        as client:``.  ``port`` defaults to 465 for implicit TLS, 587 for STARTTLS, else 25.
        """
        client = cls(**options)
        opening = functools.partial(
            client.open, host, port, tls=tls, server_hostname=server_hostname, verify=verify
        )
        return Connecting(client, opening)

    # -- the seed's operations -----------------------------------------------------------------

    async def open(
        self,
        host: str,
        port: int | None = None,
        *,
        tls: TLSMode = TLSMode.STARTTLS,
        server_hostname: str | None = None,
        verify: bool = True,
    ) -> Reply:
        if self._local_hostname is None:
            self._local_hostname = await trio.to_thread.run_sync(socket.getfqdn)
            self._session = Session(local_hostname=self._local_hostname, **self._options)
        return await self._run(
            self._session.open(host, port, tls=tls, server_hostname=server_hostname, verify=verify)
        )

    async def authenticate(
        self,
        username: str,
        password: str | None = None,
        *,
        token: str | None = None,
        mechanism: str | None = None,
        allow_cleartext: bool = False,
    ) -> Reply:
        return await self._run(
            self._session.authenticate(
                username,
                password,
                token=token,
                mechanism=mechanism,
                allow_cleartext=allow_cleartext,
            )
        )

    async def send_message(
        self,
        message: Body,
        sender: str | None = None,
        recipients: Iterable[str] | None = None,
        **options: Any,
    ) -> SendResult:
        return await self._run(self._session.send_message(message, sender, recipients, **options))

    async def create_message(self, sender: str, **options: Any) -> Reply:
        return await self._run(self._session.create_message(sender, **options))

    async def add_recipient(
        self, recipient: str, *, notify: Sequence[Any] | None = None, orcpt: str | None = None
    ) -> RecipientResult:
        return await self._run(self._session.add_recipient(recipient, notify=notify, orcpt=orcpt))

    async def append_message(self, content: Body) -> None:
        await self._run(self._session.append_message(content))

    async def close_message(self) -> SendResult:
        return await self._run(self._session.close_message())

    async def reset(self) -> Reply:
        return await self._run(self._session.reset())

    async def noop(self) -> Reply:
        return await self._run(self._session.noop())

    async def verify(self, address: str) -> Reply:
        return await self._run(self._session.verify(address))

    async def disconnect(self) -> None:
        """QUIT and close.  Safe to call more than once."""
        try:
            await self._run(self._session.quit())
        finally:
            await self._drop()

    @property
    def extensions(self) -> Extensions:
        return self._session.conn.extensions

    @property
    def tls_active(self) -> bool:
        return self._session.tls_active

    @property
    def tls_verified(self) -> bool:
        return self._session.tls_verified

    async def __aenter__(self) -> SMTPClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(exc, trio.Cancelled):
            self._session.closed = True  # first: closing in a cancelled scope raises Cancelled
            await self._driver.abort()  # no polite QUIT when the task is being cancelled
            return
        await self.disconnect()

    async def _run(self, op: Operation[T]) -> T:
        try:
            return await self._driver.run(op)
        finally:
            if self._driver.stream is None:
                self._session.closed = True

    async def _drop(self) -> None:
        self._session.closed = True
        await self._driver.drop()


class _Driver:
    """Performs the I/O requests of one operation after another over one stream at a time."""

    def __init__(
        self,
        ssl_context: ssl.SSLContext | None,
        resolver: dns.asyncresolver.Resolver | None = None,
    ) -> None:
        self.ssl_context = ssl_context
        self.resolver = resolver
        self.stream: trio.abc.Stream | None = None
        self.failed = False

    async def run(self, op: Operation[T]) -> T:
        value: Any = None
        error: SMTPError | None = None
        try:
            while True:
                try:
                    request = op.throw(error) if error is not None else op.send(value)
                except StopIteration as stop:
                    return stop.value  # type: ignore[no-any-return]
                value, error = None, None
                try:
                    value = await self.perform(request)
                except SMTPError as exc:
                    error, self.failed = exc, True
        except BaseException as exc:
            if not isinstance(exc, SMTPError):  # cancelled or failed mid-exchange: session lost
                await self.abort()
            raise

    async def perform(self, request: IORequest) -> Any:
        if isinstance(request, Send):
            stream = self._stream(request.phase)
            try:
                with _deadline(request.timeout):
                    await stream.send_all(request.data)
            except trio.TooSlowError:
                raise SMTPTimeoutError(request.phase, request.timeout) from None
            except BROKEN as exc:
                raise ConnectionLostError(request.phase, _detail(exc)) from None
            return None
        if isinstance(request, Receive):
            stream = self._stream(request.phase)
            try:
                with _deadline(request.timeout):
                    return await stream.receive_some(RECEIVE_SIZE)
            except trio.TooSlowError:
                raise SMTPTimeoutError(request.phase, request.timeout) from None
            except BROKEN as exc:
                raise ConnectionLostError(request.phase, _detail(exc)) from None
        if isinstance(request, Connect):
            await self.abort()
            self.stream = await self._connect(request)
            self.failed = False
            return None
        if isinstance(request, StartTLSHandshake):
            # The plain stream stays current until the handshake is done: an interruption
            # (cancellation) then closes it like any other.
            self.stream = await self._handshake(
                self._stream("STARTTLS"), request.server_hostname, request.verify, request.timeout
            )
            return None
        if isinstance(request, Close):
            if self.failed:  # a connection that failed a request is not worth a goodbye
                await self.abort()
            else:
                await self.drop()
            return None
        return await resolve_async(self.resolver, request, "trio")

    async def _connect(self, request: Connect) -> trio.abc.Stream:
        try:
            # Tries every address the name resolves to, IPv6 and IPv4, racing them (RFC 8305).
            with _deadline(request.timeout):
                stream = await trio.open_tcp_stream(
                    request.host, request.port, happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY
                )
        except trio.TooSlowError:
            raise ConnectError(request.host, request.port, "timed out", timed_out=True) from None
        except OSError as exc:
            raise ConnectError(request.host, request.port, _connect_reason(exc)) from None
        if request.implicit_tls:
            self.stream = stream  # current already, so that an interruption closes it
            server_hostname = request.server_hostname or request.host
            return await self._handshake(stream, server_hostname, request.verify, request.timeout)
        return stream

    async def _handshake(
        self, stream: trio.abc.Stream, server_hostname: str, verify: bool, timeout: float | None
    ) -> trio.abc.Stream:
        context = client_context(self.ssl_context, verify)
        tls_stream = trio.SSLStream(stream, context, server_hostname=server_hostname)
        try:
            with _deadline(timeout):
                await tls_stream.do_handshake()
        except trio.TooSlowError:
            await trio.aclose_forcefully(tls_stream)
            raise SMTPTimeoutError("TLS handshake", timeout) from None
        except BROKEN as exc:
            await trio.aclose_forcefully(tls_stream)
            # trio wraps the ssl module's error; anything else broke the connection itself.
            if isinstance(exc.__cause__, ssl.SSLError):
                raise TLSError(
                    f"TLS handshake with {server_hostname} failed: {exc.__cause__}"
                ) from None
            raise ConnectionLostError("TLS handshake", _detail(exc)) from None
        return tls_stream

    def _stream(self, phase: str) -> trio.abc.Stream:
        if self.stream is None:
            raise ConnectionLostError(phase, "the connection is closed")
        return self.stream

    async def drop(self) -> None:
        """Close gracefully (TLS sends close_notify), forcefully if that stalls."""
        stream, self.stream = self.stream, None
        if stream is not None:
            # aclose() closes the stream even when cut short, so the grace needs no fallback.
            with trio.move_on_after(CLOSE_GRACE), contextlib.suppress(*BROKEN):
                await stream.aclose()

    async def abort(self) -> None:
        """Close at once: for cancellation and unexpected errors."""
        stream, self.stream = self.stream, None
        if stream is not None:
            await trio.aclose_forcefully(stream)


class Connecting:
    """What :meth:`SMTPClient.connect` returns: await it, or use it in ``async with``."""

    def __init__(self, client: SMTPClient, opening: Callable[[], Awaitable[Reply]]) -> None:
        self._client = client
        self._opening = opening

    async def _open(self) -> SMTPClient:
        await self._opening()
        return self._client

    def __await__(self) -> Generator[Any, None, SMTPClient]:
        return self._open().__await__()

    async def __aenter__(self) -> SMTPClient:
        return await self._open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._client.__aexit__(exc_type, exc, tb)


def _deadline(timeout: float | None) -> contextlib.AbstractContextManager[trio.CancelScope]:
    """``trio.fail_after`` for a request's timeout; ``None`` means no limit."""
    return trio.fail_after(math.inf if timeout is None else timeout)


def _connect_reason(exc: OSError) -> str:
    """trio reports a failed connect as one OSError caused by a group of the attempts' errors."""
    attempts = getattr(exc.__cause__, "exceptions", ())
    reasons = dict.fromkeys(error.strerror or str(error) for error in attempts)
    return "; ".join(reasons) or exc.strerror or str(exc)


def _detail(exc: BaseException) -> str:
    """trio's stream errors carry their reason as the cause, not in their own message."""
    return str(exc) or str(exc.__cause__ or type(exc).__name__)


async def deliver(
    message: Body,
    sender: str | None = None,
    recipients: Iterable[str] | None = None,
    *,
    relay: Relay | None = None,
    resolver: dns.asyncresolver.Resolver | None = None,
    port: int = 25,
    local_hostname: str | None = None,
    tls_policy: TLSPolicy | None = None,
    ssl_context: ssl.SSLContext | None = None,
    timeouts: dict[str, float] | None = None,
    connect_timeout: float = 30.0,
    concurrency: int = 8,
    **options: Any,
) -> DeliveryReport:
    """Deliver ``message`` to every recipient, directly through their MX hosts or via ``relay``.

    Domains are delivered concurrently in a nursery, at most ``concurrency`` at a time.
    ``resolver`` (a ``dns.asyncresolver.Resolver``) and ``port`` let tests point delivery at local
    servers; further keyword ``options`` go to :class:`~smtpproto.DeliveryOptions`.
    """
    if local_hostname is None:
        local_hostname = await trio.to_thread.run_sync(socket.getfqdn)
    settings = DeliveryOptions(
        port=port,
        local_hostname=local_hostname,
        tls_policy=tls_policy or TLSPolicy(),
        timeouts=timeouts,
        connect_timeout=connect_timeout,
        **options,
    )
    job = DeliveryJob(message, sender, recipients, relay=relay, options=settings)
    limiter = trio.CapacityLimiter(max(1, concurrency) if job.concurrent else 1)
    operations = job.operations()
    results: list[list[RecipientOutcome]] = [[] for _ in operations]

    async def run(index: int, op: Operation[list[RecipientOutcome]]) -> None:
        async with limiter:
            driver = _Driver(ssl_context, resolver)
            try:
                results[index] = await driver.run(op)
            finally:
                await driver.drop()

    async with trio.open_nursery() as nursery:
        for index, op in enumerate(operations):
            nursery.start_soon(run, index, op)
    return job.report(results)
