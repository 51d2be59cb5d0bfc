"""A long-lived sender on asyncio: connections kept per destination and reused across
messages and calls, safe to share between tasks (see :mod:`smtpproto.adapters._async_sender`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from smtpproto.sending import SenderLimits

from ._async_sender import AsyncSender, Event
from .asyncio import _Driver

__all__ = ["Sender", "SenderLimits"]


class Sender(AsyncSender):
    """``async with Sender(relay=...) as sender: await sender.send(message)``."""

    _tasks: set[asyncio.Task[None]]

    def _driver(self) -> _Driver:
        return _Driver(self._ssl_context, self._resolver)

    def _event(self) -> Event:
        return asyncio.Event()

    def _spawn(self, work: Callable[[], Awaitable[None]]) -> None:
        tasks = self.__dict__.setdefault("_tasks", set())
        task = asyncio.ensure_future(work())
        tasks.add(task)  # kept, so the loop cannot forget it; dropped when done
        task.add_done_callback(tasks.discard)

    async def _join(self, exc: BaseException | None) -> None:
        tasks = self.__dict__.get("_tasks", set())
        while tasks:  # a task may start another (the next batch, a QUIT)
            await asyncio.gather(*list(tasks))
