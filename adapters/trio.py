"""smtpproto over trio streams.

A driver on the public contract of :mod:`smtpproto.driver`: it performs one request at a time,
and every SMTP decision is made by the operations of :class:`smtpproto.Session`.
Timeouts are enforced per request with ``trio.fail_after``.  A client serves one task at
a time.
"""

from __future__ import annotations

import contextlib
import math
import ssl
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import dns.asyncresolver
import trio

from smtpproto import (
    Body,
    ConnectionLostError,
    DeliveryOptions,
    DeliveryReport,
    Relay,
    SMTPTimeoutError,
    TLSMode,
    TLSPolicy,
    delivery,
)
from smtpproto.driver import (
    Connect,
    Operation,
    Receive,
    ReplyClock,
    Request,
    Send,
    StartTLSHandshake,
)

from ._async_client import AsyncSMTPClient, Connecting
from ._async_driver import AsyncDriver
from ._net import (
    HANDSHAKE,
    RECEIVE_SIZE,
    client_context,
    connect_failed,
    connect_timed_out,
    handshake_refused,
    no_connection,
)
from ._trio_streams import BROKEN, connect_reason, detail, heard

__all__ = ["Connecting", "Relay", "SMTPClient", "TLSMode", "TLSPolicy", "deliver"]

T = TypeVar("T")
# RFC 8305's recommended delay before racing the next address of a name.
HAPPY_EYEBALLS_DELAY = 0.25
# How long a graceful close (TLS close_notify) may take before the stream is closed forcefully.
CLOSE_GRACE = 5.0


class SMTPClient(AsyncSMTPClient):
    """A trio SMTP client.  Use :meth:`connect`, then the methods below, in ``async with``.

    Leaving the block sends QUIT and closes the connection (cancellation just closes it).
    """

    def _make_driver(self, ssl_context: ssl.SSLContext | None) -> _Driver:
        return _Driver(ssl_context)

    @staticmethod
    def _is_cancellation(exc: BaseException | None) -> bool:
        return isinstance(exc, trio.Cancelled)


class _Driver(AsyncDriver):
    """Performs the requests of one operation after another over one stream at a time."""

    library = "trio"

    def __init__(
        self,
        ssl_context: ssl.SSLContext | None,
        resolver: dns.asyncresolver.Resolver | None = None,
    ) -> None:
        super().__init__(ssl_context, resolver)
        self.clock = ReplyClock(trio.current_time)
        self.stream: trio.abc.Stream | None = None

    @property
    def connected(self) -> bool:
        return self.stream is not None

    async def perform(self, request: Request) -> Any:
        # Sends and receives use a bare CancelScope: fail_after's two context-manager layers
        # cost more than the I/O itself on a fast connection.
        if type(request) is Send:
            stream = self._stream(request.phase)
            try:
                with _scope(request.timeout) as scope:
                    await stream.send_all(request.data)
            except BROKEN as exc:
                raise ConnectionLostError(request.phase, detail(exc)) from None
            if scope.cancelled_caught:
                raise SMTPTimeoutError(request.phase, request.timeout)
            if request.listen:
                return await heard(stream, request.phase)
            return None
        if type(request) is Receive:
            stream = self._stream(request.phase)
            try:
                with _scope(self.clock.remaining(request)) as scope:
                    return await stream.receive_some(RECEIVE_SIZE)
            except BROKEN as exc:
                raise ConnectionLostError(request.phase, detail(exc)) from None
            # Reached only when the scope's own deadline cancelled the receive.
            raise SMTPTimeoutError(request.phase, request.timeout)
        return await super().perform(request)

    def tls_object(self) -> ssl.SSLObject | None:
        stream = self.stream
        # trio keeps the ssl module's object private; its public attributes forward to it.
        tls = getattr(stream, "_ssl_object", None) if isinstance(stream, trio.SSLStream) else None
        return tls if isinstance(tls, ssl.SSLObject) else None

    async def connect(self, request: Connect) -> None:
        try:
            # Tries every address the name resolves to, IPv6 and IPv4, racing them (RFC 8305).
            with _deadline(request.timeout):
                self.stream = await trio.open_tcp_stream(
                    request.host, request.port, happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY
                )
        except trio.TooSlowError:
            raise connect_timed_out(request) from None
        except OSError as exc:
            raise connect_failed(request, exc, connect_reason(exc)) from None
        if request.implicit_tls:
            name = request.server_hostname or request.host
            self.stream = await self._handshake(self.stream, name, request.verify, request.timeout)

    async def start_tls(self, request: StartTLSHandshake) -> None:
        # The plain stream stays current until the handshake is done: an interruption
        # (cancellation) then closes it like any other.
        self.stream = await self._handshake(
            self._stream("STARTTLS"), request.server_hostname, request.verify, request.timeout
        )

    async def _handshake(
        self, stream: trio.abc.Stream, name: str, verify: bool, timeout: float | None
    ) -> trio.abc.Stream:
        context = client_context(self.ssl_context, verify)
        tls_stream = trio.SSLStream(stream, context, server_hostname=name)
        try:
            with _deadline(timeout):
                await tls_stream.do_handshake()
        except trio.TooSlowError:
            await trio.aclose_forcefully(tls_stream)
            raise SMTPTimeoutError(HANDSHAKE, timeout) from None
        except BROKEN as exc:
            await trio.aclose_forcefully(tls_stream)
            # trio wraps the ssl module's error; anything else broke the connection itself.
            if isinstance(exc.__cause__, ssl.SSLError):
                raise handshake_refused(name, exc.__cause__) from None
            raise ConnectionLostError(HANDSHAKE, detail(exc)) from None
        return tls_stream

    def _stream(self, phase: str) -> trio.abc.Stream:
        if self.stream is None:
            raise no_connection(phase)
        return self.stream

    async def drop(self) -> None:
        stream, self.stream = self.stream, None
        if stream is not None:
            # aclose() closes the stream even when cut short, so the grace needs no fallback.
            with trio.move_on_after(CLOSE_GRACE), contextlib.suppress(*BROKEN):
                await stream.aclose()

    async def abort(self) -> None:
        stream, self.stream = self.stream, None
        if stream is not None:
            await trio.aclose_forcefully(stream)

    async def in_thread(self, function: Callable[..., T], *args: Any) -> T:
        return await trio.to_thread.run_sync(function, *args)

    async def run_concurrently(self, operations: Sequence[Operation[Any]], limit: int) -> list[Any]:
        limiter = trio.CapacityLimiter(limit)
        results: list[Any] = [None] * len(operations)

        async def run(index: int, op: Operation[Any]) -> None:
            async with limiter:
                results[index] = await self.run_apart(op)

        async with trio.open_nursery() as nursery:
            for index, op in enumerate(operations):
                nursery.start_soon(run, index, op)
        return results


def _scope(timeout: float | None) -> trio.CancelScope:
    """A scope that cancels what it encloses ``timeout`` seconds from now (``None``: never)."""
    return trio.CancelScope(deadline=math.inf if timeout is None else trio.current_time() + timeout)


def _deadline(timeout: float | None) -> contextlib.AbstractContextManager[trio.CancelScope]:
    """``trio.fail_after`` for a request's timeout; ``None`` means no limit."""
    return trio.fail_after(math.inf if timeout is None else timeout)


async def deliver(
    message: Body,
    sender: str | None = None,
    recipients: Iterable[str] | None = None,
    *,
    relay: Relay | None = None,
    options: DeliveryOptions | None = None,
    resolver: dns.asyncresolver.Resolver | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> DeliveryReport:
    """Deliver ``message`` to every recipient, directly through their MX hosts or via ``relay``.

    Domains are delivered concurrently, at most ``options.concurrency`` at a time.
    ``resolver`` (a ``dns.asyncresolver.Resolver``) lets tests point delivery at a local DNS
    server.
    """
    operation = delivery(message, sender, recipients, relay=relay, options=options)
    return await _Driver(ssl_context, resolver).run(operation)
