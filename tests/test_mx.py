"""MX planning (RFC 5321 §5.1, RFC 7505): DNS answers in, ordered attempts or a PlanError out.

Checklist section 2, X1-X9, and C21 (address literals are never looked up).
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpproto.mx import (
    DEFAULT_ADDRESS_LIMIT,
    Attempt,
    DeliveryPlan,
    DNSAnswer,
    DNSStatus,
    MXRecord,
    domain_of,
    lookup_name,
    plan_delivery,
)

DOMAIN = "example.com"
NODATA = DNSAnswer(DNSStatus.NODATA)
NXDOMAIN = DNSAnswer(DNSStatus.NXDOMAIN)
SERVFAIL = DNSAnswer(DNSStatus.SERVFAIL)
TIMEOUT = DNSAnswer(DNSStatus.TIMEOUT)


def mx(*records: tuple[int, str]) -> DNSAnswer:
    return DNSAnswer(DNSStatus.OK, mx=tuple(MXRecord(p, h) for p, h in records))


def addrs(*addresses: str) -> DNSAnswer:
    return DNSAnswer(DNSStatus.OK, addresses=addresses)


def hosts_of(plan: DeliveryPlan) -> list[str]:
    return [a.host for a in plan.attempts]


def addresses_of(plan: DeliveryPlan) -> list[str]:
    return [a.address for a in plan.attempts]


def assert_error(plan: DeliveryPlan, code: int, status: str) -> None:
    assert plan.attempts == ()
    assert plan.error is not None
    assert (plan.error.code, plan.error.enhanced_status) == (code, status)
    assert plan.error.temporary is (code < 500)


# -- ordering (X4, X5, X9) -------------------------------------------------------------------


def test_X4_sorted_by_preference_lowest_first() -> None:
    plan = plan_delivery(
        DOMAIN,
        mx((30, "c.example.com"), (10, "a.example.com."), (20, "b.example.com")),
        {
            "a.example.com": addrs("192.0.2.1"),
            "b.example.com": addrs("192.0.2.2"),
            "c.example.com": addrs("192.0.2.3"),
        },
    )
    assert plan.error is None
    assert plan.domain == DOMAIN
    assert plan.attempts == (
        Attempt("a.example.com", "192.0.2.1", 10),
        Attempt("b.example.com", "192.0.2.2", 20),
        Attempt("c.example.com", "192.0.2.3", 30),
    )


def _equal_preference_order(seed: int) -> list[str]:
    plan = plan_delivery(
        DOMAIN,
        mx((10, "a.example.com"), (10, "b.example.com"), (5, "first.example.com")),
        {
            "a.example.com": addrs("192.0.2.1"),
            "b.example.com": addrs("192.0.2.2"),
            "first.example.com": addrs("192.0.2.9"),
        },
        rng=random.Random(seed),
    )
    return hosts_of(plan)


def test_X4_equal_preferences_are_shuffled_by_the_injected_rng() -> None:
    orders = {tuple(_equal_preference_order(seed)) for seed in range(40)}
    # Both orders of the two equal records occur; the lower preference always comes first.
    assert orders == {
        ("first.example.com", "a.example.com", "b.example.com"),
        ("first.example.com", "b.example.com", "a.example.com"),
    }
    # The same seed gives the same order: the randomness is the caller's.
    for seed in range(10):
        assert _equal_preference_order(seed) == _equal_preference_order(seed)


def test_X4_without_an_rng_equal_preferences_are_still_planned() -> None:
    plan = plan_delivery(
        DOMAIN,
        mx((10, "a.example.com"), (10, "b.example.com")),
        {"a.example.com": addrs("192.0.2.1"), "b.example.com": addrs("192.0.2.2")},
    )
    assert sorted(hosts_of(plan)) == ["a.example.com", "b.example.com"]


def test_X5_address_limit_defaults_to_five_addresses_in_resolver_order() -> None:
    assert DEFAULT_ADDRESS_LIMIT == 5
    answers = {
        "a.example.com": addrs("192.0.2.1", "192.0.2.2"),
        "b.example.com": addrs("192.0.2.3", "192.0.2.4"),
        "c.example.com": addrs("192.0.2.5", "192.0.2.6"),
    }
    records = mx((10, "a.example.com"), (20, "b.example.com"), (30, "c.example.com"))
    plan = plan_delivery(DOMAIN, records, answers)
    assert addresses_of(plan) == [f"192.0.2.{i}" for i in range(1, 6)]
    assert plan_delivery(DOMAIN, records, answers, address_limit=3).attempts == plan.attempts[:3]
    assert len(plan_delivery(DOMAIN, records, answers, address_limit=10).attempts) == 6


MIXED = addrs("2001:db8::1", "192.0.2.1", "2001:db8::2", "192.0.2.2")


@pytest.mark.parametrize(
    ("prefer", "expected"),
    [
        (None, ["2001:db8::1", "192.0.2.1", "2001:db8::2", "192.0.2.2"]),
        ("ipv4", ["192.0.2.1", "192.0.2.2", "2001:db8::1", "2001:db8::2"]),
        ("ipv6", ["2001:db8::1", "2001:db8::2", "192.0.2.1", "192.0.2.2"]),
    ],
)
def test_X9_prefer_family_keeps_resolver_order_within_a_family(
    prefer: str | None, expected: list[str]
) -> None:
    plan = plan_delivery(
        DOMAIN,
        mx((10, "a.example.com"), (20, "b.example.com")),
        {"a.example.com": MIXED, "b.example.com": addrs("192.0.2.99", "2001:db8::99")},
        prefer_family=prefer,
        address_limit=100,
    )
    # Every address of the first MX before the next MX, whatever the family (X9).
    assert addresses_of(plan)[:4] == expected
    assert hosts_of(plan) == ["a.example.com"] * 4 + ["b.example.com"] * 2
    tail = ["192.0.2.99", "2001:db8::99"] if prefer != "ipv6" else ["2001:db8::99", "192.0.2.99"]
    assert addresses_of(plan)[4:] == tail


def test_X9_an_unknown_family_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="prefer_family"):
        plan_delivery(DOMAIN, NODATA, {}, prefer_family="inet6")


# -- implicit MX (X3) and X6 -------------------------------------------------------------------


def test_X3_implicit_mx_only_when_there_is_no_mx_record() -> None:
    plan = plan_delivery(DOMAIN, NODATA, {DOMAIN: addrs("192.0.2.7", "192.0.2.8")})
    assert plan.attempts == (
        Attempt(DOMAIN, "192.0.2.7", 0),
        Attempt(DOMAIN, "192.0.2.8", 0),
    )


def test_X3_when_an_mx_exists_the_domain_own_address_is_never_used() -> None:
    answers = {DOMAIN: addrs("192.0.2.7"), "mx.example.com": addrs("192.0.2.1")}
    plan = plan_delivery(DOMAIN, mx((10, "mx.example.com")), answers)
    assert addresses_of(plan) == ["192.0.2.1"]
    # Even when the only MX has no address, the domain's A record is not a fallback (X6).
    dead = {DOMAIN: addrs("192.0.2.7"), "mx.example.com": NXDOMAIN}
    assert_error(plan_delivery(DOMAIN, mx((10, "mx.example.com")), dead), 550, "5.4.4")


def test_X6_an_mx_target_without_address_is_skipped() -> None:
    plan = plan_delivery(
        DOMAIN,
        mx((10, "gone.example.com"), (20, "empty.example.com"), (30, "ok.example.com")),
        {
            "gone.example.com": NXDOMAIN,
            "empty.example.com": NODATA,
            "ok.example.com": addrs("192.0.2.3"),
        },
    )
    assert plan.attempts == (Attempt("ok.example.com", "192.0.2.3", 30),)


def test_X6_no_target_with_an_address_is_a_permanent_error() -> None:
    plan = plan_delivery(
        DOMAIN,
        mx((10, "gone.example.com"), (20, "empty.example.com")),
        {"gone.example.com": NXDOMAIN, "empty.example.com": NODATA},
    )
    assert_error(plan, 550, "5.4.4")
    assert plan.error is not None and DOMAIN in plan.error.message


@pytest.mark.parametrize("failure", [SERVFAIL, TIMEOUT, None])
def test_X6_X2_no_address_but_a_temporary_lookup_is_temporary(failure: DNSAnswer | None) -> None:
    answers = {"gone.example.com": NXDOMAIN}
    if failure is not None:  # None: the adapter did not answer for that host at all
        answers["flaky.example.com"] = failure
    plan = plan_delivery(DOMAIN, mx((10, "gone.example.com"), (20, "flaky.example.com")), answers)
    assert_error(plan, 451, "4.4.3")


def test_X3_implicit_mx_without_address_is_permanent() -> None:
    assert_error(plan_delivery(DOMAIN, NODATA, {DOMAIN: NODATA}), 550, "5.4.4")


# -- DNS errors (X2) ---------------------------------------------------------------------------


def test_X2_nxdomain_is_permanent() -> None:
    plan = plan_delivery(DOMAIN, NXDOMAIN, {DOMAIN: addrs("192.0.2.7")})
    assert_error(plan, 550, "5.1.2")


@pytest.mark.parametrize("answer", [SERVFAIL, TIMEOUT])
def test_X2_temporary_mx_failure_has_no_fallback_to_addresses(answer: DNSAnswer) -> None:
    assert answer.status.temporary
    plan = plan_delivery(DOMAIN, answer, {DOMAIN: addrs("192.0.2.7")})
    assert_error(plan, 451, "4.4.3")
    assert plan.error is not None and answer.status.value in plan.error.message


def test_dns_status_temporary_only_for_servfail_and_timeout() -> None:
    assert {s for s in DNSStatus if s.temporary} == {DNSStatus.SERVFAIL, DNSStatus.TIMEOUT}


# -- null MX (X8) ------------------------------------------------------------------------------


@pytest.mark.parametrize("host", [".", ""])
def test_X8_null_mx_fails_at_once_with_556(host: str) -> None:
    plan = plan_delivery(DOMAIN, mx((0, host)), {DOMAIN: addrs("192.0.2.7")})
    assert_error(plan, 556, "5.1.10")


def test_X8_null_mx_among_real_ones_is_ignored() -> None:
    plan = plan_delivery(
        DOMAIN, mx((0, "."), (10, "mx.example.com")), {"mx.example.com": addrs("192.0.2.1")}
    )
    assert plan.attempts == (Attempt("mx.example.com", "192.0.2.1", 10),)


def test_X3_X8_several_null_mx_records_never_fall_back_to_the_domain() -> None:
    plan = plan_delivery(DOMAIN, mx((0, "."), (10, ".")), {DOMAIN: addrs("192.0.2.7")})
    assert plan.attempts == ()
    assert plan.error is not None and not plan.error.temporary


# -- ourselves among the MXes (X7) -------------------------------------------------------------


def test_X7_our_record_and_every_one_at_or_above_its_preference_are_dropped() -> None:
    answers = {h: addrs(f"192.0.2.{i}") for i, h in enumerate("abcd", start=1)}
    plan = plan_delivery(
        DOMAIN,
        mx((10, "a"), (20, "b"), (20, "c"), (30, "d")),
        answers,
        local_names={"C."},  # trailing dot and case do not matter
        rng=random.Random(1),
    )
    assert hosts_of(plan) == ["a"]


def test_X7_when_we_are_the_best_mx_nothing_remains() -> None:
    plan = plan_delivery(
        DOMAIN,
        mx((10, "Us.example.com."), (20, "backup.example.com")),
        {"us.example.com": addrs("192.0.2.1"), "backup.example.com": addrs("192.0.2.2")},
        local_names=["us.example.com"],
    )
    assert_error(plan, 554, "5.4.6")


def test_X7_other_local_names_change_nothing() -> None:
    plan = plan_delivery(
        DOMAIN,
        mx((10, "mx.example.com")),
        {"mx.example.com": addrs("192.0.2.1")},
        local_names={"elsewhere.example.org"},
    )
    assert hosts_of(plan) == ["mx.example.com"]


# -- names: IDN (X1), literals (C21) ------------------------------------------------------------


def test_X1_idn_domain_is_looked_up_as_an_a_label() -> None:
    assert lookup_name("Bücher.Example") == "xn--bcher-kva.example"
    assert lookup_name("EXAMPLE.com") == "example.com"
    # The implicit MX is the A-label name, which is what the adapter resolved.
    plan = plan_delivery("bücher.example", NODATA, {"xn--bcher-kva.example": addrs("192.0.2.5")})
    assert plan.domain == "bücher.example"
    assert plan.attempts == (Attempt("xn--bcher-kva.example", "192.0.2.5", 0),)


def test_X2_messages_name_the_a_label() -> None:
    plan = plan_delivery("bücher.example", NXDOMAIN, {})
    assert plan.error is not None and "xn--bcher-kva.example" in plan.error.message


@pytest.mark.parametrize(
    ("literal", "address"),
    [
        ("[192.0.2.7]", "192.0.2.7"),
        ("[IPv6:2001:db8::1]", "2001:db8::1"),
        ("[ipv6:2001:DB8:0:0:0:0:0:1]", "2001:db8::1"),
    ],
)
def test_C21_address_literal_is_never_looked_up(literal: str, address: str) -> None:
    assert lookup_name(literal) is None
    # No MX answer is needed; any answers given are ignored.
    plan = plan_delivery(literal, None, {}, local_names={literal})
    assert plan.attempts == (Attempt(literal, address, 0),)
    assert plan_delivery(literal, NXDOMAIN, {}).attempts == plan.attempts


def test_C21_invalid_address_literal_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"192\.0\.2\.300"):
        plan_delivery("[192.0.2.300]", None, {})


def test_a_domain_name_needs_an_mx_answer() -> None:
    with pytest.raises(ValueError, match="MX answer"):
        plan_delivery(DOMAIN, None, {})


def test_invalid_domain_name_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="invalid label"):
        lookup_name("bad domain.example")


# -- domain_of ---------------------------------------------------------------------------------


def test_domain_of_takes_the_part_after_the_last_at() -> None:
    assert domain_of("user@Example.COM") == "Example.COM"
    assert domain_of('"a@b"@example.com') == "example.com"
    assert domain_of("u@[192.0.2.1]") == "[192.0.2.1]"


@pytest.mark.parametrize("address", ["postmaster", "@example.com", "user@", ""])
def test_domain_of_rejects_an_address_without_domain(address: str) -> None:
    with pytest.raises(ValueError, match="no domain"):
        domain_of(address)


# -- properties --------------------------------------------------------------------------------

_hosts = st.sampled_from(["a.example.com", "b.example.com", "c.example.com", "d.example.com"])
_records = st.lists(st.tuples(st.integers(0, 50), _hosts), min_size=1, max_size=6)


@given(_records, st.integers(1, 8), st.integers(0, 2**32))
def test_X3_X4_X5_plans_are_sorted_limited_and_never_use_the_domain(
    records: list[tuple[int, str]], limit: int, seed: int
) -> None:
    answers = {
        "a.example.com": addrs("192.0.2.1", "2001:db8::1"),
        "b.example.com": addrs("192.0.2.2"),
        "c.example.com": NODATA,
        "d.example.com": addrs("192.0.2.4", "192.0.2.44"),
        DOMAIN: addrs("192.0.2.200"),
    }
    plan = plan_delivery(
        DOMAIN, mx(*records), answers, rng=random.Random(seed), address_limit=limit
    )
    preferences = [a.preference for a in plan.attempts]
    assert preferences == sorted(preferences)
    assert len(plan.attempts) <= limit
    assert "192.0.2.200" not in addresses_of(plan)
    for attempt in plan.attempts:
        assert attempt.address in answers[attempt.host].addresses
    if plan.error is not None:
        assert {h for _, h in records} == {"c.example.com"}
        assert plan.error.code == 550
