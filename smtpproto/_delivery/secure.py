"""Authenticated TLS for direct delivery: DANE (RFC 7672) and MTA-STS (RFC 8461), asked of the
driver and decided by :mod:`smtpproto.dane`, :mod:`smtpproto.mta_sts` and
:mod:`smtpproto.tls_requirements`.

Per recipient domain, :func:`domain_policy` looks up the ``_mta-sts`` TXT record and, when the
cache says so, fetches the policy.  Per MX host, :func:`host_policy` looks up its TLSA records
(only when the MX and address answers were authentic) and decides the host's requirement;
:func:`open_under` opens a session as that requirement says and judges it: a host whose policy
is not met carries no mail (it is skipped, never downgraded to cleartext).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from smtpproto._operations.options import TLSMode
from smtpproto._operations.session import Session
from smtpproto._wire.errors import TLSError, TLSRequiredError
from smtpproto.dane import (
    DaneState,
    DaneVerification,
    TLSAAnswer,
    TLSARecord,
    dane_state,
    reference_names,
    tlsa_lookup_needed,
    tlsa_query_names,
    verify_chain,
)
from smtpproto.driver import FetchPolicy, Now, Operation, PeerCertificates, ResolveTLSA, ResolveTXT
from smtpproto.mta_sts import (
    PolicyFetch,
    PolicyResolution,
    parse_txt_record,
    policy_url,
    refetch_needed,
    resolve_policy,
)
from smtpproto.mx import DNSAnswer, DNSStatus
from smtpproto.tls_report import PolicyKind, PolicyOutcome, ResultType
from smtpproto.tls_requirements import (
    TLSRequirement,
    Verification,
    judge_attempt,
    tls_requirement,
)

from .report import AttemptRecord

if TYPE_CHECKING:
    from .policy import DeliveryOptions

__all__ = [
    "DomainPolicy",
    "HostPolicy",
    "domain_policy",
    "host_policy",
    "open_under",
    "pkix_result",
    "policy_error",
]

DELIVERY_LOGGER = logging.getLogger("smtpproto.delivery")

# What a failed certificate check says, in OpenSSL's words, and the RFC 8460 result it is.
_PKIX_WORDS = (
    ("hostname mismatch", ResultType.CERTIFICATE_HOST_MISMATCH),
    ("ip address mismatch", ResultType.CERTIFICATE_HOST_MISMATCH),
    ("expired", ResultType.CERTIFICATE_EXPIRED),
    ("certificate verify failed", ResultType.CERTIFICATE_NOT_TRUSTED),
)


def pkix_result(exc: TLSError) -> ResultType | None:
    """The RFC 8460 result type of a verifying handshake's failure, read from the TLS library's
    message; ``None`` when it was no certificate failure (a protocol error, a lost connection)."""
    text = str(exc).lower()
    return next((result for words, result in _PKIX_WORDS if words in text), None)


def policy_error(outcome: PolicyOutcome) -> TLSRequiredError:
    """The error an attempt whose policy was not met ends with (temporary: 4.7.5 territory)."""
    assert outcome.failure is not None
    failure = outcome.failure
    detail = f" ({failure.additional_information})" if failure.additional_information else ""
    return TLSRequiredError(
        f"TLS policy {outcome.kind.value} not met: {failure.result_type.value}{detail}"
    )


@dataclass(frozen=True, slots=True)
class DomainPolicy:
    """What holds for one recipient domain before any of its MX hosts is tried.

    ``sts`` is the MTA-STS resolution (``None`` with MTA-STS off, or for an address literal);
    ``now`` the driver's clock, asked once, when a policy needs it.
    """

    domain: str
    mx_authentic: bool = False
    sts: PolicyResolution | None = None
    now: float | None = None
    required: bool = False  # the caller's TLSPolicy requires verified TLS for the domain


def domain_policy(
    name: str | None, mx: DNSAnswer | None, options: DeliveryOptions, *, required: bool
) -> Operation[DomainPolicy]:
    """Look up the MTA-STS record of the domain ``name`` (its lookup name; ``None`` for an
    address literal) and fetch its policy when the cache has no current one (RFC 8461 §3.3)."""
    # An authentic NODATA makes the domain its own MX host, as authentic (RFC 7672 §2.2.1).
    mx_authentic = mx is not None and mx.authentic
    if name is None or not options.mta_sts:
        return DomainPolicy(name or "", mx_authentic, required=required)
    txt: DNSAnswer = yield ResolveTXT(f"_mta-sts.{name}")
    record = parse_txt_record(txt.texts) if txt.status is DNSStatus.OK else None
    cached = options.sts_cache.get(name)
    if record is None and cached is None:
        return DomainPolicy(name, mx_authentic, PolicyResolution(None), required=required)
    now: float = yield Now()
    fetched: PolicyFetch | None = None
    if refetch_needed(record, cached, now):
        timeout = options.session.timeouts.connect
        fetched = yield FetchPolicy(policy_url(name), timeout)
    resolution = resolve_policy(record, cached, fetched, now)
    if resolution.store is not None:
        options.sts_cache.put(name, resolution.store)
    if resolution.failure is not None:
        DELIVERY_LOGGER.info(
            "MTA-STS policy of %s: %s %s",
            name,
            resolution.failure.result_type.value,
            resolution.failure.additional_information,
        )
    return DomainPolicy(name, mx_authentic, resolution, now, required)


@dataclass(frozen=True, slots=True)
class HostPolicy:
    """The requirement for one MX host, with what DANE found for it."""

    requirement: TLSRequirement
    records: tuple[TLSARecord, ...] = ()
    base_domain: str | None = None  # the TLSA base domain: SNI and DANE-TA's first name

    def policy_strings(self, domain: DomainPolicy) -> tuple[str, ...]:
        """The TLSA records, or the MTA-STS policy's lines, as TLS-RPT reports them."""
        if self.requirement.kind in (PolicyKind.DANE, PolicyKind.DANE_ENCRYPT_ONLY):
            return tuple(r.to_text() for r in self.records)
        if domain.sts is not None and domain.sts.policy is not None:
            return domain.sts.policy.text
        return ()


def host_policy(
    host: str, addresses: DNSAnswer | None, domain: DomainPolicy, options: DeliveryOptions
) -> Operation[HostPolicy]:
    """Look up the TLSA records of ``host`` when DANE may apply (RFC 7672 §2.2), then decide."""
    state: DaneState | None = None
    records: tuple[TLSARecord, ...] = ()
    base: str | None = None
    address_authentic = addresses is not None and addresses.authentic
    if options.dane_enabled and tlsa_lookup_needed(
        mx_authentic=domain.mx_authentic,
        address_authentic=address_authentic,
        allow_insecure_mx=options.allow_insecure_mx,
    ):
        assert addresses is not None
        for query in tlsa_query_names(host, cname_target=addresses.cname_target, port=options.port):
            answer: TLSAAnswer = yield ResolveTLSA(query)
            state = dane_state(answer)
            if state is not DaneState.NO_TLSA:
                records = answer.records
                base = query.split(".", 2)[2].rstrip(".")
                break
    sts = domain.sts.policy if domain.sts is not None else None
    requirement = tls_requirement(host, dane=state, sts=sts)
    if domain.required and not requirement.enforced:
        # The caller's TLSPolicy: STARTTLS with a certificate verified for the MX host name.
        requirement = TLSRequirement(PolicyKind.REQUIRED, True, Verification.PKIX, True)
    return HostPolicy(requirement, records, base)


def open_under(
    session: Session,
    where: AttemptRecord,
    host: HostPolicy,
    domain: DomainPolicy,
) -> Operation[tuple[PolicyOutcome, bool]]:
    """Open ``session`` to ``where`` as the host's requirement says, and judge the attempt:
    the policy's outcome, and whether mail may go on this session (if not, the session is
    closed).  Failures that are not the policy's (connect, greeting) are raised."""
    requirement = host.requirement
    # An address literal has no name to check a certificate against: use the address.
    name = where.address if where.host.startswith("[") else where.host
    strings = host.policy_strings(domain)

    def judge(
        offered: bool,
        established: bool,
        dane: DaneVerification | None = None,
        pkix: ResultType | None = None,
    ) -> tuple[PolicyOutcome, bool]:
        return judge_attempt(
            requirement,
            policy_domain=domain.domain,
            mx_host=where.host,
            starttls_offered=offered,
            tls_established=established,
            dane_result=dane,
            pkix_failure=pkix,
            receiving_ip=where.address,
            policy_strings=strings,
        )

    if requirement.skip is not None:
        return judge(False, False)
    if not requirement.starttls_required and requirement.verification is Verification.NONE:
        yield from open_opportunistic(session, where, name)
        return judge(True, session.tls_active)
    verify = requirement.verification is Verification.PKIX
    # Under DANE the SNI is the TLSA base domain (RFC 7672 §8.1); the chain is checked here.
    dane = requirement.verification is Verification.DANE
    sni = host.base_domain if dane and host.base_domain else name
    try:
        yield from session.open(
            where.address, where.port, tls=TLSMode.STARTTLS, server_hostname=sni, verify=verify
        )
    except TLSRequiredError as exc:
        result = _explained(judge(False, False), exc)
    except TLSError as exc:
        pkix = pkix_result(exc) if verify else None
        result = _explained(judge(True, pkix is not None, pkix=pkix), exc)
    else:
        verification: DaneVerification | None = None
        if dane:
            chain: tuple[bytes, ...] = yield PeerCertificates()
            now = domain.now if domain.now is not None else (yield Now())
            verification = verify_chain(
                host.records,
                chain,
                reference_names=reference_names(where.host, host.base_domain or where.host),
                now=now,
                mx_host=where.host,
            )
        result = judge(True, True, dane=verification)
        if not result[1]:
            yield from session.quit()
        return result
    outcome, proceed = result
    if not proceed:
        return result
    # MTA-STS testing: the failure is reported, and the mail goes as without the policy (over
    # TLS all the same when authentic, unusable TLSA records promise it, RFC 7672 §2.2).
    DELIVERY_LOGGER.info("MTA-STS testing: %s; delivering all the same", policy_error(outcome))
    if requirement.starttls_required:
        yield from session.open(
            where.address, where.port, tls=TLSMode.STARTTLS, server_hostname=name, verify=False
        )
    else:
        yield from open_opportunistic(session, where, name)
    return outcome, True


def _explained(
    result: tuple[PolicyOutcome, bool], exc: TLSError | TLSRequiredError
) -> tuple[PolicyOutcome, bool]:
    """The failure of ``result`` with the words of the error that caused it."""
    outcome, proceed = result
    assert outcome.failure is not None  # a failed STARTTLS fails every policy that asks for it
    failure = dataclasses.replace(outcome.failure, additional_information=str(exc))
    return dataclasses.replace(outcome, failure=failure), proceed


def open_opportunistic(session: Session, where: AttemptRecord, name: str) -> Operation[None]:
    """STARTTLS when offered, any certificate; a failed handshake is retried in cleartext."""
    try:
        yield from session.open(
            where.address, where.port, tls=TLSMode.OPPORTUNISTIC, server_hostname=name, verify=False
        )
    except TLSError as exc:
        # A failed opportunistic handshake: the same host again, in cleartext (RFC 7435 §4).
        DELIVERY_LOGGER.info(
            "TLS handshake with %s [%s] port %s failed (%s); connecting again, in cleartext",
            where.host,
            where.address,
            where.port,
            exc,
        )
        yield from session.open(where.address, where.port, tls=TLSMode.NONE, server_hostname=name)
