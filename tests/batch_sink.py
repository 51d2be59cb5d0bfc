"""A one-connection SMTP sink that records every read, for the tests of ``send_messages``.

Each ``recv()`` the server makes is kept in :attr:`BatchSink.reads`, so a test sees how the client
grouped its writes: on loopback, a client that waits for replies between writes has each write
arrive as one read (the messages here are small).  Replies to everything complete in the buffer go
out together, after the buffer is used up, as a pipelining server's do.

``plan`` answers a given transaction (numbered from 1 at each MAIL) differently at one of its
steps, ``MAIL``, ``RCPT``, ``DATA`` or ``DOT`` (the end of data, or ``BDAT … LAST``): with a
reply, with :data:`SERVICE_CLOSING` (421, then close) or with :data:`CLOSE` (close, no reply).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Mapping
from types import TracebackType

__all__ = ["CLOSE", "SERVICE_CLOSING", "BatchSink"]

SERVICE_CLOSING = b"421 4.3.2 sink closing\r\n"
#: Close the connection instead of answering.
CLOSE = b""
#: How long the sink stops reading after an early reply.
EARLY_PAUSE = 0.5


class _Closed(Exception):
    pass


class BatchSink:
    """Serves one connection on ``127.0.0.1`` (a free port); use it in a ``with`` block."""

    def __init__(
        self,
        *,
        pipelining: bool = True,
        chunking: bool = False,
        plan: Mapping[int, Mapping[str, bytes]] | None = None,
        early: bytes = b"",
    ) -> None:
        self.pipelining = pipelining
        # Sent as soon as message content starts to arrive, before the end of data (a server
        # breaking RFC 5321 §4.1.1.4); the sink then stops reading for a while, so that a
        # client writing a large body is still writing when it comes.
        self.early = early
        self.chunking = chunking
        self.plan = dict(plan or {})
        self.reads: list[bytes] = []
        #: The content of each message the sink took (answered 250 to its end of data).
        self.delivered: list[bytes] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        self._thread = threading.Thread(target=self._serve, name="batch-sink", daemon=True)
        self._thread.start()

    def __enter__(self) -> BatchSink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._thread.join(10)
        self._listener.close()
        assert not self._thread.is_alive(), "the sink's connection is still open"

    # -- the dialogue ------------------------------------------------------------------------

    def _serve(self) -> None:
        self._listener.settimeout(10)
        conn, _ = self._listener.accept()
        conn.settimeout(10)
        self._conn, self._out, self._buffer = conn, b"220 sink ready\r\n", b""
        self._tx = 0
        self._mail_ok = self._rcpt_ok = False
        self._in_data = False
        try:
            while True:
                self._flush()
                data = conn.recv(1 << 16)
                if not data:
                    return
                self.reads.append(data)
                if self._in_data and self.early:
                    early, self.early = self.early, b""
                    conn.sendall(early)
                    time.sleep(EARLY_PAUSE)
                self._buffer += data
                while self._one_unit():
                    pass
        except (_Closed, OSError):
            return
        finally:
            conn.close()

    def _flush(self) -> None:
        if self._out:
            self._conn.sendall(self._out)
            self._out = b""

    def _answer(self, step: str, default: bytes) -> bytes:
        reply = self.plan.get(self._tx, {}).get(step, default)
        if reply == CLOSE:
            self._flush()
            raise _Closed
        self._out += reply
        if reply == SERVICE_CLOSING:
            self._flush()
            raise _Closed
        return reply

    def _one_unit(self) -> bool:
        """Answer one complete command (or content); False when the buffer holds none."""
        buffer = self._buffer
        if self._in_data:
            end = buffer.find(b"\r\n.\r\n")
            if end < 0:
                return False
            self._buffer = buffer[end + 5 :]
            self._in_data = False
            self._end_of_data(buffer[: end + 2])
            return True
        line_end = buffer.find(b"\r\n")
        if line_end < 0:
            return False
        line, rest = buffer[:line_end], buffer[line_end + 2 :]
        verb = line.split(b" ", 1)[0].upper()
        if verb == b"BDAT":
            size = int(line.split()[1])
            if len(rest) < size:
                return False
            self._buffer = rest[size:]
            self._bdat(rest[:size], last=line.upper().endswith(b" LAST"))
            return True
        self._buffer = rest
        self._command(verb)
        return True

    def _command(self, verb: bytes) -> None:
        if verb == b"EHLO":
            keywords = [b"PIPELINING"] if self.pipelining else []
            keywords += [b"CHUNKING"] if self.chunking else []
            lines = [b"sink", *keywords, b"8BITMIME"]
            self._out += b"".join(
                b"250%s%s\r\n" % (b" " if i == len(lines) - 1 else b"-", text)
                for i, text in enumerate(lines)
            )
        elif verb == b"MAIL":
            self._tx += 1
            self._mail_ok = self._answer("MAIL", b"250 2.1.0 ok\r\n")[:1] == b"2"
            self._rcpt_ok = False
        elif verb == b"RCPT":
            default = b"250 2.1.5 ok\r\n" if self._mail_ok else b"503 5.5.1 MAIL first\r\n"
            self._rcpt_ok |= self._answer("RCPT", default)[:1] == b"2"
        elif verb == b"DATA":
            default = b"354 go\r\n" if self._rcpt_ok else b"554 5.5.1 no valid recipients\r\n"
            self._in_data = self._answer("DATA", default)[:3] == b"354"
        elif verb == b"RSET":
            self._mail_ok = self._rcpt_ok = False
            self._out += b"250 2.0.0 reset\r\n"
        elif verb == b"QUIT":
            self._out += b"221 2.0.0 bye\r\n"
            self._flush()
            raise _Closed
        else:
            self._out += b"500 5.5.2 what\r\n"

    def _end_of_data(self, content: bytes) -> None:
        if self._answer("DOT", b"250 2.0.0 queued\r\n")[:1] == b"2":
            self.delivered.append(content)
        self._mail_ok = self._rcpt_ok = False

    def _bdat(self, chunk: bytes, *, last: bool) -> None:
        assert last, "send_messages sends each small message in one BDAT LAST"
        if self._rcpt_ok:
            self._end_of_data(chunk)
        else:
            self._out += b"554 5.5.1 no valid recipients\r\n"
            self._mail_ok = False
