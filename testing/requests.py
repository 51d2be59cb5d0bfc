"""The I/O requests of the scripted server's dialogue, and the stepper that runs it.

The dialogue (:mod:`smtpproto.testing.dialogue`) does no I/O: it is a generator that yields one
request at a time and receives the result (or has the failure thrown in).  Three thin drivers
perform the requests — on a blocking socket in a thread (:class:`~smtpproto.testing.Peer`), on
asyncio streams and on trio streams — so the server behaves the same on all of them.

What each request returns, and what a driver may raise into the dialogue for it, is stated on
the request; a driver raises only :class:`OSError` (its loop's errors translated) or
:class:`DialogueEnded`.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from .peer import Peer

__all__ = [
    "PERFORMED_BY",
    "RECEIVE_SIZE",
    "TAKE_OVER_NEEDS_THREADS",
    "DialogueEnded",
    "Effects",
    "HalfClose",
    "Handshake",
    "Pause",
    "Poll",
    "Receive",
    "Request",
    "Reset",
    "Stall",
    "Stepper",
    "TakeOver",
    "Write",
    "drive",
    "drive_async",
]

T = TypeVar("T")

#: How much one receive asks for.
RECEIVE_SIZE = 1 << 16
#: Why a loop's server ends the dialogue at a callable action: a Peer's calls block.
TAKE_OVER_NEEDS_THREADS = "a callable action takes a blocking Peer: use the threaded ScriptedServer"


class DialogueEnded(Exception):
    """The dialogue is over (the client closed, or an action took the connection)."""


@dataclass(frozen=True)
class Receive:
    """The next octets, ``b""`` at EOF.  Raises :class:`TimeoutError` after ``io_timeout``, or
    :class:`ConnectionError`/:class:`ssl.SSLError`."""


@dataclass(frozen=True)
class Poll:
    """Octets that arrive within ``wait`` seconds (``b""`` at EOF), or ``None`` if none did."""

    wait: float


@dataclass(frozen=True)
class Write:
    """Write ``data`` whole.  Raises :class:`OSError` if the client went away."""

    data: bytes


@dataclass(frozen=True)
class HalfClose:
    """Close the sending side (FIN) and keep reading.  Never raises."""


@dataclass(frozen=True)
class Reset:
    """Abort the connection so that the client sees a reset (RST).  Never raises."""


@dataclass(frozen=True)
class Pause:
    """Wait ``seconds``, cut short when the server finishes (the loop's sleep, not a thread's)."""

    seconds: float


@dataclass(frozen=True)
class Stall:
    """Wait until the server's ``release()`` or finish, or ``limit`` seconds."""

    limit: float


@dataclass(frozen=True)
class Handshake:
    """The server's side of a TLS handshake on the same connection; the driver records the
    SNI the client sent (``record.sni``), even when the handshake fails.

    Raises :class:`OSError` if it failed; the plaintext connection is then kept where the loop
    allows it (asyncio closes it), so that what the client does next is still observed.
    """


@dataclass(frozen=True)
class TakeOver:
    """Hand the connection to a callable action (threaded server only)."""

    action: Callable[[Peer], None]


Request = Receive | Poll | Write | HalfClose | Reset | Pause | Stall | Handshake | TakeOver

#: The driver method that performs each request, keyed by class: every driver has them all
#: (private methods, so that a driver's public face stays what its users call).
PERFORMED_BY: dict[type[Request], str] = {
    Receive: "_receive",
    Poll: "_poll",
    Write: "_write",
    HalfClose: "_half_close",
    Reset: "_reset",
    Pause: "_pause",
    Stall: "_stall",
    Handshake: "_handshake",
    TakeOver: "_take_over",
}
#: A piece of the dialogue: yields requests, is sent their results, returns a ``T``.
Effects = Generator[Request, Any, T]


class Stepper(Generic[T]):
    """Runs ``effects`` one request at a time for a driver (:func:`drive`, :func:`drive_async`)."""

    #: What the effects returned (set once :meth:`next_request` gives ``None``).
    value: T

    def __init__(self, effects: Effects[T]) -> None:
        self._effects = effects
        self._sent: Any = None
        self._error: BaseException | None = None

    def next_request(self) -> Request | None:
        """The next request, or ``None`` once the effects returned (:attr:`value`)."""
        error, self._error = self._error, None
        try:
            if error is not None:
                return self._effects.throw(error)
            return self._effects.send(self._sent)
        except StopIteration as stop:
            self.value = stop.value
            return None

    def done(self, result: object) -> None:
        self._sent = result

    def failed(self, error: BaseException) -> None:
        self._error = error


def drive(effects: Effects[T], driver: object) -> T:
    """Run ``effects`` with a blocking ``driver`` (see :data:`PERFORMED_BY`); their result."""
    steps = Stepper(effects)
    while (request := steps.next_request()) is not None:
        try:
            steps.done(getattr(driver, PERFORMED_BY[type(request)])(request))
        except (OSError, DialogueEnded) as exc:
            steps.failed(exc)
    return steps.value


async def drive_async(effects: Effects[T], driver: object) -> T:
    """Run ``effects`` with an async ``driver`` (asyncio or trio alike); their result."""
    steps = Stepper(effects)
    while (request := steps.next_request()) is not None:
        try:
            result = await getattr(driver, PERFORMED_BY[type(request)])(request)
        except (OSError, DialogueEnded) as exc:
            steps.failed(exc)
        else:
            steps.done(result)
    return steps.value
