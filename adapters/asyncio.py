"""smtpproto over asyncio streams.

A driver on the public contract of :mod:`smtpproto.driver`: it performs one request at a time,
and every SMTP decision is made by the operations of :class:`smtpproto.Session`.
Timeouts are enforced per request with ``asyncio.timeout``.
A client serves one task at a time.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Awaitable, Iterable
from typing import Any, TypeVar

import dns.asyncresolver

from smtpproto import (
    Body,
    ConnectionLostError,
    DeliveryOptions,
    DeliveryReport,
    Relay,
    SMTPError,
    SMTPTimeoutError,
    TLSMode,
    TLSPolicy,
    delivery,
)
from smtpproto.driver import (
    Close,
    Connect,
    Operation,
    Receive,
    ReplyClock,
    Request,
    ResolveAddresses,
    ResolveMX,
    RunConcurrently,
    Send,
    StartTLSHandshake,
    drive_async,
)

from ._async_client import AsyncSMTPClient, Connecting
from ._dns import resolve_async
from ._net import (
    HANDSHAKE,
    client_context,
    connect_failed,
    connect_timed_out,
    handshake_refused,
    no_connection,
)
from .bodies import perform_body_request

__all__ = ["Connecting", "Relay", "SMTPClient", "TLSMode", "TLSPolicy", "deliver"]

T = TypeVar("T")
RECEIVE_SIZE = 1 << 16
# RFC 8305's recommended delay before racing the next address of a name.
HAPPY_EYEBALLS_DELAY = 0.25
# How long a graceful close (TLS close_notify) may take before the transport is aborted.
CLOSE_GRACE = 5.0


class SMTPClient(AsyncSMTPClient):
    """An asyncio SMTP client.  Use :meth:`connect`, then the methods below, in ``async with``.

    Leaving the block sends QUIT and closes the connection (cancellation just closes it).
    """

    def _make_driver(self, ssl_context: ssl.SSLContext | None) -> _Driver:
        return _Driver(ssl_context)

    @staticmethod
    async def _fqdn() -> str:
        return await asyncio.get_running_loop().run_in_executor(None, socket.getfqdn)

    @staticmethod
    def _is_cancellation(exc: BaseException | None) -> bool:
        return isinstance(exc, asyncio.CancelledError)


class _Driver:
    """Performs the I/O requests of one operation after another over one connection at a time."""

    @property
    def connected(self) -> bool:
        return self.streams is not None

    def __init__(
        self,
        ssl_context: ssl.SSLContext | None,
        resolver: dns.asyncresolver.Resolver | None = None,
    ) -> None:
        self.ssl_context = ssl_context
        self.resolver = resolver
        self.clock = ReplyClock(time.monotonic)  # the clock of asyncio's default loops
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self.wrote_last = False  # the last request was a Send

    async def run(self, op: Operation[T]) -> T:
        try:
            return await drive_async(op, self.perform)
        except BaseException as exc:
            if not isinstance(exc, SMTPError):  # cancelled or failed mid-exchange: session lost
                self.abort_now()
            raise

    async def perform(self, request: Request) -> Any:
        if type(request) is Send:
            writer = self._streams(request.phase)[1]
            if self.wrote_last:
                # Writes in a row (a long message): let other tasks run, and see cancellation.
                await asyncio.sleep(0)
            self.wrote_last = True
            try:
                writer.write(request.data)
                transport = writer.transport
                # Mostly the socket takes it all at once: then there is nothing to wait for.
                # Otherwise wait (bounded) for room; drain() also reports a lost connection.
                if transport.get_write_buffer_size() or transport.is_closing():
                    await _within(request.timeout, writer.drain())
            except TimeoutError:
                raise SMTPTimeoutError(request.phase, request.timeout) from None
            except OSError as exc:
                raise ConnectionLostError(request.phase, str(exc)) from None
            return None
        if type(request) is Receive:
            reader = self._streams(request.phase)[0]
            self.wrote_last = False
            try:
                timeout = self.clock.remaining(request)
                return await _within(timeout, reader.read(RECEIVE_SIZE))
            except TimeoutError:
                raise SMTPTimeoutError(request.phase, request.timeout) from None
            except OSError as exc:
                raise ConnectionLostError(request.phase, str(exc)) from None
        if isinstance(request, Connect):
            self.abort_now()
            self.streams = await self._connect(request)
            return None
        if isinstance(request, StartTLSHandshake):
            # The plain stream stays current until the handshake is done: an interruption
            # (cancellation) then aborts it like any other.
            writer = self._streams("STARTTLS")[1]
            await self._handshake(writer, request.server_hostname, request.verify, request.timeout)
            return None
        if isinstance(request, Close):
            if request.graceful:  # QUIT was answered: a TLS close_notify is worth it
                await self.drop()
            else:
                self.abort_now()
            return None
        if isinstance(request, (ResolveMX, ResolveAddresses)):
            return await resolve_async(self.resolver, request, "asyncio")
        if isinstance(request, RunConcurrently):
            limit = asyncio.Semaphore(request.limit)
            return list(
                await asyncio.gather(*(self._run_apart(op, limit) for op in request.operations))
            )
        assert not isinstance(request, (Send, Receive))  # served first, by exact type
        # Reading a file or a pipe may block: off the event loop.
        return await asyncio.to_thread(perform_body_request, request)

    async def _run_apart(self, op: Operation[T], limit: asyncio.Semaphore) -> T:
        """Run ``op`` on a connection of its own, once ``limit`` lets it."""
        async with limit:
            driver = _Driver(self.ssl_context, self.resolver)
            try:
                return await driver.run(op)
            finally:
                await driver.drop()

    async def _connect(self, request: Connect) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            # Tries every address the name resolves to, IPv6 and IPv4, racing them (RFC 8305).
            streams = await _within(
                request.timeout,
                asyncio.open_connection(
                    request.host, request.port, happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY
                ),
            )
        except TimeoutError:
            raise connect_timed_out(request) from None
        except OSError as exc:
            raise connect_failed(request, exc) from None
        if request.implicit_tls:
            # The TLS handshake is a step of its own, as for STARTTLS: its failures are the
            # handshake's (TLSError, or a timeout or loss in phase "TLS handshake").
            self.streams = streams  # current already, so that an interruption aborts it
            server_hostname = request.server_hostname or request.host
            await self._handshake(streams[1], server_hostname, request.verify, request.timeout)
        return streams

    async def _handshake(
        self, writer: asyncio.StreamWriter, name: str, verify: bool, timeout: float | None
    ) -> None:
        """Upgrade the stream to TLS in place (``StreamWriter.start_tls``)."""
        context = client_context(self.ssl_context, verify)
        try:
            await _within(timeout, writer.start_tls(context, server_hostname=name))
        except (ssl.SSLError, ssl.CertificateError) as exc:
            writer.transport.abort()
            raise handshake_refused(name, exc) from None
        except TimeoutError:
            writer.transport.abort()
            raise SMTPTimeoutError(HANDSHAKE, timeout) from None
        except OSError as exc:
            writer.transport.abort()
            raise ConnectionLostError(HANDSHAKE, str(exc)) from None

    def _streams(self, phase: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.streams is None:
            raise no_connection(phase)
        return self.streams

    async def drop(self) -> None:
        """Close gracefully (a TLS close_notify may need a round trip), abort if that stalls."""
        streams, self.streams = self.streams, None
        if streams is not None:
            writer = streams[1]
            writer.close()
            try:
                await _within(CLOSE_GRACE, writer.wait_closed())
            except (TimeoutError, OSError):
                writer.transport.abort()

    async def abort(self) -> None:
        self.abort_now()

    def abort_now(self) -> None:
        """Close at once, without waiting: for cancellation and unexpected errors."""
        streams, self.streams = self.streams, None
        if streams is not None:
            streams[1].transport.abort()


async def _within(timeout: float | None, awaitable: Awaitable[T]) -> T:
    """Await ``awaitable`` for at most ``timeout`` seconds (``None``: no limit)."""
    async with asyncio.timeout(timeout):
        return await awaitable


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
    options = options or DeliveryOptions()
    if options.session.local_hostname is None:
        options = options.named(
            await asyncio.get_running_loop().run_in_executor(None, socket.getfqdn)
        )
    operation = delivery(message, sender, recipients, relay=relay, options=options)
    return await _Driver(ssl_context, resolver).run(operation)
