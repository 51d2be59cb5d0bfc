"""Where to deliver: RFC 5321 §5.1 MX planning, without DNS.

The adapters ask DNS (dnspython) and hand the answers to :func:`plan_delivery`, which decides the
ordered list of (host, address) attempts, or that the domain cannot receive mail now (temporary)
or ever (permanent).  Randomness (equal preferences are shuffled) is injectable.
"""

from __future__ import annotations

import enum
import ipaddress
import random
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from ._wire.addresses import ehlo_domain

__all__ = [
    "Attempt",
    "DNSAnswer",
    "DNSStatus",
    "DeliveryPlan",
    "MXRecord",
    "PlanError",
    "domain_of",
    "lookup_name",
    "plan_delivery",
]

#: The port of direct delivery (RFC 5321 §4.5.4); tests and odd networks may change it.
DEFAULT_MX_PORT = 25
#: Postfix's smtp_mx_address_limit: addresses tried per delivery (RFC 5321 §5.1 allows a limit).
DEFAULT_ADDRESS_LIMIT = 5
#: Postfix's smtp_mx_session_limit: sessions that got past the greeting, per delivery.
DEFAULT_SESSION_LIMIT = 2


class DNSStatus(enum.Enum):
    """How a DNS question was answered."""

    OK = "ok"  # records found
    NODATA = "nodata"  # the name exists, with no record of that type
    NXDOMAIN = "nxdomain"  # the name does not exist: permanent
    SERVFAIL = "servfail"  # the servers failed: temporary
    TIMEOUT = "timeout"  # no answer in time: temporary

    @property
    def temporary(self) -> bool:
        return self in (DNSStatus.SERVFAIL, DNSStatus.TIMEOUT)


@dataclass(frozen=True, slots=True)
class MXRecord:
    preference: int
    host: str  # "." (or "") is the null MX of RFC 7505


@dataclass(frozen=True, slots=True)
class DNSAnswer:
    """An adapter's report of one lookup: for MX, ``mx`` is filled; for A/AAAA, ``addresses``;
    for TXT, ``texts`` (each record's strings joined).

    ``authentic`` is the AD bit of a validating resolver's answer (DANE trusts nothing else,
    RFC 7672 §2.1); for A/AAAA it holds only when every answer with records had it.
    ``cname_target`` is the name an address lookup reached through a CNAME, if any.
    """

    status: DNSStatus
    mx: tuple[MXRecord, ...] = ()
    addresses: tuple[str, ...] = ()
    authentic: bool = False
    cname_target: str | None = None
    texts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Attempt:
    """One address to try: the MX ``host`` it belongs to (the name its certificate should carry)."""

    host: str
    address: str
    preference: int


@dataclass(frozen=True, slots=True)
class PlanError:
    """Why a domain cannot be delivered to: a reply code, an enhanced status, and plain words."""

    code: int
    enhanced_status: str
    message: str

    @property
    def temporary(self) -> bool:
        return self.code < 500


@dataclass(frozen=True, slots=True)
class DeliveryPlan:
    """The ordered attempts for ``domain``, or the ``error`` that makes delivery impossible."""

    domain: str
    attempts: tuple[Attempt, ...] = ()
    error: PlanError | None = None


def domain_of(address: str) -> str:
    """The domain part of ``address`` (after the last ``@``), as written."""
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise ValueError(f"{address!r} has no domain to deliver to")
    return domain


def lookup_name(domain: str) -> str | None:
    """The ASCII name to look up for ``domain`` (IDNA A-label, X1), or ``None`` for an address
    literal, which is never looked up (C21)."""
    if domain.startswith("["):
        return None
    return ehlo_domain(domain).lower()


def _literal_address(domain: str) -> str:
    inner = domain[1:-1]
    if inner.lower().startswith("ipv6:"):
        inner = inner[5:]
    return str(ipaddress.ip_address(inner))


def _order_addresses(addresses: Sequence[str], prefer: str | None) -> list[str]:
    """Keep the resolver's order within a family (X5); put the preferred family first (X9)."""
    if prefer is None:
        return list(addresses)
    want_v6 = prefer == "ipv6"
    return sorted(addresses, key=lambda a: (":" in a) != want_v6)


def plan_delivery(
    domain: str,
    mx_answer: DNSAnswer | None,
    address_answers: Mapping[str, DNSAnswer],
    *,
    rng: random.Random | None = None,
    local_names: Collection[str] = (),
    prefer_family: str | None = None,
    address_limit: int = DEFAULT_ADDRESS_LIMIT,
) -> DeliveryPlan:
    """Turn DNS answers into the ordered attempts for ``domain`` (RFC 5321 §5.1, RFC 7505).

    ``mx_answer`` is the MX lookup of ``lookup_name(domain)`` (``None`` for an address literal);
    ``address_answers`` maps each host name (the MX targets, or the domain itself for an implicit
    MX) to its A/AAAA lookup.  ``local_names`` are our own names (X7); ``prefer_family`` is
    ``"ipv6"``, ``"ipv4"`` or ``None`` for the resolver's order (X9).
    """
    if prefer_family not in (None, "ipv4", "ipv6"):
        raise ValueError("prefer_family must be 'ipv4', 'ipv6' or None")
    if domain.startswith("["):
        return DeliveryPlan(domain, (Attempt(domain, _literal_address(domain), 0),))
    name = lookup_name(domain)
    assert name is not None
    if mx_answer is None:
        raise ValueError("an MX answer is needed for a domain name")
    if mx_answer.status.temporary:
        # No fallback to A records on a temporary failure (X2).
        return _failed(
            domain,
            451,
            "4.4.3",
            f"DNS lookup of the MX records of {name} failed ({mx_answer.status.value}); will retry",
        )
    if mx_answer.status is DNSStatus.NXDOMAIN:
        return _failed(domain, 550, "5.1.2", f"the domain {name} does not exist (NXDOMAIN)")
    records = list(mx_answer.mx) if mx_answer.status is DNSStatus.OK else []
    real = [r for r in records if r.host.rstrip(".")]
    if records and not real:
        return _failed(domain, 556, "5.1.10", f"{name} accepts no mail (null MX, RFC 7505)")
    records = real  # a null MX beside real ones is a mistake: ignore it
    if not records:  # implicit MX: the domain's own addresses, only when there is no MX (X3)
        records = [MXRecord(0, name)]
    else:
        records = _sorted_records(records, rng)
        records = _without_ourselves(records, local_names)
        if not records:
            return _failed(
                domain, 554, "5.4.6", f"this host is the best MX for {name}: mail would loop"
            )
    attempts: list[Attempt] = []
    seen: set[str] = set()  # two MX names for one host must not cost two attempts
    temporary = False
    for record in records:
        host = record.host.rstrip(".").lower()
        answer = address_answers.get(host)
        if answer is None or answer.status is not DNSStatus.OK:
            temporary = temporary or answer is None or answer.status.temporary
            continue  # an MX target with no address is skipped (X6)
        for address in _order_addresses(answer.addresses, prefer_family):
            if len(attempts) < address_limit and address not in seen:
                seen.add(address)
                attempts.append(Attempt(host, address, record.preference))
    if attempts:
        return DeliveryPlan(domain, tuple(attempts))
    if temporary:
        return _failed(
            domain, 451, "4.4.3", f"the mail servers of {name} could not be resolved; will retry"
        )
    return _failed(domain, 550, "5.4.4", f"no mail server of {name} has an address")


def _failed(domain: str, code: int, status: str, message: str) -> DeliveryPlan:
    return DeliveryPlan(domain, error=PlanError(code, status, message))


def _sorted_records(records: list[MXRecord], rng: random.Random | None) -> list[MXRecord]:
    """Lowest preference first; equal preferences in random order (X4)."""
    shuffle = (rng or random.Random()).shuffle
    by_preference: dict[int, list[MXRecord]] = {}
    for record in records:
        by_preference.setdefault(record.preference, []).append(record)
    ordered: list[MXRecord] = []
    for preference in sorted(by_preference):
        group = by_preference[preference]
        shuffle(group)
        ordered += group
    return ordered


def _without_ourselves(records: list[MXRecord], local_names: Collection[str]) -> list[MXRecord]:
    """Drop our own record and every one at an equal or higher preference value (X7)."""
    ours = {n.rstrip(".").lower() for n in local_names}
    for record in records:
        if record.host.rstrip(".").lower() in ours:
            return [r for r in records if r.preference < record.preference]
    return records
