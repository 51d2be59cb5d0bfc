"""Timeouts, errors and the transcript log, with the blocking adapter.

The ``# [name]`` ... ``# [/name]`` markers delimit the snippets that docs/adapters.rst shows.
Run: python docs/examples/errors_and_logging.py
"""

from __future__ import annotations

import logging
import socket
import sys
from typing import TYPE_CHECKING

from local_server import PASSWORD, REFUSED, USERNAME, local_server

import smtpproto

if TYPE_CHECKING:  # mypy cannot follow the package-dir mapping: it knows adapters/ as "adapters"
    from adapters.blocking import SMTPClient, TLSMode
else:
    from smtpproto.adapters.blocking import SMTPClient, TLSMode


def transcript() -> None:
    with local_server() as server:
        # [logging]
        logging.basicConfig(stream=sys.stdout, format="%(name)s: %(message)s")
        logging.getLogger("smtpproto.transcript").setLevel(logging.DEBUG)
        with SMTPClient.connect(
            server.host, server.port, ssl_context=server.client_context, local_hostname="me.test"
        ) as client:
            client.authenticate(USERNAME, PASSWORD)  # the log shows the mechanism, not secrets
            client.send_message(b"Subject: hi\r\n\r\nHello.\r\n", "a@me.test", ["b@example.net"])
        logging.getLogger("smtpproto.transcript").setLevel(logging.WARNING)
        # [/logging]


def errors() -> None:
    with local_server() as server:
        # [refused]
        with SMTPClient.connect(
            server.host, server.port, ssl_context=server.client_context, local_hostname="me.test"
        ) as client:
            try:
                client.send_message(b"Subject: hi\r\n\r\nHello.\r\n", "a@me.test", [REFUSED])
            except smtpproto.RecipientsRefused as exc:  # nobody accepted: nothing was sent
                for refused in exc.result:  # the same SendResult a success gives
                    reply = refused.rcpt_reply
                    print(
                        "refused:",
                        refused.recipient,
                        reply.code,
                        reply.enhanced_status,
                        exc.temporary,
                    )
            print("the session is still usable:", client.noop().code)
        # [/refused]

        # [tls]
        try:  # the default context does not trust the local server's private CA
            SMTPClient.connect(server.host, server.port, local_hostname="me.test")
        except smtpproto.TLSError as exc:
            print("TLSError:", "CERTIFICATE_VERIFY_FAILED" in str(exc), exc.temporary)
        # [/tls]

    # [timeout]
    with socket.socket() as silent:  # accepts connections (the kernel does) but never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        try:
            SMTPClient.connect(
                "127.0.0.1",
                silent.getsockname()[1],
                tls=TLSMode.NONE,
                timeout=smtpproto.Timeouts(greeting=0.2),  # phase by phase, or one number
                local_hostname="me.test",
            )
        except smtpproto.SMTPTimeoutError as exc:
            print("SMTPTimeoutError:", exc.phase, exc.timeout, exc.temporary)
    # [/timeout]

    # [connect]
    try:  # nothing listens there any more
        SMTPClient.connect("127.0.0.1", server.port, tls=TLSMode.NONE, local_hostname="me.test")
    except smtpproto.ConnectError as exc:
        print("ConnectError:", exc.port == server.port, exc.timed_out, exc.temporary)
    # [/connect]


if __name__ == "__main__":
    transcript()
    errors()
