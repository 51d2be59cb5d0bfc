"""Play an operation against a script of server behaviour, without a socket.

For testing code written on the public driver contract (:mod:`smtpproto.driver`): a script
lists, in order, every I/O request the operation must make and what the "server" does:

- ``Expect.connect(host, port, implicit_tls=False)``, ``Expect.send(b"...")`` (the exact bytes
  of one ``Send`` request: commands pipelined in one write are one step),
  ``Expect.starttls()``, ``Expect.close()``: the operation must make exactly this request next;
- ``Reply(b"250 ok\\r\\n", ...)``: server bytes, handed out to the next ``Receive`` requests, one
  piece per request (or one byte per request in ``bytewise`` mode);
- ``EOF``: the next ``Receive`` gets ``b""``;
- ``Fail(error)``: the next request fails with ``error``, thrown into the operation.

:func:`run` plays a script and returns the operation's result (or lets its exception out);
either way the whole script must have been used.  :func:`run_both` plays it twice, whole and
one byte at a time, and checks that the outcome does not depend on how TCP cut the stream.
A disagreement between script and operation raises :class:`ScriptMismatch`.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from smtpproto import SMTPError
from smtpproto.driver import (
    Close,
    CloseBody,
    Connect,
    Now,
    OpenBody,
    Operation,
    ReadBody,
    Receive,
    RemoveSpool,
    Request,
    Send,
    SpoolBody,
    StartTLSHandshake,
    drive,
)

if TYPE_CHECKING:  # mypy knows adapters/ as "adapters" (package-dir mapping)
    from adapters.bodies import perform_body_request
else:
    from smtpproto.adapters.bodies import perform_body_request

__all__ = [
    "ANY",
    "EOF",
    "Expect",
    "Fail",
    "Reply",
    "ScriptMismatch",
    "Step",
    "run",
    "run_both",
]

T = TypeVar("T")


class ScriptMismatch(AssertionError):
    """The operation and the script disagree: the test's failure, with both sides in it."""


def _check(condition: object, message: Callable[[], str]) -> None:
    if not condition:
        raise ScriptMismatch(message())


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
        _check(type(request) is self.kind, lambda: f"expected {self}, got {request!r}")
        for name, wanted in self.fields.items():
            if wanted is not ANY:
                got = getattr(request, name)
                if got != wanted:
                    raise ScriptMismatch(
                        f"{self.kind.__name__}.{name}: expected {wanted!r}, got {got!r}"
                    )
        if isinstance(request, Send):
            if callable(self.data):
                self.data(request.data)
            else:
                _check(
                    request.data == self.data,
                    lambda: f"sent {request.data!r}, the script expects {self.data!r}",
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
    ) -> Step:
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
    ) -> Step:
        """``data``: the exact bytes, or a function that checks (and may record) them."""
        return _Request(Send, {"phase": phase, "timeout": timeout}, data)

    @staticmethod
    def starttls(
        *,
        verify: bool = True,
        server_hostname: str | _Any = ANY,
        timeout: float | _Any | None = ANY,
    ) -> Step:
        return _Request(
            StartTLSHandshake,
            {"verify": verify, "server_hostname": server_hostname, "timeout": timeout},
        )

    @staticmethod
    def close(*, graceful: bool | _Any = ANY) -> Step:
        return _Request(Close, {"graceful": graceful})


class Reply(Step):
    """Server bytes; each piece answers one ``Receive`` (a callable piece is computed late,
    when the client first asks for it, so it can depend on what the client sent).

    ``phase``/``timeout``, when given, are checked on the first ``Receive`` that reads them.
    """

    def __init__(
        self, *pieces: Piece, phase: str | _Any = ANY, timeout: float | _Any | None = ANY
    ) -> None:
        if not pieces:
            raise ValueError("a Reply needs bytes")
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

    def __init__(self, script: Sequence[Step], bytewise: bool, now: float | None) -> None:
        self.steps: deque[Step] = deque(script)
        self.bytewise = bytewise
        self.now = now
        self.unread: deque[bytes] = deque()  # server bytes not yet handed to the client

    def perform(self, request: Request) -> Any:
        """The request's result, or the script's failure for it (raised, as a driver does)."""
        if isinstance(request, (OpenBody, ReadBody, CloseBody, SpoolBody, RemoveSpool)):
            # Bodies are read (and spooled) as every driver does it; scripts list the network.
            return perform_body_request(request)
        if isinstance(request, Now):
            _check(self.now is not None, lambda: "the operation asks the time: run(..., now=)")
            return self.now
        if isinstance(request, Receive) and self.unread:
            return self.unread.popleft()
        _check(self.steps, lambda: f"the script is over but the operation asked for {request!r}")
        step = self.steps.popleft()
        if isinstance(step, Fail):
            _check(step.on is None or isinstance(request, step.on), lambda: f"{step}, {request}")
            raise step.error
        if isinstance(request, Receive):
            if step is EOF:
                return b""
            _check(
                isinstance(step, Reply),
                lambda: f"the client waits for a reply; the script has {step}",
            )
            assert isinstance(step, Reply)  # for mypy: checked above
            step.expect.check(request)
            for piece in step.pieces:
                data = piece() if callable(piece) else piece
                if self.bytewise:
                    self.unread.extend(data[i : i + 1] for i in range(len(data)))
                else:
                    self.unread.append(data)
            return self.unread.popleft()
        _check(
            isinstance(step, _Request),
            lambda: f"the client made {request!r}; the script has {step}",
        )
        assert isinstance(step, _Request)  # for mypy: checked above
        step.check(request)
        return None

    def finish(self) -> None:
        _check(
            not self.steps,
            lambda: f"the operation ended with the script unplayed: {list(self.steps)}",
        )
        _check(
            not self.unread,
            lambda: f"server bytes were never read: {b''.join(self.unread)!r}",
        )


def run(
    op: Operation[T], script: Sequence[Step], *, bytewise: bool = False, now: float | None = None
) -> T:
    """Play ``script`` against ``op``; return its result or let its exception out.

    ``bytewise``: every ``Receive`` gets a single byte of the server's replies.  ``now``: the
    answer to the ``Now`` request (POSIX seconds), for operations that ask the time (signing,
    MTA-STS); without it such a request fails the script.
    """
    player = _Player(script, bytewise, now)
    try:
        result = drive(op, player.perform)  # the public loop, as every driver runs it
    except AssertionError:
        raise  # the script and the operation disagree: that is the failure to show
    except BaseException:
        player.finish()
        raise
    player.finish()
    return result


def run_both(
    make_op: Callable[[], Operation[T]], script: Sequence[Step], *, now: float | None = None
) -> T:
    """Play ``script`` whole and byte by byte, each on a fresh operation from ``make_op``.

    Both runs must write the same bytes (the script checks that) and end the same way: an equal
    result, or the same exception type and message.  Returns the result or raises the exception.
    """
    outcomes: list[tuple[bool, Any]] = []
    for bytewise in (False, True):
        try:
            outcomes.append((True, run(make_op(), script, bytewise=bytewise, now=now)))
        except AssertionError:
            raise
        except Exception as exc:  # the operation's own error: compare, then re-raise
            outcomes.append((False, exc))
    (ok_whole, whole), (ok_bytes, by_byte) = outcomes
    _check(ok_whole == ok_bytes, lambda: f"whole and byte by byte differ: {outcomes}")
    if ok_whole:
        _check(whole == by_byte, lambda: f"whole and byte by byte differ: {outcomes}")
        return whole  # type: ignore[no-any-return]
    _check(
        (type(whole), str(whole)) == (type(by_byte), str(by_byte)),
        lambda: f"whole and byte by byte fail differently: {outcomes}",
    )
    raise whole
