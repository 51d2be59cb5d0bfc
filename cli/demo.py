"""``smtpproto demo``: smtpproto at work in a few seconds, with no network and no configuration.

An embedded aiosmtpd server listens on 127.0.0.1 (a free port) and offers STARTTLS, with a
certificate from a throwaway CA made by trustme, then AUTH for one demo account.  The client
verifies that certificate (it trusts the throwaway CA, nothing is switched off), logs in, sends
one message with the staged API, one recipient being refused, and one with ``send_message``.
Each message the server receives is written to a temporary directory as a ``.eml`` file.
"""

from __future__ import annotations

import logging
import socket
import ssl
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smtpproto import SessionOptions

from .common import EXIT_OK, MissingExtra
from .output import TranscriptPrinter, print_report, transcript
from .send import result_report

if TYPE_CHECKING:  # mypy knows adapters/ as "adapters" (package-dir mapping)
    from adapters.blocking import SMTPClient, TLSMode
else:
    from smtpproto.adapters.blocking import SMTPClient, TLSMode

__all__ = ["DEMO_PASSWORD", "DEMO_USER", "REFUSED", "run_demo"]

DEMO_USER = "demo"
#: Never printed: the transcript shows ``AUTH PLAIN <credentials hidden>``.
DEMO_PASSWORD = "correct-horse-battery-staple"
#: The one address the demo server refuses, to show a per-recipient result.
REFUSED = "nobody@example.net"
SENDER = "alice@example.org"
SERVER_NAME = "mx.demo.test"


@dataclass
class _Mailbox:
    """Where the server writes what it receives; written from the server's thread."""

    directory: Path
    stored: list[tuple[Path, str, list[str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def store(self, sender: str, recipients: list[str], content: bytes) -> Path:
        with self.lock:
            path = self.directory / f"message-{len(self.stored) + 1}.eml"
            path.write_bytes(content)
            self.stored.append((path, sender, recipients))
            return path


class _Handler:
    """aiosmtpd hooks: refuse :data:`REFUSED`, store everything else."""

    def __init__(self, mailbox: _Mailbox) -> None:
        self.mailbox = mailbox

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address.lower() == REFUSED:
            return "550 5.1.1 <nobody@example.net>: no such user here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        path = self.mailbox.store(
            envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content
        )
        return f"250 2.0.0 stored as {path.name}"


def _authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
    from aiosmtpd.smtp import AuthResult, LoginPassword  # noqa: PLC0415 -- optional dependency

    ok = (
        isinstance(data, LoginPassword)
        and data.login == DEMO_USER.encode()
        and data.password == DEMO_PASSWORD.encode()
    )
    return AuthResult(success=ok)


@contextmanager
def demo_server(mailbox: _Mailbox) -> Iterator[tuple[int, ssl.SSLContext]]:
    """Run the server; yields its port and a client context that trusts its throwaway CA."""
    try:
        import trustme  # noqa: PLC0415 -- the demo extra
        from aiosmtpd.controller import Controller  # noqa: PLC0415
    except ImportError:
        raise MissingExtra(
            "the demo needs aiosmtpd and trustme: pip install 'smtpproto-sansio[demo]'"
        ) from None
    # aiosmtpd logs every connection, and a traceback for a refused handshake: not our story.
    logging.getLogger("mail.log").setLevel(logging.CRITICAL)
    ca = trustme.CA(organization_name="smtpproto demo CA (throwaway)")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    with socket.socket() as spare:  # aiosmtpd wants a concrete port: take one the kernel says
        spare.bind(("127.0.0.1", 0))
        port = spare.getsockname()[1]
    controller = Controller(
        _Handler(mailbox),
        hostname="127.0.0.1",
        port=port,
        server_hostname=SERVER_NAME,
        tls_context=server_context,
        authenticator=_authenticate,
        auth_require_tls=True,  # AUTH is offered only once STARTTLS has protected the session
    )
    controller.start()
    try:
        yield port, client_context
    finally:
        controller.stop()


def _staged_message() -> bytes:
    return (
        f"From: Alice <{SENDER}>\r\n"
        "To: Bob <bob@example.net>, Carol <carol@example.org>\r\n"
        "Subject: sent with the staged API\r\n"
        "\r\n"
        "create_message, add_recipient for each recipient, append_message, close_message.\r\n"
    ).encode()


def _whole_message() -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"Alice <{SENDER}>"
    message["To"] = "Bob <bob@example.net>, Carol <carol@example.org>"
    message["Subject"] = "sent with send_message"
    message.set_content("The envelope comes from the From and To headers.\n")
    return message


def run_demo(*, color: bool, fancy: bool) -> int:
    printer = TranscriptPrinter(color=color)
    directory = Path(tempfile.mkdtemp(prefix="smtpproto-demo-"))
    mailbox = _Mailbox(directory)
    with demo_server(mailbox) as (port, client_context):
        print(f"smtpproto demo: an SMTP server is listening on 127.0.0.1 port {port}.")
        print("It offers STARTTLS (a certificate from a throwaway CA that only this demo")
        print(f"trusts, and the client verifies it) and AUTH for the user {DEMO_USER!r}.")
        print()
        with transcript(printer):
            printer.note(f"connecting to 127.0.0.1 port {port}, STARTTLS required")
            with SMTPClient.connect(
                "127.0.0.1",
                port,
                tls=TLSMode.STARTTLS,
                ssl_context=client_context,
                options=SessionOptions(local_hostname="client.demo.test"),
            ) as client:
                client.authenticate(DEMO_USER, DEMO_PASSWORD)
                tls, verified = client.tls_active, client.tls_verified
                printer.note("1. the staged API: one recipient will be refused")
                client.create_message(SENDER)
                for recipient in ("bob@example.net", REFUSED, "carol@example.org"):
                    client.add_recipient(recipient)
                client.append_message(_staged_message())
                staged = client.close_message()
                printer.note("2. send_message: sender and recipients from the headers")
                whole = client.send_message(_whole_message())
        for title, result in (
            ("create_message ... close_message", staged),
            ("send_message", whole),
        ):
            print()
            print(f"Result of {title}:")
            report = result_report("127.0.0.1", result, tls=tls, tls_verified=verified)
            print_report(report, color=color, fancy=fancy)
    print()
    print(f"The server stored {len(mailbox.stored)} messages in {directory}:")
    for path, sender, recipients in mailbox.stored:
        print(f"  {path}  (from {sender} to {', '.join(recipients)})")
    return EXIT_OK
