"""smtpproto over blocking sockets.

The driver loop performs the I/O requests of :mod:`smtpproto._io`; every SMTP decision is made
by the operations in :mod:`smtpproto._session`.  Timeouts are enforced with ``settimeout``.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any, TypeVar

from smtpproto import (
    Body,
    ConnectError,
    ConnectionLostError,
    Extensions,
    Limits,
    RecipientResult,
    Reply,
    SendResult,
    SMTPError,
    SMTPTimeoutError,
    TLSError,
    TLSMode,
)
from smtpproto._io import (
    Close,
    Connect,
    IORequest,
    Receive,
    Send,
    StartTLSHandshake,
)
from smtpproto._session import Operation, Session

from ._tls import client_context

__all__ = ["SMTPClient", "TLSMode"]

T = TypeVar("T")
RECEIVE_SIZE = 1 << 16


class SMTPClient:
    """A blocking SMTP client.  Use :meth:`connect`, then the methods below, in a ``with`` block.

    Leaving the block sends QUIT and closes the connection.
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
        self._session = Session(
            local_hostname=local_hostname or socket.getfqdn(),
            lmtp=lmtp,
            limits=limits,
            timeouts=timeouts,
            connect_timeout=connect_timeout,
        )
        self._ssl_context = ssl_context
        self._sock: socket.socket | None = None

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
    ) -> SMTPClient:
        """Connect to ``host`` and open the session (greeting, EHLO, TLS as ``tls`` says).

        ``port`` defaults to 465 for implicit TLS, 587 for STARTTLS, else 25.
        """
        client = cls(**options)
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
        **options: Any,
    ) -> SendResult:
        return self._run(self._session.send_message(message, sender, recipients, **options))

    def create_message(self, sender: str, **options: Any) -> Reply:
        return self._run(self._session.create_message(sender, **options))

    def add_recipient(
        self, recipient: str, *, notify: Sequence[Any] | None = None, orcpt: str | None = None
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

    @property
    def extensions(self) -> Extensions:
        return self._session.conn.extensions

    @property
    def tls_active(self) -> bool:
        return self._session.tls_active

    @property
    def tls_verified(self) -> bool:
        return self._session.tls_verified

    def __enter__(self) -> SMTPClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.disconnect()

    # -- the driver loop -------------------------------------------------------------------

    def _run(self, op: Operation[T]) -> T:
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
                    value = self._perform(request)
                except SMTPError as exc:
                    error = exc
        except BaseException as exc:
            if not isinstance(exc, SMTPError):  # interrupted mid-exchange: the session is lost
                self._drop()
            raise

    def _perform(self, request: IORequest) -> Any:
        if isinstance(request, Send):
            sock = self._socket()
            try:
                sock.settimeout(request.timeout)
                sock.sendall(request.data)
            except TimeoutError:
                raise SMTPTimeoutError(request.phase, request.timeout) from None
            except OSError as exc:
                raise ConnectionLostError(request.phase, str(exc)) from None
            return None
        if isinstance(request, Receive):
            sock = self._socket()
            try:
                sock.settimeout(request.timeout)
                return sock.recv(RECEIVE_SIZE)
            except TimeoutError:
                raise SMTPTimeoutError(request.phase, request.timeout) from None
            except OSError as exc:
                raise ConnectionLostError(request.phase, str(exc)) from None
        if isinstance(request, Connect):
            self._sock = self._connect(request)
            return None
        if isinstance(request, StartTLSHandshake):
            self._sock = self._handshake(
                self._socket(), request.server_hostname, request.verify, request.timeout
            )
            return None
        if isinstance(request, Close):
            self._drop()
            return None
        raise TypeError(f"the blocking SMTP client cannot perform {request!r}")

    def _connect(self, request: Connect) -> socket.socket:
        try:
            # Tries every address the name resolves to, in the resolver's order.
            sock = socket.create_connection((request.host, request.port), request.timeout)
        except TimeoutError:
            raise ConnectError(request.host, request.port, "timed out", timed_out=True) from None
        except OSError as exc:
            raise ConnectError(request.host, request.port, exc.strerror or str(exc)) from None
        if request.implicit_tls:
            server_hostname = request.server_hostname or request.host
            return self._handshake(sock, server_hostname, request.verify, request.timeout)
        return sock

    def _handshake(
        self, sock: socket.socket, server_hostname: str, verify: bool, timeout: float | None
    ) -> socket.socket:
        context = client_context(self._ssl_context, verify)
        try:
            sock.settimeout(timeout)
            return context.wrap_socket(sock, server_hostname=server_hostname)
        except (ssl.SSLError, ssl.CertificateError) as exc:
            sock.close()
            raise TLSError(f"TLS handshake with {server_hostname} failed: {exc}") from None
        except TimeoutError:
            sock.close()
            raise SMTPTimeoutError("TLS handshake", timeout) from None
        except OSError as exc:
            sock.close()
            raise ConnectionLostError("TLS handshake", str(exc)) from None

    def _socket(self) -> socket.socket:
        if self._sock is None:
            raise ConnectionLostError("I/O", "the connection is closed")
        return self._sock

    def _drop(self) -> None:
        sock, self._sock = self._sock, None
        self._session.closed = True
        if sock is not None:
            sock.close()
