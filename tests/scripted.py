"""Drive :class:`smtpproto.Session` operations against a scripted server, without a socket.

A script lists, in order, every I/O request the operation must make and what the "server" does:

- ``Expect.connect(host, port, implicit_tls=False)``, ``Expect.send(b"...")`` (the exact bytes of
  one ``Send`` request: commands pipelined in one write are one step), ``Expect.starttls()``,
  ``Expect.close()``: the operation must make exactly this request next;
- ``Reply(b"250 ok\\r\\n", ...)``: server bytes, handed out to the next ``Receive`` requests, one
  piece per request (or one byte per request in ``bytewise`` mode);
- ``EOF``: the next ``Receive`` gets ``b""``;
- ``Fail(error)``: the next request fails with ``error``, thrown into the operation.

:func:`run` plays a script and returns the operation's result (or lets its exception propagate);
either way the whole script must have been used.  :func:`run_both` plays it twice, whole and one
byte at a time, and checks that the outcome does not depend on how TCP cut the stream.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from smtpproto import Session, SessionOptions, SMTPError, TLSMode
from smtpproto.driver import (
    Close,
    CloseBody,
    Connect,
    OpenBody,
    ReadBody,
    Receive,
    Request,
    Send,
    StartTLSHandshake,
    drive,
)

if TYPE_CHECKING:  # mypy knows adapters/ as "adapters" (package-dir mapping)
    from adapters.bodies import perform_body_request
else:
    from smtpproto.adapters.bodies import perform_body_request

__all__ = [
    "ANY",
    "EHLO",
    "EOF",
    "GREETING",
    "LHLO",
    "Expect",
    "Fail",
    "Reply",
    "Step",
    "ehlo_reply",
    "greeted",
    "open_session",
    "run",
    "run_both",
]

T = TypeVar("T")
Operation = Generator[Request, Any, T]


class _Any(enum.Enum):
    ANY = "ANY"


#: "Do not check this field."
ANY = _Any.ANY

SentCheck = bytes | Callable[[bytes], None]
Piece = bytes | Callable[[], bytes]


class Step:
    """One step of a script (the base of the kinds below, so a script is a ``list[Step]``)."""


@dataclass(frozen=True)
class _Request(Step):
    """One expected request: its type and the fields that must match (``ANY`` skips one)."""

    kind: type
    fields: dict[str, object] = field(default_factory=dict)
    data: SentCheck | None = None  # Send only

    def check(self, request: Request) -> None:
        assert type(request) is self.kind, f"expected {self}, got {request!r}"
        for name, wanted in self.fields.items():
            if wanted is not ANY:
                got = getattr(request, name)
                assert got == wanted, (
                    f"{self.kind.__name__}.{name}: expected {wanted!r}, got {got!r}"
                )
        if isinstance(request, Send):
            if callable(self.data):
                self.data(request.data)
            else:
                assert request.data == self.data, (
                    f"sent {request.data!r}, the script expects {self.data!r}"
                )


class Expect:
    """Constructors for the requests a script expects."""

    @staticmethod
    def connect(
        host: str,
        port: int,
        *,
        implicit_tls: bool = False,
        server_hostname: str | _Any = ANY,
        verify: bool | _Any = ANY,
        timeout: float | _Any | None = ANY,
    ) -> _Request:
        return _Request(
            Connect,
            {
                "host": host,
                "port": port,
                "implicit_tls": implicit_tls,
                "server_hostname": server_hostname,
                "verify": verify,
                "timeout": timeout,
            },
        )

    @staticmethod
    def send(
        data: SentCheck, *, phase: str | _Any = ANY, timeout: float | _Any | None = ANY
    ) -> _Request:
        """``data``: the exact bytes, or a function that checks (and may record) them."""
        return _Request(Send, {"phase": phase, "timeout": timeout}, data)

    @staticmethod
    def starttls(
        *,
        verify: bool = True,
        server_hostname: str | _Any = ANY,
        timeout: float | _Any | None = ANY,
    ) -> _Request:
        return _Request(
            StartTLSHandshake,
            {"verify": verify, "server_hostname": server_hostname, "timeout": timeout},
        )

    @staticmethod
    def close(*, graceful: bool | _Any = ANY) -> _Request:
        return _Request(Close, {"graceful": graceful})


class Reply(Step):
    """Server bytes; each piece answers one ``Receive`` (a callable piece is computed late,
    when the client first asks for it, so it can depend on what the client sent).

    ``phase``/``timeout``, when given, are checked on the first ``Receive`` that reads them.
    """

    def __init__(
        self, *pieces: Piece, phase: str | _Any = ANY, timeout: float | _Any | None = ANY
    ) -> None:
        assert pieces, "a Reply needs bytes"
        self.pieces = pieces
        self.expect = _Request(Receive, {"phase": phase, "timeout": timeout})

    def __repr__(self) -> str:
        return f"Reply{self.pieces!r}"


@dataclass(frozen=True)
class Fail(Step):
    """Throw ``error`` into the operation at its next request (of type ``on``, when given)."""

    error: SMTPError
    on: type | None = None


class _EndOfStream(Step):
    def __repr__(self) -> str:
        return "EOF"


#: The server closes the connection: the next ``Receive`` gets ``b""``.
EOF = _EndOfStream()


class _Player:
    """Answers an operation's requests from a script, checking each one."""

    def __init__(self, script: Sequence[Step], bytewise: bool) -> None:
        self.steps: deque[Step] = deque(script)
        self.bytewise = bytewise
        self.unread: deque[bytes] = deque()  # server bytes not yet handed to the client

    def perform(self, request: Request) -> Any:
        """The request's result, or the script's failure for it (raised, as a driver does)."""
        if isinstance(request, (OpenBody, ReadBody, CloseBody)):
            # Bodies are read as every driver reads them; scripts list only the network.
            return perform_body_request(request)
        if isinstance(request, Receive) and self.unread:
            return self._hand_out()
        assert self.steps, f"the script is over but the operation asked for {request!r}"
        step = self.steps.popleft()
        if isinstance(step, Fail):
            assert step.on is None or isinstance(request, step.on), (step, request)
            raise step.error
        if isinstance(request, Receive):
            if step is EOF:
                return b""
            assert isinstance(step, Reply), f"the client waits for a reply; the script has {step}"
            step.expect.check(request)
            for piece in step.pieces:
                data = piece() if callable(piece) else piece
                if self.bytewise:
                    self.unread.extend(data[i : i + 1] for i in range(len(data)))
                else:
                    self.unread.append(data)
            return self._hand_out()
        assert isinstance(step, _Request), f"the client made {request!r}; the script has {step}"
        step.check(request)
        return None

    def _hand_out(self) -> bytes:
        return self.unread.popleft()

    def finish(self) -> None:
        assert not self.steps, f"the operation ended with the script unplayed: {list(self.steps)}"
        assert not self.unread, f"server bytes were never read: {b''.join(self.unread)!r}"


def run(op: Operation[T], script: Sequence[Step], *, bytewise: bool = False) -> T:
    """Play ``script`` against ``op``; return its result or let its exception out.

    ``bytewise``: every ``Receive`` gets a single byte of the server's replies.
    """
    player = _Player(script, bytewise)
    try:
        result = drive(op, player.perform)  # the public loop, as every driver runs it
    except AssertionError:
        raise  # the script and the operation disagree: that is the failure to show
    except BaseException:
        player.finish()
        raise
    player.finish()
    return result


def run_both(make_op: Callable[[], Operation[T]], script: Sequence[Step]) -> T:
    """Play ``script`` whole and byte by byte, each on a fresh operation from ``make_op``.

    Both runs must write the same bytes (the script checks that) and end the same way: an equal
    result, or the same exception type and message.  Returns the result or raises the exception.
    """
    outcomes: list[tuple[bool, Any]] = []
    for bytewise in (False, True):
        try:
            outcomes.append((True, run(make_op(), script, bytewise=bytewise)))
        except AssertionError:
            raise
        except Exception as exc:  # the operation's own error: compare, then re-raise
            outcomes.append((False, exc))
    (ok_whole, whole), (ok_bytes, by_byte) = outcomes
    assert ok_whole == ok_bytes, outcomes
    if ok_whole:
        assert whole == by_byte
        return whole  # type: ignore[no-any-return]
    assert (type(whole), str(whole)) == (type(by_byte), str(by_byte))
    raise whole


# -- common pieces of scripts ------------------------------------------------------------------

GREETING = b"220 mx.example.net ESMTP\r\n"
EHLO = b"EHLO client.example.org\r\n"
LHLO = b"LHLO client.example.org\r\n"
LOCAL_HOSTNAME = "client.example.org"


def ehlo_reply(*keywords: str, code: int = 250) -> bytes:
    """A multi-line EHLO reply naming ``mx.example.net`` and advertising ``keywords``."""
    lines = ["mx.example.net greets client.example.org", *keywords]
    return b"".join(
        b"%d%s%s\r\n" % (code, b" " if i == len(lines) - 1 else b"-", line.encode())
        for i, line in enumerate(lines)
    )


def greeted(
    *keywords: str, implicit_tls: bool = False, port: int = 25, hello: bytes = EHLO
) -> list[Step]:
    """Connect, greeting, EHLO and its reply: how most scripts start (``TLSMode.NONE``)."""
    return [
        Expect.connect("mx.example.net", port, implicit_tls=implicit_tls),
        Reply(GREETING),
        Expect.send(hello),
        Reply(ehlo_reply(*keywords)),
    ]


def open_session(*keywords: str, tls: bool = False, **kwargs: Any) -> Session:
    """A session opened on a server advertising ``keywords`` (over implicit TLS when ``tls``)."""
    session = Session(SessionOptions(local_hostname=LOCAL_HOSTNAME, **kwargs))
    mode = TLSMode.IMPLICIT if tls else TLSMode.NONE
    port = 465 if tls else 25
    hello = LHLO if kwargs.get("lmtp") else EHLO
    run(
        session.open("mx.example.net", port, tls=mode),
        greeted(*keywords, implicit_tls=tls, port=port, hello=hello),
    )
    return session
