"""The sender of the event-loop adapters: what asyncio and trio share, over their drivers.

Every decision is :class:`smtpproto.sending.SenderPool`'s; its methods never suspend, so on one
event loop they need no lock.  The work runs in tasks the sender owns (a subclass supplies the
task group, the event and the driver), so a caller cancelled while it waits leaves its message
to finish with the others, and no queued message is ever stranded.
"""

from __future__ import annotations

import abc
import functools
import logging
import ssl
from collections.abc import Awaitable, Callable, Iterable
from email.message import Message
from types import TracebackType
from typing import Protocol, Self

import dns.asyncresolver

from smtpproto import Body, DeliveryOptions, DeliveryReport, OutgoingMessage, Relay
from smtpproto.driver import Now
from smtpproto.sending import (
    Assignment,
    Plan,
    PooledConnection,
    SenderLimits,
    SenderPool,
    Submission,
)

from ._async_driver import AsyncDriver

__all__ = ["AsyncSender", "SenderLimits"]

LOGGER = logging.getLogger("smtpproto.sender")


class Event(Protocol):
    def set(self) -> None: ...

    async def wait(self) -> object: ...


class AsyncSender(abc.ABC):
    """Sends messages over connections it keeps: ``await send()`` from any number of tasks, in
    ``async with``.  Leaving the block waits for the work in progress and QUITs every
    connection."""

    def __init__(
        self,
        *,
        relay: Relay | None = None,
        options: DeliveryOptions | None = None,
        limits: SenderLimits | None = None,
        resolver: dns.asyncresolver.Resolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._pool = SenderPool(relay=relay, options=options, limits=limits)
        self._ssl_context = ssl_context
        self._resolver = resolver
        self._clock = self._driver()  # only ever asked Now

    @abc.abstractmethod
    def _driver(self) -> AsyncDriver:
        """A driver of the adapter's, for one connection."""

    @abc.abstractmethod
    def _event(self) -> Event:
        """An event of the adapter's library."""

    @abc.abstractmethod
    def _spawn(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run ``work`` in the sender's own task group."""

    @abc.abstractmethod
    async def _join(self, exc: BaseException | None) -> None:
        """Wait until every task spawned is done (leaving the task group)."""

    async def send(
        self,
        message: Body | OutgoingMessage,
        sender: str | None = None,
        recipients: Iterable[str] | None = None,
    ) -> DeliveryReport:
        """Deliver ``message``; the report ``deliver()`` would give."""
        done = self._event()
        submission = await self._submit(message, sender, recipients, done)
        await done.wait()
        return _report(submission)

    async def send_many(
        self, messages: Iterable[Message | OutgoingMessage]
    ) -> list[DeliveryReport]:
        """Deliver each message (an email ``Message`` names its own sender and recipients; an
        :class:`~smtpproto.OutgoingMessage` carries them); their reports, in order.  Messages
        to one destination share pipelined batches."""
        waits = []
        for message in messages:
            done = self._event()
            waits.append((await self._submit(message, None, None, done), done))
        reports = []
        for submission, done in waits:
            await done.wait()
            reports.append(_report(submission))
        return reports

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._start(self._pool.close())
        await self._join(exc)

    async def __aenter__(self) -> Self:
        return self

    # -- the tasks -----------------------------------------------------------------------------

    async def _now(self) -> float:
        now: float = await self._clock.perform(Now())  # returns without suspending
        return now

    async def _submit(
        self,
        message: Body | OutgoingMessage,
        sender: str | None,
        recipients: Iterable[str] | None,
        done: Event,
    ) -> Submission:
        now = await self._now()
        submission, plan = self._pool.submit(message, sender, recipients, now, done.set)
        self._start(plan)
        return submission

    def _start(self, plan: Plan) -> None:
        for connection in plan.closing:
            self._spawn(functools.partial(self._retire, connection))
        for assignment in plan.assignments:
            self._spawn(functools.partial(self._work, assignment))

    async def _work(self, assignment: Assignment) -> None:
        driver = assignment.connection.handle if assignment.connection is not None else None
        if not isinstance(driver, AsyncDriver):
            driver = self._driver()
        connection = None
        try:
            connection = await driver.run(self._pool.work(assignment))
        except Exception:  # a bug: the messages settle as not sent, the others go on
            LOGGER.exception("sending to %s failed", assignment.destination)
        finally:
            if connection is None:
                await driver.abort()  # does not suspend for long, even when cancelled
            else:
                connection.handle = driver
            self._start(self._pool.finished(assignment, connection, await self._now()))

    async def _retire(self, connection: PooledConnection) -> None:
        driver = connection.handle
        assert isinstance(driver, AsyncDriver)
        try:
            await driver.run(self._pool.retire(connection))
        except Exception:  # QUIT is a courtesy: the connection is dropped all the same
            LOGGER.exception("closing a connection to %s failed", connection.destination)
        finally:
            await driver.abort()


def _report(submission: Submission) -> DeliveryReport:
    report = submission.report
    assert report is not None  # settled before its event was set
    return report
