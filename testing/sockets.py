"""The socket-level faults all three drivers of the scripted server make the same way."""

from __future__ import annotations

import contextlib
import socket
import struct
from typing import Protocol

__all__ = ["arm_reset", "shut_sending_side"]


class _Socket(Protocol):  # socket.socket, asyncio's TransportSocket, trio's socket
    def shutdown(self, how: int, /) -> None: ...
    def setsockopt(self, level: int, option: int, value: bytes, /) -> None: ...


def shut_sending_side(sock: _Socket) -> None:
    """Send FIN and keep reading; a socket already gone is no error."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)


def arm_reset(sock: _Socket) -> None:
    """Make the next close send RST, not FIN: a zero linger time."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
