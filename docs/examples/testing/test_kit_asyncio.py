"""Testing asyncio code that sends mail, against the kit's scripted server.

``AsyncioScriptedServer`` serves as tasks of the running loop, next to the code under test:
its delays are the loop's sleeps, and leaving ``async with`` waits until the connection is
over.  No asyncio plugin is needed: the test runs its own loop.
"""

from __future__ import annotations

import asyncio
import ssl

from smtpproto.adapters.asyncio import SMTPClient
from smtpproto.testing import AsyncioScriptedServer, Delayed, TLSMaterial

from smtpproto import Reply, TLSMode


async def send_report(host: str, port: int, context: ssl.SSLContext, body: bytes) -> Reply:
    """The code under test: send a report over implicit TLS; the server's final reply."""
    async with await SMTPClient.connect(
        host, port, tls=TLSMode.IMPLICIT, server_hostname="localhost", ssl_context=context
    ) as client:
        result = await client.send_message(body, "reports@example.org", ["ops@example.net"])
    reply: Reply | None = result.data_reply
    assert reply is not None
    return reply


def test_a_slow_server_is_waited_for(smtp_certificates: TLSMaterial) -> None:
    server = AsyncioScriptedServer(
        {"DOT": Delayed(0.5, b"250 2.0.0 queued after a while\r\n")},
        tls_context=smtp_certificates.server_context(),
        implicit_tls=True,
    )

    async def main() -> None:
        async with server:
            context = smtp_certificates.client_context()
            host, port = server.address
            reply = await send_report(host, port, context, b"Subject: r\r\n\r\nok\r\n")
            assert reply.code == 250

    asyncio.run(main())
    assert server.record.tls
    assert server.record.messages == [b"Subject: r\r\n\r\nok\r\n"]
