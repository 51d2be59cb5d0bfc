"""smtpproto over asyncio streams.

The driver loop performs the I/O requests of :mod:`smtpproto._io`; every SMTP decision is made
by the operations in :mod:`smtpproto._session`.  Timeouts are enforced per request with
``asyncio.timeout`` (``asyncio.wait_for`` on Python 3.10).  A client serves one task at a time.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
import sys
from collections.abc import Awaitable, Callable, Generator, Iterable, Sequence
from types import TracebackType
from typing import Any, TypeVar

import dns.asyncresolver

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
# How long a graceful close (TLS close_notify) may take before the transport is aborted.
CLOSE_GRACE = 5.0


class SMTPClient:
    """An asyncio SMTP client.  Use :meth:`connect`, then the methods below, in ``async with``.

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
            loop = asyncio.get_running_loop()
            self._local_hostname = await loop.run_in_executor(None, socket.getfqdn)
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
        if isinstance(exc, asyncio.CancelledError):
            self._session.closed = True
            self._driver.abort()  # no polite QUIT when the task is being cancelled
            return
        await self.disconnect()

    async def _run(self, op: Operation[T]) -> T:
        try:
            return await self._driver.run(op)
        finally:
            if self._driver.streams is None:
                self._session.closed = True

    async def _drop(self) -> None:
        self._session.closed = True
        await self._driver.drop()


class _Driver:
    """Performs the I/O requests of one operation after another over one connection at a time."""

    def __init__(
        self,
        ssl_context: ssl.SSLContext | None,
        resolver: dns.asyncresolver.Resolver | None = None,
    ) -> None:
        self.ssl_context = ssl_context
        self.resolver = resolver
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
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
                self.abort()
            raise

    async def perform(self, request: IORequest) -> Any:
        if isinstance(request, Send):
            writer = self._streams(request.phase)[1]
            try:
                writer.write(request.data)
                await _within(request.timeout, _drain(writer))
            except TimeoutError:
                raise SMTPTimeoutError(request.phase, request.timeout) from None
            except OSError as exc:
                raise ConnectionLostError(request.phase, str(exc)) from None
            return None
        if isinstance(request, Receive):
            reader = self._streams(request.phase)[0]
            try:
                return await _within(request.timeout, reader.read(RECEIVE_SIZE))
            except TimeoutError:
                raise SMTPTimeoutError(request.phase, request.timeout) from None
            except OSError as exc:
                raise ConnectionLostError(request.phase, str(exc)) from None
        if isinstance(request, Connect):
            self.abort()
            self.streams = await self._connect(request)
            self.failed = False
            return None
        if isinstance(request, StartTLSHandshake):
            # The plain stream stays current until the handshake is done: an interruption
            # (cancellation) then aborts it like any other.
            reader, writer = self._streams("STARTTLS")
            writer = await self._handshake(
                reader, writer, request.server_hostname, request.verify, request.timeout
            )
            self.streams = reader, writer
            return None
        if isinstance(request, Close):
            if self.failed:  # a connection that failed a request is not worth a goodbye
                self.abort()
            else:
                await self.drop()
            return None
        return await resolve_async(self.resolver, request, "asyncio")

    async def _connect(self, request: Connect) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        context = None
        server_hostname = None
        if request.implicit_tls:
            context = client_context(self.ssl_context, request.verify)
            server_hostname = request.server_hostname or request.host
        try:
            # Tries every address the name resolves to, IPv6 and IPv4, racing them (RFC 8305).
            return await _within(
                request.timeout,
                asyncio.open_connection(
                    request.host,
                    request.port,
                    ssl=context,
                    server_hostname=server_hostname,
                    happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY,
                ),
            )
        except (ssl.SSLError, ssl.CertificateError) as exc:
            raise TLSError(f"TLS handshake with {server_hostname} failed: {exc}") from None
        except TimeoutError:
            raise ConnectError(request.host, request.port, "timed out", timed_out=True) from None
        except OSError as exc:
            raise ConnectError(request.host, request.port, exc.strerror or str(exc)) from None

    async def _handshake(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        server_hostname: str,
        verify: bool,
        timeout: float | None,
    ) -> asyncio.StreamWriter:
        context = client_context(self.ssl_context, verify)
        try:
            return await _within(timeout, _start_tls(reader, writer, context, server_hostname))
        except (ssl.SSLError, ssl.CertificateError) as exc:
            writer.transport.abort()
            raise TLSError(f"TLS handshake with {server_hostname} failed: {exc}") from None
        except TimeoutError:
            writer.transport.abort()
            raise SMTPTimeoutError("TLS handshake", timeout) from None
        except OSError as exc:
            writer.transport.abort()
            raise ConnectionLostError("TLS handshake", str(exc)) from None

    def _streams(self, phase: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.streams is None:
            raise ConnectionLostError(phase, "the connection is closed")
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

    def abort(self) -> None:
        """Close at once, without waiting: for cancellation and unexpected errors."""
        streams, self.streams = self.streams, None
        if streams is not None:
            streams[1].transport.abort()


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


async def _within(timeout: float | None, awaitable: Awaitable[T]) -> T:
    """Await ``awaitable`` for at most ``timeout`` seconds (``None``: no limit).

    Raises the built-in ``TimeoutError`` on every supported Python version.
    """
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(timeout):
            return await awaitable
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except asyncio.TimeoutError:  # a distinct class before 3.11
        raise TimeoutError from None


async def _drain(writer: asyncio.StreamWriter) -> None:
    """Wait until the write buffer is low again, and always let other tasks run.

    ``drain()`` returns at once while the buffer is below its limit, so a long message sent
    to a fast reader would otherwise hold the event loop (and not see cancellation) throughout.
    """
    await writer.drain()
    await asyncio.sleep(0)


async def _start_tls(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    context: ssl.SSLContext,
    server_hostname: str,
) -> asyncio.StreamWriter:
    """Upgrade the stream to TLS; returns the writer to use from now on."""
    if sys.version_info >= (3, 11):
        await writer.start_tls(context, server_hostname=server_hostname)
        return writer
    # Python 3.10 has no StreamWriter.start_tls: wrap the transport, then a new writer over it.
    loop = asyncio.get_running_loop()
    protocol = writer.transport.get_protocol()
    await writer.drain()
    transport = await loop.start_tls(
        writer.transport, protocol, context, server_hostname=server_hostname
    )
    assert transport is not None  # None only for a server-side upgrade that was refused
    return asyncio.StreamWriter(transport, protocol, reader, loop)


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

    Domains are delivered concurrently, at most ``concurrency`` at a time.  ``resolver`` (a
    ``dns.asyncresolver.Resolver``) and ``port`` let tests point delivery at local servers;
    further keyword ``options`` go to :class:`~smtpproto.DeliveryOptions`.
    """
    if local_hostname is None:
        local_hostname = await asyncio.get_running_loop().run_in_executor(None, socket.getfqdn)
    settings = DeliveryOptions(
        port=port,
        local_hostname=local_hostname,
        tls_policy=tls_policy or TLSPolicy(),
        timeouts=timeouts,
        connect_timeout=connect_timeout,
        **options,
    )
    job = DeliveryJob(message, sender, recipients, relay=relay, options=settings)
    limit = asyncio.Semaphore(max(1, concurrency) if job.concurrent else 1)

    async def run(op: Operation[list[RecipientOutcome]]) -> list[RecipientOutcome]:
        async with limit:
            driver = _Driver(ssl_context, resolver)
            try:
                return await driver.run(op)
            finally:
                await driver.drop()

    return job.report(await asyncio.gather(*(run(op) for op in job.operations())))
