"""A long-lived sender on trio: connections kept per destination and reused across messages
and calls, safe to share between tasks (see :mod:`smtpproto.adapters._async_sender`).  Its work
runs in a nursery it opens on ``async with`` and leaves on exit.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Self

import trio

from smtpproto.sending import SenderLimits

from ._async_sender import AsyncSender, Event
from .trio import _Driver

__all__ = ["Sender", "SenderLimits"]


class Sender(AsyncSender):
    """``async with Sender(relay=...) as sender: await sender.send(message)``."""

    _nursery: trio.Nursery
    _manager: trio.NurseryManager  # type: ignore[name-defined]

    def _driver(self) -> _Driver:
        return _Driver(self._ssl_context, self._resolver)

    def _event(self) -> Event:
        return trio.Event()

    def _spawn(self, work: Callable[[], Awaitable[None]]) -> None:
        self._nursery.start_soon(work)

    async def __aenter__(self) -> Self:
        self._manager = trio.open_nursery()
        self._nursery = await self._manager.__aenter__()
        return self

    async def _join(self, exc: BaseException | None) -> None:
        await self._manager.__aexit__(type(exc) if exc else None, exc, exc and exc.__traceback__)
