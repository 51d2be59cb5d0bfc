"""What trio's streams tell the trio adapter: which errors mean a broken connection, the reason
each carries, and what a socket stream already holds (for ``Send.listen``)."""

from __future__ import annotations

import select

import trio

from smtpproto import ConnectionLostError

from ._net import RECEIVE_SIZE, os_reason

__all__ = ["BROKEN", "connect_reason", "detail", "heard"]

# What trio raises when the connection under a stream breaks or was closed.
BROKEN = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)


async def heard(stream: trio.abc.Stream, phase: str) -> bytes | None:
    """What the server has sent and the socket already holds, without waiting: a ``Send`` with
    ``listen`` hands it back (a reply during the content, checklist C12).  Over a plain socket
    only (``None`` otherwise): over TLS, readable octets may be a session ticket, not data."""
    if not isinstance(stream, trio.SocketStream):
        return None
    try:
        readable = select.select([stream.socket.fileno()], [], [], 0)[0]
    except ValueError:  # a descriptor beyond what select() can watch
        return None
    if not readable:
        return b""
    try:
        return bytes(await stream.receive_some(RECEIVE_SIZE))  # there: it does not wait
    except BROKEN as exc:
        raise ConnectionLostError(phase, detail(exc)) from None


def connect_reason(exc: OSError) -> str:
    """trio reports a failed connect as one OSError caused by a group of the attempts' errors."""
    attempts = getattr(exc.__cause__, "exceptions", ())
    reasons = dict.fromkeys(os_reason(error) for error in attempts)
    return "; ".join(reasons) or os_reason(exc)


def detail(exc: BaseException) -> str:
    """trio's stream errors carry their reason as the cause, not in their own message."""
    return str(exc) or str(exc.__cause__ or type(exc).__name__)
