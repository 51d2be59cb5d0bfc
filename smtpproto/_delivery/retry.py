"""When to try a temporary failure again, and when to give up: advice, not a queue.

RFC 5321 §4.5.4.1: a sender retrying a message that failed temporarily should wait at least 30
minutes between attempts, and give up after at least 4-5 days.  :class:`RetryPolicy` says that
(configurably: a task queue's tests want seconds) as values; the caller keeps the message, the
time it was first tried and the count of attempts, and gives them back with the new report.
"""

from __future__ import annotations

from dataclasses import dataclass

from .report import DeliveryReport

__all__ = ["RetryAdvice", "RetryPolicy"]

MINUTE = 60.0
DAY = 86400.0


@dataclass(frozen=True, slots=True)
class RetryAdvice:
    """What to do after an attempt: try ``recipients`` again ``delay`` seconds from now, or
    (``give_up``) report them as failed for good.  Nothing to retry: no recipients, no delay."""

    recipients: tuple[str, ...]
    delay: float | None
    give_up: bool

    @property
    def retry(self) -> bool:
        """Whether another attempt is advised."""
        return self.delay is not None


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """The wait before each new attempt: ``first`` seconds, multiplied by ``backoff`` each time
    up to ``longest``; no attempt once ``give_up_after`` seconds have passed since the first.
    The defaults are RFC 5321 §4.5.4.1's: 30 minutes at least, give up after 5 days."""

    first: float = 30 * MINUTE
    backoff: float = 2.0
    longest: float = 4 * 60 * MINUTE
    give_up_after: float = 5 * DAY

    def __post_init__(self) -> None:
        if self.first <= 0 or self.backoff < 1 or self.longest < self.first:
            raise ValueError("need 0 < first <= longest and backoff >= 1")

    def delay(self, attempts: int) -> float:
        """The wait after the ``attempts``-th attempt (1 for the first)."""
        if attempts < 1:
            raise ValueError("attempts count from 1")
        return min(self.longest, self.first * self.backoff ** (attempts - 1))

    def advise(
        self, report: DeliveryReport, *, attempts: int, first_tried: float, now: float
    ) -> RetryAdvice:
        """Advice after ``report``, the outcome of attempt number ``attempts`` of a message
        first tried at ``first_tried`` (``now`` in the same clock): the recipients still open
        (:meth:`~smtpproto.DeliveryReport.still_open`) and when to try them again."""
        still_open = tuple(report.still_open())
        if not still_open:
            return RetryAdvice((), None, give_up=False)
        delay = self.delay(attempts)
        if now + delay - first_tried > self.give_up_after:
            return RetryAdvice(still_open, None, give_up=True)
        return RetryAdvice(still_open, delay, give_up=False)
