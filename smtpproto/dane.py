"""DANE for SMTP (RFC 7672, RFC 7671, RFC 6698): TLSA records in, decisions out, without DNS.

The driver looks up ``_25._tcp.<mx host>`` TLSA records through a *validating* resolver and
reports whether the answer was authentic (the AD bit); the TLS handshake gives the certificate
chain.  This module decides the rest:

* :func:`dane_state` — what the TLSA answer means: no records (authenticated denial), usable
  records, records that are all unusable, an insecure answer (no AD bit), or a failed/bogus lookup.
* :func:`dane_action` — what that means for the MX host: authenticate (mandatory STARTTLS, the
  host is skipped, never downgraded, when it fails), encrypt only, not applicable, or skip the host.
* :func:`verify_chain` — whether a presented chain matches the usable records, with the RFC 7672
  §3.2 name checks for DANE-TA(2) and none for DANE-EE(3).

Certificates are read by :mod:`smtpproto.certificates` (the ``dane`` extra).
"""

from __future__ import annotations

import enum
import hashlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from .certificates import Certificate, issued_by, parse_certificate
from .mx import DNSStatus
from .tls_report import FailureDetail, ResultType

__all__ = [
    "DaneAction",
    "DaneState",
    "DaneVerification",
    "MatchingType",
    "Selector",
    "TLSAAnswer",
    "TLSARecord",
    "Usage",
    "dane_action",
    "dane_state",
    "name_matches",
    "reference_names",
    "tlsa_lookup_needed",
    "tlsa_query_names",
    "verify_chain",
]


class Usage(enum.IntEnum):
    """Certificate usages (RFC 6698 §2.1.1, names from RFC 7218)."""

    PKIX_TA = 0  # unusable for SMTP (RFC 7672 §3.1.3)
    PKIX_EE = 1  # unusable for SMTP (RFC 7672 §3.1.3)
    DANE_TA = 2
    DANE_EE = 3


class Selector(enum.IntEnum):
    """Which part of the certificate is matched (RFC 6698 §2.1.2)."""

    CERT = 0  # the whole DER certificate
    SPKI = 1  # its SubjectPublicKeyInfo


class MatchingType(enum.IntEnum):
    """How it is matched (RFC 6698 §2.1.3)."""

    FULL = 0
    SHA2_256 = 1
    SHA2_512 = 2


# The digest lengths a record must have to be usable (RFC 7671 §5: a malformed record is unusable).
_DIGEST_SIZE = {MatchingType.SHA2_256: 32, MatchingType.SHA2_512: 64}
# What an SMTP client can use (RFC 7672 §3.1): DANE-TA(2) and DANE-EE(3), no PKIX usages.
_SMTP_USAGES = frozenset({Usage.DANE_TA, Usage.DANE_EE})


@dataclass(frozen=True, slots=True)
class TLSARecord:
    """One TLSA record.  Any 8-bit field values are accepted (an unknown one makes the record
    unusable, not invalid, RFC 7672 §3.1.3); :attr:`usable` says whether SMTP may use it."""

    usage: int
    selector: int
    matching_type: int
    data: bytes

    def __post_init__(self) -> None:
        for name in ("usage", "selector", "matching_type"):
            value = getattr(self, name)
            if type(value) is not int or not 0 <= value <= 255:
                raise ValueError(f"TLSA {name} must be an integer 0-255, not {value!r}")
        if not isinstance(self.data, bytes):
            raise TypeError("TLSA certificate association data must be bytes")

    @classmethod
    def from_text(cls, text: str) -> TLSARecord:
        """Parse the presentation form ``"3 1 1 2b73...e5"`` (the data may hold spaces)."""
        fields = text.split(None, 3)
        if len(fields) != 4:
            raise ValueError(f"a TLSA record has four fields: {text!r}")
        try:
            numbers = [int(f, 10) for f in fields[:3]]
            data = bytes.fromhex("".join(fields[3].split()))
        except ValueError:
            raise ValueError(f"malformed TLSA record: {text!r}") from None
        return cls(numbers[0], numbers[1], numbers[2], data)

    @property
    def usable(self) -> bool:
        """Usable for SMTP: DANE-TA or DANE-EE, a known selector and matching type, and data of
        the length that matching type gives (RFC 7672 §3.1.3, RFC 7671 §5)."""
        if self.usage not in _SMTP_USAGES or self.selector not in tuple(Selector):
            return False
        if self.matching_type not in tuple(MatchingType):
            return False
        size = _DIGEST_SIZE.get(MatchingType(self.matching_type))
        return len(self.data) == size if size is not None else bool(self.data)

    def to_text(self) -> str:
        return f"{self.usage} {self.selector} {self.matching_type} {self.data.hex()}"

    def matches(self, cert: Certificate) -> bool:
        """Whether this record's data matches ``cert`` (selector and matching type applied)."""
        content = cert.der if self.selector == Selector.CERT else cert.spki_der
        if self.matching_type == MatchingType.SHA2_256:
            content = hashlib.sha256(content).digest()
        elif self.matching_type == MatchingType.SHA2_512:
            content = hashlib.sha512(content).digest()
        return content == self.data


@dataclass(frozen=True, slots=True)
class TLSAAnswer:
    """The driver's report of one TLSA lookup.

    ``authentic`` is the AD bit of a validating resolver's answer: ``True`` only when the
    resolver proved the records (or their absence) with DNSSEC.  A bogus answer reaches the
    client as SERVFAIL from a validating resolver, so it arrives as a temporary ``status``.
    """

    status: DNSStatus
    records: tuple[TLSARecord, ...] = ()
    authentic: bool = False

    def __post_init__(self) -> None:
        if (self.status is DNSStatus.OK) != bool(self.records):
            raise ValueError("a TLSA answer has records exactly when its status is OK")


class DaneState(enum.Enum):
    """What a TLSA answer means (RFC 7672 §2.2)."""

    NO_TLSA = "no-tlsa"  # authenticated denial: no DANE for this host
    USABLE = "usable"  # authentic, at least one usable record: DANE authentication
    UNUSABLE = "unusable"  # authentic, every record unusable: mandatory TLS, unauthenticated
    INSECURE = "insecure"  # no AD bit: the records cannot be trusted, as if there were none
    FAILED = "failed"  # SERVFAIL, timeout, bogus: the host must not be used now


class DaneAction(enum.Enum):
    """What the delivery does with one MX host (RFC 7672 §2.2)."""

    AUTHENTICATE = "authenticate"  # mandatory STARTTLS, chain checked by verify_chain
    ENCRYPT = "encrypt"  # mandatory STARTTLS, no authentication
    NOT_APPLICABLE = "not-applicable"  # no DANE: opportunistic TLS or MTA-STS decide
    SKIP_HOST = "skip-host"  # temporary failure for this host; try the next MX, never downgrade


def dane_state(answer: TLSAAnswer) -> DaneState:
    """Classify a TLSA answer (RFC 7672 §2.2; usable records per §3.1.3)."""
    if answer.status.temporary:
        return DaneState.FAILED
    if not answer.authentic:
        return DaneState.INSECURE
    if answer.status is not DNSStatus.OK:
        return DaneState.NO_TLSA
    if any(record.usable for record in answer.records):
        return DaneState.USABLE
    return DaneState.UNUSABLE


_ACTIONS = {
    DaneState.USABLE: DaneAction.AUTHENTICATE,
    DaneState.UNUSABLE: DaneAction.ENCRYPT,
    DaneState.NO_TLSA: DaneAction.NOT_APPLICABLE,
    DaneState.INSECURE: DaneAction.NOT_APPLICABLE,
    DaneState.FAILED: DaneAction.SKIP_HOST,
}


def dane_action(state: DaneState) -> DaneAction:
    """What ``state`` obliges the client to do with the host (RFC 7672 §2.2, §2.2.1)."""
    return _ACTIONS[state]


def tlsa_lookup_needed(
    *, mx_authentic: bool, address_authentic: bool, allow_insecure_mx: bool = False
) -> bool:
    """Whether to ask for TLSA records at all.

    Only when the host's address records were authentic (RFC 7672 §2.2.2: insecure A/AAAA means
    no TLSA lookup) and the MX RRset was authentic too.  RFC 7672 §2.2.1 lets a client use DANE
    for hosts of an insecure MX RRset (a signed provider serving unsigned domains);
    ``allow_insecure_mx`` opts in, as it is weaker than the MX chain the issue requires.
    """
    return address_authentic and (mx_authentic or allow_insecure_mx)


def tlsa_query_names(
    mx_host: str, *, cname_target: str | None = None, port: int = 25
) -> tuple[str, ...]:
    """The TLSA names to try, in order (RFC 7672 §2.2.2).

    ``cname_target`` is the host name after *authentic* CNAME expansion (``None`` when the MX
    host is no alias, or the expansion was not authentic).  The expanded name is tried first;
    the MX host name second, when the first has no TLSA records.  The name whose lookup gave the
    records is the TLSA base domain, the first reference identifier of :func:`reference_names`.
    """
    hosts = [_normal(cname_target)] if cname_target else []
    if _normal(mx_host) not in hosts:
        hosts.append(_normal(mx_host))
    return tuple(f"_{port}._tcp.{host}." for host in hosts)


def reference_names(mx_host: str, tlsa_base_domain: str) -> tuple[str, ...]:
    """The names a DANE-TA(2) certificate must carry one of (RFC 7672 §3.2.2): the TLSA base
    domain, and the MX host name it was reached from (the client MAY accept it too)."""
    names = [_normal(tlsa_base_domain)]
    if _normal(mx_host) not in names:
        names.append(_normal(mx_host))
    return tuple(names)


def _normal(name: str) -> str:
    return name.rstrip(".").lower()


def name_matches(presented: str, reference: str) -> bool:
    """One certificate name against one reference identifier (RFC 7672 §3.2.3, RFC 6125 §6.4).

    Case-insensitive; a wildcard is accepted only as the whole leftmost label and stands for
    exactly one label (``*.example.com`` matches ``mx.example.com``, not ``example.com`` nor
    ``a.mx.example.com``); partial wildcards (``mx*.example.com``) never match.
    """
    presented, reference = _normal(presented), _normal(reference)
    if not presented or not reference:
        return False
    if presented.startswith("*."):
        rest = presented[2:]
        label, dot, parent = reference.partition(".")
        return bool(label) and bool(dot) and "*" not in rest and parent == rest
    return "*" not in presented and presented == reference


def _names_match(cert: Certificate, references: Sequence[str]) -> bool:
    # subjectAltName dNSNames when present; the subject CN only without them (RFC 6125 §6.4.4).
    presented = cert.dns_names or cert.common_names
    return any(name_matches(p, r) for p in presented for r in references)


@dataclass(frozen=True, slots=True)
class DaneVerification:
    """The result of :func:`verify_chain`: ``matched`` is the record that authenticated the
    peer, or ``failure`` says why none did (as an RFC 8460 result type)."""

    matched: TLSARecord | None = None
    failure: FailureDetail | None = None

    def __post_init__(self) -> None:
        if (self.matched is None) == (self.failure is None):
            raise ValueError("a DANE verification has either a matched record or a failure")

    @property
    def ok(self) -> bool:
        return self.matched is not None


def _fail(result: ResultType, reason: str, mx_host: str | None) -> DaneVerification:
    detail = FailureDetail(result, receiving_mx_hostname=mx_host, additional_information=reason)
    return DaneVerification(failure=detail)


def verify_chain(
    records: Sequence[TLSARecord],
    chain: Sequence[bytes],
    *,
    reference_names: Sequence[str],
    now: float,
    mx_host: str | None = None,
) -> DaneVerification:
    """Authenticate the peer's DER certificate ``chain`` (leaf first, as presented) with the
    usable ``records`` (RFC 7672 §3.1, RFC 7671 §5).

    * DANE-EE(3) matches the leaf certificate or its key; nothing else is checked: no name, no
      expiry, no issuer (RFC 7672 §3.1.1).
    * DANE-TA(2) matches an element of the chain; the chain from the leaf up to it must be
      signed link by link, the certificates below the trust anchor valid at ``now`` (POSIX
      seconds), and the leaf must carry one of ``reference_names`` (RFC 7672 §3.1.2, §3.2).

    Unusable records are ignored.  A chain that cannot be read fails as ``validation-failure``.
    Only the certificates the server presented are tried, in the order presented: a DANE-TA
    server must send its trust anchor (RFC 7672 §3.1.2), and one that matches the server's own
    certificate makes that certificate its own anchor (only its names are then checked).
    """
    usable = [r for r in records if r.usable]
    if not usable:
        return _fail(ResultType.TLSA_INVALID, "no usable TLSA record", mx_host)
    if not chain:
        return _fail(ResultType.VALIDATION_FAILURE, "the server presented no certificate", mx_host)
    try:
        certs = [parse_certificate(der) for der in chain]
    except ValueError as exc:
        return _fail(ResultType.VALIDATION_FAILURE, f"unreadable certificate: {exc}", mx_host)
    for record in usable:
        if record.usage == Usage.DANE_EE and record.matches(certs[0]):
            return DaneVerification(matched=record)
    # Only DANE-TA records are left to try; remember the most telling failure.
    failure: DaneVerification | None = None
    for record in usable:
        if record.usage != Usage.DANE_TA:
            continue
        depth = next((i for i, cert in enumerate(certs) if record.matches(cert)), None)
        if depth is None:
            continue
        failure = _check_to_anchor(certs, depth, reference_names, now, mx_host)
        if failure is None:
            return DaneVerification(matched=record)
    return failure or _fail(
        ResultType.TLSA_INVALID, "no TLSA record matches the presented chain", mx_host
    )


def _check_to_anchor(
    certs: Sequence[Certificate],
    depth: int,
    references: Sequence[str],
    now: float,
    mx_host: str | None,
) -> DaneVerification | None:
    """None when ``certs[:depth]`` chain up to the trust anchor ``certs[depth]`` and the leaf's
    names fit; otherwise the failure."""
    for child, issuer in itertools.pairwise(certs[: depth + 1]):
        if not issued_by(child, issuer):
            return _fail(
                ResultType.CERTIFICATE_NOT_TRUSTED,
                "the chain does not lead to the DANE-TA trust anchor",
                mx_host,
            )
        if not child.not_before <= now <= child.not_after:
            return _fail(ResultType.CERTIFICATE_EXPIRED, "a certificate is not valid now", mx_host)
    if not _names_match(certs[0], references):
        return _fail(
            ResultType.CERTIFICATE_HOST_MISMATCH,
            "the certificate names none of: " + ", ".join(references),
            mx_host,
        )
    return None
