"""One ``deliver()`` call for many domains: per-recipient outcomes in order, domains delivered
concurrently, and the "port 25 blocked" diagnosis (issue 5, item 4), for each adapter."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable

import pytest

from tests.deliver_harness import (
    TEST_TIMEOUTS,
    Deliverer,
    MXServers,
    SilentListener,
    received_by,
)

pytestmark = pytest.mark.dns

MIXED = [
    "b@implicit.test",
    "a@ordered.test",
    "gone@nxdomain.test",
    "c@deadmx.test",
    "n@nullmx.test",
    "s@servfail.test",
    "bad@ordered.test",
    "d@ORDERED.test",
]


def test_mixed_domains_outcomes_in_the_given_order(deliver: Deliverer, mx: MXServers) -> None:
    """Each recipient's fate, in the order given; one transaction per domain, so mx1 gets the
    three ordered.test recipients (any case of the domain) in one message."""
    mx1 = mx("mx1.ordered.test", recipient_replies={"bad@ordered.test": "550 5.1.1 unknown"})
    live = mx("live.deadmx.test")
    implicit = mx("implicit.test")
    sent = deliver(MIXED)
    report = sent.report
    assert [o.recipient for o in report.outcomes] == MIXED
    assert [o.status for o in report.outcomes] == [
        "delivered",
        "delivered",
        "permanent",
        "delivered",
        "permanent",
        "temporary",
        "permanent",
        "delivered",
    ]
    assert report.with_status("temporary") == ["s@servfail.test"]
    assert not report.all_delivered
    assert report["c@deadmx.test"].server_host == "live.deadmx.test"
    assert report["d@ORDERED.test"].server_host == "mx1.ordered.test"
    with pytest.raises(KeyError):
        report["nobody@ordered.test"]
    assert received_by(mx1, sent.marker) == [("a@ordered.test", "d@ORDERED.test")]
    assert received_by(live, sent.marker) == [("c@deadmx.test",)]
    assert received_by(implicit, sent.marker) == [("b@implicit.test",)]
    # Some servers answered: nothing suggests a blocked port.
    assert not report.port_25_blocked and report.diagnosis is None
    assert report.summary == "4 delivered, 1 temporary failure(s), 3 permanent failure(s)"
    text = str(report)
    assert all(rcpt in text for rcpt in MIXED)
    assert "550 5.1.1 unknown" in text
    data = report.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert [r["recipient"] for r in data["recipients"]] == MIXED
    assert data["recipients"][1]["reply"]["code"] == 250
    assert data["recipients"][4]["reply"]["enhanced_status"] == "5.1.10"


@pytest.mark.parametrize(("parallel", "together"), [(4, True), (1, False)], ids=["4", "1"])
def test_domains_are_delivered_concurrently_up_to_the_limit(
    deliver: Deliverer,
    mx: MXServers,
    silent: Callable[[str], SilentListener],
    parallel: int,
    together: bool,
) -> None:
    """Two domains whose first MX never greets (for equal.test: a never greets, b is dead, in
    either order): with room for both, their first connections come at once; one at a time, the
    second domain waits for the first one's greeting timeout."""
    timeout = 0.4
    ordered_slow, equal_slow = silent("mx1.ordered.test"), silent("a.equal.test")
    mx2, c = mx("mx2.ordered.test"), mx("c.equal.test")
    sent = deliver(
        ["x@ordered.test", "y@equal.test"],
        parallel=parallel,
        timeout=dataclasses.replace(TEST_TIMEOUTS, greeting=timeout),
    )
    assert sent.report.all_delivered
    assert received_by(mx2, sent.marker) == [("x@ordered.test",)]
    assert received_by(c, sent.marker) == [("y@equal.test",)]
    gap = abs(equal_slow.accepted_at[0] - ordered_slow.accepted_at[0])
    if together:
        assert gap < timeout / 2
    else:
        assert gap >= timeout * 0.9


def test_port_25_blocked_when_no_mx_of_any_domain_answers(deliver: Deliverer) -> None:
    """No server runs anywhere: every connection to every MX of every domain is refused."""
    rcpts = ["a@ordered.test", "b@deadmx.test", "c@multihomed.test", "d@implicit.test"]
    sent = deliver(rcpts)
    report = sent.report
    assert report.with_status("temporary") == rcpts
    assert [len(report[r].attempts) for r in rcpts] == [3, 2, 2, 1]
    assert all(a.connect_failed for o in report.outcomes for a in o.attempts)
    assert report.port_25_blocked
    assert report.diagnosis is not None
    assert "port 25" in report.diagnosis and "relay" in report.diagnosis.lower()
    assert report.diagnosis in str(report)
    data = report.to_dict()
    assert data["port_25_blocked"] is True and data["diagnosis"] == report.diagnosis


def test_port_25_not_blocked_when_one_server_answered(deliver: Deliverer, mx: MXServers) -> None:
    """One MX greets (and defers): the port is open, whatever happened elsewhere."""
    mx("implicit.test", greeting="421 4.3.2 busy")
    report = deliver(["a@ordered.test", "d@implicit.test"]).report
    assert report.with_status("temporary") == ["a@ordered.test", "d@implicit.test"]
    assert not report.port_25_blocked and report.diagnosis is None


def test_port_25_not_blocked_when_no_connection_was_tried(deliver: Deliverer) -> None:
    """DNS said no (null MX, NXDOMAIN): nothing was tried, so nothing was blocked."""
    report = deliver(["n@nullmx.test", "x@nxdomain.test"]).report
    assert not report.port_25_blocked and report.diagnosis is None
