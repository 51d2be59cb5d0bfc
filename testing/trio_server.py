"""The scripted SMTP server as tasks in a trio nursery.

Each connection is a task that performs the dialogue's requests (:mod:`smtpproto.testing.dialogue`)
on trio streams: trio's sleeps for delays and stalls, :class:`trio.SSLStream` for STARTTLS and
implicit TLS.  No thread is started.  Needs trio (``smtpproto.testing`` imports this module
only when :class:`TrioScriptedServer` is asked for).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import TypeVar

import trio

from . import requests as rq
from .dialogue import Conversation
from .records import ConnectionRecord
from .requests import RECEIVE_SIZE, TAKE_OVER_NEEDS_THREADS, DialogueEnded, drive_async
from .scripted_base import ScriptedServerBase
from .sockets import arm_reset, shut_sending_side

__all__ = ["TrioScriptedServer"]

R = TypeVar("R")
T = TypeVar("T")


class TrioScriptedServer(ScriptedServerBase):
    """:class:`~smtpproto.testing.ScriptedServer`'s dialogue, rules and record, served by trio
    tasks: ``async with TrioScriptedServer(rules) as server:``.

    It binds its address when made and serves in a nursery of its own inside the ``async with``
    block; leaving it stops accepting, ends delays and stalls, and waits (``finish_timeout``)
    until every connection is over, so the record is complete.  A callable action needs the
    threaded server: here it ends the dialogue with an error in the record.
    """

    finish_timeout = 10.0

    def _start(self) -> None:
        self._stack = contextlib.AsyncExitStack()
        # Set by release() (ends stalls) and on leaving the block (ends delays too).
        self.released = trio.Event()
        self.stopping = trio.Event()

    async def __aenter__(self) -> TrioScriptedServer:
        await self._stack.enter_async_context(self._serving())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        return await self._stack.__aexit__(exc_type, exc, tb)

    def release(self) -> None:
        """End every stall: the stalled connections go on to wait for the client's EOF."""
        self.released.set()

    @contextlib.asynccontextmanager
    async def _serving(self) -> AsyncIterator[None]:
        listener = trio.SocketListener(trio.socket.from_stdlib_socket(self._listener))
        async with trio.open_nursery() as connections:
            accepting = trio.CancelScope()
            connections.start_soon(self._accept, listener, connections, accepting)
            try:
                yield
            finally:
                self.release()
                self.stopping.set()
                accepting.cancel()
                connections.cancel_scope.deadline = trio.current_time() + self.finish_timeout
        if connections.cancel_scope.cancelled_caught:
            raise RuntimeError("scripted server connections were still running")

    async def _accept(
        self,
        listener: trio.SocketListener,
        connections: trio.Nursery,
        accepting: trio.CancelScope,
    ) -> None:
        with accepting:
            async with listener:
                while True:
                    stream = await listener.accept()
                    connection = _Connection(self, stream, self.new_record())
                    connections.start_soon(connection.serve)


def _as_os_errors(
    method: Callable[[_Connection, R], Awaitable[T]],
) -> Callable[[_Connection, R], Awaitable[T]]:
    """trio's timeout and broken-stream errors as the OSErrors the dialogue handles."""

    @functools.wraps(method)
    async def translated(self: _Connection, request: R) -> T:
        try:
            return await method(self, request)
        except trio.TooSlowError:
            raise TimeoutError("trio: io_timeout passed") from None
        except trio.BrokenResourceError as exc:
            # The OS error underneath (a reset, a broken pipe, a TLS error) says what happened.
            cause = exc.__cause__
            raise cause if isinstance(cause, OSError) else ConnectionResetError(repr(exc)) from exc
        except trio.ClosedResourceError as exc:
            raise ConnectionAbortedError(repr(exc)) from exc

    return translated


class _Connection:
    """Performs one connection's requests on trio streams."""

    def __init__(
        self, server: TrioScriptedServer, stream: trio.SocketStream, record: ConnectionRecord
    ) -> None:
        self.server = server
        self.raw = stream
        self.stream: trio.abc.Stream = stream
        self.conversation = Conversation(server, record)

    async def serve(self) -> None:
        try:
            await drive_async(self.conversation.run(), self)
        finally:
            await self.raw.aclose()  # as the threaded server closes its socket: no TLS goodbye

    # Driver methods: one per request, named in rq.PERFORMED_BY; trio's errors become the
    # OSErrors the dialogue knows.

    @_as_os_errors
    async def _receive(self, request: rq.Receive) -> bytes:
        with trio.fail_after(self.server.io_timeout):
            return bytes(await self.stream.receive_some(RECEIVE_SIZE))

    @_as_os_errors
    async def _poll(self, request: rq.Poll) -> bytes | None:
        with trio.move_on_after(request.wait):
            return bytes(await self.stream.receive_some(RECEIVE_SIZE))
        return None

    @_as_os_errors
    async def _write(self, request: rq.Write) -> None:
        with trio.fail_after(self.server.io_timeout):
            await self.stream.send_all(request.data)

    async def _half_close(self, request: rq.HalfClose) -> None:
        shut_sending_side(self.raw.socket)

    async def _reset(self, request: rq.Reset) -> None:
        arm_reset(self.raw.socket)
        await self.raw.aclose()

    async def _pause(self, request: rq.Pause) -> None:
        with trio.move_on_after(request.seconds):
            await self.server.stopping.wait()

    async def _stall(self, request: rq.Stall) -> None:
        with trio.move_on_after(request.limit):
            await self.server.released.wait()

    async def _take_over(self, request: rq.TakeOver) -> None:
        raise DialogueEnded(TAKE_OVER_NEEDS_THREADS)

    @_as_os_errors
    async def _handshake(self, request: rq.Handshake) -> None:
        context = self.server.tls_context
        assert context is not None  # the dialogue checked
        tls = trio.SSLStream(self.raw, context, server_side=True)
        # trio runs the handshake, and so the SNI callback, in this task.
        with (
            self.server.handshaking(self.conversation.record),
            trio.fail_after(self.server.io_timeout),
        ):
            await tls.do_handshake()
        # A failed handshake left self.stream on the plaintext connection, still open.
        self.stream = tls
