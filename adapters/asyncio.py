"""smtpproto over asyncio streams.

A driver on the public contract of :mod:`smtpproto.driver`: it performs one request at a time,
and every SMTP decision is made by the operations of :class:`smtpproto.Session`.
Timeouts are enforced per request with ``asyncio.timeout``.
A client serves one task at a time.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import dns.asyncresolver

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

__all__ = ["Connecting", "Relay", "SMTPClient", "TLSMode", "TLSPolicy", "deliver"]

T = TypeVar("T")
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
    def _is_cancellation(exc: BaseException | None) -> bool:
        return isinstance(exc, asyncio.CancelledError)


class _Driver(AsyncDriver):
    """Performs the requests of one operation after another over one connection at a time."""

    library = "asyncio"

    def __init__(
        self,
        ssl_context: ssl.SSLContext | None,
        resolver: dns.asyncresolver.Resolver | None = None,
    ) -> None:
        super().__init__(ssl_context, resolver)
        self.clock = ReplyClock(time.monotonic)  # the clock of asyncio's default loops
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self.wrote_last = False  # the last request was a Send

    @property
    def connected(self) -> bool:
        return self.streams is not None

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
            if request.listen:
                return await _heard(self._streams(request.phase)[0], request.phase)
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
        return await super().perform(request)

    def tls_object(self) -> ssl.SSLObject | None:
        if self.streams is None:
            return None
        tls = self.streams[1].get_extra_info("ssl_object")
        return tls if isinstance(tls, ssl.SSLObject) else None

    async def connect(self, request: Connect) -> None:
        try:
            # Tries every address the name resolves to, IPv6 and IPv4, racing them (RFC 8305).
            self.streams = await _within(
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
            name = request.server_hostname or request.host
            await self._handshake(self.streams[1], name, request.verify, request.timeout)

    async def start_tls(self, request: StartTLSHandshake) -> None:
        # The plain stream stays current until the handshake is done: an interruption
        # (cancellation) then aborts it like any other.
        writer = self._streams("STARTTLS")[1]
        await self._handshake(writer, request.server_hostname, request.verify, request.timeout)

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
        streams, self.streams = self.streams, None
        if streams is not None:
            writer = streams[1]
            writer.close()
            try:
                await _within(CLOSE_GRACE, writer.wait_closed())
            except (TimeoutError, OSError):
                writer.transport.abort()

    async def abort(self) -> None:
        streams, self.streams = self.streams, None
        if streams is not None:
            streams[1].transport.abort()  # closes on the loop's next iteration

    async def in_thread(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(function, *args)

    async def run_concurrently(self, operations: Sequence[Operation[Any]], limit: int) -> list[Any]:
        semaphore = asyncio.Semaphore(limit)

        async def run(op: Operation[T]) -> T:
            async with semaphore:
                return await self.run_apart(op)

        return list(await asyncio.gather(*(run(op) for op in operations)))


async def _heard(reader: asyncio.StreamReader, phase: str) -> bytes:
    """What the server has sent and the stream already holds, without waiting: a ``Send`` with
    ``listen`` hands it back (a reply during the content, checklist C12).  ``read`` returns at
    once when data is buffered; otherwise the zero timeout cancels it on the next turn of the
    loop, which loses nothing."""
    try:
        async with asyncio.timeout(0):
            return await reader.read(RECEIVE_SIZE)
    except TimeoutError:
        return b""
    except OSError as exc:
        raise ConnectionLostError(phase, str(exc)) from None


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
    operation = delivery(message, sender, recipients, relay=relay, options=options)
    return await _Driver(ssl_context, resolver).run(operation)
