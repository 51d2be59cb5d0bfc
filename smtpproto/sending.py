"""Sending at volume: the pure policy a long-lived sender is built on.

:class:`SenderPool` decides which connection each message goes over (reuse per destination,
idle checks, age and message limits, limits per destination and overall, batching onto
pipelined transactions); the adapters' ``Sender`` classes only lock, spawn workers and drive
the operations it hands out.  :class:`RetryPolicy` says when a temporary failure is worth
another attempt (RFC 5321 §4.5.4.1), and to which recipients.  A third-party adapter writes
its sender on exactly this.

This module is stable API, as :mod:`smtpproto.driver` is.
"""

from __future__ import annotations

from ._delivery.pool import (
    Assignment,
    Destination,
    Plan,
    PooledConnection,
    SenderLimits,
    SenderPool,
    Submission,
)
from ._delivery.retry import RetryAdvice, RetryPolicy

__all__ = [
    "Assignment",
    "Destination",
    "Plan",
    "PooledConnection",
    "RetryAdvice",
    "RetryPolicy",
    "SenderLimits",
    "SenderPool",
    "Submission",
]
