"""Which TLS policy governs an MX host (DANE wins over MTA-STS, RFC 8461 §2), whether an attempt
met it, and the report vocabulary (RFC 8460 result types) that says so."""

from __future__ import annotations

import pytest

from smtpproto.dane import DaneState, DaneVerification, TLSARecord
from smtpproto.mta_sts import Mode, StsPolicy
from smtpproto.tls_report import (
    FailureDetail,
    PolicyKind,
    PolicyOutcome,
    ReportPolicyType,
    ResultType,
)
from smtpproto.tls_requirements import (
    TLSRequirement,
    Verification,
    judge_attempt,
    tls_requirement,
)

ENFORCE = StsPolicy(Mode.ENFORCE, 86400, ("mx.example.com",), ("version: STSv1",))
TESTING = StsPolicy(Mode.TESTING, 86400, ("mx.example.com",))
NONE = StsPolicy(Mode.NONE, 86400, ())
RECORD = TLSARecord(3, 1, 1, b"x" * 32)
MATCHED = DaneVerification(matched=RECORD)
MISMATCH = DaneVerification(failure=FailureDetail(ResultType.TLSA_INVALID))
MX = "mx.example.com"


def requirement(dane: DaneState | None, sts: StsPolicy | None, host: str = MX) -> TLSRequirement:
    return tls_requirement(host, dane=dane, sts=sts)


@pytest.mark.parametrize(
    ("dane", "sts", "expected"),
    [
        (None, None, (PolicyKind.OPPORTUNISTIC, False, Verification.NONE, False)),
        (DaneState.NO_TLSA, NONE, (PolicyKind.OPPORTUNISTIC, False, Verification.NONE, False)),
        (DaneState.INSECURE, None, (PolicyKind.OPPORTUNISTIC, False, Verification.NONE, False)),
        (DaneState.USABLE, None, (PolicyKind.DANE, True, Verification.DANE, True)),
        # DANE wins where both exist (RFC 8461 §2)
        (DaneState.USABLE, ENFORCE, (PolicyKind.DANE, True, Verification.DANE, True)),
        (DaneState.UNUSABLE, None, (PolicyKind.DANE_ENCRYPT_ONLY, True, Verification.NONE, False)),
        (DaneState.UNUSABLE, TESTING, (PolicyKind.MTA_STS_TESTING, True, Verification.PKIX, False)),
        (DaneState.UNUSABLE, ENFORCE, (PolicyKind.MTA_STS_ENFORCE, True, Verification.PKIX, True)),
        (None, ENFORCE, (PolicyKind.MTA_STS_ENFORCE, True, Verification.PKIX, True)),
        (DaneState.NO_TLSA, TESTING, (PolicyKind.MTA_STS_TESTING, False, Verification.PKIX, False)),
    ],
)
def test_which_policy_governs(
    dane: DaneState | None,
    sts: StsPolicy | None,
    expected: tuple[PolicyKind, bool, Verification, bool],
) -> None:
    assert requirement(dane, sts) == TLSRequirement(*expected)


def test_tls_turned_off_is_the_none_policy() -> None:
    found = tls_requirement(MX, dane=DaneState.USABLE, sts=ENFORCE, tls_enabled=False)
    assert found == TLSRequirement(PolicyKind.NONE, False, Verification.NONE, enforced=False)


def test_a_failed_tlsa_lookup_skips_the_host_even_under_mta_sts() -> None:
    found = requirement(DaneState.FAILED, ENFORCE)
    assert found.kind is PolicyKind.DANE
    assert found.skip is not None and found.skip.result_type is ResultType.DNSSEC_INVALID


def test_enforce_skips_an_mx_the_policy_does_not_list() -> None:
    found = requirement(None, ENFORCE, host="backup.example.org")
    assert found.skip is not None and found.skip.result_type is ResultType.VALIDATION_FAILURE
    outcome, proceed = judge_attempt(
        found, policy_domain="example.com", mx_host="backup.example.org",
        starttls_offered=True, tls_established=True,
    )  # fmt: skip
    assert not proceed and not outcome.met


def test_testing_reports_an_mx_the_policy_does_not_list_but_delivers() -> None:
    found = requirement(None, TESTING, host="backup.example.org")
    assert found.skip is None
    outcome, proceed = judge_attempt(
        found, policy_domain="example.com", mx_host="backup.example.org",
        starttls_offered=True, tls_established=True,
        pkix_failure=ResultType.CERTIFICATE_HOST_MISMATCH,
    )  # fmt: skip
    assert proceed and not outcome.met
    assert outcome.failure is not None
    assert outcome.failure.result_type is ResultType.CERTIFICATE_HOST_MISMATCH


def judge(
    req: TLSRequirement,
    *,
    offered: bool = True,
    established: bool = True,
    dane: DaneVerification | None = None,
    pkix: ResultType | None = None,
) -> tuple[PolicyOutcome, bool]:
    return judge_attempt(
        req,
        policy_domain="example.com",
        mx_host=MX,
        starttls_offered=offered,
        tls_established=established,
        dane_result=dane,
        pkix_failure=pkix,
        receiving_ip="192.0.2.1",
        policy_strings=("3 1 1 78",),
    )


def test_dane_met() -> None:
    outcome, proceed = judge(requirement(DaneState.USABLE, None), dane=MATCHED)
    assert proceed and outcome.met
    assert outcome == PolicyOutcome(PolicyKind.DANE, "example.com", MX, None, ("3 1 1 78",))


def test_dane_mismatch_stops_the_attempt() -> None:
    outcome, proceed = judge(requirement(DaneState.USABLE, None), dane=MISMATCH)
    assert not proceed
    assert outcome.failure == FailureDetail(
        ResultType.TLSA_INVALID, receiving_mx_hostname=MX, receiving_ip="192.0.2.1"
    )


def test_starttls_stripped_under_dane_is_not_a_downgrade() -> None:
    outcome, proceed = judge(requirement(DaneState.USABLE, None), offered=False, established=False)
    assert not proceed
    assert outcome.failure is not None
    assert outcome.failure.result_type is ResultType.STARTTLS_NOT_SUPPORTED


def test_a_failed_handshake_under_dane_encrypt_only_stops() -> None:
    outcome, proceed = judge(requirement(DaneState.UNUSABLE, None), established=False)
    assert not proceed
    assert outcome.failure is not None
    assert outcome.failure.result_type is ResultType.VALIDATION_FAILURE
    assert judge(requirement(DaneState.UNUSABLE, None)) == (
        PolicyOutcome(PolicyKind.DANE_ENCRYPT_ONLY, "example.com", MX, None, ("3 1 1 78",)),
        True,
    )


def test_dane_is_judged_with_a_verification() -> None:
    with pytest.raises(ValueError, match="DANE verification"):
        judge(requirement(DaneState.USABLE, None))


def test_enforce_needs_a_verified_certificate() -> None:
    assert judge(requirement(None, ENFORCE))[1]
    outcome, proceed = judge(requirement(None, ENFORCE), pkix=ResultType.CERTIFICATE_EXPIRED)
    assert not proceed and not outcome.met


def test_testing_without_starttls_reports_and_delivers() -> None:
    outcome, proceed = judge(requirement(None, TESTING), offered=False, established=False)
    assert proceed and not outcome.met


def test_opportunistic_and_none_are_always_met() -> None:
    for req in (
        requirement(None, None),
        tls_requirement(MX, dane=None, sts=None, tls_enabled=False),
    ):
        outcome, proceed = judge(req, offered=False, established=False)
        assert proceed and outcome.met


@pytest.mark.parametrize(
    ("kind", "report"),
    [
        (PolicyKind.NONE, ReportPolicyType.NO_POLICY_FOUND),
        (PolicyKind.OPPORTUNISTIC, ReportPolicyType.NO_POLICY_FOUND),
        (PolicyKind.MTA_STS_TESTING, ReportPolicyType.STS),
        (PolicyKind.MTA_STS_ENFORCE, ReportPolicyType.STS),
        (PolicyKind.DANE, ReportPolicyType.TLSA),
        (PolicyKind.DANE_ENCRYPT_ONLY, ReportPolicyType.TLSA),
    ],
)
def test_rfc_8460_policy_types(kind: PolicyKind, report: ReportPolicyType) -> None:
    assert kind.report_policy_type is report


def test_result_types_are_rfc_8460_names() -> None:
    names = {r.value for r in ResultType}
    assert {"starttls-not-supported", "certificate-host-mismatch", "validation-failure",
            "sts-policy-fetch-error", "tlsa-invalid", "dnssec-invalid"} <= names  # fmt: skip


def test_report_values_validate_their_kinds() -> None:
    with pytest.raises(TypeError, match="ResultType"):
        FailureDetail("tlsa-invalid")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="PolicyKind"):
        PolicyOutcome("dane", "example.com")  # type: ignore[arg-type]
