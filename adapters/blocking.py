"""smtpproto over blocking sockets.

A driver on the public contract of :mod:`smtpproto.driver`: it performs one request at a time,
and every SMTP decision is made by the operations of :class:`smtpproto.Session`.  Timeouts are
enforced with ``settimeout``.
"""

from __future__ import annotations

import concurrent.futures
import socket
import ssl
import time
from collections.abc import Iterable
from typing import Any, TypeVar

import dns.resolver

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
    FetchPolicy,
    LocalHostname,
    Now,
    Operation,
    PeerCertificates,
    Receive,
    ReplyClock,
    Request,
    ResolveAddresses,
    ResolveMX,
    ResolveTLSA,
    ResolveTXT,
    RunConcurrently,
    Send,
    StartTLSHandshake,
    drive,
)

from ._dns import resolve_sync
from ._net import (
    HANDSHAKE,
    RECEIVE_SIZE,
    client_context,
    connect_failed,
    connect_timed_out,
    handshake_refused,
    no_connection,
)
from ._secure import fetch_policy, policy_host, presented_chain, resolve_secure_sync
from ._sync_client import SyncSMTPClient
from .bodies import BODY_REQUESTS, perform_body_request

__all__ = ["Relay", "SMTPClient", "TLSMode", "TLSPolicy", "deliver"]

T = TypeVar("T")


class SMTPClient(SyncSMTPClient):
    """A blocking SMTP client.  Use :meth:`connect`, then the methods below, in a ``with`` block.

    Leaving the block sends QUIT and closes the connection.
    """

    def _make_driver(self, ssl_context: ssl.SSLContext | None) -> _Driver:
        return _Driver(ssl_context)


class _Driver:
    """Performs the I/O requests of one operation after another over one socket at a time."""

    def __init__(
        self, ssl_context: ssl.SSLContext | None, resolver: dns.resolver.Resolver | None = None
    ) -> None:
        self.ssl_context = ssl_context
        self.resolver = resolver
        self.sock: socket.socket | None = None
        self.clock = ReplyClock(time.monotonic)

    def run(self, op: Operation[T]) -> T:
        try:
            return drive(op, self.perform)
        except BaseException as exc:
            if not isinstance(exc, SMTPError):  # interrupted mid-exchange: the session is lost
                self.drop()
            raise

    def perform(self, request: Request) -> Any:
        if type(request) is Send:
            sock = self._socket(request.phase)
            try:
                sock.settimeout(request.timeout)
                sock.sendall(request.data)
                return _heard(sock) if request.listen else None
            except TimeoutError:
                raise SMTPTimeoutError(request.phase, request.timeout) from None
            except OSError as exc:
                raise ConnectionLostError(request.phase, str(exc)) from None
        if type(request) is Receive:
            sock = self._socket(request.phase)
            timeout = self.clock.remaining(request)
            try:
                if timeout is not None and timeout <= 0:
                    raise TimeoutError
                sock.settimeout(timeout)
                return sock.recv(RECEIVE_SIZE)
            except TimeoutError:
                raise SMTPTimeoutError(request.phase, request.timeout) from None
            except OSError as exc:
                raise ConnectionLostError(request.phase, str(exc)) from None
        if isinstance(request, BODY_REQUESTS):  # a ReadBody per chunk of a streamed body
            return perform_body_request(request)
        if isinstance(request, Connect):
            self.drop()
            self.sock = self._connect(request)
            return None
        if isinstance(request, StartTLSHandshake):
            # The plain socket stays current until the handshake is done, so an interruption
            # (Ctrl-C) closes it like any other; a failed handshake closes it itself.
            sock = self._socket("STARTTLS")
            self.sock = self._handshake(
                sock, request.server_hostname, request.verify, request.timeout
            )
            return None
        if isinstance(request, Close):
            self.drop()
            return None
        if isinstance(request, (ResolveMX, ResolveAddresses)):
            return resolve_sync(self.resolver, request)
        if isinstance(request, LocalHostname):
            return socket.getfqdn()
        if isinstance(request, RunConcurrently):
            with concurrent.futures.ThreadPoolExecutor(request.limit) as pool:
                return list(pool.map(self._run_apart, request.operations))
        if isinstance(request, (ResolveTLSA, ResolveTXT)):
            return resolve_secure_sync(self.resolver, request)
        if isinstance(request, FetchPolicy):
            host = resolve_sync(self.resolver, ResolveAddresses(policy_host(request)[0]))
            context = client_context(self.ssl_context, verify=True)
            return fetch_policy(request, host.addresses, context)
        if isinstance(request, PeerCertificates):
            tls = self.sock if isinstance(self.sock, ssl.SSLSocket) else None
            return presented_chain(tls)
        assert isinstance(request, Now), request
        return time.time()

    def _run_apart(self, op: Operation[T]) -> T:
        """Run ``op`` on a connection of its own."""
        driver = _Driver(self.ssl_context, self.resolver)
        try:
            return driver.run(op)
        finally:
            driver.drop()

    def _connect(self, request: Connect) -> socket.socket:
        try:
            # Tries every address the name resolves to, in the resolver's order.
            sock = socket.create_connection((request.host, request.port), request.timeout)
            # Commands and replies are small and alternate: Nagle's algorithm would hold a
            # short write back until the peer's delayed ACK (40 ms per message).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except TimeoutError:
            raise connect_timed_out(request) from None
        except OSError as exc:
            raise connect_failed(request, exc) from None
        if request.implicit_tls:
            server_hostname = request.server_hostname or request.host
            try:
                return self._handshake(sock, server_hostname, request.verify, request.timeout)
            except BaseException:
                sock.close()  # an interruption (Ctrl-C) must not leak the socket either
                raise
        return sock

    def _handshake(
        self, sock: socket.socket, server_hostname: str, verify: bool, timeout: float | None
    ) -> socket.socket:
        context = client_context(self.ssl_context, verify)
        try:
            sock.settimeout(timeout)
            return context.wrap_socket(sock, server_hostname=server_hostname)
        except (ssl.SSLError, ssl.CertificateError) as exc:
            sock.close()
            raise handshake_refused(server_hostname, exc) from None
        except TimeoutError:
            sock.close()
            raise SMTPTimeoutError(HANDSHAKE, timeout) from None
        except OSError as exc:
            sock.close()
            raise ConnectionLostError(HANDSHAKE, str(exc)) from None

    def _socket(self, phase: str) -> socket.socket:
        if self.sock is None:
            raise no_connection(phase)
        return self.sock

    def drop(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()


def _heard(sock: socket.socket) -> bytes:
    """What the server has sent and the kernel (or TLS) already holds, without waiting: a
    ``Send`` with ``listen`` hands it back (a reply during the content, checklist C12)."""
    sock.setblocking(False)  # the next request sets its own timeout again
    try:
        return sock.recv(RECEIVE_SIZE)
    except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
        return b""


def deliver(
    message: Body,
    sender: str | None = None,
    recipients: Iterable[str] | None = None,
    *,
    relay: Relay | None = None,
    options: DeliveryOptions | None = None,
    resolver: dns.resolver.Resolver | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> DeliveryReport:
    """Deliver ``message`` to every recipient, directly through their MX hosts or via ``relay``.

    Domains are delivered by up to ``options.concurrency`` threads.  ``resolver`` (a
    ``dns.resolver.Resolver``) lets tests point delivery at a local DNS server.
    """
    operation = delivery(message, sender, recipients, relay=relay, options=options)
    return _Driver(ssl_context, resolver).run(operation)
