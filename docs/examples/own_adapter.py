"""A complete smtpproto adapter over a plain socket: perform each I/O request, map the errors."""

import socket
import ssl
from typing import Any, TypeVar, cast

from local_server import PASSWORD, USERNAME, local_server

import smtpproto
from smtpproto._io import Close, Connect, IORequest, Receive, Send, StartTLSHandshake
from smtpproto._session import Operation

T = TypeVar("T")


class SocketDriver:
    def __init__(self, context: ssl.SSLContext) -> None:
        self.context, self.sock = context, socket.socket()

    def run(self, operation: Operation[T]) -> T:
        value: Any = None
        error: smtpproto.SMTPError | None = None
        while True:
            try:  # resume the operation with the last result, or with the last failure
                request = operation.throw(error) if error else operation.send(value)
            except StopIteration as stop:
                return cast(T, stop.value)
            value, error, phase = None, None, getattr(request, "phase", "TLS handshake")
            try:
                value = self.perform(request)
            except ssl.SSLError as exc:  # an OSError too: test it first
                error = smtpproto.TLSError(f"TLS handshake failed: {exc}")
            except OSError as exc:  # TimeoutError is one
                if isinstance(request, Connect):
                    error = smtpproto.ConnectError(request.host, request.port, str(exc))
                elif isinstance(exc, TimeoutError):
                    error = smtpproto.SMTPTimeoutError(phase, getattr(request, "timeout", None))
                else:
                    error = smtpproto.ConnectionLostError(phase, str(exc))

    def perform(self, request: IORequest) -> bytes | None:
        if isinstance(request, Connect):
            self.sock = socket.create_connection((request.host, request.port), request.timeout)
        elif isinstance(request, Send | Receive | StartTLSHandshake):
            self.sock.settimeout(request.timeout)
        elif isinstance(request, Close):
            self.sock.close()
        else:  # ResolveMX, ResolveAddresses: only delivery asks for DNS
            raise TypeError(f"this driver cannot perform {request!r}")
        if isinstance(request, StartTLSHandshake) or (
            isinstance(request, Connect) and request.implicit_tls
        ):
            if not request.verify:  # the built-in adapters then accept any certificate
                raise ssl.SSLError("this driver always verifies certificates")
            self.sock = self.context.wrap_socket(self.sock, server_hostname=request.server_hostname)
        if isinstance(request, Send):
            self.sock.sendall(request.data)
        return self.sock.recv(65536) if isinstance(request, Receive) else None  # b"": closed


if __name__ == "__main__":
    with local_server() as server:
        driver, session = SocketDriver(server.client_context), smtpproto.Session()
        driver.run(session.open(server.host, server.port, tls=smtpproto.TLSMode.STARTTLS))
        driver.run(session.authenticate(USERNAME, PASSWORD))
        body = b"Subject: own adapter\r\n\r\nHello.\r\n"
        result = driver.run(session.send_message(body, "alice@example.org", ["bob@example.net"]))
        driver.run(session.quit())
        print("delivered:", result.delivered, "stored:", [m.recipients for m in server.messages])
