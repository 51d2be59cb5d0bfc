"""UNSAFE: a raw SMTP connection that writes exactly the bytes it is given.

Everything else in smtpproto refuses to put a malformed command, a bare CR or LF, or an
unstuffed dot on the wire — that is what keeps a sending application safe.  A conformance
probe has to do exactly those things, to see how a *server* reacts, so this module gives it a
socket and a tolerant reply reader and nothing else: no validation, no state machine, no
dot-stuffing, no policy.  It is reachable only as ``smtpproto.testing.unsafe``, never from the
sending APIs; do not use it to send mail.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from dataclasses import dataclass
from types import TracebackType

__all__ = ["RawReply", "UnsafeRawConnection"]

#: Longest reply the reader collects before it gives up: a probe must stay bounded too.
MAX_REPLY_BYTES = 1 << 16


@dataclass(frozen=True)
class RawReply:
    """One reply as read, with no judgement: ``code`` is ``None`` if its first line did not
    start with three digits."""

    code: int | None
    lines: tuple[bytes, ...]

    @property
    def text(self) -> str:
        return " / ".join(line[4:].decode("utf-8", "replace") for line in self.lines)

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


class UnsafeRawConnection:
    """A blocking client socket for probes and tests.  **Unsafe**: see the module docstring.

    ``with UnsafeRawConnection.open("127.0.0.1", 25) as raw: raw.read_reply()``.
    """

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        self.sock = sock
        self.timeout = timeout
        self._buffer = bytearray()
        sock.settimeout(timeout)

    @classmethod
    def open(
        cls,
        host: str,
        port: int,
        *,
        timeout: float = 10.0,
        tls_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> UnsafeRawConnection:
        """Connect; with ``tls_context``, handshake at once (implicit TLS, RFC 8314)."""
        sock = socket.create_connection((host, port), timeout=timeout)
        if tls_context is not None:
            sock = tls_context.wrap_socket(sock, server_hostname=server_hostname or host)
        return cls(sock, timeout)

    def __enter__(self) -> UnsafeRawConnection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def send_unchecked(self, data: bytes) -> None:
        """Write ``data`` exactly as given, in one write — no check of any kind."""
        self.sock.sendall(data)

    def read_reply(self, timeout: float | None = None) -> RawReply | None:
        """The next reply (lines up to one whose fourth octet is not ``-``); ``None`` if the
        server closed or said nothing within ``timeout`` (the connection's by default).
        A bare LF ends a line here: the reader is tolerant, the probe judges."""
        lines: list[bytes] = []
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            end = self._buffer.find(b"\n")
            if end < 0:
                if len(self._buffer) > MAX_REPLY_BYTES or not self._fill(deadline):
                    return None
                continue
            line = bytes(self._buffer[:end]).rstrip(b"\r")
            del self._buffer[: end + 1]
            lines.append(line)
            if line[3:4] != b"-" or sum(map(len, lines)) > MAX_REPLY_BYTES:
                code = int(line[:3]) if line[:3].isdigit() else None
                return RawReply(code, tuple(lines))

    def read_available(self, wait: float) -> bytes:
        """Whatever the server sends within ``wait`` seconds (buffered octets first)."""
        deadline = time.monotonic() + wait
        while self._fill(deadline):
            pass
        data = bytes(self._buffer)
        self._buffer.clear()
        return data

    def _fill(self, deadline: float) -> bool:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(1 << 16)
        except (TimeoutError, ssl.SSLWantReadError):
            return False
        finally:
            self.sock.settimeout(self.timeout)
        self._buffer += data
        return bool(data)

    def start_tls(self, context: ssl.SSLContext, server_hostname: str) -> bytes:
        """Handshake on the open connection (after a 220 to STARTTLS); returns the octets that
        had arrived in plaintext and were never read: a server must have sent none."""
        leftover = bytes(self._buffer)
        self._buffer.clear()
        self.sock = context.wrap_socket(self.sock, server_hostname=server_hostname)
        return leftover

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
