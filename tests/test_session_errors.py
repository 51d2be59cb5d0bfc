"""The error classes and the per-recipient results: messages, attributes, ``temporary``."""

from __future__ import annotations

import pytest

from smtpproto import (
    AuthenticationError,
    AuthNotSupported,
    CleartextAuthRefused,
    ConnectError,
    ConnectionLostError,
    DataRefused,
    GreetingRefused,
    LocalProtocolError,
    MessageEncodingError,
    MessageTooLarge,
    ProtocolError,
    RecipientResult,
    RecipientsRefused,
    RemoteProtocolError,
    Reply,
    ReplyError,
    SenderRefused,
    SendResult,
    SMTPError,
    SMTPTimeoutError,
    TLSError,
    TLSRequiredError,
)


@pytest.mark.parametrize(
    ("error_class", "temporary"),
    [
        (LocalProtocolError, False),
        (RemoteProtocolError, True),
        (AuthNotSupported, False),
        (MessageEncodingError, False),
        (CleartextAuthRefused, False),
        (TLSRequiredError, True),
        (TLSError, True),
    ],
)
def test_temporary_flag_of_each_class(error_class: type[SMTPError], temporary: bool) -> None:
    error = error_class("x")
    assert isinstance(error, SMTPError)
    assert error.temporary is temporary
    assert str(error) == "x"


def test_protocol_error_keeps_a_bounded_copy_of_the_line() -> None:
    assert ProtocolError("bad").line is None
    error = RemoteProtocolError("bad", line=b"x" * 1000)
    assert error.line == b"x" * 200


@pytest.mark.parametrize("error_class", [GreetingRefused, AuthenticationError, SenderRefused])
@pytest.mark.parametrize(("code", "temporary"), [(421, True), (451, True), (550, False)])
def test_reply_errors_carry_the_reply(
    error_class: type[ReplyError], code: int, temporary: bool
) -> None:
    reply = Reply(code, ("first line", "second line"))
    error = error_class("it failed", reply)
    assert isinstance(error, ReplyError)
    assert error.reply is reply
    assert error.code == code
    assert error.temporary is temporary
    assert str(error) == f"it failed: {code} first line\nsecond line"


def test_recipients_refused_carries_the_result() -> None:
    result = SendResult(
        (
            RecipientResult("a@example.net", Reply(550, ("5.1.1 no",))),
            RecipientResult("b@example.net", Reply(452, ("later",))),
        ),
        mail_reply=Reply(250),
    )
    error = RecipientsRefused(result)
    assert str(error) == (
        "every recipient was refused (a@example.net: 550 5.1.1 no; b@example.net: 452 later)"
    )
    assert error.temporary
    assert error.result is result
    assert error.result.data_reply is None
    bounced = SendResult((RecipientResult("a@example.net", Reply(550)),))
    assert not RecipientsRefused(bounced).temporary


@pytest.mark.parametrize(("code", "temporary"), [(451, True), (554, False)])
def test_data_refused_carries_the_reply_and_the_result(code: int, temporary: bool) -> None:
    refusal = Reply(code, ("no",))
    result = SendResult((RecipientResult("a@example.net", Reply(250), refusal),), None, refusal)
    error = DataRefused("the server refused the message", refusal, result)
    assert (error.reply, error.result, error.temporary) == (refusal, result, temporary)
    assert result["a@example.net"].accepted and not result["a@example.net"].delivered
    assert result["a@example.net"].temporary is temporary


def test_message_too_large() -> None:
    error = MessageTooLarge(2000, 1000)
    assert (error.size, error.limit) == (2000, 1000)
    assert str(error) == "the message is 2000 octets; the server accepts at most 1000"
    assert not error.temporary


def test_connect_error() -> None:
    error = ConnectError("mx.example.net", 25, "timed out", timed_out=True)
    assert str(error) == "cannot connect to mx.example.net port 25: timed out"
    assert (error.host, error.port, error.reason, error.timed_out) == (
        "mx.example.net",
        25,
        "timed out",
        True,
    )
    assert error.temporary
    assert not ConnectError("h", 1, "refused").timed_out
    unresolved = ConnectError("h", 587, "name or service not known", resolving=True)
    assert str(unresolved) == "cannot resolve h: name or service not known"
    assert unresolved.resolving and unresolved.temporary


def test_timeout_and_lost_connection() -> None:
    timeout = SMTPTimeoutError("DATA", 120.0)
    assert (timeout.phase, timeout.timeout, timeout.temporary) == ("DATA", 120.0, True)
    assert str(timeout) == "timed out after 120.0 s waiting for the reply to DATA"
    lost = ConnectionLostError("RCPT")
    assert (lost.phase, lost.temporary, str(lost)) == ("RCPT", True, "connection lost during RCPT")
    assert str(ConnectionLostError("MAIL", "reset")) == "connection lost during MAIL: reset"


# -- results -------------------------------------------------------------------------------


def test_recipient_result_outcomes() -> None:
    delivered = RecipientResult("a@example.net", Reply(250), Reply(250))
    assert delivered.accepted and delivered.delivered
    assert not delivered.temporary
    assert not delivered.permanent
    deferred = RecipientResult("b@example.net", Reply(250), Reply(451))  # the data's word counts
    assert deferred.accepted and not deferred.delivered
    assert deferred.temporary
    assert not deferred.permanent
    bounced = RecipientResult("c@example.net", Reply(550))
    assert not bounced.accepted
    assert bounced.permanent
    assert not bounced.temporary
    result = SendResult((delivered, deferred, bounced))
    assert result.delivered == ["a@example.net"]
    assert result.failed == ["b@example.net", "c@example.net"]
    assert not result.all_delivered
    assert list(result) == [delivered, deferred, bounced]
    assert result["c@example.net"] is bounced
    assert SendResult((delivered,)).all_delivered
