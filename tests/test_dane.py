"""DANE for SMTP (RFC 7672, 7671, 6698): TLSA records, their states, chain matching, name checks.

Certificates are made here with ``cryptography`` (and the DNSSEC fixture's test uses trustme), so
every case — a DANE-EE key match, a DANE-TA chain, an expired or foreign intermediate, a name
that only the subject CN carries — is a real certificate, read by smtpproto.certificates.
"""

from __future__ import annotations

import datetime
import hashlib
import sys
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

from smtpproto import DeliveryOptions
from smtpproto.certificates import MissingExtraError, issued_by, parse_certificate
from smtpproto.dane import (
    DaneAction,
    DaneState,
    DaneVerification,
    MatchingType,
    Selector,
    TLSAAnswer,
    TLSARecord,
    Usage,
    dane_action,
    dane_state,
    name_matches,
    reference_names,
    tlsa_lookup_needed,
    tlsa_query_names,
    verify_chain,
)
from smtpproto.mx import DNSStatus
from smtpproto.tls_report import FailureDetail, ResultType

NOW = datetime.datetime(2026, 12, 2, tzinfo=datetime.UTC)
T = NOW.timestamp()
DAY = datetime.timedelta(days=1)


@dataclass
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(Encoding.DER)

    @property
    def spki(self) -> bytes:
        return self.cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def issue(
    cn: str,
    *,
    issuer: Issued | None = None,
    sans: tuple[str, ...] | None = None,
    ca: bool = False,
    start: datetime.datetime = NOW - DAY,
    end: datetime.datetime = NOW + DAY,
) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.cert.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans is not None:
        san = x509.SubjectAlternativeName([x509.DNSName(n) for n in sans])
        builder = builder.add_extension(san, critical=False)
    signer = issuer.key if issuer else key
    return Issued(builder.sign(signer, hashes.SHA256()), key)


ROOT = issue("Test Root", ca=True)
INTERMEDIATE = issue("Test Intermediate", issuer=ROOT, ca=True)
LEAF = issue("mx.example.net", issuer=INTERMEDIATE, sans=("mx.example.net",))
CHAIN = [LEAF.der, INTERMEDIATE.der, ROOT.der]


def record(usage: int, selector: int, matching: int, content: bytes) -> TLSARecord:
    if matching == 1:
        content = hashlib.sha256(content).digest()
    elif matching == 2:
        content = hashlib.sha512(content).digest()
    return TLSARecord(usage, selector, matching, content)


# --- records --------------------------------------------------------------------------------


def test_record_from_text_and_back() -> None:
    text = "3 1 1 " + "ab" * 32
    parsed = TLSARecord.from_text(text)
    assert parsed == TLSARecord(3, 1, 1, bytes.fromhex("ab" * 32))
    assert parsed.to_text() == text
    # presentation form may split the data in groups
    assert TLSARecord.from_text("3 1 1 " + "ab" * 16 + " " + "ab" * 16) == parsed


@pytest.mark.parametrize("text", ["3 1 1", "3 1 x abcd", "3 1 1 zz", "3 1 1 abc", "-1 0 0 ab"])
def test_record_text_that_is_not_a_tlsa_record(text: str) -> None:
    with pytest.raises(ValueError, match="TLSA"):
        TLSARecord.from_text(text)


@pytest.mark.parametrize(("field", "value"), [(0, 256), (1, -1), (2, True), (0, 2.0)])
def test_record_fields_are_octets(field: int, value: object) -> None:
    args: list[object] = [3, 1, 1, b"x"]
    args[field] = value
    with pytest.raises(ValueError, match="0-255"):
        TLSARecord(*args)  # type: ignore[arg-type]


def test_record_data_is_bytes() -> None:
    with pytest.raises(TypeError, match="bytes"):
        TLSARecord(3, 1, 1, "ab")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("params", "data", "usable"),
    [
        ((3, 1, 1), b"x" * 32, True),
        ((2, 0, 2), b"x" * 64, True),
        ((3, 0, 0), b"x", True),
        ((3, 0, 0), b"", False),  # full match of nothing
        ((3, 1, 1), b"x" * 31, False),  # a SHA-256 digest of the wrong size
        ((3, 1, 2), b"x" * 32, False),
        ((0, 1, 1), b"x" * 32, False),  # PKIX-TA: unusable for SMTP (RFC 7672 §3.1.3)
        ((1, 1, 1), b"x" * 32, False),  # PKIX-EE
        ((4, 1, 1), b"x" * 32, False),  # unknown usage
        ((3, 2, 1), b"x" * 32, False),  # unknown selector
        ((3, 1, 3), b"x" * 32, False),  # unknown matching type
        ((255, 255, 255), b"x", False),  # private use
    ],
)
def test_usable_records_for_smtp(params: tuple[int, int, int], data: bytes, usable: bool) -> None:
    assert TLSARecord(*params, data).usable is usable


def test_enums_name_the_rfc_values() -> None:
    assert (Usage.DANE_TA, Usage.DANE_EE) == (2, 3)
    assert (Selector.CERT, Selector.SPKI) == (0, 1)
    assert (MatchingType.FULL, MatchingType.SHA2_256, MatchingType.SHA2_512) == (0, 1, 2)


@pytest.mark.parametrize("selector", [0, 1])
@pytest.mark.parametrize("matching", [0, 1, 2])
def test_every_selector_and_matching_type_matches(selector: int, matching: int) -> None:
    cert = parse_certificate(LEAF.der)
    content = LEAF.der if selector == 0 else LEAF.spki
    assert record(3, selector, matching, content).matches(cert)
    other = INTERMEDIATE.der if selector == 0 else INTERMEDIATE.spki
    assert not record(3, selector, matching, other).matches(cert)


# --- states and actions ---------------------------------------------------------------------

USABLE = record(3, 1, 1, LEAF.spki)
PKIX = record(1, 1, 1, LEAF.spki)


@pytest.mark.parametrize(
    ("answer", "state", "action"),
    [
        (TLSAAnswer(DNSStatus.OK, (USABLE,), True), DaneState.USABLE, DaneAction.AUTHENTICATE),
        (TLSAAnswer(DNSStatus.OK, (PKIX, USABLE), True), DaneState.USABLE, DaneAction.AUTHENTICATE),
        (TLSAAnswer(DNSStatus.OK, (PKIX,), True), DaneState.UNUSABLE, DaneAction.ENCRYPT),
        (TLSAAnswer(DNSStatus.OK, (USABLE,)), DaneState.INSECURE, DaneAction.NOT_APPLICABLE),
        (TLSAAnswer(DNSStatus.NODATA), DaneState.INSECURE, DaneAction.NOT_APPLICABLE),
        (
            TLSAAnswer(DNSStatus.NODATA, authentic=True),
            DaneState.NO_TLSA,
            DaneAction.NOT_APPLICABLE,
        ),
        (
            TLSAAnswer(DNSStatus.NXDOMAIN, authentic=True),
            DaneState.NO_TLSA,
            DaneAction.NOT_APPLICABLE,
        ),
        (TLSAAnswer(DNSStatus.SERVFAIL), DaneState.FAILED, DaneAction.SKIP_HOST),
        (TLSAAnswer(DNSStatus.TIMEOUT), DaneState.FAILED, DaneAction.SKIP_HOST),
    ],
)
def test_states_and_what_they_oblige(
    answer: TLSAAnswer, state: DaneState, action: DaneAction
) -> None:
    assert dane_state(answer) is state
    assert dane_action(state) is action


def test_an_answer_has_records_exactly_when_ok() -> None:
    with pytest.raises(ValueError, match="records"):
        TLSAAnswer(DNSStatus.OK)
    with pytest.raises(ValueError, match="records"):
        TLSAAnswer(DNSStatus.NODATA, (USABLE,))


def test_tlsa_lookup_only_after_authentic_mx_and_address_records() -> None:
    assert tlsa_lookup_needed(mx_authentic=True, address_authentic=True)
    assert not tlsa_lookup_needed(mx_authentic=True, address_authentic=False)
    assert not tlsa_lookup_needed(mx_authentic=False, address_authentic=True)
    assert tlsa_lookup_needed(mx_authentic=False, address_authentic=True, allow_insecure_mx=True)
    assert not tlsa_lookup_needed(
        mx_authentic=False, address_authentic=False, allow_insecure_mx=True
    )


def test_tlsa_names_try_the_cname_target_first() -> None:
    assert tlsa_query_names("MX.Example.NET.") == ("_25._tcp.mx.example.net.",)
    assert tlsa_query_names("mx.example.net", cname_target="mail.provider.test.", port=26) == (
        "_26._tcp.mail.provider.test.",
        "_26._tcp.mx.example.net.",
    )
    assert tlsa_query_names("mx.example.net", cname_target="mx.example.net") == (
        "_25._tcp.mx.example.net.",
    )


def test_reference_names_base_domain_first() -> None:
    assert reference_names("mx.example.net.", "mail.provider.test") == (
        "mail.provider.test",
        "mx.example.net",
    )
    assert reference_names("MX.example.net", "mx.example.net.") == ("mx.example.net",)


@pytest.mark.parametrize(
    ("presented", "reference", "ok"),
    [
        ("mx.example.net", "MX.EXAMPLE.NET.", True),
        ("*.example.net", "mx.example.net", True),
        ("*.example.net", "example.net", False),  # a wildcard stands for one label
        ("*.example.net", "a.mx.example.net", False),
        ("*.example.net", ".example.net", False),
        ("mx*.example.net", "mx1.example.net", False),  # no partial wildcards
        ("*.*.net", "a.b.net", False),
        ("*", "net", False),
        ("", "mx.example.net", False),
        ("mx.example.net", "", False),
    ],
)
def test_name_checks(presented: str, reference: str, ok: bool) -> None:
    assert name_matches(presented, reference) is ok


# --- chains ---------------------------------------------------------------------------------


def test_dane_ee_checks_neither_name_nor_expiry_nor_issuer() -> None:
    stale = issue("whatever", start=NOW - 10 * DAY, end=NOW - 5 * DAY)
    result = verify_chain([record(3, 0, 1, stale.der)], [stale.der], reference_names=["x"], now=T)
    assert result.ok and result.failure is None


def test_dane_ta_at_the_root_authenticates_the_chain() -> None:
    ta = record(2, 0, 1, ROOT.der)
    result = verify_chain([PKIX, ta], CHAIN, reference_names=["mx.example.net"], now=T)
    assert result.matched == ta


def test_dane_ta_by_key_at_the_intermediate() -> None:
    ta = record(2, 1, 2, INTERMEDIATE.spki)
    assert verify_chain([ta], CHAIN[:2], reference_names=["mx.example.net"], now=T).ok


def failure_of(result: DaneVerification) -> ResultType:
    assert not result.ok and result.failure is not None
    return result.failure.result_type


def test_dane_ta_needs_a_reference_name() -> None:
    ta = record(2, 0, 1, ROOT.der)
    result = verify_chain([ta], CHAIN, reference_names=["other.example"], now=T, mx_host="mx")
    assert failure_of(result) is ResultType.CERTIFICATE_HOST_MISMATCH
    assert result.failure is not None and result.failure.receiving_mx_hostname == "mx"


def test_dane_ta_uses_the_common_name_only_without_dns_names() -> None:
    cn_only = issue("mx.example.net", issuer=ROOT)
    ta = record(2, 0, 0, ROOT.der)
    assert verify_chain([ta], [cn_only.der, ROOT.der], reference_names=["mx.example.net"], now=T).ok
    other_san = issue("mx.example.net", issuer=ROOT, sans=("other.example.net",))
    result = verify_chain(
        [ta], [other_san.der, ROOT.der], reference_names=["mx.example.net"], now=T
    )
    assert failure_of(result) is ResultType.CERTIFICATE_HOST_MISMATCH


def test_dane_ta_checks_expiry_below_the_anchor() -> None:
    expired = issue("mx.example.net", issuer=ROOT, sans=("mx.example.net",), end=NOW - DAY)
    result = verify_chain([record(2, 0, 1, ROOT.der)], [expired.der, ROOT.der],
                          reference_names=["mx.example.net"], now=T)  # fmt: skip
    assert failure_of(result) is ResultType.CERTIFICATE_EXPIRED


def test_dane_ta_needs_the_chain_to_lead_to_the_anchor() -> None:
    stranger = issue("Test Root", ca=True)  # same name as ROOT, another key
    chain = [LEAF.der, INTERMEDIATE.der, stranger.der]
    ta = record(2, 0, 1, stranger.der)
    result = verify_chain([ta], chain, reference_names=["mx.example.net"], now=T)
    assert failure_of(result) is ResultType.CERTIFICATE_NOT_TRUSTED


def test_no_record_matches() -> None:
    records = [record(3, 1, 1, ROOT.spki), record(2, 1, 1, LEAF.spki + b"x")]
    result = verify_chain(records, CHAIN, reference_names=["mx.example.net"], now=T)
    assert failure_of(result) is ResultType.TLSA_INVALID


def test_only_unusable_records() -> None:
    result = verify_chain([PKIX], CHAIN, reference_names=["mx.example.net"], now=T)
    assert failure_of(result) is ResultType.TLSA_INVALID


def test_no_certificate_or_an_unreadable_one() -> None:
    assert failure_of(verify_chain([USABLE], [], reference_names=[], now=T)) is (
        ResultType.VALIDATION_FAILURE
    )
    result = verify_chain([USABLE], [b"not a certificate"], reference_names=[], now=T)
    assert failure_of(result) is ResultType.VALIDATION_FAILURE


def test_a_verification_has_one_meaning() -> None:
    with pytest.raises(ValueError, match="either"):
        DaneVerification()
    with pytest.raises(ValueError, match="either"):
        DaneVerification(USABLE, FailureDetail(ResultType.TLSA_INVALID))


# --- certificates ---------------------------------------------------------------------------


def test_certificate_fields() -> None:
    cert = parse_certificate(issue("MX.Example.NET", sans=("MX.example.net.", "*.Example.net")).der)
    assert cert.dns_names == ("mx.example.net", "*.example.net")
    assert cert.common_names == ("mx.example.net",)
    assert cert.not_before < T < cert.not_after
    assert parse_certificate(ROOT.der).dns_names == ()


def test_issued_by() -> None:
    leaf, inter = parse_certificate(LEAF.der), parse_certificate(INTERMEDIATE.der)
    assert issued_by(leaf, inter)
    assert not issued_by(leaf, parse_certificate(ROOT.der))  # another issuer name
    assert not issued_by(inter, parse_certificate(issue("Test Root").der))  # another key


def test_without_cryptography_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cryptography", None)
    with pytest.raises(MissingExtraError, match=r"smtpproto-sansio\[dane\]"):
        parse_certificate(LEAF.der)
    assert issubclass(MissingExtraError, ImportError)


def test_dane_is_on_by_default_only_with_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """``dane=None`` (the default) means: when certificates can be read; a choice is kept."""
    assert DeliveryOptions().dane_enabled
    assert not DeliveryOptions(dane=False).dane_enabled
    monkeypatch.setitem(sys.modules, "cryptography", None)
    assert not DeliveryOptions().dane_enabled
    assert DeliveryOptions(dane=True).dane_enabled
