"""What the asyncio and trio drivers share: every request but moving bytes.

A driver of an event loop performs ``Send`` and ``Receive`` itself (its fast path), and supplies
connecting, the TLS upgrade, closing, a worker thread and running operations side by side; the
rest of the contract of :mod:`smtpproto.driver` (DNS, the local host name, bodies, ``Close``, what
an interruption does) is done here once.
"""

from __future__ import annotations

import abc
import socket
import ssl
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar

import dns.asyncresolver

from smtpproto import SMTPError
from smtpproto.driver import (
    Close,
    Connect,
    LocalHostname,
    Operation,
    Receive,
    Request,
    ResolveAddresses,
    ResolveMX,
    RunConcurrently,
    Send,
    StartTLSHandshake,
    drive_async,
)

from ._dns import resolve_async
from .bodies import perform_body_request

__all__ = ["AsyncDriver"]

T = TypeVar("T")


class AsyncDriver(abc.ABC):
    """Performs the requests of one operation after another over one connection at a time."""

    #: The event loop's name, as dnspython's async backends know it.
    library: ClassVar[str]

    def __init__(
        self,
        ssl_context: ssl.SSLContext | None,
        resolver: dns.asyncresolver.Resolver | None = None,
    ) -> None:
        self.ssl_context = ssl_context
        self.resolver = resolver

    async def run(self, op: Operation[T]) -> T:
        try:
            return await drive_async(op, self.perform)
        except BaseException as exc:
            if not isinstance(exc, SMTPError):  # cancelled or failed mid-exchange: session lost
                await self.abort()
            raise

    async def perform(self, request: Request) -> Any:
        """Every request but ``Send`` and ``Receive``, which a subclass serves first."""
        if isinstance(request, Connect):
            await self.abort()
            await self.connect(request)
            return None
        if isinstance(request, StartTLSHandshake):
            await self.start_tls(request)
            return None
        if isinstance(request, Close):
            # Only after QUIT was answered is a TLS close_notify worth the wait.
            await (self.drop() if request.graceful else self.abort())
            return None
        if isinstance(request, (ResolveMX, ResolveAddresses)):
            return await resolve_async(self.resolver, request, self.library)
        if isinstance(request, RunConcurrently):
            return await self.run_concurrently(request.operations, request.limit)
        # The local name may ask DNS, and reading a file or a pipe may block: off the loop.
        if isinstance(request, LocalHostname):
            return await self.in_thread(socket.getfqdn)
        assert not isinstance(request, (Send, Receive))  # the subclass's fast path
        return await self.in_thread(perform_body_request, request)

    async def run_apart(self, op: Operation[T]) -> T:
        """Run ``op`` on a connection of its own."""
        driver = type(self)(self.ssl_context, self.resolver)
        try:
            return await driver.run(op)
        finally:
            await driver.drop()

    @property
    @abc.abstractmethod
    def connected(self) -> bool:
        """Whether a connection is open."""

    @abc.abstractmethod
    async def connect(self, request: Connect) -> None:
        """Open the connection (and do an implicit TLS handshake), or raise ``ConnectError``."""

    @abc.abstractmethod
    async def start_tls(self, request: StartTLSHandshake) -> None:
        """Upgrade the open connection to TLS."""

    @abc.abstractmethod
    async def drop(self) -> None:
        """Close gracefully (TLS sends close_notify), forcefully if that stalls."""

    @abc.abstractmethod
    async def abort(self) -> None:
        """Close at once: for cancellation and unexpected errors."""

    @abc.abstractmethod
    async def in_thread(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` in a worker thread."""

    @abc.abstractmethod
    async def run_concurrently(self, operations: Sequence[Operation[Any]], limit: int) -> list[Any]:
        """Each operation with :meth:`run_apart`, at most ``limit`` at a time; results in order."""
