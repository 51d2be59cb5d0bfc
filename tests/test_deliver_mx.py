"""``deliver()`` plans from real DNS answers (dnsmasq on loopback) and lands where the plan says.

Each test runs for the blocking, asyncio and trio adapters, asserts on the DeliveryReport and
on which aiosmtpd server (port 25 of a distinct 127.0.0.x address) actually got the message.
A second dnsmasq serves the few records the shared zone lacks (:data:`EXTRA_ZONE`).
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator

import pytest

from tests.deliver_harness import (
    Deliverer,
    MXServers,
    address,
    received_by,
)
from tests.servers.dnsmasq import DNSMASQ, DNSServer, Zone, start_dns_server
from tests.servers.fixtures import require_server

pytestmark = pytest.mark.dns

#: Records the shared zone does not have.  A MX lookup that fails while the A lookup of the same
#: name works (dnsmasq answers A from its own records and forwards the rest) is what shows that
#: a temporary DNS failure never falls back to the address records (X2).
EXTRA_ZONE = Zone(
    mx={
        # an MX whose host is dead, beside the domain's own live A record (X3)
        "hasmx.test": [(10, "dead.hasmx.test")],
        # MX records exist, but no target has an address (X6)
        "unusable.test": [(10, "ghost.unusable.test"), (20, "ghost2.unusable.test")],
        # bücher.test as an A-label (X1)
        "xn--bcher-kva.test": [(10, "mx.xn--bcher-kva.test")],
    },
    addresses={
        "servfail.test": ["127.0.0.81"],
        "timeout.test": ["127.0.0.82"],
        "dead.hasmx.test": ["127.0.0.83"],
        "hasmx.test": ["127.0.0.84"],
        "mx.xn--bcher-kva.test": ["127.0.0.85"],
    },
    servfail=["servfail.test"],
    timeout=["timeout.test"],
)


@pytest.fixture(scope="module")
def extra_dns() -> Iterator[DNSServer]:
    require_server(os.access(DNSMASQ, os.X_OK), "dnsmasq")
    server = start_dns_server(EXTRA_ZONE)
    try:
        yield server
    finally:
        server.stop()


def with_dns(deliver: Deliverer, server: DNSServer, lifetime: float = 3.0) -> Deliverer:
    """The same adapter, asking ``server`` instead."""
    return Deliverer(deliver.adapter, server, dns_lifetime=lifetime)


# -- X4: preference order -----------------------------------------------------------------------


def test_x4_ordered_mx_lowest_preference_gets_the_mail(deliver: Deliverer, mx: MXServers) -> None:
    """DNS serves 20, 10, 30: the mail goes to mx1 (10); mx2 and mx3 are never contacted."""
    mx1, mx2, mx3 = mx("mx1.ordered.test"), mx("mx2.ordered.test"), mx("mx3.ordered.test")
    sent = deliver(["user@ordered.test"])
    outcome = sent["user@ordered.test"]
    assert outcome.status == "delivered"
    assert (outcome.server_host, outcome.server_address) == ("mx1.ordered.test", "127.0.0.11")
    assert outcome.reply is not None and outcome.reply.code == 250
    assert [(a.host, a.error) for a in outcome.attempts] == [("mx1.ordered.test", None)]
    assert received_by(mx1, sent.marker) == [("user@ordered.test",)]
    assert mx2.connections == [] and mx3.connections == []


def test_x4_ordered_mx_second_preference_before_third(deliver: Deliverer, mx: MXServers) -> None:
    """With mx1 dead, preference 20 (served first by DNS anyway) comes before 30."""
    mx2, mx3 = mx("mx2.ordered.test"), mx("mx3.ordered.test")
    sent = deliver(["user@ordered.test"])
    outcome = sent["user@ordered.test"]
    assert (outcome.status, outcome.server_host) == ("delivered", "mx2.ordered.test")
    assert [a.host for a in outcome.attempts] == ["mx1.ordered.test", "mx2.ordered.test"]
    assert received_by(mx2, sent.marker) == [("user@ordered.test",)]
    assert mx3.connections == []


def test_x4_equal_preferences_are_shuffled_by_the_given_rng(
    deliver: Deliverer, mx: MXServers
) -> None:
    """a and b (both 10) each get some of the deliveries over a few seeds; c (20) never does.
    The same seed picks the same host again: the randomness is the injected rng's."""
    servers = {host: mx(host) for host in ("a.equal.test", "b.equal.test", "c.equal.test")}
    chosen: dict[int, str] = {}
    for seed in range(8):
        sent = deliver(["user@equal.test"], rng=random.Random(seed))
        outcome = sent["user@equal.test"]
        assert outcome.status == "delivered"
        assert outcome.server_host is not None and outcome.server_address == address(
            outcome.server_host
        )
        landed = [h for h, s in servers.items() if received_by(s, sent.marker)]
        assert landed == [outcome.server_host]
        chosen[seed] = outcome.server_host
    assert set(chosen.values()) == {"a.equal.test", "b.equal.test"}
    assert servers["c.equal.test"].connections == []
    again = deliver(["user@equal.test"], rng=random.Random(0))
    assert again["user@equal.test"].server_host == chosen[0]


# -- X3: implicit MX ----------------------------------------------------------------------------


def test_x3_no_mx_delivers_to_the_domains_own_address(deliver: Deliverer, mx: MXServers) -> None:
    server = mx("implicit.test")
    sent = deliver(["user@implicit.test"])
    outcome = sent["user@implicit.test"]
    assert (outcome.status, outcome.server_host, outcome.server_address) == (
        "delivered",
        "implicit.test",
        "127.0.0.51",
    )
    assert received_by(server, sent.marker) == [("user@implicit.test",)]


def test_x3_domain_with_an_mx_never_uses_its_own_address(
    deliver: Deliverer, mx: MXServers, extra_dns: DNSServer
) -> None:
    """hasmx.test's only MX is dead; its own A record has a live server that stays untouched."""
    own = mx.at("127.0.0.84")
    sent = with_dns(deliver, extra_dns)(["user@hasmx.test"])
    outcome = sent["user@hasmx.test"]
    assert outcome.status == "temporary"
    assert [(a.address, a.connect_failed) for a in outcome.attempts] == [("127.0.0.83", True)]
    assert own.connections == []


# -- X7: records naming this host, X9: address family ------------------------------------------


def test_x7_our_own_record_and_worse_ones_are_dropped(deliver: Deliverer, mx: MXServers) -> None:
    """We are mx2 (20): mx2 and mx3 are dropped, only mx1 (dead here) is tried."""
    mx2, mx3 = mx("mx2.ordered.test"), mx("mx3.ordered.test")
    sent = deliver(["user@ordered.test"], local_names=frozenset({"mx2.ordered.test"}))
    outcome = sent["user@ordered.test"]
    assert outcome.status == "temporary"
    assert [a.host for a in outcome.attempts] == ["mx1.ordered.test"]
    assert mx2.connections == [] and mx3.connections == []


def test_x7_best_mx_is_ourselves_is_an_error(deliver: Deliverer, mx: MXServers) -> None:
    servers = [mx(f"mx{n}.ordered.test") for n in (1, 2, 3)]
    sent = deliver(["user@ordered.test"], local_names=frozenset({"MX1.ordered.test."}))
    outcome = sent["user@ordered.test"]
    assert outcome.status == "permanent"
    assert outcome.reply is not None and outcome.reply.code == 554
    assert outcome.attempts == ()
    assert all(s.connections == [] for s in servers)


@pytest.mark.parametrize(
    ("prefer", "order"),
    [(None, ["::1"]), ("ipv6", ["::1"]), ("ipv4", ["127.0.0.71", "::1"])],
    ids=["default", "ipv6", "ipv4"],
)
def test_x9_address_family_preference(
    deliver: Deliverer, mx: MXServers, prefer: str | None, order: list[str]
) -> None:
    """mx.dualstack.test is 127.0.0.71 (dead) and ::1 (live); by default the AAAA answer comes
    first, and ``prefer_family`` chooses."""
    server = mx("mx.dualstack.test", at="::1")
    sent = deliver(["user@dualstack.test"], prefer_family=prefer)
    outcome = sent["user@dualstack.test"]
    assert (outcome.status, outcome.server_address) == ("delivered", "::1")
    assert [a.address for a in outcome.attempts] == order
    assert received_by(server, sent.marker) == [("user@dualstack.test",)]


# -- X8: null MX, X2: NXDOMAIN and DNS failures -------------------------------------------------


def test_x8_null_mx_is_permanent_556_without_connecting(deliver: Deliverer) -> None:
    sent = deliver(["user@nullmx.test"])
    outcome = sent["user@nullmx.test"]
    assert outcome.status == "permanent"
    assert outcome.reply is not None and outcome.reply.code == 556
    assert str(outcome.reply.enhanced_status) == "5.1.10"
    assert outcome.attempts == () and outcome.server_host is None
    assert not sent.report.port_25_blocked


def test_x2_nxdomain_is_permanent(deliver: Deliverer) -> None:
    outcome = deliver(["user@nxdomain.test"])["user@nxdomain.test"]
    assert outcome.status == "permanent"
    assert outcome.reply is not None and outcome.reply.code == 550
    assert str(outcome.reply.enhanced_status) == "5.1.2"
    assert outcome.attempts == ()


def test_x2_servfail_is_temporary(deliver: Deliverer) -> None:
    outcome = deliver(["user@servfail.test"])["user@servfail.test"]
    assert outcome.status == "temporary"
    assert outcome.reply is not None and outcome.reply.code == 451
    assert str(outcome.reply.enhanced_status) == "4.4.3"
    assert outcome.attempts == ()


@pytest.mark.parametrize(
    ("domain", "lifetime"),
    [("servfail.test", 3.0), ("timeout.test", 0.5)],
    ids=["servfail", "timeout"],
)
def test_x2_failed_mx_lookup_never_falls_back_to_the_a_record(
    deliver: Deliverer, mx: MXServers, extra_dns: DNSServer, domain: str, lifetime: float
) -> None:
    """The MX lookup fails (SERVFAIL / no answer) while the domain's A record resolves to a live
    server: the delivery is deferred and that server gets no connection."""
    server = mx.at(EXTRA_ZONE.address(domain))
    sent = with_dns(deliver, extra_dns, lifetime)([f"user@{domain}"])
    outcome = sent[f"user@{domain}"]
    assert outcome.status == "temporary"
    assert outcome.reply is not None and outcome.reply.code == 451
    assert outcome.attempts == ()
    assert server.connections == []


# -- X6: MX targets without addresses -----------------------------------------------------------


def test_x6_mx_target_without_address_is_skipped(deliver: Deliverer, mx: MXServers) -> None:
    """ghost.noaddress.test (10) has no address: mx.noaddress.test (20) gets the mail, and the
    ghost costs no attempt."""
    server = mx("mx.noaddress.test")
    sent = deliver(["user@noaddress.test"])
    outcome = sent["user@noaddress.test"]
    assert (outcome.status, outcome.server_host) == ("delivered", "mx.noaddress.test")
    assert [a.host for a in outcome.attempts] == ["mx.noaddress.test"]
    assert received_by(server, sent.marker) == [("user@noaddress.test",)]


def test_x6_no_mx_target_with_an_address_is_an_error(
    deliver: Deliverer, extra_dns: DNSServer
) -> None:
    outcome = with_dns(deliver, extra_dns)(["user@unusable.test"])["user@unusable.test"]
    assert outcome.status == "permanent"
    assert outcome.reply is not None and outcome.reply.code == 550
    assert outcome.attempts == ()


# -- X1: CNAME and IDN --------------------------------------------------------------------------


def test_x1_cname_domain_follows_to_the_targets_mx(deliver: Deliverer, mx: MXServers) -> None:
    """alias.test is a CNAME of ordered.test: its mail goes to mx1.ordered.test, addressed as
    written."""
    mx1, mx2 = mx("mx1.ordered.test"), mx("mx2.ordered.test")
    sent = deliver(["user@alias.test"])
    outcome = sent["user@alias.test"]
    assert (outcome.status, outcome.server_host) == ("delivered", "mx1.ordered.test")
    assert received_by(mx1, sent.marker) == [("user@alias.test",)]
    assert mx2.connections == []


def test_x1_idn_domain_is_looked_up_as_its_a_label(
    deliver: Deliverer, mx: MXServers, extra_dns: DNSServer
) -> None:
    """bücher.test is found as xn--bcher-kva.test; the recipient goes out as written (SMTPUTF8)."""
    server = mx("mx.xn--bcher-kva.test", at="127.0.0.85", smtputf8=True)
    sent = with_dns(deliver, extra_dns)(["user@bücher.test"])
    outcome = sent["user@bücher.test"]
    assert (outcome.status, outcome.server_host) == ("delivered", "mx.xn--bcher-kva.test")
    assert received_by(server, sent.marker) == [("user@bücher.test",)]


# -- C21: address literals ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("domain", "at"), [("[127.0.0.11]", "127.0.0.11"), ("[IPv6:::1]", "::1")], ids=["v4", "v6"]
)
def test_c21_address_literal_is_delivered_without_dns(
    deliver_without_dns: Deliverer, mx: MXServers, domain: str, at: str
) -> None:
    """The resolver asks where no DNS server answers: delivery still works, so no lookup was
    made."""
    server = mx.at(at)
    rcpt = f"user@{domain}"
    sent = deliver_without_dns([rcpt])
    outcome = sent[rcpt]
    # The host is the literal as the domain part gave it (IPv6 tag case aside).
    assert outcome.server_host is not None and outcome.server_host.lower() == domain.lower()
    assert (outcome.status, outcome.server_address) == ("delivered", at)
    assert received_by(server, sent.marker) == [(rcpt,)]
