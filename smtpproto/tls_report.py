"""The vocabulary of a delivery's TLS policy report: which policy applied, whether it was met,
and why not, in the words of SMTP TLS Reporting (RFC 8460).

These are plain, frozen values.  :mod:`smtpproto.dane`, :mod:`smtpproto.mta_sts` and
:mod:`smtpproto.tls_requirements` produce them; the delivery report carries one
:class:`PolicyOutcome` per attempt, so a user who sends TLS-RPT reports can build them from it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["FailureDetail", "PolicyKind", "PolicyOutcome", "ReportPolicyType", "ResultType"]


class PolicyKind(enum.Enum):
    """The TLS policy one delivery attempt ran under."""

    NONE = "none"  # TLS turned off by the caller
    OPPORTUNISTIC = "opportunistic"  # STARTTLS when offered, certificate not checked
    MTA_STS_TESTING = "mta-sts-testing"  # RFC 8461 testing: checked, failures only reported
    MTA_STS_ENFORCE = "mta-sts-enforce"  # RFC 8461 enforce: matching MX, verified TLS, or no mail
    DANE = "dane"  # RFC 7672: usable TLSA records, STARTTLS required, chain matched against them
    DANE_ENCRYPT_ONLY = "dane-encrypt-only"  # RFC 7672: authentic TLSA, none usable: TLS required
    REQUIRED = "required"  # the caller's TLSPolicy: STARTTLS, certificate verified for the host

    @property
    def report_policy_type(self) -> ReportPolicyType:
        """The RFC 8460 §4.4 ``policy-type`` a TLS-RPT report files this attempt under."""
        if self in (PolicyKind.DANE, PolicyKind.DANE_ENCRYPT_ONLY):
            return ReportPolicyType.TLSA
        if self in (PolicyKind.MTA_STS_TESTING, PolicyKind.MTA_STS_ENFORCE):
            return ReportPolicyType.STS
        return ReportPolicyType.NO_POLICY_FOUND


class ReportPolicyType(enum.Enum):
    """RFC 8460 §4.4 ``policy-type``."""

    TLSA = "tlsa"
    STS = "sts"
    NO_POLICY_FOUND = "no-policy-found"


class ResultType(enum.Enum):
    """RFC 8460 §4.3 result types, the names a TLS-RPT report uses."""

    # Negotiation failures (§4.3.1)
    STARTTLS_NOT_SUPPORTED = "starttls-not-supported"
    CERTIFICATE_HOST_MISMATCH = "certificate-host-mismatch"
    CERTIFICATE_EXPIRED = "certificate-expired"
    CERTIFICATE_NOT_TRUSTED = "certificate-not-trusted"
    VALIDATION_FAILURE = "validation-failure"
    # DANE policy failures (§4.3.2.1)
    TLSA_INVALID = "tlsa-invalid"
    DNSSEC_INVALID = "dnssec-invalid"
    DANE_REQUIRED = "dane-required"
    # MTA-STS policy failures (§4.3.2.2)
    STS_POLICY_FETCH_ERROR = "sts-policy-fetch-error"
    STS_POLICY_INVALID = "sts-policy-invalid"
    STS_WEBPKI_INVALID = "sts-webpki-invalid"


@dataclass(frozen=True, slots=True)
class FailureDetail:
    """One failure, shaped like an RFC 8460 §4.4 ``failure-details`` entry (without the counts,
    which a report aggregates over many attempts)."""

    result_type: ResultType
    receiving_mx_hostname: str | None = None
    receiving_ip: str | None = None
    receiving_mx_helo: str | None = None
    additional_information: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.result_type, ResultType):
            raise TypeError(f"result_type must be a ResultType, not {self.result_type!r}")


@dataclass(frozen=True, slots=True)
class PolicyOutcome:
    """The TLS policy of one attempt and whether it was met.

    ``met`` is ``False`` exactly when ``failure`` is set.  Under MTA-STS testing a failure does
    not stop delivery: ``met`` is then ``False`` while the message may still have been delivered.
    ``policy_domain`` is the recipient domain the policy belongs to; ``policy_strings`` the TLSA
    records or the MTA-STS policy lines, as RFC 8460 §4.4 ``policy-string`` reports them.
    """

    kind: PolicyKind
    policy_domain: str
    mx_host: str | None = None
    failure: FailureDetail | None = None
    policy_strings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.kind, PolicyKind):
            raise TypeError(f"kind must be a PolicyKind, not {self.kind!r}")

    @property
    def met(self) -> bool:
        return self.failure is None
