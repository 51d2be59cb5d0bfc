"""What a :class:`~smtpproto.testing.ScriptedServer` does at a step, and what it records.

An *action* replaces the server's ordinary reply at one step of the dialogue:

- ``bytes``: send these bytes instead (any number of reply lines: a multi-line reply, two
  replies at once, or something no RFC allows);
- :class:`Chunked`: send bytes in pieces of the given sizes, flushed one by one (the client's
  reply parser must not care where TCP cut the stream);
- :class:`Delayed`: wait, then do another action (slow servers, timeouts);
- :class:`Answer`: compute the action from the command line (refuse one recipient only);
- a :class:`Fault`: close, reset, stall or answer 421;
- a callable taking the connection's :class:`~smtpproto.testing.Peer`: it takes the
  connection over, and may write anything (hostile servers).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .peer import Peer

__all__ = ["Action", "Answer", "Chunked", "ConnectionRecord", "Delayed", "Fault", "reply"]


class Fault(enum.Enum):
    """What the server does instead of answering a step."""

    #: Close the sending side (FIN) and read until the client closes.
    CLOSE = "close"
    #: Abort the connection: the client sees a reset (RST), not an orderly close.
    RESET = "reset"
    #: Read nothing and answer nothing until :meth:`ScriptedServer.release` or ``stall_limit``.
    STALL = "stall"
    #: Answer ``421`` and close (RFC 5321 §3.8).
    SERVICE_CLOSING = "421"


@dataclass(frozen=True)
class Chunked:
    """Send ``data`` in pieces of ``sizes`` octets (the last size repeats), each written on its
    own after ``pause`` seconds.

    ``Chunked(b"250-a\\r\\n250 b\\r\\n", sizes=(1,), pause=0.01)`` sends one octet at a time.
    TCP may still merge pieces that are written close together; a pause of a few milliseconds
    makes separate reads all but certain on loopback.
    """

    data: bytes
    sizes: Sequence[int] = (1,)
    pause: float = 0.0

    def __post_init__(self) -> None:
        if not self.sizes or min(self.sizes) < 1:
            raise ValueError("Chunked sizes must be positive")

    def pieces(self) -> list[bytes]:
        out: list[bytes] = []
        offset = index = 0
        while offset < len(self.data):
            size = self.sizes[min(index, len(self.sizes) - 1)]
            out.append(self.data[offset : offset + size])
            offset += size
            index += 1
        return out


@dataclass(frozen=True)
class Delayed:
    """Wait ``seconds`` (after sending the replies already due), then do ``then``."""

    seconds: float
    then: Action


@dataclass(frozen=True)
class Answer:
    """The action for this command, computed from its line (without CRLF; ``b""`` for the
    greeting): ``Answer(lambda line: b"550 no\\r\\n" if b"<bad@" in line else b"250 ok\\r\\n")``.
    """

    function: Callable[[bytes], Action]


Action = bytes | Chunked | Delayed | Answer | Fault | Callable[["Peer"], None]


def reply(code: int, *lines: str) -> bytes:
    """The wire form of one reply: ``reply(250, "a", "b") == b"250-a\\r\\n250 b\\r\\n"``.

    With no line, the bare code (``b"250\\r\\n"``, allowed by RFC 5321 §4.2).  Nothing is
    checked: a test may build a reply no server should send.
    """
    if not lines:
        return b"%d\r\n" % code
    last = len(lines) - 1
    return b"".join(
        b"%d%s%s\r\n" % (code, b" " if i == last else b"-", line.encode("utf-8"))
        for i, line in enumerate(lines)
    )


@dataclass
class ConnectionRecord:
    """What happened on one connection, from the server's side."""

    #: Every octet received (after decryption once TLS is up), commands and content alike.
    received: bytearray = field(default_factory=bytearray)
    #: The command lines, without CRLF (message content and SASL responses excluded).
    commands: list[bytes] = field(default_factory=list)
    #: SASL responses received during AUTH, without CRLF.
    auth_responses: list[bytes] = field(default_factory=list)
    #: The steps reached, in order (``RCPT1``, ``RCPT2``… numbered).
    steps: list[str] = field(default_factory=list)
    #: Each message's content exactly as on the wire: dot-stuffed DATA content up to (not
    #: including) the terminating ``.<CRLF>``, or the BDAT chunks joined.
    messages: list[bytes] = field(default_factory=list)
    #: The exact bytes of each DATA phase after the 354, the terminator included.
    data_wire: list[bytes] = field(default_factory=list)
    #: The replies sent to the end of data (final dot or ``BDAT LAST``), in order.
    end_of_data_replies: list[bytes] = field(default_factory=list)
    #: The chunks of the BDAT transaction in progress.
    bdat_chunks: list[bytes] = field(default_factory=list)
    #: Octets already buffered behind STARTTLS, or arriving within ``starttls_grace`` while the
    #: 220 is held back (a client must send nothing there, RFC 3207 §4).  They are not parsed.
    behind_starttls: bytes | None = None
    #: Whether TLS is up (STARTTLS or implicit), the SNI the client sent, or why the handshake
    #: failed.
    tls: bool = False
    sni: str | None = None
    handshake_error: str | None = None
    #: The fault applied, if any, and at which step.
    fault: tuple[str, Fault] | None = None
    #: The client closed its socket: the server read EOF, or a send failed with a reset.
    eof: bool = False
    #: Something the server did not expect (a client error, or the server's own), for debugging.
    errors: list[str] = field(default_factory=list)

    @property
    def verbs(self) -> list[str]:
        """The commands' verbs, upper-cased: ``["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]``."""
        return [line.split(b" ", 1)[0].upper().decode("ascii", "replace") for line in self.commands]

    @property
    def delivered(self) -> bool:
        """Whether the server answered an end of data with 2xx: only then is a message taken."""
        return any(answer[:1] == b"2" for answer in self.end_of_data_replies)
