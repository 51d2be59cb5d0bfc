"""Drive smtpproto's protocol machine over a plain blocking socket, against a local aiosmtpd server.

This is the whole idea of a sans-I/O client in one page: the machine decides every byte, the loop
only moves bytes.  It starts an embedded SMTP server on 127.0.0.1, sends one message to two
recipients (the server refuses one), prints the transcript and the result for each recipient.

Run: python docs/examples/raw_socket_driver.py
"""

from __future__ import annotations

import socket
import sys
from typing import Any

from aiosmtpd.controller import Controller

import smtpproto

REFUSED = "nobody@example.net"


class Handler:
    """Accept every recipient except ``REFUSED``; keep what arrives."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address == REFUSED:
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 2.0.0 queued"


def main() -> int:
    handler = Handler()
    with socket.socket() as probe:  # aiosmtpd needs a concrete port: ask the kernel for a free one
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        return send("127.0.0.1", port, handler)
    finally:
        controller.stop()


def send(host: str, port: int, handler: Handler) -> int:
    conn = smtpproto.ClientConnection(local_hostname="client.example.org")
    sock = socket.create_connection((host, port), timeout=10)

    def write(event: smtpproto.Command) -> None:
        data = conn.send(event)
        for line in data.decode("utf-8", "replace").splitlines():
            print(f"C: {line}")
        sock.sendall(data)

    def read() -> smtpproto.Reply:
        while True:
            event = conn.next_event()
            if isinstance(event, smtpproto.Reply):
                for text in event.lines:
                    print(f"S: {event.code} {text}")
                return event
            if event is smtpproto.NEED_DATA:
                conn.receive_data(sock.recv(65536))
                continue
            raise RuntimeError(f"unexpected event {event!r}")

    read()  # the greeting
    write(smtpproto.Ehlo())
    read()
    recipients = ["alice@example.net", REFUSED]
    body = (
        b"From: me@example.org\nSubject: hello from smtpproto\n\n"
        b"A line.\n.A line starting with a dot.\n"
    )
    commands: list[smtpproto.Command] = [smtpproto.MailFrom("me@example.org", size=len(body))]
    commands += [smtpproto.RcptTo(rcpt) for rcpt in recipients]
    commands.append(smtpproto.Data())
    if conn.extensions.pipelining:  # the whole envelope in one round trip
        for command in commands:
            write(command)
        replies = [read() for _ in commands]
    else:  # one command, one reply
        replies = []
        for command in commands:
            write(command)
            replies.append(read())
    mail_reply, data_reply = replies[0], replies[-1]
    results = dict(zip(recipients, replies[1:-1], strict=True))
    final = None
    if mail_reply.is_positive and data_reply.is_intermediate:
        write(smtpproto.MessageData(body))
        write(smtpproto.EndOfMessage())
        final = read()
    write(smtpproto.Quit())
    read()
    sock.close()

    print("\nResult per recipient:")
    for rcpt, reply in results.items():
        delivered = reply.is_positive and final is not None and final.is_positive
        outcome = (
            "delivered" if delivered else ("temporary failure" if reply.is_transient else "failed")
        )
        shown = final if delivered and final is not None else reply
        print(f"  {rcpt:<22} {outcome:<18} {shown.code} {shown.text}")
    print(
        f"\nThe server stored {len(handler.messages)} message(s) for "
        f"{handler.messages[0][1] if handler.messages else []}"
    )
    return 0 if handler.messages else 1


if __name__ == "__main__":
    sys.exit(main())
