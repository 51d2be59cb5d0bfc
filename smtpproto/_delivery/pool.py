"""Connections kept between messages: which one to reuse, when one is too old, idle or used,
how many may be open, and which messages travel together — the sender's policy, written once.

A :class:`SenderPool` holds no socket and reads no clock.  An adapter calls its methods under its
own lock (a thread lock; nothing in an event loop, where they never suspend), passing the time
it read through the driver's :class:`~smtpproto.driver.Now`, and performs the operations it
hands out (:meth:`SenderPool.work`, :meth:`SenderPool.retire`) on the connection's own driver.

Work is handed out as :class:`Assignment` values: a destination (a relay, or a domain's MX set),
the connection to use (``None``: open one) and the messages to send on it, pipelined in one
``Session.send_messages`` batch.  A caller whose message finds its destination's connections
all busy leaves it queued: the next batch of a busy connection takes it (so callers combine
their messages onto the open connections instead of opening more).  Each message settles to the
report ``deliver()`` gives, recipient by recipient.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from smtpproto._operations.message import Body, OutgoingMessage
from smtpproto._operations.session import Session
from smtpproto._wire.errors import ConnectError, SMTPError
from smtpproto._wire.events import Reply
from smtpproto.driver import LocalHostname, Operation, RunConcurrently
from smtpproto.tls_report import PolicyKind

from .policy import (
    _STREAM_REFUSED,
    DeliveryJob,
    DeliveryOptions,
    Relay,
    Survey,
    _Ledger,
    _transaction,
    open_relay,
    relay_port,
    survey,
)
from .report import AttemptRecord, DeliveryReport, RecipientOutcome, Status
from .secure import open_under, policy_error

__all__ = [
    "Assignment",
    "Destination",
    "Plan",
    "PooledConnection",
    "SenderLimits",
    "SenderPool",
    "Submission",
]

#: A relay ``("relay", host, port)`` or a domain's MX set ``("mx", domain)``.
Destination = tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class SenderLimits:
    """How a sender keeps its connections (the defaults follow Postfix's connection cache and
    destination concurrency: ``smtp_connection_cache_time_limit``, ``..._reuse_count_limit``,
    ``default_destination_concurrency_limit``)."""

    #: Connections open at once, over all destinations.
    connections: int = 20
    #: Connections open at once to one destination (a relay, or a domain's MX hosts).
    per_destination: int = 4
    #: Messages sent over one connection before it is closed (0: no limit).
    messages_per_connection: int = 100
    #: Seconds after it opened that a connection is closed rather than reused.
    max_age: float = 300.0
    #: Seconds idle after which a NOOP checks a connection before it is reused.
    idle_check: float = 2.0
    #: Seconds idle after which a connection is closed rather than reused.
    idle_close: float = 60.0
    #: Messages pipelined onto one connection in one batch.
    batch: int = 50

    def __post_init__(self) -> None:
        if min(self.connections, self.per_destination, self.batch) < 1:
            raise ValueError("connections, per_destination and batch must be at least 1")


class PooledConnection:
    """An open session kept for reuse.  ``handle`` is the adapter's own (its driver)."""

    __slots__ = (
        "destination",
        "handle",
        "last_used",
        "messages",
        "opened_at",
        "route",
        "session",
        "where",
    )

    def __init__(self, session: Session, destination: Destination, where: AttemptRecord) -> None:
        self.session = session
        self.destination = destination
        self.where = where
        self.opened_at: float | None = None
        self.last_used = 0.0
        self.messages = 0
        self.handle: object = None
        #: For an MX destination: the survey it came from and its place in the plan.
        self.route: tuple[Survey, int] | None = None


class _Part:
    """One message's recipients at one destination, and what became of them."""

    def __init__(self, submission: Submission, recipients: list[str], soft: bool) -> None:
        self.submission = submission
        self.message = submission.job.message.with_recipients(recipients)
        self.ledger = _Ledger(recipients, soft_errors=soft)
        self.outcomes: list[RecipientOutcome] | None = None  # set by the work, read under lock


class Submission:
    """One message handed to the sender: done once every destination settled its part;
    ``on_done`` (the adapter's wake-up) is called then."""

    def __init__(self, job: DeliveryJob, on_done: Callable[[], None]) -> None:
        self.job = job
        self.on_done = on_done
        self._outcomes: list[list[RecipientOutcome]] = []
        self.parts = 0
        self.report: DeliveryReport | None = None

    def settle(self, outcomes: list[RecipientOutcome]) -> None:
        self._outcomes.append(outcomes)
        if len(self._outcomes) == self.parts:
            self.report = self.job.report(self._outcomes)
            self.on_done()


@dataclass(slots=True)
class Assignment:
    """Work for one connection: ``jobs`` sent over ``connection`` (``None``: open one first;
    ``probe``: NOOP first, it has been idle)."""

    destination: Destination
    connection: PooledConnection | None
    jobs: list[_Part]
    probe: bool = False
    started: float = 0.0


@dataclass(slots=True)
class _Place:
    queue: deque[_Part] = field(default_factory=deque)
    idle: list[PooledConnection] = field(default_factory=list)
    busy: int = 0


@dataclass(slots=True)
class Plan:
    """What the adapter does next: run each assignment; QUIT each connection in ``closing``."""

    assignments: list[Assignment] = field(default_factory=list)
    closing: list[PooledConnection] = field(default_factory=list)


class SenderPool:
    """The state of one sender: queued messages, idle and busy connections per destination."""

    def __init__(
        self,
        *,
        relay: Relay | None = None,
        options: DeliveryOptions | None = None,
        limits: SenderLimits | None = None,
    ) -> None:
        self.relay = relay
        self.options = options or DeliveryOptions()
        self.limits = limits or SenderLimits()
        self._places: dict[Destination, _Place] = {}
        self._open = 0  # connections open or opening, over all destinations
        self.closed = False

    # -- decisions, under the adapter's lock -----------------------------------------------------

    def submit(
        self,
        message: Body | OutgoingMessage,
        sender: str | None,
        recipients: Iterable[str] | None,
        now: float,
        on_done: Callable[[], None],
    ) -> tuple[Submission, Plan]:
        """Queue ``message`` (a ``ValueError`` now for bad input); the plan says what to start."""
        if self.closed:
            raise RuntimeError("the sender is closed")
        if isinstance(message, OutgoingMessage):  # already prepared: checked the same way
            job = DeliveryJob(
                b"", message.sender, message.recipients, relay=self.relay, options=self.options
            )
            if message.single_use:
                raise ValueError(_STREAM_REFUSED)
            job.message = message
        else:
            job = DeliveryJob(message, sender, recipients, relay=self.relay, options=self.options)
        submission = Submission(job, on_done)
        if self.relay is not None:
            relay = self.relay
            groups: dict[Destination, list[str]] = {
                ("relay", relay.host, str(relay_port(relay))): list(job.message.recipients)
            }
        else:
            groups = {("mx", domain): rcpts for domain, rcpts in job.groups.items()}
        submission.parts = len(groups)
        plan = self._expire(now)
        for destination, rcpts in groups.items():
            place = self._places.setdefault(destination, _Place())
            place.queue.append(_Part(submission, rcpts, soft=self.relay is None))
            self._dispatch(destination, now, plan)
        return submission, plan

    def finished(
        self, assignment: Assignment, connection: PooledConnection | None, now: float
    ) -> Plan:
        """``assignment`` is done; ``connection`` is what is left of it (``None``: closed)."""
        for job in assignment.jobs:
            # A job the work never settled (it was interrupted) is open: not known delivered.
            job.submission.settle(job.ledger.outcomes() if job.outcomes is None else job.outcomes)
        place = self._places[assignment.destination]
        place.busy -= 1
        plan = Plan()
        if connection is not None and connection.opened_at is None:
            connection.opened_at = assignment.started
        if connection is None:
            self._open -= 1
        elif self.closed or self._worn(connection, now):
            self._open -= 1
            plan.closing.append(connection)
        elif place.queue:  # more for the same place: keep going on the same connection
            place.busy += 1
            jobs = self._take(place, connection)
            more = Assignment(assignment.destination, connection, jobs, started=now)
            plan.assignments.append(more)
            return plan
        else:
            connection.last_used = now
            place.idle.append(connection)
        for destination in list(self._places):  # a queue left without a connection (limits)
            self._dispatch(destination, now, plan)
        return plan

    def close(self) -> Plan:
        """Refuse new messages; every idle connection is QUIT (busy ones when their work ends)."""
        self.closed = True
        plan = Plan()
        for place in self._places.values():
            plan.closing += place.idle
            self._open -= len(place.idle)
            place.idle = []
        return plan

    def _expire(self, now: float) -> Plan:
        plan = Plan()
        for place in self._places.values():
            keep = [c for c in place.idle if not self._stale(c, now)]
            plan.closing += [c for c in place.idle if c not in keep]
            self._open -= len(place.idle) - len(keep)
            place.idle = keep
        return plan

    def _worn(self, connection: PooledConnection, now: float) -> bool:
        limit = self.limits.messages_per_connection
        opened = connection.opened_at
        return (
            connection.session.closed
            or bool(limit and connection.messages >= limit)
            or (opened is not None and now - opened >= self.limits.max_age)
        )

    def _stale(self, connection: PooledConnection, now: float) -> bool:
        return self._worn(connection, now) or now - connection.last_used >= self.limits.idle_close

    def _dispatch(self, destination: Destination, now: float, plan: Plan) -> None:
        """Start a connection for ``destination``'s queue if it has none and the limits allow
        (closing another destination's idle connection to make room)."""
        place = self._places[destination]
        if not place.queue:
            return
        if place.idle:
            connection = place.idle.pop()  # the most recently used
            probe = now - connection.last_used >= self.limits.idle_check
            place.busy += 1
            more = Assignment(destination, connection, self._take(place, connection), probe, now)
            plan.assignments.append(more)
            return
        if place.busy >= self.limits.per_destination:
            return  # a busy connection takes it with its next batch
        if self._open >= self.limits.connections and not self._evict(plan):
            return
        self._open += 1
        place.busy += 1
        plan.assignments.append(Assignment(destination, None, self._take(place), started=now))

    def _evict(self, plan: Plan) -> bool:
        for place in self._places.values():
            if place.idle:
                plan.closing.append(place.idle.pop(0))
                self._open -= 1
                return True
        return False

    def _take(self, place: _Place, connection: PooledConnection | None = None) -> list[_Part]:
        """The next batch, no larger than what the connection may still send."""
        count = min(self.limits.batch, len(place.queue))
        limit = self.limits.messages_per_connection
        if limit:
            count = min(count, limit - (connection.messages if connection else 0))
        return [place.queue.popleft() for _ in range(count)]

    # -- operations, on the connection's driver --------------------------------------------------

    def work(self, assignment: Assignment) -> Operation[PooledConnection | None]:
        """Send the assignment's messages (opening or checking the connection first) and settle
        each one; the connection, if it is still usable, else ``None``."""
        connection = assignment.connection
        if connection is not None and assignment.probe:
            reply: Reply | None = None
            with contextlib.suppress(SMTPError):  # any failure: not fit for reuse
                reply = yield from connection.session.noop()
            if reply is None or not reply.is_positive:  # gone stale: a fresh one instead
                yield from connection.session.quit()
                connection = None
        if connection is None:
            connection = yield from self._open_for(assignment)
            if connection is None:
                return None
        jobs = assignment.jobs
        batch = connection.session.send_messages([job.message for job in jobs])
        where = connection.where
        for job in jobs:
            outcome = yield from batch.next_outcome()
            ledger = job.ledger
            if isinstance(outcome, SMTPError):
                ledger.attempts.append(where.failed(outcome))
                ledger.settle_error(outcome, where)
            else:
                assert outcome is not None  # one outcome per message given
                ledger.attempts.append(where)
                ledger.settle_result(outcome, where)
            connection.messages += 1
            job.outcomes = ledger.outcomes()
        if connection.route is not None:
            left = [job for job in jobs if job.ledger.pending]
            if left:  # on connections of their own, not the pooled one
                walks = tuple(self._elsewhere(connection, job) for job in left)
                yield RunConcurrently(walks, 1)
                for job in left:
                    job.outcomes = job.ledger.outcomes()
        return None if connection.session.closed else connection

    def retire(self, connection: PooledConnection) -> Operation[None]:
        """QUIT and close ``connection``."""
        return connection.session.quit()

    def _options(self) -> Operation[DeliveryOptions]:
        if self.options.session.local_hostname is None:  # asked once, for every session
            self.options = self.options.named((yield LocalHostname()))
        return self.options

    def _open_for(self, assignment: Assignment) -> Operation[PooledConnection | None]:
        """A new session to the destination (walking the MX hosts as ``deliver()`` does), or
        ``None`` with every job settled by the failures met."""
        options = yield from self._options()
        jobs = assignment.jobs
        if self.relay is not None:
            connection = yield from self._open_relay(self.relay, jobs, options)
        else:
            connection = yield from self._open_mx(assignment.destination[1], jobs, options)
        if connection is None:
            for job in jobs:
                if job.outcomes is None:
                    job.outcomes = job.ledger.outcomes()
        return connection

    def _open_relay(
        self, relay: Relay, jobs: list[_Part], options: DeliveryOptions
    ) -> Operation[PooledConnection | None]:
        session = options.new_session()
        where, error = yield from open_relay(session, relay)
        if error is not None:
            _failed(jobs, where, error)
            yield from session.quit()
            return None
        return PooledConnection(session, ("relay", relay.host, str(where.port)), where)

    def _open_mx(
        self, domain: str, jobs: list[_Part], options: DeliveryOptions
    ) -> Operation[PooledConnection | None]:
        found = yield from survey(domain, options)
        if found.policy is None:  # no host to try: the plan's error is every recipient's
            error = found.plan.error
            assert error is not None
            reply = Reply.synthesized(error.code, f"{error.enhanced_status} {error.message}")
            status: Status = "temporary" if error.temporary else "permanent"
            for job in jobs:
                job.outcomes = [
                    RecipientOutcome(r, status, reply, error.message) for r in job.ledger.recipients
                ]
            return None
        return (yield from self._walk(domain, found, 0, jobs, options))

    def _walk(
        self, domain: str, found: Survey, start: int, jobs: list[_Part], options: DeliveryOptions
    ) -> Operation[PooledConnection | None]:
        """A session with the first host of the plan, from ``start``, that takes one: each
        failure on the way is recorded for every job, as ``deliver()`` records it."""
        assert found.policy is not None
        for index in range(start, len(found.plan.attempts)):
            attempt = found.plan.attempts[index]
            host = found.hosts[attempt.host]
            session = options.new_session()
            where = AttemptRecord(attempt.host, attempt.address, options.port)
            try:
                outcome, proceed = yield from open_under(session, where, host, found.policy)
                where = dataclasses.replace(where, policy=outcome)
                if not proceed:  # skipped, never downgraded (RFC 7672 §2.2, RFC 8461 §5)
                    raise policy_error(outcome)
            except SMTPError as exc:  # a server that was reached has the latest word
                _failed(jobs, where, exc, server=not isinstance(exc, ConnectError))
                continue
            authenticated = outcome.kind is PolicyKind.DANE and outcome.met
            where = where.connected(session.tls_active, session.tls_verified or authenticated)
            connection = PooledConnection(session, ("mx", domain), where)
            connection.route = (found, index)
            return connection
        return None

    def _elsewhere(self, connection: PooledConnection, job: _Part) -> Operation[None]:
        """Recipients the pooled host left open (a 4xx) go to the next MX hosts, as in
        ``deliver()``, each over a session of its own that is closed after the message."""
        assert connection.route is not None
        found, index = connection.route
        options = self.options
        sessions = 1  # the pooled one (Postfix's smtp_mx_session_limit counts it)
        domain = connection.destination[1]
        final = False
        while (
            not final
            and job.ledger.pending
            and sessions < options.session_limit
            and (other := (yield from self._walk(domain, found, index + 1, [job], options)))
        ):
            assert other.route is not None
            sessions += 1
            index = other.route[1]
            final = yield from _transaction(
                other.session, job.message, job.ledger, other.where, options
            )
            yield from other.session.quit()


def _failed(jobs: list[_Part], where: AttemptRecord, exc: SMTPError, server: bool = True) -> None:
    for job in jobs:
        job.ledger.attempts.append(where.failed(exc))
        if server:
            job.ledger.settle_error(exc, where)
