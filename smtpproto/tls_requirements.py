"""Which TLS policy governs one MX host, and whether an attempt met it: DANE and MTA-STS combined.

The delivery asks :func:`tls_requirement` before connecting to an MX host, with what DANE
(:func:`smtpproto.dane.dane_state`) and MTA-STS (:func:`smtpproto.mta_sts.resolve_policy`) found;
after the attempt, :func:`judge_attempt` turns what happened into a
:class:`~smtpproto.tls_report.PolicyOutcome` and says whether the session may carry mail.

DANE wins where both exist (RFC 8461 §2): a host with usable, authentic TLSA records is
authenticated by them whatever the MTA-STS policy says, and a failed TLSA lookup skips the host
even under MTA-STS, since a bogus answer may be an attack.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass

from .dane import DaneState, DaneVerification
from .mta_sts import Mode, StsPolicy
from .tls_report import FailureDetail, PolicyKind, PolicyOutcome, ResultType

__all__ = ["TLSRequirement", "Verification", "judge_attempt", "tls_requirement"]


class Verification(enum.Enum):
    """How the peer's certificate is checked."""

    NONE = "none"  # not at all (opportunistic TLS, DANE with only unusable records)
    DANE = "dane"  # against the TLSA records (smtpproto.dane.verify_chain)
    PKIX = "pkix"  # by the driver's trust store, for the MX host name (RFC 8461 §4.2)


@dataclass(frozen=True, slots=True)
class TLSRequirement:
    """What an attempt on one MX host must do.

    ``skip`` set: do not connect to this host (the reason is the attempt's failure).
    ``starttls_required``: without STARTTLS, or if the handshake fails, send no mail on this
    session; try the next MX (never fall back to cleartext).
    ``enforced``: a failed ``verification`` also stops the attempt; otherwise (MTA-STS testing)
    it is only reported.
    """

    kind: PolicyKind
    starttls_required: bool
    verification: Verification
    enforced: bool
    skip: FailureDetail | None = None


def tls_requirement(
    mx_host: str,
    *,
    dane: DaneState | None,
    sts: StsPolicy | None,
    tls_enabled: bool = True,
) -> TLSRequirement:
    """The requirement for ``mx_host``.

    ``dane`` is ``None`` when no TLSA lookup was made (DANE not applicable: insecure MX or address
    records); ``sts`` the domain's MTA-STS policy or ``None``.  ``tls_enabled=False`` (the caller
    turned TLS off) gives the ``none`` policy, whatever DNS says.
    """
    if not tls_enabled:
        return TLSRequirement(PolicyKind.NONE, False, Verification.NONE, enforced=False)
    if dane is DaneState.FAILED:
        bogus = FailureDetail(
            ResultType.DNSSEC_INVALID,
            receiving_mx_hostname=mx_host,
            additional_information="the TLSA lookup failed or was bogus (RFC 7672 §2.2.1)",
        )
        return TLSRequirement(PolicyKind.DANE, True, Verification.DANE, enforced=True, skip=bogus)
    if dane is DaneState.USABLE:
        return TLSRequirement(PolicyKind.DANE, True, Verification.DANE, enforced=True)
    # Authentic TLSA records that are all unusable still promise TLS (RFC 7672 §2.2).
    encrypt = dane is DaneState.UNUSABLE
    mode = sts.mode if sts is not None else Mode.NONE
    if mode is Mode.ENFORCE:
        skip: FailureDetail | None = None
        if sts is not None and not sts.allows(mx_host):
            skip = FailureDetail(
                ResultType.VALIDATION_FAILURE,
                receiving_mx_hostname=mx_host,
                additional_information="the MX host matches no mx pattern of the MTA-STS policy",
            )
        return TLSRequirement(
            PolicyKind.MTA_STS_ENFORCE, True, Verification.PKIX, enforced=True, skip=skip
        )
    if mode is Mode.TESTING:
        return TLSRequirement(PolicyKind.MTA_STS_TESTING, encrypt, Verification.PKIX, False)
    if encrypt:
        return TLSRequirement(PolicyKind.DANE_ENCRYPT_ONLY, True, Verification.NONE, False)
    return TLSRequirement(PolicyKind.OPPORTUNISTIC, False, Verification.NONE, enforced=False)


def judge_attempt(
    requirement: TLSRequirement,
    *,
    policy_domain: str,
    mx_host: str,
    starttls_offered: bool,
    tls_established: bool,
    dane_result: DaneVerification | None = None,
    pkix_failure: ResultType | None = None,
    receiving_ip: str | None = None,
    policy_strings: tuple[str, ...] = (),
) -> tuple[PolicyOutcome, bool]:
    """The outcome of an attempt under ``requirement`` and whether mail may be sent on it.

    The driver reports ``starttls_offered`` (the EHLO keyword), ``tls_established`` (the
    handshake succeeded), ``dane_result`` (for :attr:`Verification.DANE`) and ``pkix_failure``
    (for :attr:`Verification.PKIX`: ``None`` when the chain verified for ``mx_host``, otherwise
    ``certificate-host-mismatch``, ``certificate-expired`` or ``certificate-not-trusted``).
    An MX host that :func:`tls_requirement` said to ``skip`` fails at once.
    ``policy_strings`` are the TLSA records or the policy's lines, kept for TLS-RPT.
    """
    failure = requirement.skip or _first_failure(
        requirement, starttls_offered, tls_established, dane_result, pkix_failure
    )
    if failure is not None:
        failure = dataclasses.replace(
            failure, receiving_mx_hostname=mx_host, receiving_ip=receiving_ip
        )
    outcome = PolicyOutcome(requirement.kind, policy_domain, mx_host, failure, policy_strings)
    stop = failure is not None and (
        requirement.skip is not None
        or requirement.enforced
        or (requirement.starttls_required and not tls_established)
    )
    return outcome, not stop


def _first_failure(
    requirement: TLSRequirement,
    starttls_offered: bool,
    tls_established: bool,
    dane_result: DaneVerification | None,
    pkix_failure: ResultType | None,
) -> FailureDetail | None:
    if requirement.kind in (PolicyKind.NONE, PolicyKind.OPPORTUNISTIC):
        return None
    if not starttls_offered:
        return FailureDetail(ResultType.STARTTLS_NOT_SUPPORTED)
    if not tls_established:
        return FailureDetail(ResultType.VALIDATION_FAILURE, additional_information="TLS failed")
    if requirement.verification is Verification.DANE:
        if dane_result is None:
            raise ValueError("a DANE requirement is judged with the chain's DANE verification")
        return dane_result.failure
    if requirement.verification is Verification.PKIX and pkix_failure is not None:
        return FailureDetail(pkix_failure)
    return None
