"""Direct delivery through MX hosts, and relay delivery: the policy, written once.

:func:`deliver_domain` plans the attempts for one domain (:mod:`smtpproto.mx`), walks them, and
decides after each failure whether the next host may do better (checklist X10, after Postfix's
``smtp_trouble.c``): connection failures, timeouts, TLS failures, 4xx replies and 4xx/5xx
greetings move on; a 5xx to MAIL, RCPT or the data is final.  Recipients refused for good by one
host are not retried elsewhere; those that got a temporary failure are.  :func:`deliver_relay`
sends everything through one relay, authenticating first.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from smtpproto._operations.channel import DEFAULT_PORTS
from smtpproto._operations.message import Body, OutgoingMessage, prepare_message
from smtpproto._operations.options import SendOptions, SessionOptions, TLSMode
from smtpproto._operations.session import Session
from smtpproto._wire.errors import (
    ConnectError,
    DataRefused,
    MessageTooLarge,
    RecipientsRefused,
    ReplyError,
    SenderRefused,
    SMTPError,
    TLSError,
)
from smtpproto._wire.events import Reply
from smtpproto._wire.results import SendResult
from smtpproto.driver import LocalHostname, Operation, ResolveAddresses, ResolveMX, RunConcurrently
from smtpproto.mx import (
    DEFAULT_ADDRESS_LIMIT,
    DEFAULT_MX_PORT,
    DEFAULT_SESSION_LIMIT,
    DeliveryPlan,
    DNSAnswer,
    DNSStatus,
    domain_of,
    lookup_name,
    plan_delivery,
)

from .report import AttemptRecord, DeliveryReport, RecipientOutcome, Status, failure_detail

__all__ = [
    "DeliveryJob",
    "DeliveryOptions",
    "Relay",
    "TLSPolicy",
    "deliver_domain",
    "deliver_relay",
    "delivery",
    "group_by_domain",
]

_STREAM_REFUSED = (
    "deliver() may have to send the body more than once (another MX, another domain): give "
    "bytes, str, a Message, a path or a seekable file, not a stream"
)
# A relay without implicit TLS defaults to the submission port (RFC 6409).
SUBMISSION_PORT = 587
#: Where delivery says what it does between the SMTP lines of ``smtpproto.transcript``: each
#: connection, each failed handshake and cleartext retry, each host given up, and which host
#: settled which recipients.  INFO level; the command line prints it as ``*`` lines.
DELIVERY_LOGGER = logging.getLogger("smtpproto.delivery")


def _where(attempt: AttemptRecord) -> str:
    return f"{attempt.host} [{attempt.address}] port {attempt.port}"


@dataclass(frozen=True)
class TLSPolicy:
    """TLS for MX delivery: opportunistic by default (RFC 7435), required for chosen domains.

    For a domain in ``required_domains``, STARTTLS must succeed with a certificate verified for
    the MX host name; elsewhere STARTTLS is used when offered, without verification.
    """

    required_domains: frozenset[str] = frozenset()

    def mode_for(self, domain: str) -> tuple[TLSMode, bool]:
        # Compare lookup names, so every spelling (case, trailing dot, U-label) matches.
        name = lookup_name(domain)
        if any(lookup_name(d) == name for d in self.required_domains):
            return TLSMode.STARTTLS, True
        return TLSMode.OPPORTUNISTIC, False


@dataclass(frozen=True)
class Relay:
    """A relay (submission) server to send everything through, authenticating first."""

    host: str
    port: int | None = None  # 465 for implicit TLS, else 587
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    tls: TLSMode = TLSMode.STARTTLS
    allow_cleartext_auth: bool = False


@dataclass(frozen=True, kw_only=True)
class DeliveryOptions:
    """How ``deliver()`` behaves; the defaults follow Postfix."""

    #: How each session behaves (its EHLO name, timeouts, limits).
    session: SessionOptions = field(default_factory=SessionOptions)
    #: What to ask of the servers for the message (DSN, REQUIRETLS, MT-PRIORITY).
    send: SendOptions = field(default_factory=SendOptions)
    #: The MX hosts' port (tests point it elsewhere).
    port: int = DEFAULT_MX_PORT
    tls_policy: TLSPolicy = field(default_factory=TLSPolicy)
    #: At most this many addresses tried per domain (Postfix's smtp_mx_address_limit).
    address_limit: int = DEFAULT_ADDRESS_LIMIT
    #: At most this many sessions per domain (Postfix's smtp_mx_session_limit).
    session_limit: int = DEFAULT_SESSION_LIMIT
    #: "ipv4" or "ipv6" first; ``None``: IPv6 first, as Postfix's smtp_address_preference.
    prefer_family: str | None = None
    #: Names of this host: an MX among them is a mail loop (RFC 5321 §5.1).
    local_names: frozenset[str] = frozenset()
    #: Domains delivered at once.
    concurrency: int = 8
    #: Shuffles MX hosts of equal preference; give one for repeatable tests.
    rng: random.Random | None = None

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")

    def named(self, local_hostname: str) -> DeliveryOptions:
        """These options with the EHLO name ``local_hostname``."""
        session = dataclasses.replace(self.session, local_hostname=local_hostname)
        return dataclasses.replace(self, session=session)

    def new_session(self) -> Session:
        return Session(self.session)


def group_by_domain(recipients: Iterable[str]) -> dict[str, list[str]]:
    """Recipients by domain (case-insensitively), in first-seen order: one transaction each."""
    groups: dict[str, list[str]] = {}
    for rcpt in recipients:
        groups.setdefault(domain_of(rcpt).lower(), []).append(rcpt)
    return groups


def plan(domain: str, options: DeliveryOptions) -> Operation[DeliveryPlan]:
    """Ask DNS what :func:`plan_delivery` needs: the MX records, then each target's addresses."""
    name = lookup_name(domain)
    if name is None:  # an address literal is never looked up (C21)
        return plan_delivery(domain, None, {})
    mx: DNSAnswer = yield ResolveMX(name)
    hosts: list[str] = []
    if mx.status is DNSStatus.OK:
        hosts = list(dict.fromkeys(r.host.rstrip(".").lower() for r in mx.mx if r.host.rstrip(".")))
    if mx.status is DNSStatus.NODATA or (mx.status is DNSStatus.OK and not mx.mx):
        hosts = [name]  # implicit MX (X3)
    addresses: dict[str, DNSAnswer] = {}
    for host in hosts:
        addresses[host] = yield ResolveAddresses(host)
    return plan_delivery(
        domain,
        mx,
        addresses,
        rng=options.rng,
        local_names=options.local_names,
        prefer_family=options.prefer_family,
        address_limit=options.address_limit,
    )


class _Ledger:
    """Recipients still pending, the outcome of each one settled, and every attempt made."""

    def __init__(self, recipients: list[str], *, soft_errors: bool) -> None:
        # Direct delivery treats every non-final error as soft: another host, or a later try,
        # may do better (X10).  Through a relay, an error is as temporary as the error says.
        self.soft_errors = soft_errors
        self.recipients = recipients
        self.pending = list(recipients)
        self.attempts: list[AttemptRecord] = []
        self._settled: dict[str, RecipientOutcome] = {}
        # The latest word on each recipient still pending: the reply (and the server that gave
        # it), or the error, and whether it is temporary.
        self._last: dict[str, tuple[Reply | None, str, bool, AttemptRecord | None]] = {}

    def settle(self, rcpt: str, reply: Reply, delivered: bool, where: AttemptRecord) -> None:
        """A server's word on ``rcpt``: final when delivered or permanent, else retry elsewhere."""
        if delivered or reply.is_permanent:
            status: Status = "delivered" if delivered else "permanent"
            self._settled[rcpt] = RecipientOutcome(
                rcpt,
                status,
                reply,
                reply.text,
                where.host,
                where.address,
                where.tls,
                where.tls_verified,
            )
            # Every copy of an address given twice: the server's word covers them all.
            self.pending = [p for p in self.pending if p != rcpt]
        else:
            self._last[rcpt] = (reply, reply.text, True, where)

    def settle_result(self, result: SendResult, where: AttemptRecord) -> None:
        for r in result:
            # What decided: the answer to the data when it got that far, else to its RCPT.
            reply = r.rcpt_reply if r.data_reply is None else r.data_reply
            self.settle(r.recipient, reply, r.delivered, where)

    def settle_error(self, exc: SMTPError, where: AttemptRecord) -> bool:
        """Record a failed transaction.  True when no other host should be tried (X10)."""
        if isinstance(exc, RecipientsRefused):
            for r in exc.result:
                self.settle(r.recipient, r.rcpt_reply, False, where)
            return not self.pending
        if isinstance(exc, MessageTooLarge):
            exc_reply = Reply.synthesized(552, f"5.3.4 {exc}")
            for rcpt in list(self.pending):
                self.settle(rcpt, exc_reply, False, where)
            return True
        reply = exc.reply if isinstance(exc, ReplyError) else None
        if (
            isinstance(exc, (SenderRefused, DataRefused))
            and reply is not None
            and not exc.temporary
        ):
            for rcpt in list(self.pending):
                self.settle(rcpt, reply, False, where)
            return True
        server = where if reply is not None else None  # a reply names the server that gave it
        for rcpt in self.pending:
            self._last[rcpt] = (
                reply,
                failure_detail(exc),
                exc.temporary or self.soft_errors,
                server,
            )
        return False

    def outcomes(self) -> list[RecipientOutcome]:
        attempts = tuple(self.attempts)
        result = []
        for rcpt in self.recipients:
            settled = self._settled.get(rcpt)
            if settled is not None:
                result.append(dataclasses.replace(settled, attempts=attempts))
                continue
            reply, detail, temporary, where = self._last.get(rcpt, (None, "", True, None))
            # A message no host could take for its encoding will not improve by waiting.
            if attempts and all(a.encoding_error for a in attempts):
                temporary = False
            status: Status = "temporary" if temporary else "permanent"
            detail = detail or "no mail server could be reached"
            outcome = RecipientOutcome(rcpt, status, reply, detail, attempts=attempts)
            if where is not None:
                outcome = dataclasses.replace(
                    outcome,
                    server_host=where.host,
                    server_address=where.address,
                    tls=where.tls,
                    tls_verified=where.tls_verified,
                )
            result.append(outcome)
        return result

    def log_settled(self, where: AttemptRecord, recipients: list[str]) -> None:
        """Say which of ``recipients`` this host settled, and how, and which remain."""
        if not DELIVERY_LOGGER.isEnabledFor(logging.INFO):
            return
        by_status: dict[str, list[str]] = {}
        for rcpt in dict.fromkeys(recipients):
            settled = self._settled.get(rcpt)
            status = "not settled here" if settled is None else settled.status
            by_status.setdefault(status, []).append(rcpt)
        said = "; ".join(f"{status}: {', '.join(rcpts)}" for status, rcpts in by_status.items())
        DELIVERY_LOGGER.info("outcome at %s: %s", _where(where), said)


def deliver_domain(
    domain: str, recipients: list[str], message: OutgoingMessage, options: DeliveryOptions
) -> Operation[list[RecipientOutcome]]:
    """Deliver ``message`` to ``recipients`` (all in ``domain``) through its mail exchangers."""
    delivery_plan = yield from plan(domain, options)
    if delivery_plan.error is not None:
        error = delivery_plan.error
        reply = Reply.synthesized(error.code, f"{error.enhanced_status} {error.message}")
        status: Status = "temporary" if error.temporary else "permanent"
        return [RecipientOutcome(r, status, reply, error.message) for r in recipients]
    ledger = _Ledger(recipients, soft_errors=True)
    tls_mode, verify = options.tls_policy.mode_for(domain)
    sessions = 0
    for attempt in delivery_plan.attempts:
        if sessions >= options.session_limit:
            break
        session = options.new_session()
        where = AttemptRecord(attempt.host, attempt.address, options.port)
        DELIVERY_LOGGER.info("connecting to %s (TLS: %s)", _where(where), tls_mode.value)
        try:
            yield from _open(session, where, tls_mode, verify)
        except SMTPError as exc:
            ledger.attempts.append(where.failed(exc))
            if not isinstance(exc, ConnectError):  # a server was reached: its word is the latest
                ledger.settle_error(exc, where)
            DELIVERY_LOGGER.info("giving up on %s: %s", _where(where), exc)
            continue
        where = where.connected(session.tls_active, session.tls_verified)
        sessions += 1  # a session that got past the greeting and TLS (X5, Postfix's limit)
        recipients_here = list(ledger.pending)
        final = yield from _transaction(session, message, ledger, where, options)
        ledger.log_settled(where, recipients_here)
        yield from session.quit()
        if final:
            break
    return ledger.outcomes()


def _open(
    session: Session, where: AttemptRecord, tls_mode: TLSMode, verify: bool
) -> Operation[None]:
    # An address literal has no name to check a certificate against: use the address.
    name = where.address if where.host.startswith("[") else where.host
    try:
        yield from session.open(
            where.address, where.port, tls=tls_mode, server_hostname=name, verify=verify
        )
    except TLSError as exc:
        if tls_mode is not TLSMode.OPPORTUNISTIC:
            raise
        # A failed opportunistic handshake: the same host again, in cleartext (RFC 7435 §4).
        DELIVERY_LOGGER.info(
            "TLS handshake with %s failed (%s); connecting again, in cleartext", _where(where), exc
        )
        yield from session.open(where.address, where.port, tls=TLSMode.NONE, server_hostname=name)


def _transaction(
    session: Session,
    message: OutgoingMessage,
    ledger: _Ledger,
    where: AttemptRecord,
    options: DeliveryOptions,
) -> Operation[bool]:
    """One transaction for the pending recipients; True when no other host should be tried."""
    try:
        result = yield from session.send_message(
            message, recipients=ledger.pending, options=options.send
        )
    except SMTPError as exc:
        ledger.attempts.append(where.failed(exc))
        DELIVERY_LOGGER.info("the transaction with %s failed: %s", _where(where), exc)
        return ledger.settle_error(exc, where)
    ledger.attempts.append(where)
    ledger.settle_result(result, where)
    return not ledger.pending


def deliver_relay(
    message: OutgoingMessage, relay: Relay, options: DeliveryOptions
) -> Operation[list[RecipientOutcome]]:
    """Send ``message`` to all its recipients through ``relay``, authenticating first."""
    session = options.new_session()
    # A relay is a submission server: 465 with implicit TLS, else 587 (RFC 8314, RFC 6409).
    port = relay.port if relay.port is not None else DEFAULT_PORTS.get(relay.tls, SUBMISSION_PORT)
    where = AttemptRecord(relay.host, relay.host, port)
    ledger = _Ledger(list(message.recipients), soft_errors=False)
    DELIVERY_LOGGER.info("connecting to the relay %s (TLS: %s)", _where(where), relay.tls.value)
    try:
        yield from session.open(relay.host, port, tls=relay.tls)
        where = where.connected(session.tls_active, session.tls_verified)
        if relay.username is not None:
            yield from session.authenticate(
                relay.username,
                relay.password,
                token=relay.token,
                allow_cleartext=relay.allow_cleartext_auth,
            )
    except SMTPError as exc:
        ledger.attempts.append(where.failed(exc))
        ledger.settle_error(exc, where)
        DELIVERY_LOGGER.info("the relay %s failed: %s", _where(where), exc)
    else:
        yield from _transaction(session, message, ledger, where, options)
        ledger.log_settled(where, ledger.recipients)
    yield from session.quit()
    return ledger.outcomes()


def delivery(
    message: Body,
    sender: str | None = None,
    recipients: Iterable[str] | None = None,
    *,
    relay: Relay | None = None,
    options: DeliveryOptions | None = None,
) -> Operation[DeliveryReport]:
    """The whole of ``deliver()`` as one operation, for any driver: directly through each
    domain's MX hosts, or through ``relay``.

    Bad input (no recipient, an address without a domain, a one-shot stream) is a
    ``ValueError`` now, before the operation exists.
    """
    job = DeliveryJob(
        message, sender, recipients, relay=relay, options=options or DeliveryOptions()
    )
    return job.run()


class DeliveryJob:
    """One call to ``deliver()``: the operations an adapter runs, and the report they make.

    Direct delivery is one operation per recipient domain (adapters may run them concurrently
    when :attr:`concurrent` allows); relay delivery is a single operation.
    """

    def __init__(
        self,
        message: Body,
        sender: str | None,
        recipients: Iterable[str] | None,
        *,
        relay: Relay | None,
        options: DeliveryOptions,
    ) -> None:
        self.message = prepare_message(message, sender, recipients)
        if self.message.single_use:
            raise ValueError(_STREAM_REFUSED)
        self.relay = relay
        self.options = options
        self.groups = {} if relay else group_by_domain(self.message.recipients)

    def run(self) -> Operation[DeliveryReport]:
        """The whole delivery as one operation: the body checked, then the operations of
        :meth:`operations` run by the driver, as many at once as the options allow."""
        yield from self.prepare()
        if self.options.session.local_hostname is None:  # asked once, for every session
            self.options = self.options.named((yield LocalHostname()))
        operations = tuple(self.operations())
        results = yield RunConcurrently(operations, self.parallelism(self.options.concurrency))
        return self.report(results)

    def prepare(self) -> Operation[None]:
        """Open the body once before anything is sent, when the driver reads it: a missing file
        fails now (:exc:`~smtpproto.BodyReadError`), and a file that cannot be read twice (a
        pipe) is refused, since another MX or domain may need it again."""
        body = self.message.body
        if body.stream is None:
            return
        reader = yield from body.open()
        yield from reader.close()
        if body.single_use:
            raise ValueError(_STREAM_REFUSED)

    def parallelism(self, requested: int) -> int:
        """How many operations may run at once: a file object has one position, so one."""
        if self.message.single_reader:
            return 1
        return max(1, min(requested, len(self.groups) or 1))

    def operations(self) -> list[Operation[list[RecipientOutcome]]]:
        if self.relay is not None:
            return [deliver_relay(self.message, self.relay, self.options)]
        return [
            deliver_domain(domain, rcpts, self.message, self.options)
            for domain, rcpts in self.groups.items()
        ]

    def report(self, results: Iterable[list[RecipientOutcome]]) -> DeliveryReport:
        by_rcpt = {o.recipient: o for outcomes in results for o in outcomes}
        return DeliveryReport(
            tuple(by_rcpt[r] for r in self.message.recipients),
            relay=self.relay is not None,
            port=self.options.port,
        )
