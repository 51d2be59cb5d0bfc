"""Cancelling an asyncio SMTP operation closes the connection at once, without QUIT.

Run: python docs/examples/cancel_asyncio.py
"""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # mypy cannot follow the package-dir mapping: it knows adapters/ as "adapters"
    from adapters.asyncio import SMTPClient, TLSMode
else:
    from smtpproto.adapters.asyncio import SMTPClient, TLSMode


def saw_close(listener: socket.socket) -> bool:
    """Accept the client's connection and tell whether it is closed (EOF), waiting at most 5 s."""
    listener.settimeout(5)
    connection, _ = listener.accept()
    with connection:
        connection.settimeout(5)
        return connection.recv(100) == b""


async def main() -> None:
    with socket.socket() as silent:  # accepts connections (the kernel does) but never speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        # [cancel]
        try:
            # An outer deadline cancels the task; the client's own timeouts are far longer.
            await asyncio.wait_for(
                SMTPClient.connect("127.0.0.1", port, tls=TLSMode.NONE, local_hostname="me.test"),
                timeout=0.2,
            )
        except TimeoutError:
            print("cancelled while waiting for the greeting")
        # [/cancel]
        # The server's side runs in a thread, as it would elsewhere: asyncio closes an aborted
        # transport's socket on the loop's next iteration, which a blocking call here would stop.
        closed = await asyncio.to_thread(saw_close, silent)
        print("the server saw the connection closed:", closed)


if __name__ == "__main__":
    asyncio.run(main())
