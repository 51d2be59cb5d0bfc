"""A long-lived, thread-safe sender over blocking sockets: connections kept per destination and
reused across messages and calls.

Every decision (which connection, when one is too old, idle or used, how many, which messages
share a pipelined batch) is :class:`smtpproto.sending.SenderPool`'s; this module only holds the
lock and runs the pool's work in a thread pool of its own, one connection per worker.
"""

from __future__ import annotations

import concurrent.futures
import logging
import ssl
import threading
from collections.abc import Iterable
from email.message import Message
from types import TracebackType
from typing import Self

import dns.resolver

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

from .blocking import _Driver

__all__ = ["Sender", "SenderLimits"]

LOGGER = logging.getLogger("smtpproto.sender")


class Sender:
    """Sends messages over connections it keeps: ``send()`` from any number of threads.

    ``relay`` sends everything through one server; without it, each domain's MX hosts are
    walked as ``deliver()`` does.  ``close()`` (or leaving the ``with`` block) waits for the
    work in progress and QUITs every connection.
    """

    def __init__(
        self,
        *,
        relay: Relay | None = None,
        options: DeliveryOptions | None = None,
        limits: SenderLimits | None = None,
        resolver: dns.resolver.Resolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._pool = SenderPool(relay=relay, options=options, limits=limits)
        self._ssl_context = ssl_context
        self._resolver = resolver
        self._clock = _Driver(None)  # only ever asked Now
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)  # notified when no work is running
        self._running = 0
        workers = 2 * self._pool.limits.connections  # connections, and those being closed
        self._workers = concurrent.futures.ThreadPoolExecutor(workers, "smtpproto-sender")

    def send(
        self,
        message: Body | OutgoingMessage,
        sender: str | None = None,
        recipients: Iterable[str] | None = None,
    ) -> DeliveryReport:
        """Deliver ``message``; the report ``deliver()`` would give."""
        done = threading.Event()
        submission = self._submit(message, sender, recipients, done)
        done.wait()
        return _report(submission)

    def send_many(self, messages: Iterable[Message | OutgoingMessage]) -> list[DeliveryReport]:
        """Deliver each message (an email ``Message`` names its own sender and recipients; an
        :class:`~smtpproto.OutgoingMessage` from :func:`~smtpproto.prepare_message` carries
        them); their reports, in order.  Messages to one destination share pipelined
        batches."""
        waits = []
        for message in messages:
            done = threading.Event()
            waits.append((self._submit(message, None, None, done), done))
        reports = []
        for submission, done in waits:
            done.wait()
            reports.append(_report(submission))
        return reports

    def close(self) -> None:
        """QUIT every connection, once the work in progress is done."""
        with self._lock:
            plan = self._pool.close()
            self._start(plan)
            while self._running:
                self._idle.wait()
        self._workers.shutdown()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the workers ---------------------------------------------------------------------------

    def _now(self) -> float:
        now: float = self._clock.perform(Now())
        return now

    def _submit(
        self,
        message: Body | OutgoingMessage,
        sender: str | None,
        recipients: Iterable[str] | None,
        done: threading.Event,
    ) -> Submission:
        with self._lock:
            submission, plan = self._pool.submit(message, sender, recipients, self._now(), done.set)
            self._start(plan)
        return submission

    def _start(self, plan: Plan) -> None:
        """Hand ``plan`` to the workers (under the lock)."""
        for connection in plan.closing:
            self._running += 1
            self._workers.submit(self._retire, connection)
        for assignment in plan.assignments:
            self._running += 1
            self._workers.submit(self._work, assignment)

    def _work(self, assignment: Assignment) -> None:
        while True:
            connection = assignment.connection
            driver = connection.handle if connection is not None else None
            if not isinstance(driver, _Driver):
                driver = _Driver(self._ssl_context, self._resolver)
            connection = None
            try:
                connection = driver.run(self._pool.work(assignment))
            except Exception:  # a bug: the messages settle as not sent, the others go on
                LOGGER.exception("sending to %s failed", assignment.destination)
            if connection is None:
                driver.drop()
            else:
                connection.handle = driver
            with self._lock:
                plan = self._pool.finished(assignment, connection, self._now())
                if plan.assignments and plan.assignments[0].connection is connection:
                    assignment = plan.assignments.pop(0)  # the same connection goes on here
                    self._start(plan)
                    continue
                self._start(plan)
                self._stopped()
                return

    def _retire(self, connection: PooledConnection) -> None:
        driver = connection.handle
        assert isinstance(driver, _Driver)
        try:
            driver.run(self._pool.retire(connection))
        except Exception:  # QUIT is a courtesy: the connection is dropped all the same
            LOGGER.exception("closing a connection to %s failed", connection.destination)
        finally:
            driver.drop()
            with self._lock:
                self._stopped()

    def _stopped(self) -> None:
        self._running -= 1
        if not self._running:
            self._idle.notify_all()


def _report(submission: Submission) -> DeliveryReport:
    report = submission.report
    assert report is not None  # settled before its event was set
    return report
