"""Delivery beyond one process: a ready Celery task (the ``celery`` extra, Celery on Redis).

:func:`install` registers a task on your Celery app that delivers one message through a sender
kept per worker process (:class:`smtpproto.adapters.sender_blocking.Sender`: its connections are
reused across the tasks that process runs), retries the recipients still open after a temporary
failure when :class:`~smtpproto.sending.RetryPolicy` advises (a new task for them alone, with
the advised countdown), and records permanent failures: the task's result, the
:data:`permanent_failure` signal, and the ``on_report`` hook.

The guarantee is **at least once**.  The task is acknowledged late (``acks_late``) and
rejected back to the queue when its worker dies (``reject_on_worker_lost``): a worker killed
anywhere before the acknowledgement loses nothing, and one killed between the server's 250 and
the acknowledgement makes the message go out again.  Give every message a ``Message-ID`` (the
task refuses one without) so a receiver can discard the duplicate.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from collections.abc import Callable, Iterable
from email.message import Message
from typing import Any

from celery import Celery, Task
from celery.signals import worker_process_shutdown
from celery.utils.dispatch import Signal

from smtpproto import DeliveryOptions, DeliveryReport, Relay, prepare_message
from smtpproto.sending import RetryPolicy, SenderLimits

from .sender_blocking import Sender

__all__ = ["DEFAULT_TASK_NAME", "enqueue", "install", "permanent_failure"]

DEFAULT_TASK_NAME = "smtpproto.deliver"

#: Sent by the task when recipients failed for good (or were given up on): ``sender`` is the
#: task, ``message_id`` the message's, ``recipients`` a list of ``(address, detail)`` pairs.
permanent_failure = Signal(name="smtpproto.permanent_failure")

#: Called in the worker after each attempt: ``(report, attempts, gave_up)``.
ReportHook = Callable[[DeliveryReport, int, bool], None]


class _PerProcess:
    """One sender per worker process, made on first use after the fork (a sender's threads and
    sockets do not survive one), closed with QUIT when the process shuts down."""

    def __init__(self, make: Callable[[], Sender]) -> None:
        self._make = make
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._sender: Sender | None = None
        worker_process_shutdown.connect(self._close, weak=False)

    def get(self) -> Sender:
        with self._lock:
            if self._sender is None or self._pid != os.getpid():
                self._sender, self._pid = self._make(), os.getpid()
            return self._sender

    def _close(self, **_: Any) -> None:
        with self._lock:
            sender, self._sender = self._sender, None
        if sender is not None and self._pid == os.getpid():
            sender.close()


def install(
    app: Celery,
    *,
    relay: Relay | None = None,
    options: DeliveryOptions | None = None,
    limits: SenderLimits | None = None,
    retry: RetryPolicy | None = None,
    on_report: ReportHook | None = None,
    name: str = DEFAULT_TASK_NAME,
) -> Task:
    """Register the delivery task on ``app`` and return it; call :func:`enqueue` with it.

    ``relay``, ``options`` and ``limits`` configure each worker process's sender;
    ``retry`` (RFC 5321's defaults) when to try the recipients still open again.
    """
    senders = _PerProcess(lambda: Sender(relay=relay, options=options, limits=limits))
    policy = retry or RetryPolicy()

    @app.task(  # type: ignore[untyped-decorator]  # Celery has no type hints
        name=name, bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None
    )
    def deliver(
        task: Task,
        content: str,
        sender: str,
        recipients: list[str],
        *,
        first_tried: float | None = None,
        attempts: int = 1,
    ) -> dict[str, Any]:
        now = time.time()
        first = now if first_tried is None else first_tried
        report = senders.get().send(base64.b64decode(content), sender, recipients)
        advice = policy.advise(report, attempts=attempts, first_tried=first, now=now)
        if on_report is not None:
            on_report(report, attempts, advice.give_up)
        failed = [(o.recipient, o.detail) for o in report.outcomes if o.status == "permanent"]
        if advice.give_up:
            failed += [(r, report[r].detail) for r in advice.recipients]
        if failed:
            message_id = _message_id(base64.b64decode(content))
            permanent_failure.send(sender=task, message_id=message_id, recipients=failed)
        if advice.retry:
            # A new task for the recipients still open; this one is acknowledged once it is
            # queued (a kill in between re-runs this one: at least once).
            raise task.retry(
                args=(content, sender, list(advice.recipients)),
                kwargs={"first_tried": first, "attempts": attempts + 1},
                countdown=advice.delay,
            )
        return {
            "delivered": report.with_status("delivered"),
            "failed": [list(pair) for pair in failed],
            "attempts": attempts,
        }

    return deliver


def enqueue(
    task: Task,
    message: Message | bytes,
    sender: str | None = None,
    recipients: Iterable[str] | None = None,
    **apply_options: Any,
) -> Any:
    """Queue ``message`` for delivery by ``task`` (from :func:`install`); the ``AsyncResult``.

    The envelope comes from the headers of an email ``Message`` unless given.  The message
    must carry a Message-ID: it is what lets a receiver discard a duplicate (at least once).
    """
    prepared = prepare_message(message, sender, recipients)
    data = prepared.body.data
    if data is None:  # a Message or bytes is always in memory
        raise ValueError("the task takes a message in memory (bytes or an email Message)")
    if _message_id(data) is None:
        raise ValueError("give the message a Message-ID, so a duplicate can be recognised")
    content = base64.b64encode(data).decode("ascii")
    return task.apply_async((content, prepared.sender, list(prepared.recipients)), **apply_options)


def _message_id(data: bytes) -> str | None:
    """The Message-ID in the header of ``data``, if any."""
    header = data.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    for line in header.splitlines():
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"message-id":
            return value.strip().decode("ascii", "replace")
    return None
