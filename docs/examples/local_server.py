"""A throw-away SMTP server on 127.0.0.1 for the documentation examples.

aiosmtpd runs in a thread and offers STARTTLS with a certificate from a private CA (trustme), then
AUTH PLAIN/LOGIN for one account.  Nothing here is part of smtpproto: it only gives the examples a
real server to talk to.  ``with local_server() as server:`` yields the port, a client
``ssl.SSLContext`` that trusts the private CA, and the messages the server stored.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

USERNAME = "alice"
PASSWORD = "correct horse"
#: The one address the server refuses, to show a per-recipient refusal.
REFUSED = "nobody@example.net"

# aiosmtpd logs a deprecation notice on every AUTH and a traceback for each failed handshake;
# neither is the examples' business.
logging.getLogger("mail.log").setLevel(logging.CRITICAL)


@dataclass
class Stored:
    """One message as the server received it."""

    sender: str
    recipients: list[str]
    content: bytes


@dataclass
class LocalServer:
    host: str
    port: int
    client_context: ssl.SSLContext
    messages: list[Stored] = field(default_factory=list)


class _Handler:
    def __init__(self, server: LocalServer) -> None:
        self.server = server

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address == REFUSED:
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        stored = Stored(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content)
        self.server.messages.append(stored)
        return "250 2.0.0 queued"


def _authenticate(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == USERNAME.encode()
    return AuthResult(success=ok and auth_data.password == PASSWORD.encode())


@contextmanager
def local_server() -> Iterator[LocalServer]:
    """Run the server for the duration of the ``with`` block."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    with socket.socket() as probe:  # aiosmtpd needs a concrete port: ask the kernel for a free one
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = LocalServer("127.0.0.1", port, client_context)
    controller = Controller(
        _Handler(server),
        hostname="127.0.0.1",
        port=port,
        server_hostname="mx.example.net",
        tls_context=server_context,
        authenticator=_authenticate,
    )
    controller.start()
    try:
        yield server
    finally:
        controller.stop()
