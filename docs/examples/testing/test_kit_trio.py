"""Testing trio code that sends mail, against the kit's scripted server.

``TrioScriptedServer`` serves in a nursery of its own inside ``async with``, as trio tasks.
The test runs ``trio.run`` itself; with pytest-trio, write ``@pytest.mark.trio async def
test_...`` instead.
"""

from __future__ import annotations

import trio
from smtpproto.adapters.trio import SMTPClient
from smtpproto.testing import TrioScriptedServer

from smtpproto import TLSMode


async def send_with_chunking(host: str, port: int, body: bytes) -> None:
    async with await SMTPClient.connect(host, port, tls=TLSMode.NONE) as client:
        await client.send_message(body, "a@example.org", ["b@example.net"])


def test_bdat_is_used_when_the_server_offers_chunking() -> None:
    server = TrioScriptedServer(chunking=True)

    async def main() -> None:
        async with server:
            host, port = server.address
            await send_with_chunking(host, port, b"Subject: c\r\n\r\nbinary-safe\r\n")

    trio.run(main)
    record = server.record
    assert record.verbs == ["EHLO", "MAIL", "RCPT", "BDAT", "QUIT"]
    assert record.messages == [b"Subject: c\r\n\r\nbinary-safe\r\n"]
