"""A complete smtpproto driver over a plain socket: perform each request, map the errors."""

import socket
import ssl
from typing import Any

from local_server import PASSWORD, USERNAME, local_server
from smtpproto.adapters.bodies import perform_body_request

import smtpproto
import smtpproto.driver as d


class SocketDriver:
    def __init__(self, context: ssl.SSLContext) -> None:
        self.context, self.sock = context, socket.socket()

    def perform(self, request: d.Request) -> Any:
        """Do one request; a failure becomes the smtpproto error the operation expects."""
        if isinstance(request, d.OpenBody | d.ReadBody | d.CloseBody):  # a path, a file, a stream
            return perform_body_request(request)
        if isinstance(request, d.LocalHostname):  # the name for EHLO, none having been given
            return socket.getfqdn()
        phase = getattr(request, "phase", "TLS handshake")
        try:
            return self.do(request)
        except ssl.SSLError as exc:  # an OSError too: test it first
            raise smtpproto.TLSError(f"TLS handshake failed: {exc}") from None
        except OSError as exc:  # TimeoutError is one
            if isinstance(request, d.Connect):
                raise smtpproto.ConnectError(request.host, request.port, str(exc)) from None
            if isinstance(exc, TimeoutError):
                timeout = getattr(request, "timeout", None)
                raise smtpproto.SMTPTimeoutError(phase, timeout) from None
            raise smtpproto.ConnectionLostError(phase, str(exc)) from None

    def do(self, request: d.Request) -> bytes | None:
        if isinstance(request, d.Connect):
            self.sock = socket.create_connection((request.host, request.port), request.timeout)
        elif isinstance(request, d.Send | d.Receive | d.StartTLSHandshake):
            self.sock.settimeout(request.timeout)
        elif isinstance(request, d.Close):
            self.sock.close()
        else:  # ResolveMX, ResolveAddresses: only delivery asks for DNS
            raise TypeError(f"this driver cannot perform {request!r}")
        if isinstance(request, d.StartTLSHandshake | d.Connect) and (
            isinstance(request, d.StartTLSHandshake) or request.implicit_tls
        ):
            if not request.verify:  # the built-in adapters then accept any certificate
                raise ssl.SSLError("this driver always verifies certificates")
            self.sock = self.context.wrap_socket(self.sock, server_hostname=request.server_hostname)
        if isinstance(request, d.Send):
            self.sock.sendall(request.data)
        return self.sock.recv(65536) if isinstance(request, d.Receive) else None  # b"": closed


if __name__ == "__main__":
    with local_server() as server:
        driver, session = SocketDriver(server.client_context), smtpproto.Session()
        d.drive(
            session.open(server.host, server.port, tls=smtpproto.TLSMode.STARTTLS), driver.perform
        )
        d.drive(session.authenticate(USERNAME, PASSWORD), driver.perform)
        body = b"Subject: own adapter\r\n\r\nHello.\r\n"
        op = session.send_message(body, "alice@example.org", ["bob@example.net"])
        result = d.drive(op, driver.perform)
        d.drive(session.quit(), driver.perform)
        print("delivered:", result.delivered, "stored:", [m.recipients for m in server.messages])
