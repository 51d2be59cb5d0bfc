"""The server's side of one connection of the threaded :class:`~smtpproto.testing.ScriptedServer`.

A :class:`Peer` is what a callable action receives: it reads what the client sent (recorded as
it arrives) and writes whatever the test wants, well-formed or not.  It is also the threaded
driver of the dialogue: it performs the dialogue's requests on a blocking socket
(:mod:`smtpproto.testing.requests`), and its methods run the same generators the dialogue uses.
"""

from __future__ import annotations

import contextlib
import select
import socket
from typing import TYPE_CHECKING, TypeVar

from . import requests as rq
from .dialogue import MAX_COMMAND_LINE, Conversation
from .records import ConnectionRecord
from .requests import RECEIVE_SIZE, DialogueEnded, Effects, drive
from .sockets import arm_reset, shut_sending_side

if TYPE_CHECKING:
    from .server import ScriptedServer

__all__ = ["MAX_COMMAND_LINE", "RECEIVE_SIZE", "DialogueEnded", "Peer"]

T = TypeVar("T")


class Peer:
    """One accepted connection, for the dialogue and for custom actions."""

    def __init__(self, sock: socket.socket, record: ConnectionRecord, server: ScriptedServer):
        self.sock = sock
        self.record = record
        self.server = server
        self.conversation = Conversation(server, record)
        sock.settimeout(server.io_timeout)
        # Replies are small and the client waits for each: no Nagle delay behind a delayed ACK.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def run(self, effects: Effects[T]) -> T:
        """Perform ``effects`` (a piece of the dialogue) on this socket; their result."""
        return drive(effects, self)

    # -- receiving ---------------------------------------------------------------------------

    def receive(self) -> bytes:
        """Whatever arrives next (recorded), after sending what is queued; ``b""`` at EOF."""
        return self.run(self.conversation.receive())

    def readline(self) -> bytes | None:
        """The next CRLF-terminated line, CRLF included; ``None`` at EOF."""
        return self.run(self.conversation.readline())

    def read_exactly(self, size: int) -> bytes | None:
        """``size`` octets (a BDAT chunk); ``None`` if EOF comes first."""
        return self.run(self.conversation.read_exactly(size))

    def take_buffered(self, wait: float = 0.0) -> bytes:
        """Everything buffered, plus whatever arrives within ``wait`` seconds (not blocking)."""
        return self.run(self.conversation.take_buffered(wait))

    def drain(self) -> None:
        """Read and record until the client closes (``record.eof``) or ``io_timeout`` passes."""
        self.run(self.conversation.drain())

    # -- sending -----------------------------------------------------------------------------

    def queue(self, data: bytes) -> None:
        """Send ``data`` with the next flush (replies to pipelined commands go together)."""
        self.conversation.queue(data)

    def flush(self) -> None:
        """Write what is queued."""
        self.run(self.conversation.flush())

    def send(self, data: bytes) -> None:
        """Write ``data`` now, exactly as given.  A client that went away ends the dialogue."""
        self.run(self.conversation.send(data))

    def half_close(self) -> None:
        """Close the sending side only (FIN), and keep reading."""
        self.run(self.conversation.half_close())

    def reset(self) -> None:
        """Abort the connection: a zero linger time makes the close send RST, not FIN."""
        self.run(self.conversation.reset())

    def start_tls(self) -> bool:
        """The server's side of a TLS handshake (after a 220 to STARTTLS, or at once with
        implicit TLS); False if it failed."""
        return self.run(self.conversation.start_tls())

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    # -- the requests, on a blocking socket ----------------------------------------------------

    # Driver methods: one per request, named in rq.PERFORMED_BY.

    def _receive(self, request: rq.Receive) -> bytes:
        return self.sock.recv(RECEIVE_SIZE)

    def _poll(self, request: rq.Poll) -> bytes | None:
        readable, _, _ = select.select([self.sock], [], [], request.wait)
        return self.sock.recv(RECEIVE_SIZE) if readable else None

    def _write(self, request: rq.Write) -> None:
        self.sock.sendall(request.data)

    def _half_close(self, request: rq.HalfClose) -> None:
        shut_sending_side(self.sock)

    def _reset(self, request: rq.Reset) -> None:
        arm_reset(self.sock)
        self.close()

    def _pause(self, request: rq.Pause) -> None:
        self.server.stopping.wait(request.seconds)

    def _stall(self, request: rq.Stall) -> None:
        self.server.released.wait(request.limit)

    def _take_over(self, request: rq.TakeOver) -> None:
        request.action(self)

    def _handshake(self, request: rq.Handshake) -> None:
        context = self.server.tls_context
        assert context is not None  # the dialogue checked
        # A failed handshake closes the wrapped socket; a duplicate keeps the connection, so
        # that what the client does next (close, or talk in plaintext) is still observed.
        plain = self.sock.dup()
        try:
            with self.server.handshaking(self.record):
                self.sock = context.wrap_socket(self.sock, server_side=True)
        except OSError:
            self.sock = plain
            raise
        plain.close()
