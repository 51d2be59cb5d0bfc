"""The async ``SMTPClient`` API, shared by the asyncio and trio adapters.

Each public method runs one operation of :class:`smtpproto.Session` on the adapter's driver; an
adapter supplies only the driver and its event loop's ways of cancelling and offloading work.
"""

from __future__ import annotations

import abc
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable, Sequence
from types import TracebackType
from typing import Any, Generic, TypeVar

from smtpproto import (
    Body,
    BodyType,
    MessageOutcome,
    NotifyCondition,
    OutgoingMessage,
    RecipientResult,
    Reply,
    SendOptions,
    SendResult,
    SessionOptions,
    Timeouts,
    TLSMode,
)
from smtpproto.driver import Operation

from ._async_driver import AsyncDriver
from ._client_base import ClientBase

__all__ = ["AsyncSMTPClient", "Connecting"]

T = TypeVar("T")
C = TypeVar("C", bound="AsyncSMTPClient")


class AsyncSMTPClient(ClientBase[AsyncDriver]):
    """An async SMTP client.  Use :meth:`connect`, then the methods below, in ``async with``.

    Leaving the block sends QUIT and closes the connection (cancellation just closes it).
    """

    @classmethod
    def connect(
        cls: type[C],
        host: str,
        port: int | None = None,
        *,
        tls: TLSMode = TLSMode.STARTTLS,
        server_hostname: str | None = None,
        verify: bool = True,
        timeout: float | Timeouts | None = None,
        local_hostname: str | None = None,
        ssl_context: Any = None,
        options: SessionOptions | None = None,
    ) -> Connecting[C]:
        """Connect to ``host`` and open the session (greeting, EHLO, TLS as ``tls`` says).

        Use as ``client = await SMTPClient.connect(...)`` or ``async with SMTPClient.connect(...)
        as client:``.  ``port`` defaults to 465 for implicit TLS, 587 for STARTTLS, else 25.
        ``timeout`` (seconds for every phase, or :class:`~smtpproto.Timeouts`) and
        ``local_hostname`` (the EHLO name) override those of ``options``.
        """
        client = cls(
            cls._connect_options(options, timeout, local_hostname),
            ssl_context=ssl_context,
        )
        opening = functools.partial(
            client.open, host, port, tls=tls, server_hostname=server_hostname, verify=verify
        )
        return Connecting(client, opening)

    # -- what an adapter supplies ------------------------------------------------------------

    @staticmethod
    @abc.abstractmethod
    def _is_cancellation(exc: BaseException | None) -> bool:
        """Whether ``exc`` is the event loop's cancellation."""

    # -- the seed's operations ---------------------------------------------------------------

    async def open(
        self,
        host: str,
        port: int | None = None,
        *,
        tls: TLSMode = TLSMode.STARTTLS,
        server_hostname: str | None = None,
        verify: bool = True,
    ) -> Reply:
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
        *,
        options: SendOptions | None = None,
    ) -> SendResult:
        op = self._session.send_message(message, sender, recipients, options=options)
        return await self._run(op)

    async def send_messages(
        self, messages: Iterable[OutgoingMessage], *, quit: bool = False
    ) -> AsyncIterator[MessageOutcome]:
        """Send ``messages`` over this connection, pipelined across messages where the server
        allows it, and yield each one's outcome in order as it settles: a
        :class:`~smtpproto.SendResult`, or the error that stopped that message (the session
        goes on after a refusal; after a 421 or a lost connection, every message left gets an
        error).  ``quit=True`` sends QUIT with the last message and closes the connection.

        Leaving the loop early drops the connection if messages are in flight (close the
        iterator, with ``contextlib.aclosing``, to have that happen at once).
        """
        batch = self._session.send_messages(messages, quit=quit)
        try:
            while (outcome := await self._run(batch.next_outcome())) is not None:
                yield outcome
        finally:
            if not batch.finished:
                await self._run(batch.abandon())

    async def create_message(
        self,
        sender: str,
        *,
        size: int | None = None,
        body: BodyType | None = None,
        smtputf8: bool | None = None,
        options: SendOptions | None = None,
    ) -> Reply:
        op = self._session.create_message(
            sender, size=size, body=body, smtputf8=smtputf8, options=options
        )
        return await self._run(op)

    async def add_recipient(
        self,
        recipient: str,
        *,
        notify: Sequence[NotifyCondition] | None = None,
        orcpt: str | None = None,
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
            self._session.connection_lost()  # whatever happened: no connection from now on
            await self._driver.drop()

    async def __aenter__(self: C) -> C:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._is_cancellation(exc):
            self._session.connection_lost()  # first: closing in a cancelled scope may raise
            await self._driver.abort()  # no polite QUIT when the task is being cancelled
            return
        await self.disconnect()

    async def _run(self, op: Operation[T]) -> T:
        return await self._driver.run(op)


class Connecting(Generic[C]):
    """What ``SMTPClient.connect`` returns: await it, or use it in ``async with``."""

    def __init__(self, client: C, opening: Callable[[], Awaitable[Reply]]) -> None:
        self._client = client
        self._opening = opening

    async def _open(self) -> C:
        await self._opening()
        return self._client

    def __await__(self) -> Generator[Any, None, C]:
        return self._open().__await__()

    async def __aenter__(self) -> C:
        return await self._open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._client.__aexit__(exc_type, exc, tb)
