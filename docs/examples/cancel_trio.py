"""Cancelling a trio SMTP operation closes the connection at once, without QUIT.

Run: python docs/examples/cancel_trio.py
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:  # mypy cannot follow the package-dir mapping: it knows adapters/ as "adapters"
    from adapters.trio import SMTPClient, TLSMode
else:
    from smtpproto.adapters.trio import SMTPClient, TLSMode


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
        # An outer cancel scope cancels the task; the client's own timeouts are far longer.
        with trio.move_on_after(0.2) as scope:
            await SMTPClient.connect("127.0.0.1", port, tls=TLSMode.NONE, local_hostname="me.test")
        print("cancelled while waiting for the greeting:", scope.cancelled_caught)
        # [/cancel]
        # The server's side runs in a thread, as it would elsewhere: a blocking call here would
        # stop the event loop that the application keeps running.
        closed = await trio.to_thread.run_sync(saw_close, silent)
        print("the server saw the connection closed:", closed)


if __name__ == "__main__":
    trio.run(main)
