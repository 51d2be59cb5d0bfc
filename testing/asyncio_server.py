"""The scripted SMTP server as tasks on the running asyncio loop.

Each connection is a task that performs the dialogue's requests (:mod:`smtpproto.testing.dialogue`)
on asyncio streams: the loop's sleeps for delays and stalls, ``StreamWriter.start_tls`` for
STARTTLS and implicit TLS.  No thread is started, so a client in the same loop and the server
interleave as they would against a real server.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType

from . import requests as rq
from .dialogue import Conversation
from .records import ConnectionRecord
from .requests import RECEIVE_SIZE, TAKE_OVER_NEEDS_THREADS, DialogueEnded, drive_async
from .scripted_base import ScriptedServerBase
from .sockets import arm_reset, shut_sending_side

__all__ = ["AsyncioScriptedServer"]


class AsyncioScriptedServer(ScriptedServerBase):
    """:class:`~smtpproto.testing.ScriptedServer`'s dialogue, rules and record, served by tasks
    of the running asyncio loop: ``async with AsyncioScriptedServer(rules) as server:``.

    It binds its address when made and serves inside the ``async with`` block; leaving it
    stops accepting, ends delays and stalls, and waits (``finish_timeout``) until every
    connection is over, so the record is complete.  A callable action needs the threaded
    server: here it ends the dialogue with an error in the record.
    """

    finish_timeout = 10.0

    def _start(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        # Set by release() (ends stalls) and on leaving the block (ends delays too).
        self.released = asyncio.Event()
        self.stopping = asyncio.Event()

    async def __aenter__(self) -> AsyncioScriptedServer:
        self._server = await asyncio.start_server(self._serve, sock=self._listener)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
        self.stopping.set()
        if self._server is not None:
            self._server.close()
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks, timeout=self.finish_timeout)
        for task in pending:
            task.cancel()
        if pending:
            raise RuntimeError(f"scripted server connections still running: {len(pending)}")

    def release(self) -> None:
        """End every stall: the stalled connections go on to wait for the client's EOF."""
        self.released.set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        connection = _Connection(self, reader, writer, self.new_record())
        try:
            await drive_async(connection.conversation.run(), connection)
        finally:
            writer.transport.abort()  # as the threaded server closes its socket: no TLS goodbye


class _Connection:
    """Performs one connection's requests on asyncio streams."""

    def __init__(
        self,
        server: AsyncioScriptedServer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        record: ConnectionRecord,
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.conversation = Conversation(server, record)
        self.handshake_failed = False

    # Driver methods: one per request, named in rq.PERFORMED_BY.

    async def _receive(self, request: rq.Receive) -> bytes:
        if self.handshake_failed:
            raise ConnectionAbortedError("asyncio closes a connection whose handshake failed")
        async with asyncio.timeout(self.server.io_timeout):
            return await self.reader.read(RECEIVE_SIZE)

    async def _poll(self, request: rq.Poll) -> bytes | None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(request.wait):
                return await self.reader.read(RECEIVE_SIZE)
        return None

    async def _write(self, request: rq.Write) -> None:
        self.writer.write(request.data)
        async with asyncio.timeout(self.server.io_timeout):
            await self.writer.drain()

    async def _half_close(self, request: rq.HalfClose) -> None:
        shut_sending_side(self.writer.get_extra_info("socket"))

    async def _reset(self, request: rq.Reset) -> None:
        arm_reset(self.writer.get_extra_info("socket"))
        self.writer.transport.abort()

    async def _pause(self, request: rq.Pause) -> None:
        await _wait(self.server.stopping, request.seconds)

    async def _stall(self, request: rq.Stall) -> None:
        await _wait(self.server.released, request.limit)

    async def _take_over(self, request: rq.TakeOver) -> None:
        raise DialogueEnded(TAKE_OVER_NEEDS_THREADS)

    async def _handshake(self, request: rq.Handshake) -> None:
        context = self.server.tls_context
        assert context is not None  # the dialogue checked
        try:
            await self.writer.start_tls(context, ssl_handshake_timeout=self.server.io_timeout)
        except OSError:
            self.handshake_failed = True
            raise
        # The SNI callback ran in a transport callback: claim what it filed.
        self.conversation.record.sni = self.server.sni_of(self.writer.get_extra_info("ssl_object"))


async def _wait(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
