"""MTA-STS (RFC 8461) without I/O: the TXT record, the policy file, MX patterns, the cache and
which policy applies when the record, the cache and the fetch disagree."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpproto.mta_sts import (
    MAX_AGE_LIMIT,
    MAX_POLICY_SIZE,
    CachedPolicy,
    InMemoryPolicyCache,
    Mode,
    PolicyCache,
    PolicyError,
    PolicyFetch,
    StsPolicy,
    StsRecord,
    mx_matches,
    parse_policy,
    parse_txt_record,
    policy_from_fetch,
    policy_url,
    refetch_needed,
    resolve_policy,
)
from smtpproto.tls_report import FailureDetail, ResultType

POLICY_TEXT = (
    "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\n"
    "max_age: 604800\r\n"
)
POLICY = parse_policy(POLICY_TEXT)

# --- the TXT record (§3.1) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("strings", "expected"),
    [
        (["v=STSv1; id=20160831085700Z;"], "20160831085700Z"),
        (["v=STSv1;id=abc"], "abc"),
        (["v=STSv1; id=abc ;  ext_1.x=some-value"], "abc"),
        (["v=spf1 -all", "v=STSv1; id=abc;"], "abc"),  # other records are discarded
        (["v=STSv1; id=" + "a" * 32], "a" * 32),
    ],
)
def test_txt_records_that_announce_a_policy(strings: list[str], expected: str) -> None:
    assert parse_txt_record(strings) == StsRecord(expected)


@pytest.mark.parametrize(
    "strings",
    [
        [],
        ["v=spf1 -all"],
        ["v=STSv1; id=a;", "v=STSv1; id=b;"],  # more than one: no policy
        ["v=STSv1;"],  # no id
        ["v=STSv1; id=" + "a" * 33],
        ["v=STSv1; id=a-b"],
        ["v=STSv1; id=a; id=b"],
        ["v=STSv1; id=a; junk"],
        ["v=STSv1; id=a; bad name=x"],
        ["v=STSv1; id=a; ext=a=b"],
        ["v=STSv1 ; id=a"],  # the record must start with "v=STSv1;"
        ["V=STSv1; id=a"],
    ],
)
def test_txt_records_that_mean_no_policy(strings: list[str]) -> None:
    assert parse_txt_record(strings) is None


# --- the policy file (§3.2) -----------------------------------------------------------------


def test_policy_fields() -> None:
    assert StsPolicy(Mode.ENFORCE, 604800, ("mail.example.com", "*.example.net")) == POLICY
    assert POLICY.text == tuple(POLICY_TEXT.split("\r\n")[:-1])


def test_lf_lines_unknown_keys_and_no_final_terminator() -> None:
    text = "version: STSv1\nmode:testing\nfuture_key: value  with spaces\nmx: MX.Example.com\n"
    text += "max_age: 0"
    policy = parse_policy(text)
    assert policy == StsPolicy(Mode.TESTING, 0, ("mx.example.com",))


def test_mode_none_needs_no_mx() -> None:
    assert parse_policy("version: STSv1\nmode: none\nmax_age: 86400\n").mx == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mode: enforce\nmx: a.example\nmax_age: 1\n", "version"),
        ("version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n", "version"),
        ("version: STSv1\nmode: strict\nmx: a.example\nmax_age: 1\n", "mode"),
        ("version: STSv1\nmx: a.example\nmax_age: 1\n", "mode"),
        ("version: STSv1\nmode: enforce\nmx: a.example\n", "max_age"),
        ("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n", "max_age"),
        ("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 12345678901\n", "max_age"),
        (f"version: STSv1\nmode: enforce\nmx: a.example\nmax_age: {MAX_AGE_LIMIT + 1}\n", "0-"),
        ("version: STSv1\nmode: enforce\nmax_age: 1\n", "needs mx"),
        ("version: STSv1\nmode: testing\nmx: *.*.example\nmax_age: 1\n", "pattern"),
        ("version: STSv1\nmode: testing\nmx: mx*.example\nmax_age: 1\n", "pattern"),
        ("version: STSv1\nmode: testing\nmx: -a.example\nmax_age: 1\n", "pattern"),
        ("version: STSv1\nmode: testing\nmx: a..example\nmax_age: 1\n", "pattern"),
        ("version: STSv1\nmode: enforce\nmode: none\nmx: a.example\nmax_age: 1\n", "repeats"),
        ("version: STSv1\n\nmode: enforce\nmx: a.example\nmax_age: 1\n", "malformed"),
        ("version STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\n", "malformed"),
        ("version: STSv1\nmode: enforce\nmx:\nmax_age: 1\n", "malformed"),
        ("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\n\n", "malformed"),
        ("version: STSv1\r\r\nmode: enforce\nmx: a.example\nmax_age: 1\n", "malformed"),
        ("_key: x\nversion: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\n", "malformed"),
        ("version: STSv1\nmode: enforce\nmx: a.ex\x7fample\nmax_age: 1\n", "malformed"),
    ],
)
def test_policies_the_rfc_refuses(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        parse_policy(text)


def test_policy_patterns_are_checked_on_construction() -> None:
    with pytest.raises(PolicyError, match="pattern"):
        StsPolicy(Mode.ENFORCE, 1, ("Upper.Example",))
    assert StsPolicy(Mode.ENFORCE, 1, ("localhost",)).allows("LOCALHOST.")


@pytest.mark.parametrize(
    ("pattern", "host", "ok"),
    [
        ("mail.example.com", "mail.example.com", True),
        ("mail.example.com", "MAIL.Example.COM.", True),
        ("mail.example.com", "mail2.example.com", False),
        ("*.example.com", "mx1.example.com", True),
        ("*.example.com", "example.com", False),  # one label, not zero
        ("*.example.com", "a.mx1.example.com", False),  # nor two
        ("*.example.com", ".example.com", False),
    ],
)
def test_mx_patterns(pattern: str, host: str, ok: bool) -> None:
    assert mx_matches(pattern, host) is ok


@given(st.from_regex(r"[a-z0-9]{1,10}", fullmatch=True))
def test_a_wildcard_covers_any_one_label(label: str) -> None:
    assert POLICY.allows(f"{label}.example.net")
    assert not POLICY.allows(f"{label}.x.example.net")


def test_policy_url() -> None:
    assert policy_url("Example.COM.") == "https://mta-sts.example.com/.well-known/mta-sts.txt"


# --- fetch results (§3.3) -------------------------------------------------------------------


def ok_fetch(body: str = POLICY_TEXT, content_type: str = "text/plain") -> PolicyFetch:
    return PolicyFetch(200, content_type, body.encode())


def failure(outcome: StsPolicy | FailureDetail) -> ResultType:
    assert isinstance(outcome, FailureDetail)
    return outcome.result_type


def test_fetch_results() -> None:
    assert policy_from_fetch(ok_fetch(content_type="Text/Plain; charset=utf-8")) == POLICY
    assert failure(policy_from_fetch(PolicyFetch(error="refused"))) is (
        ResultType.STS_POLICY_FETCH_ERROR
    )
    webpki = PolicyFetch(error="certificate verify failed", webpki_failed=True)
    assert failure(policy_from_fetch(webpki)) is ResultType.STS_WEBPKI_INVALID
    assert failure(policy_from_fetch(PolicyFetch(404, "text/html", b""))) is (
        ResultType.STS_POLICY_FETCH_ERROR
    )
    assert failure(policy_from_fetch(PolicyFetch(301, "text/plain", b""))) is (
        ResultType.STS_POLICY_FETCH_ERROR
    )
    assert failure(policy_from_fetch(ok_fetch(content_type="text/html"))) is (
        ResultType.STS_POLICY_INVALID
    )
    assert failure(policy_from_fetch(ok_fetch(content_type=""))) is ResultType.STS_POLICY_INVALID
    big = ok_fetch(POLICY_TEXT + "x: " + "y" * MAX_POLICY_SIZE + "\n")
    assert failure(policy_from_fetch(big)) is ResultType.STS_POLICY_INVALID
    assert failure(policy_from_fetch(ok_fetch("version: STSv1\n"))) is ResultType.STS_POLICY_INVALID
    latin = PolicyFetch(200, "text/plain", b"version: STSv1\nx: \xff\n")
    assert failure(policy_from_fetch(latin)) is ResultType.STS_POLICY_INVALID


def test_a_fetch_has_a_status_or_an_error() -> None:
    with pytest.raises(ValueError, match="status or an error"):
        PolicyFetch()
    with pytest.raises(ValueError, match="status or an error"):
        PolicyFetch(200, error="x")


# --- the cache and the decision (§3.3, §5.1) ------------------------------------------------

DAY = 86_400.0
T0 = 1_800_000_000.0


def cached(
    policy_id: str = "one", fetched_at: float = T0, policy: StsPolicy = POLICY
) -> CachedPolicy:
    return CachedPolicy(policy, policy_id, fetched_at)


def test_cached_policy_expires_after_max_age() -> None:
    entry = cached()
    assert entry.expires_at == T0 + 604800
    assert entry.valid(T0 + 604799)
    assert not entry.valid(T0 + 604800)


def test_in_memory_cache_is_keyed_by_domain() -> None:
    cache: PolicyCache = InMemoryPolicyCache([("Example.COM.", cached())])
    assert cache.get("example.com") == cached()
    cache.put("example.com", cached("two"))
    assert cache.get("EXAMPLE.com") == cached("two")
    assert cache.get("example.net") is None


def test_in_memory_cache_drops_the_oldest_past_its_limit() -> None:
    cache = InMemoryPolicyCache(limit=2)
    cache.put("a.example", cached("a"))
    cache.put("b.example", cached("b"))
    cache.put("a.example", cached("a2"))  # stored again: now the newest
    cache.put("c.example", cached("c"))
    assert len(cache) == 2
    assert cache.get("b.example") is None
    assert cache.get("a.example") == cached("a2")
    with pytest.raises(ValueError, match="at least 1"):
        InMemoryPolicyCache(limit=0)


@pytest.mark.parametrize(
    ("record", "entry", "now", "needed"),
    [
        (None, None, T0, False),  # no record: nothing to fetch
        (None, cached(), T0, False),
        (StsRecord("one"), None, T0, True),  # first sight
        (StsRecord("one"), cached(), T0 + 60, False),  # same id, fresh
        (StsRecord("two"), cached(), T0 + 60, True),  # the id changed: refetch (§3.3)
        (StsRecord("one"), cached(), T0 + DAY, True),  # same id, due for refresh (§5.1)
        (StsRecord("one"), cached(), T0 + 604800, True),  # expired
    ],
)
def test_when_to_fetch(
    record: StsRecord | None, entry: CachedPolicy | None, now: float, needed: bool
) -> None:
    assert refetch_needed(record, entry, now) is needed


def test_refresh_interval_is_the_callers() -> None:
    assert not refetch_needed(StsRecord("one"), cached(), T0 + DAY, refresh_interval=2 * DAY)


def test_a_fetched_policy_applies_and_is_stored_under_the_record_id() -> None:
    result = resolve_policy(StsRecord("two"), cached(), ok_fetch(), T0 + 60)
    assert result.policy == POLICY and result.mode is Mode.ENFORCE
    assert result.store == CachedPolicy(POLICY, "two", T0 + 60)
    assert result.failure is None


def test_an_unreachable_policy_server_keeps_the_cached_policy() -> None:
    result = resolve_policy(StsRecord("two"), cached(), PolicyFetch(error="timeout"), T0 + 60)
    assert result.policy == POLICY and result.store is None
    assert result.failure is not None
    assert result.failure.result_type is ResultType.STS_POLICY_FETCH_ERROR


def test_a_failed_fetch_without_a_valid_cache_means_no_policy() -> None:
    expired = cached(fetched_at=T0 - 604800)
    result = resolve_policy(StsRecord("one"), expired, PolicyFetch(error="refused"), T0)
    assert result.policy is None and result.mode is Mode.NONE
    assert result.failure is not None


def test_without_a_record_a_valid_cached_policy_still_applies() -> None:
    assert resolve_policy(None, cached(), None, T0 + 60).policy == POLICY
    assert resolve_policy(None, cached(), None, T0 + 604800).policy is None
    assert resolve_policy(None, None, None, T0).policy is None


def test_same_id_uses_the_cache_without_fetching() -> None:
    result = resolve_policy(StsRecord("one"), cached(), None, T0 + 60)
    assert result.policy == POLICY and result.store is None


def test_a_none_policy_is_stored_and_means_no_policy() -> None:
    none = "version: STSv1\nmode: none\nmax_age: 86400\n"
    result = resolve_policy(StsRecord("three"), cached(), ok_fetch(none), T0 + 60)
    assert result.mode is Mode.NONE
    assert result.store is not None and result.store.policy.mode is Mode.NONE
