"""The server's side of one connection of a :class:`~smtpproto.testing.ScriptedServer`.

A :class:`Peer` is what a callable action receives: it reads what the client sent (recorded as
it arrives) and writes whatever the test wants, well-formed or not.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import struct
import time
from typing import TYPE_CHECKING

from .records import ConnectionRecord

if TYPE_CHECKING:
    from .server import ScriptedServer

__all__ = ["DialogueEnded", "Peer"]

#: Longest command line the server accepts before it gives up on the client.
MAX_COMMAND_LINE = 1 << 20
RECEIVE_SIZE = 1 << 16


class DialogueEnded(Exception):
    """The dialogue is over (the client closed, or an action took the connection)."""


class Peer:
    """One accepted connection, for the dialogue and for custom actions."""

    def __init__(self, sock: socket.socket, record: ConnectionRecord, server: ScriptedServer):
        self.sock = sock
        self.record = record
        self.server = server
        self._buffer = bytearray()
        self._out = bytearray()
        self._write_closed = False
        sock.settimeout(server.io_timeout)
        # Replies are small and the client waits for each: no Nagle delay behind a delayed ACK.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # -- receiving ---------------------------------------------------------------------------

    def receive(self) -> bytes:
        """Whatever arrives next (recorded), after sending what is queued; ``b""`` at EOF."""
        self.flush()  # answer everything read so far before waiting for more (pipelining)
        try:
            data = self.sock.recv(RECEIVE_SIZE)
        except (ConnectionError, ssl.SSLError) as exc:
            self.record.errors.append(f"receive: {exc!r}")
            data = b""
        self.record.received += data
        if not data:
            self.record.eof = True
        return data

    def readline(self) -> bytes | None:
        """The next CRLF-terminated line, CRLF included; ``None`` at EOF."""
        while True:
            end = self._buffer.find(b"\r\n")
            if end >= 0:
                line = bytes(self._buffer[: end + 2])
                del self._buffer[: end + 2]
                return line
            if len(self._buffer) > MAX_COMMAND_LINE:
                raise DialogueEnded("line too long")
            data = self.receive()
            if not data:
                return None
            self._buffer += data

    def read_exactly(self, size: int) -> bytes | None:
        """``size`` octets (a BDAT chunk); ``None`` if EOF comes first."""
        while len(self._buffer) < size:
            data = self.receive()
            if not data:
                return None
            self._buffer += data
        chunk = bytes(self._buffer[:size])
        del self._buffer[:size]
        return chunk

    def take_buffered(self, wait: float = 0.0) -> bytes:
        """Everything buffered, plus whatever arrives within ``wait`` seconds (not blocking)."""
        deadline = time.monotonic() + wait
        while True:
            remaining = deadline - time.monotonic()
            readable, _, _ = select.select([self.sock], [], [], max(0.0, remaining))
            if not readable:
                break
            data = self.sock.recv(RECEIVE_SIZE)
            self.record.received += data
            self._buffer += data
            if not data:
                break
        taken = bytes(self._buffer)
        self._buffer.clear()
        return taken

    def drain(self) -> None:
        """Read and record until the client closes (``record.eof``) or ``io_timeout`` passes."""
        self.flush()
        self.record.received += self._buffer
        self._buffer.clear()
        self.sock.settimeout(self.server.io_timeout)
        while True:
            try:
                data = self.sock.recv(RECEIVE_SIZE)
            except TimeoutError:
                self.record.errors.append("drain: the client did not close its side")
                return
            except (ConnectionError, ssl.SSLError):
                data = b""  # a reset (or a TLS alert) ends it too: the client closed
            if not data:
                self.record.eof = True
                return
            self.record.received += data

    # -- sending -----------------------------------------------------------------------------

    def queue(self, data: bytes) -> None:
        """Send ``data`` with the next flush (replies to pipelined commands go together)."""
        self._out += data

    def flush(self) -> None:
        """Write what is queued."""
        if self._out and not self._write_closed:
            data, self._out = bytes(self._out), bytearray()
            self.send(data)

    def send(self, data: bytes) -> None:
        """Write ``data`` now, exactly as given.  A client that went away ends the dialogue."""
        try:
            self.sock.sendall(data)
        except OSError as exc:
            # A reset or a broken pipe means the client closed its socket (with data unread).
            self.record.eof = isinstance(exc, (BrokenPipeError, ConnectionResetError))
            raise DialogueEnded(f"send: {exc!r}") from None

    def half_close(self) -> None:
        """Close the sending side only (FIN), and keep reading."""
        self.flush()
        self._write_closed = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)

    def reset(self) -> None:
        """Abort the connection: a zero linger time makes the close send RST, not FIN."""
        self._write_closed = True
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close()

    # -- TLS -----------------------------------------------------------------------------------

    def start_tls(self) -> bool:
        """The server's side of a TLS handshake (after a 220 to STARTTLS, or at once with
        implicit TLS); False if it failed."""
        self.flush()
        context = self.server.tls_context
        if context is None:
            raise RuntimeError("the server has no tls_context")
        # A failed handshake closes the wrapped socket; a duplicate keeps the connection, so
        # that what the client does next (close, or talk in plaintext) is still observed.
        plain = self.sock.dup()
        try:
            with self.server.handshaking(self.record):
                self.sock = context.wrap_socket(self.sock, server_side=True)
        except (OSError, ssl.SSLError) as exc:
            self.record.handshake_error = repr(exc)
            self.sock = plain
            return False
        plain.close()
        self.record.tls = True
        return True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
