"""The blocking ``SMTPClient`` API, over any driver that performs requests synchronously.

Each public method runs one operation of :class:`smtpproto.Session` on the adapter's driver; the
blocking adapter supplies only the driver.  (The async twin is :mod:`._async_client`.)
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Iterator, Sequence
from types import TracebackType
from typing import Protocol, Self, TypeVar

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

from ._client_base import ClientBase

__all__ = ["SyncDriver", "SyncSMTPClient"]

T = TypeVar("T")


class SyncDriver(Protocol):
    """What a synchronous driver offers the client."""

    def run(self, op: Operation[T]) -> T: ...

    def drop(self) -> None: ...


class SyncSMTPClient(ClientBase[SyncDriver]):
    """A blocking SMTP client.  Use :meth:`connect`, then the methods below, in a ``with`` block.

    Leaving the block sends QUIT and closes the connection.
    """

    @classmethod
    def connect(
        cls,
        host: str,
        port: int | None = None,
        *,
        tls: TLSMode = TLSMode.STARTTLS,
        server_hostname: str | None = None,
        verify: bool = True,
        timeout: float | Timeouts | None = None,
        local_hostname: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        options: SessionOptions | None = None,
    ) -> Self:
        """Connect to ``host`` and open the session (greeting, EHLO, TLS as ``tls`` says).

        ``port`` defaults to 465 for implicit TLS, 587 for STARTTLS, else 25.  ``timeout``
        (seconds for every phase, or :class:`~smtpproto.Timeouts`) overrides that of
        ``options``.
        """
        client = cls(
            cls._connect_options(options, timeout, local_hostname),
            ssl_context=ssl_context,
        )
        client.open(host, port, tls=tls, server_hostname=server_hostname, verify=verify)
        return client

    # -- the seed's operations -----------------------------------------------------------------

    def open(
        self,
        host: str,
        port: int | None = None,
        *,
        tls: TLSMode = TLSMode.STARTTLS,
        server_hostname: str | None = None,
        verify: bool = True,
    ) -> Reply:
        return self._run(
            self._session.open(host, port, tls=tls, server_hostname=server_hostname, verify=verify)
        )

    def authenticate(
        self,
        username: str,
        password: str | None = None,
        *,
        token: str | None = None,
        mechanism: str | None = None,
        allow_cleartext: bool = False,
    ) -> Reply:
        return self._run(
            self._session.authenticate(
                username,
                password,
                token=token,
                mechanism=mechanism,
                allow_cleartext=allow_cleartext,
            )
        )

    def send_message(
        self,
        message: Body,
        sender: str | None = None,
        recipients: Iterable[str] | None = None,
        *,
        options: SendOptions | None = None,
    ) -> SendResult:
        return self._run(self._session.send_message(message, sender, recipients, options=options))

    def send_messages(
        self, messages: Iterable[OutgoingMessage], *, quit: bool = False
    ) -> Iterator[MessageOutcome]:
        """Send ``messages`` over this connection, pipelined across messages where the server
        allows it, and yield each one's outcome in order as it settles: a
        :class:`~smtpproto.SendResult`, or the error that stopped that message (the session
        goes on after a refusal; after a 421 or a lost connection, every message left gets an
        error).  ``quit=True`` sends QUIT with the last message and closes the connection.

        Leaving the loop early drops the connection if messages are in flight.
        """
        batch = self._session.send_messages(messages, quit=quit)
        try:
            while (outcome := self._run(batch.next_outcome())) is not None:
                yield outcome
        finally:
            if not batch.finished:
                self._run(batch.abandon())

    def create_message(
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
        return self._run(op)

    def add_recipient(
        self,
        recipient: str,
        *,
        notify: Sequence[NotifyCondition] | None = None,
        orcpt: str | None = None,
    ) -> RecipientResult:
        return self._run(self._session.add_recipient(recipient, notify=notify, orcpt=orcpt))

    def append_message(self, content: Body) -> None:
        self._run(self._session.append_message(content))

    def close_message(self) -> SendResult:
        return self._run(self._session.close_message())

    def reset(self) -> Reply:
        return self._run(self._session.reset())

    def noop(self) -> Reply:
        return self._run(self._session.noop())

    def verify(self, address: str) -> Reply:
        return self._run(self._session.verify(address))

    def disconnect(self) -> None:
        """QUIT and close.  Safe to call more than once."""
        try:
            self._run(self._session.quit())
        finally:
            self._drop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.disconnect()

    def _run(self, op: Operation[T]) -> T:
        return self._driver.run(op)

    def _drop(self) -> None:
        self._driver.drop()
        self._session.connection_lost()
