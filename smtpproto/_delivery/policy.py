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
from smtpproto._operations.signing import signed
from smtpproto._wire.errors import (
    ConnectError,
    DataRefused,
    MessageTooLarge,
    RecipientsRefused,
    ReplyError,
    SenderRefused,
    SMTPError,
)
from smtpproto._wire.events import Reply
from smtpproto._wire.results import SendResult
from smtpproto.certificates import available as certificates_readable
from smtpproto.driver import LocalHostname, Operation, ResolveAddresses, ResolveMX, RunConcurrently
from smtpproto.mta_sts import InMemoryPolicyCache, PolicyCache
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
from smtpproto.tls_report import PolicyKind

from .report import AttemptRecord, DeliveryReport, RecipientOutcome, Status, failure_detail
from .secure import (
    DomainPolicy,
    HostPolicy,
    domain_policy,
    host_policy,
    open_under,
    policy_error,
)

__all__ = [
    "DeliveryJob",
    "DeliveryOptions",
    "Relay",
    "Survey",
    "TLSPolicy",
    "deliver_domain",
    "deliver_relay",
    "delivery",
    "group_by_domain",
    "survey",
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
    #: DANE (RFC 7672): ``None`` (the default) uses it when the ``dane`` extra is installed.  It
    #: applies only where a validating resolver sets the AD bit on the MX, address and TLSA
    #: answers; without one, no answer is authentic and DANE never applies.
    dane: bool | None = None
    #: Use TLSA records of MX hosts whose MX answer was not authentic (RFC 7672 §2.2.1), when
    #: the hosts' own address answers were: weaker than a signed MX chain, so off by default.
    allow_insecure_mx: bool = False
    #: MTA-STS (RFC 8461): look up ``_mta-sts`` TXT records and fetch the policies they announce.
    mta_sts: bool = True
    #: Where MTA-STS policies are kept between deliveries: in memory, for as long as these
    #: options live, unless another :class:`~smtpproto.mta_sts.PolicyCache` is given.
    sts_cache: PolicyCache = field(default_factory=InMemoryPolicyCache, compare=False)

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")

    @property
    def dane_enabled(self) -> bool:
        """Whether DANE is used: as asked, or (``dane=None``) when certificates can be read."""
        return certificates_readable() if self.dane is None else self.dane

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


@dataclass(frozen=True, slots=True)
class _Found:
    """What DNS said of a domain: the plan, and the answers DANE needs (their AD bits)."""

    plan: DeliveryPlan
    mx: DNSAnswer | None = None
    addresses: dict[str, DNSAnswer] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Survey:
    """What direct delivery to a domain would do, found without connecting: the plan (and the
    DNS answers it came from), the domain's TLS policy (MTA-STS), and each MX host's (DANE,
    MTA-STS, the caller's :class:`TLSPolicy`).  ``smtpproto mx`` prints it."""

    plan: DeliveryPlan
    mx: DNSAnswer | None
    policy: DomainPolicy | None  # None when the plan failed: no policy was looked up
    hosts: dict[str, HostPolicy]


def survey(domain: str, options: DeliveryOptions) -> Operation[Survey]:
    """Ask DNS what :func:`plan_delivery` needs (the MX records, then each target's addresses),
    then what the TLS policies need: the MTA-STS record and policy, each host's TLSA records."""
    found = yield from _look_up(domain, options)
    if found.plan.error is not None:
        return Survey(found.plan, found.mx, None, {})
    required = options.tls_policy.mode_for(domain)[1]
    policy = yield from domain_policy(lookup_name(domain), found.mx, options, required=required)
    hosts: dict[str, HostPolicy] = {}
    for attempt in found.plan.attempts:
        if attempt.host not in hosts:
            answer = found.addresses.get(attempt.host)
            hosts[attempt.host] = yield from host_policy(attempt.host, answer, policy, options)
    return Survey(found.plan, found.mx, policy, hosts)


def _look_up(domain: str, options: DeliveryOptions) -> Operation[_Found]:
    name = lookup_name(domain)
    if name is None:  # an address literal is never looked up (C21)
        return _Found(plan_delivery(domain, None, {}))
    mx: DNSAnswer = yield ResolveMX(name)
    hosts: list[str] = []
    if mx.status is DNSStatus.OK:
        hosts = list(dict.fromkeys(r.host.rstrip(".").lower() for r in mx.mx if r.host.rstrip(".")))
    if mx.status is DNSStatus.NODATA or (mx.status is DNSStatus.OK and not mx.mx):
        hosts = [name]  # implicit MX (X3)
    addresses: dict[str, DNSAnswer] = {}
    for host in hosts:
        addresses[host] = yield ResolveAddresses(host)
    delivery_plan = plan_delivery(
        domain,
        mx,
        addresses,
        rng=options.rng,
        local_names=options.local_names,
        prefer_family=options.prefer_family,
        address_limit=options.address_limit,
    )
    return _Found(delivery_plan, mx, addresses)


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
    found = yield from survey(domain, options)
    delivery_plan = found.plan
    if found.policy is None:
        assert delivery_plan.error is not None
        error = delivery_plan.error
        reply = Reply.synthesized(error.code, f"{error.enhanced_status} {error.message}")
        status: Status = "temporary" if error.temporary else "permanent"
        return [RecipientOutcome(r, status, reply, error.message) for r in recipients]
    ledger = _Ledger(recipients, soft_errors=True)
    sessions = 0
    for attempt in delivery_plan.attempts:
        if sessions >= options.session_limit:
            break
        host = found.hosts[attempt.host]
        session = options.new_session()
        where = AttemptRecord(attempt.host, attempt.address, options.port)
        DELIVERY_LOGGER.info(
            "connecting to %s (TLS: %s)", _where(where), host.requirement.kind.value
        )
        try:
            outcome, proceed = yield from open_under(session, where, host, found.policy)
        except SMTPError as exc:
            ledger.attempts.append(where.failed(exc))
            if not isinstance(exc, ConnectError):  # a server was reached: its word is the latest
                ledger.settle_error(exc, where)
            DELIVERY_LOGGER.info("giving up on %s: %s", _where(where), exc)
            continue
        where = dataclasses.replace(where, policy=outcome)
        if not proceed:  # skipped, never downgraded (RFC 7672 §2.2, RFC 8461 §5)
            refused = policy_error(outcome)
            ledger.attempts.append(where.failed(refused))
            ledger.settle_error(refused, where)
            DELIVERY_LOGGER.info("giving up on %s: %s", _where(where), refused)
            continue
        authenticated = outcome.kind is PolicyKind.DANE and outcome.met
        where = where.connected(session.tls_active, session.tls_verified or authenticated)
        sessions += 1  # a session that got past the greeting and TLS (X5, Postfix's limit)
        recipients_here = list(ledger.pending)
        final = yield from _transaction(session, message, ledger, where, options)
        ledger.log_settled(where, recipients_here)
        yield from session.quit()
        if final:
            break
    return ledger.outcomes()


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


def relay_port(relay: Relay) -> int:
    """The relay's port: as given, else by its TLS mode, a submission server's: 465 with
    implicit TLS, else 587 (RFC 8314, RFC 6409)."""
    return relay.port if relay.port is not None else DEFAULT_PORTS.get(relay.tls, SUBMISSION_PORT)


def open_relay(session: Session, relay: Relay) -> Operation[tuple[AttemptRecord, SMTPError | None]]:
    """Open ``session`` to ``relay`` and authenticate: the attempt so far, and the error that
    ended it (None: ready for a transaction).  For ``deliver()`` and the sender's pool alike."""
    where = AttemptRecord(relay.host, relay.host, relay_port(relay))
    DELIVERY_LOGGER.info("connecting to the relay %s (TLS: %s)", _where(where), relay.tls.value)
    try:
        yield from session.open(relay.host, where.port, tls=relay.tls)
        where = where.connected(session.tls_active, session.tls_verified)
        if relay.username is not None:
            yield from session.authenticate(
                relay.username,
                relay.password,
                token=relay.token,
                allow_cleartext=relay.allow_cleartext_auth,
            )
    except SMTPError as exc:
        DELIVERY_LOGGER.info("the relay %s failed: %s", _where(where), exc)
        return where, exc
    return where, None


def deliver_relay(
    message: OutgoingMessage, relay: Relay, options: DeliveryOptions
) -> Operation[list[RecipientOutcome]]:
    """Send ``message`` to all its recipients through ``relay``, authenticating first."""
    session = options.new_session()
    ledger = _Ledger(list(message.recipients), soft_errors=False)
    where, error = yield from open_relay(session, relay)
    if error is not None:
        ledger.attempts.append(where.failed(error))
        ledger.settle_error(error, where)
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
        if self.options.send.dkim:  # signed once, whatever domains and hosts it goes to
            self.message = yield from signed(self.message.with_options(self.options.send))
            self.options = dataclasses.replace(self.options, send=self.message.options)
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
