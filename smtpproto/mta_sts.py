"""MTA-STS (RFC 8461) without I/O: the ``_mta-sts`` TXT record, the policy file, MX matching,
the policy cache and which policy applies.

The driver looks up ``_mta-sts.<domain>`` TXT and, when this module asks for it, fetches
``https://mta-sts.<domain>/.well-known/mta-sts.txt`` (with certificate verification: RFC 8461
§3.3).  The caller passes ``now`` (POSIX seconds) wherever time matters.  The discovery runs in two
steps around that fetch::

    record = parse_txt_record(txt_strings)          # None: no (valid) record
    if refetch_needed(record, cache.get(domain), now):
        fetched = <driver fetches the policy>        # a PolicyFetch
    result = resolve_policy(record, cache.get(domain), fetched, now)
    if result.store is not None:
        cache.put(domain, result.store)
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .tls_report import FailureDetail, ResultType

__all__ = [
    "MAX_AGE_LIMIT",
    "MAX_POLICY_SIZE",
    "CachedPolicy",
    "InMemoryPolicyCache",
    "Mode",
    "PolicyCache",
    "PolicyError",
    "PolicyFetch",
    "PolicyResolution",
    "StsPolicy",
    "StsRecord",
    "mx_matches",
    "parse_policy",
    "parse_txt_record",
    "policy_from_fetch",
    "policy_url",
    "refetch_needed",
    "resolve_policy",
]

#: The largest ``max_age`` (about one year, RFC 8461 §3.2).
MAX_AGE_LIMIT = 31_557_600
#: A policy body larger than this is refused (RFC 8461 §3.3 suggests 64 KiB).
MAX_POLICY_SIZE = 64 * 1024
#: A cached policy is fetched again after this long even when its id did not change (RFC 8461
#: §5.1: refresh well before expiry, e.g. daily, so a long max_age never goes stale).
DEFAULT_REFRESH_INTERVAL = 86_400.0

# RFC 8461 §3.1 ABNF: fields are separated by *WSP ";" *WSP; the id is 1-32 letters and digits.
_TXT_DELIM = re.compile(r"[ \t]*;[ \t]*")
_TXT_ID = re.compile(r"[A-Za-z0-9]{1,32}")
_TXT_EXT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
_TXT_EXT_VALUE = re.compile(r"[\x21-\x3a\x3c\x3e-\x7e]+")
# RFC 8461 §3.2 ABNF.
_POLICY_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
_POLICY_VALUE = re.compile(r"[\x21-\x7e]+(?:[ \t]+[\x21-\x7e]+)*")
_MAX_AGE = re.compile(r"[0-9]{1,10}")
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


class PolicyError(ValueError):
    """A TXT record or policy file that RFC 8461 refuses."""


@dataclass(frozen=True, slots=True)
class StsRecord:
    """A valid ``_mta-sts`` TXT record: its ``id`` says when the policy changed."""

    id: str


def parse_txt_record(strings: Sequence[str]) -> StsRecord | None:
    """The MTA-STS record among the TXT records of ``_mta-sts.<domain>`` (each record's strings
    already joined), or ``None`` when the domain has no usable one (RFC 8461 §3.1): records that do
    not start with ``v=STSv1;`` are discarded, and anything but exactly one valid record left is
    treated as no policy."""
    candidates = [s for s in strings if s.startswith("v=STSv1;")]
    if len(candidates) != 1:
        return None
    fields = _TXT_DELIM.split(candidates[0])
    if fields[-1] == "":
        fields.pop()  # a trailing delimiter is allowed
    record_id: str | None = None
    for item in fields[1:]:
        name, eq, value = item.partition("=")
        if not eq:
            return None
        if name == "id":
            if record_id is not None or not _TXT_ID.fullmatch(value):
                return None
            record_id = value
        elif not (_TXT_EXT_NAME.fullmatch(name) and _TXT_EXT_VALUE.fullmatch(value)):
            return None
    return StsRecord(record_id) if record_id is not None else None


class Mode(enum.Enum):
    """Policy modes (RFC 8461 §5)."""

    ENFORCE = "enforce"
    TESTING = "testing"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class StsPolicy:
    """A parsed policy.  ``mx`` patterns are lower-case; ``*.example.com`` is a wildcard."""

    mode: Mode
    max_age: int
    mx: tuple[str, ...]
    text: tuple[str, ...] = field(default=(), compare=False)  # the lines, for TLS-RPT reports

    def __post_init__(self) -> None:
        if not 0 <= self.max_age <= MAX_AGE_LIMIT:
            raise PolicyError(f"max_age must be 0-{MAX_AGE_LIMIT}, not {self.max_age}")
        if self.mode is not Mode.NONE and not self.mx:
            raise PolicyError(f"an MTA-STS policy in mode {self.mode.value} needs mx patterns")
        for pattern in self.mx:
            _check_pattern(pattern)

    def allows(self, mx_host: str) -> bool:
        """Whether ``mx_host`` matches one of the policy's patterns (RFC 8461 §4.1)."""
        return any(mx_matches(pattern, mx_host) for pattern in self.mx)


def _check_pattern(pattern: str) -> None:
    """An mx pattern is a domain name, optionally with ``*`` as its whole leftmost label."""
    name = pattern[2:] if pattern.startswith("*.") else pattern
    labels = name.split(".")
    if pattern != pattern.lower() or not all(map(_LABEL.fullmatch, labels)):
        raise PolicyError(f"invalid mx pattern {pattern!r}")


def mx_matches(pattern: str, mx_host: str) -> bool:
    """RFC 8461 §4.1: case-insensitive equality, or a leading ``*.`` standing for exactly one
    label (``*.example.com`` matches ``mx1.example.com``, not ``example.com`` or
    ``a.b.example.com``)."""
    host = mx_host.rstrip(".").lower()
    pattern = pattern.lower()
    if pattern.startswith("*."):
        label, dot, parent = host.partition(".")
        return bool(label) and bool(dot) and parent == pattern[2:]
    return host == pattern


def parse_policy(body: str) -> StsPolicy:
    """Parse a policy file strictly (RFC 8461 §3.2).

    Lines end in CRLF or LF; each is ``key: value``.  ``version: STSv1``, ``mode`` and
    ``max_age`` are required; ``mx`` may repeat and is required unless the mode is ``none``.
    Unknown keys are ignored, as the RFC asks.  A repeated ``version``, ``mode`` or ``max_age``
    is refused: the RFC gives it no meaning, and guessing which one counts would let a policy
    mean two things.  Raises :class:`PolicyError`.
    """
    lines = body.split("\n")
    if lines[-1] == "":
        lines.pop()  # the last line may end with a terminator
    seen: dict[str, str] = {}
    patterns: list[str] = []
    kept: list[str] = []
    for raw in lines:
        line = raw[:-1] if raw.endswith("\r") else raw
        key, colon, rest = line.partition(":")
        value = rest.lstrip(" \t").rstrip(" \t")
        if not colon or not _POLICY_KEY.fullmatch(key) or not _POLICY_VALUE.fullmatch(value):
            raise PolicyError(f"malformed policy line {line!r}")
        kept.append(line)
        if key == "mx":
            patterns.append(value.lower())
        elif key in ("version", "mode", "max_age"):
            if key in seen:
                raise PolicyError(f"the policy repeats {key!r}")
            seen[key] = value
    if seen.get("version") != "STSv1":
        raise PolicyError("the policy's version is not STSv1")
    try:
        mode = Mode(seen.get("mode"))
    except ValueError:
        raise PolicyError(f"unknown policy mode {seen.get('mode')!r}") from None
    max_age = seen.get("max_age")
    if max_age is None or not _MAX_AGE.fullmatch(max_age):
        raise PolicyError(f"invalid max_age {max_age!r}")
    return StsPolicy(mode, int(max_age), tuple(patterns), tuple(kept))


def policy_url(domain: str) -> str:
    """Where the policy of ``domain`` lives (RFC 8461 §3.3)."""
    return f"https://mta-sts.{domain.rstrip('.').lower()}/.well-known/mta-sts.txt"


@dataclass(frozen=True, slots=True)
class PolicyFetch:
    """The driver's report of the HTTPS fetch of :func:`policy_url`.

    ``error`` is set when no response arrived (connection, TLS or certificate failure, timeout);
    ``webpki_failed`` when the failure was the certificate of ``mta-sts.<domain>``.  Otherwise
    ``status``, ``content_type`` and ``body`` are the response's.  The driver follows no redirect
    (RFC 8461 §3.3) and reads at most :data:`MAX_POLICY_SIZE` + 1 bytes.
    """

    status: int | None = None
    content_type: str = ""
    body: bytes = b""
    error: str | None = None
    webpki_failed: bool = False

    def __post_init__(self) -> None:
        if (self.error is None) == (self.status is None):
            raise ValueError("a policy fetch has a status or an error, not both")


def policy_from_fetch(fetch: PolicyFetch) -> StsPolicy | FailureDetail:
    """The policy a fetch delivered, or the RFC 8460 failure it amounts to."""
    if fetch.error is not None:
        kind = ResultType.STS_WEBPKI_INVALID if fetch.webpki_failed else None
        return FailureDetail(
            kind or ResultType.STS_POLICY_FETCH_ERROR, additional_information=fetch.error
        )
    if fetch.status != 200:
        return FailureDetail(
            ResultType.STS_POLICY_FETCH_ERROR, additional_information=f"HTTP {fetch.status}"
        )
    media_type = fetch.content_type.split(";", 1)[0].strip().lower()
    if media_type != "text/plain":
        reason = f"policy served as {media_type or 'no media type'!r}, not text/plain"
        return FailureDetail(ResultType.STS_POLICY_INVALID, additional_information=reason)
    if len(fetch.body) > MAX_POLICY_SIZE:
        reason = f"policy larger than {MAX_POLICY_SIZE} bytes"
        return FailureDetail(ResultType.STS_POLICY_INVALID, additional_information=reason)
    try:
        return parse_policy(fetch.body.decode("utf-8"))
    except (UnicodeDecodeError, PolicyError) as exc:
        return FailureDetail(ResultType.STS_POLICY_INVALID, additional_information=str(exc))


@dataclass(frozen=True, slots=True)
class CachedPolicy:
    """A policy as the cache keeps it: with the TXT ``policy_id`` it was fetched under and when."""

    policy: StsPolicy
    policy_id: str
    fetched_at: float

    @property
    def expires_at(self) -> float:
        return self.fetched_at + self.policy.max_age

    def valid(self, now: float) -> bool:
        """Not expired at ``now`` (RFC 8461 §3.2 ``max_age``)."""
        return now < self.expires_at


class PolicyCache(Protocol):
    """Where policies are kept between deliveries, keyed by the policy domain (lower-case, no
    trailing dot).  Implement it over a file or a shared store to outlive the process."""

    def get(self, domain: str) -> CachedPolicy | None: ...

    def put(self, domain: str, entry: CachedPolicy) -> None: ...


def _key(domain: str) -> str:
    return domain.rstrip(".").lower()


class InMemoryPolicyCache:
    """The default :class:`PolicyCache`: a dict, for as long as the object lives.  At most
    ``limit`` domains are kept; the oldest stored is dropped first."""

    def __init__(self, entries: Iterable[tuple[str, CachedPolicy]] = (), *, limit: int = 10_000):
        if limit < 1:
            raise ValueError("the cache limit must be at least 1")
        self._limit = limit
        self._entries: dict[str, CachedPolicy] = {}
        for domain, entry in entries:
            self.put(domain, entry)

    def get(self, domain: str) -> CachedPolicy | None:
        return self._entries.get(_key(domain))

    def put(self, domain: str, entry: CachedPolicy) -> None:
        key = _key(domain)
        self._entries.pop(key, None)
        self._entries[key] = entry
        if len(self._entries) > self._limit:
            del self._entries[next(iter(self._entries))]

    def __len__(self) -> int:
        return len(self._entries)


def refetch_needed(
    record: StsRecord | None,
    cached: CachedPolicy | None,
    now: float,
    *,
    refresh_interval: float = DEFAULT_REFRESH_INTERVAL,
) -> bool:
    """Whether to fetch the policy now (RFC 8461 §3.3, §5.1).

    Only when a valid TXT record exists, and then when nothing valid is cached, when the record's
    id differs from the cached policy's, or when the cached one is older than
    ``refresh_interval``.  Without a record nothing is fetched (a cached policy still applies).
    """
    if record is None:
        return False
    if cached is None or not cached.valid(now) or cached.policy_id != record.id:
        return True
    return now - cached.fetched_at >= refresh_interval


@dataclass(frozen=True, slots=True)
class PolicyResolution:
    """Which policy applies to a domain now.

    ``policy`` is ``None`` when none applies (no record and nothing cached, or a fetch that failed
    with nothing valid cached: delivery goes on as without MTA-STS, RFC 8461 §3.3); ``store`` is
    the entry to put in the cache, if any; ``failure`` the fetch's failure, for the report, even
    when a cached policy took over.
    """

    policy: StsPolicy | None
    store: CachedPolicy | None = None
    failure: FailureDetail | None = None

    @property
    def mode(self) -> Mode:
        """The effective mode: a ``none`` policy and no policy mean the same (RFC 8461 §5)."""
        return self.policy.mode if self.policy is not None else Mode.NONE


def resolve_policy(
    record: StsRecord | None,
    cached: CachedPolicy | None,
    fetched: PolicyFetch | None,
    now: float,
) -> PolicyResolution:
    """Decide the policy from the TXT record, the cache entry and the fetch (``None`` when
    :func:`refetch_needed` said no fetch was needed), RFC 8461 §3.3 and §5.1.

    A fetched valid policy wins and is stored under the record's id.  A failed fetch keeps a
    valid cached policy (an unreachable policy server never removes protection); without one the
    domain is treated as having no policy.  Without a TXT record, a valid cached policy applies.
    """
    live = cached if cached is not None and cached.valid(now) else None
    if record is None or fetched is None:
        return PolicyResolution(live.policy if live is not None else None)
    outcome = policy_from_fetch(fetched)
    if isinstance(outcome, StsPolicy):
        entry = CachedPolicy(outcome, record.id, now)
        return PolicyResolution(outcome, store=entry)
    return PolicyResolution(live.policy if live is not None else None, failure=outcome)
