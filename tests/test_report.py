"""The delivery report: per-recipient outcomes for a person (``__str__``) and a program
(``to_dict``), and the port-25 diagnosis."""

from __future__ import annotations

import json

import pytest

from smtpproto import (
    AttemptRecord,
    AuthenticationError,
    ConnectError,
    DeliveryReport,
    EnhancedStatus,
    MessageEncodingError,
    RecipientOutcome,
    Reply,
    SMTPTimeoutError,
    TLSError,
    TLSRequiredError,
)
from smtpproto._delivery.report import failure_detail

MX = AttemptRecord("mx.example.com", "192.0.2.1", 25)
MX2 = AttemptRecord("mx2.example.com", "192.0.2.2", 25)
OK = Reply(250, ("2.0.0 queued as 1234",), EnhancedStatus(2, 0, 0))
NO_USER = Reply(550, ("5.1.1 no such user",), EnhancedStatus(5, 1, 1))


def refused(record: AttemptRecord) -> AttemptRecord:
    return record.failed(ConnectError(record.address, record.port, "Connection refused"))


def delivered(rcpt: str, *, tls: bool = True, verified: bool = False) -> RecipientOutcome:
    where = MX.connected(tls, verified)
    return RecipientOutcome(
        rcpt, "delivered", OK, OK.text, where.host, where.address, tls, verified, (where,)
    )


def temporary(rcpt: str, *attempts: AttemptRecord) -> RecipientOutcome:
    return RecipientOutcome(
        rcpt, "temporary", None, "no mail server could be reached", attempts=attempts
    )


# -- AttemptRecord -----------------------------------------------------------------------------


def test_attempt_record_connected_and_failed() -> None:
    assert MX.connected(True, False) == AttemptRecord("mx.example.com", "192.0.2.1", 25, True)
    failed = refused(MX)
    assert failed.connect_failed and not failed.encoding_error
    assert failed.error == "cannot connect to 192.0.2.1 port 25: Connection refused"
    timeout = MX.failed(SMTPTimeoutError("GREETING", 300.0))
    assert not timeout.connect_failed and "timed out" in (timeout.error or "")
    encoding = MX.failed(MessageEncodingError("needs SMTPUTF8"))
    assert encoding.encoding_error and not encoding.connect_failed
    assert MX.error is None  # frozen: the original is untouched


def test_attempt_record_says_when_tls_failed() -> None:
    """A failed handshake, or STARTTLS required and not had: neither is a cleartext session."""
    for error in (TLSError("certificate verify failed"), TLSRequiredError("no STARTTLS")):
        failed = MX.failed(error)
        assert failed.tls_failed and not failed.connect_failed and not failed.tls
    assert not refused(MX).tls_failed


def test_failure_detail_does_not_repeat_the_reply_code() -> None:
    """Issue 14: the relay's wrong-password detail read "535 authentication failed: 535 ..."."""
    reply = Reply(535, ("Incorrect authentication data",))
    error = AuthenticationError("authentication failed", reply)
    assert failure_detail(error) == "authentication failed: Incorrect authentication data"
    outcome = RecipientOutcome("a@example.com", "permanent", reply, failure_detail(error))
    line = str(DeliveryReport((outcome,), relay=True)).splitlines()[1]
    assert line == (
        "  a@example.com: permanent: 535 authentication failed: Incorrect authentication data"
    )
    assert failure_detail(TLSError("handshake failed")) == "handshake failed"


def test_attempt_record_to_dict() -> None:
    assert refused(MX).to_dict() == {
        "host": "mx.example.com",
        "address": "192.0.2.1",
        "port": 25,
        "tls": False,
        "tls_verified": False,
        "error": "cannot connect to 192.0.2.1 port 25: Connection refused",
        "connect_failed": True,
        "encoding_error": False,
        "tls_failed": False,
        "policy": None,
    }


# -- lookups and counts ------------------------------------------------------------------------


def sample() -> DeliveryReport:
    bad = RecipientOutcome(
        "bad@example.com", "permanent", NO_USER, NO_USER.text, MX.host, MX.address
    )
    return DeliveryReport(
        (delivered("a@example.com"), bad, temporary("c@example.org", refused(MX)))
    )


def test_getitem_finds_an_outcome_or_raises_key_error() -> None:
    report = sample()
    assert report["bad@example.com"].status == "permanent"
    with pytest.raises(KeyError, match=r"nobody@example\.com"):
        report["nobody@example.com"]


def test_with_status_summary_and_all_delivered() -> None:
    report = sample()
    assert report.with_status("delivered") == ["a@example.com"]
    assert report.with_status("permanent") == ["bad@example.com"]
    assert report.with_status("temporary") == ["c@example.org"]
    assert report.summary == "1 delivered, 1 temporary failure(s), 1 permanent failure(s)"
    assert not report.all_delivered
    assert DeliveryReport((delivered("a@example.com"), delivered("b@example.com"))).all_delivered


# -- port 25 diagnosis -------------------------------------------------------------------------


def test_port_25_blocked_when_every_attempt_failed_at_connect() -> None:
    timed_out = MX2.failed(ConnectError("192.0.2.2", 25, "timed out", timed_out=True))
    report = DeliveryReport(
        (temporary("a@example.com", refused(MX)), temporary("b@example.org", timed_out))
    )
    assert report.port_25_blocked
    assert report.diagnosis is not None
    assert "port 25" in report.diagnosis and "relay" in report.diagnosis.lower()
    assert "Relay(host, 587" in report.diagnosis


def test_port_25_diagnosis_names_the_port_used() -> None:
    report = DeliveryReport((temporary("a@example.com", refused(MX), refused(MX2)),), port=2525)
    assert report.diagnosis is not None and "port 2525" in report.diagnosis


def test_port_25_not_blocked_for_one_refusing_address() -> None:
    """Issue 14: one domain, one refused MX says nothing about the local network; the same
    address refusing twice (two recipients of one domain) is still one address."""
    one = DeliveryReport(
        (temporary("a@example.com", refused(MX)), temporary("b@example.com", refused(MX)))
    )
    assert not one.port_25_blocked and one.diagnosis is None


def test_port_25_not_blocked_through_a_relay() -> None:
    report = DeliveryReport((temporary("a@example.com", refused(MX), refused(MX2)),), relay=True)
    assert not report.port_25_blocked
    assert report.diagnosis is None


def test_port_25_not_blocked_when_anything_was_delivered() -> None:
    report = DeliveryReport((delivered("a@example.com"), temporary("b@example.org", refused(MX))))
    assert not report.port_25_blocked


def test_port_25_not_blocked_when_a_server_answered() -> None:
    spoke = MX.failed(SMTPTimeoutError("GREETING", 300.0))
    report = DeliveryReport((temporary("a@example.com", refused(MX), spoke),))
    assert not report.port_25_blocked


def test_port_25_not_blocked_without_any_attempt() -> None:
    # A DNS failure made no connection at all: that says nothing about port 25.
    report = DeliveryReport((temporary("a@example.com"),))
    assert not report.port_25_blocked
    assert report.diagnosis is None


# -- for a person ------------------------------------------------------------------------------


def test_str_lists_each_recipient_with_its_server_tls_reply_and_attempts() -> None:
    verified = delivered("v@example.com", verified=True)
    cleartext = delivered("p@example.com", tls=False)
    text = str(DeliveryReport((*sample().outcomes, verified, cleartext)))
    lines = text.splitlines()
    assert lines[0] == "3 delivered, 1 temporary failure(s), 1 permanent failure(s)"
    assert lines[1] == (
        "  a@example.com: delivered via mx.example.com [192.0.2.1] TLS (unverified): "
        "250 2.0.0 queued as 1234"
    )
    assert lines[2] == "    tried mx.example.com [192.0.2.1]:25: ok"
    assert lines[3] == (
        "  bad@example.com: permanent via mx.example.com [192.0.2.1]: 550 5.1.1 no such user"
    )
    assert lines[4] == "  c@example.org: temporary: no mail server could be reached"
    assert lines[5] == (
        "    tried mx.example.com [192.0.2.1]:25: cannot connect to 192.0.2.1 port 25: "
        "Connection refused"
    )
    assert lines[6].startswith("  v@example.com: delivered via mx.example.com [192.0.2.1] TLS: ")
    assert lines[8].startswith("  p@example.com: delivered via mx.example.com [192.0.2.1]: 250")
    assert len(lines) == 10  # no diagnosis: something was delivered


def test_str_keeps_its_layout_for_a_multi_line_reply() -> None:
    """Issue 14: Exim's reply to BDAT LAST has two lines; the second stays under its
    recipient, indented, instead of starting a line of its own."""
    exim = Reply(250, ("1234 byte chunk, total 1234", "OK id=1tXyZ-000abc-7Q"))
    outcome = RecipientOutcome("a@example.com", "delivered", exim, exim.text, "mx", "192.0.2.1")
    lines = str(DeliveryReport((outcome,))).splitlines()
    assert lines[1] == (
        "  a@example.com: delivered via mx [192.0.2.1]: 250 1234 byte chunk, total 1234"
    )
    assert lines[2] == "      OK id=1tXyZ-000abc-7Q"
    assert len(lines) == 3


def test_str_ends_with_the_diagnosis_when_port_25_looks_blocked() -> None:
    report = DeliveryReport((temporary("a@example.com", refused(MX), refused(MX2)),))
    assert report.diagnosis is not None
    assert str(report).splitlines()[-1] == report.diagnosis


# -- for a program -----------------------------------------------------------------------------


def test_to_dict_is_json_serialisable_with_stable_keys() -> None:
    report = sample()
    data = report.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert list(data) == ["summary", "relay", "port_25_blocked", "diagnosis", "recipients"]
    assert data["summary"] == report.summary
    assert (data["relay"], data["port_25_blocked"], data["diagnosis"]) == (False, False, None)
    first, second, third = data["recipients"]
    assert list(first) == [
        "recipient",
        "status",
        "reply",
        "detail",
        "server_host",
        "server_address",
        "tls",
        "tls_verified",
        "attempts",
    ]
    assert first["reply"] == {
        "code": 250,
        "enhanced_status": "2.0.0",
        "text": "2.0.0 queued as 1234",
    }
    assert first["attempts"] == [MX.connected(True, False).to_dict()]
    assert second["reply"]["enhanced_status"] == "5.1.1"
    assert third["reply"] is None
    assert third["attempts"][0]["connect_failed"] is True


def test_to_dict_reply_without_enhanced_status() -> None:
    outcome = RecipientOutcome("a@example.com", "temporary", Reply(451, ("later",)), "later")
    assert outcome.to_dict()["reply"] == {"code": 451, "enhanced_status": None, "text": "later"}
    assert outcome.to_dict()["attempts"] == []
