"""Session.send_message: pipelining, extensions, per-recipient results, failures, LMTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpproto import (
    ConnectionLostError,
    DataRefused,
    LocalProtocolError,
    MessageEncodingError,
    MessageTooLarge,
    RecipientsRefused,
    SenderRefused,
    SendOptions,
    SendResult,
    SMTPError,
    SMTPTimeoutError,
    TLSRequiredError,
    UnexpectedReplyCode,
    prepare_message,
)
from smtpproto._operations.message import CHUNK_SIZE
from smtpproto._operations.session import ONE_FLIGHT_BDAT_LIMIT, PIPELINE_GROUP
from smtpproto.driver import Operation

from .scripted import EOF, Expect, Fail, Reply, Step, open_session, run, run_both

SENDER = "alice@example.org"
BOB, CAROL, DAVE = "bob@example.net", "carol@example.net", "dave@example.net"
BODY = b"Subject: hi\r\n\r\nhello\r\n"  # 22 octets
DOT = b".\r\n"
RSET = b"RSET\r\n"
QUEUED = b"250 2.0.0 queued as 1234\r\n"


def mail(*params: str, sender: str = SENDER) -> bytes:
    return f"MAIL FROM:<{sender}>{''.join(' ' + p for p in params)}\r\n".encode()


def rcpt(recipient: str, *params: str) -> bytes:
    return f"RCPT TO:<{recipient}>{''.join(' ' + p for p in params)}\r\n".encode()


def ok(n: int = 1) -> bytes:
    return b"250 2.1.0 ok\r\n" * n


# -- the happy paths -----------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(min_value=1, max_value=80), max_size=6))
def test_R1_replies_cut_anywhere_give_the_same_writes_and_result(cuts: list[int]) -> None:
    replies = ok(3) + b"354 go ahead\r\n"
    pieces = [
        replies[a:b]
        for a, b in zip([0, *sorted(set(cuts))], [*sorted(set(cuts)), 999], strict=True)
    ]
    session = open_session("PIPELINING")
    script = [
        Expect.send(mail() + rcpt(BOB) + rcpt(CAROL) + b"DATA\r\n"),
        Reply(*[p for p in pieces if p]),
        Expect.send(BODY + DOT),
        Reply(QUEUED[:5], QUEUED[5:]),
    ]
    result = run(session.send_message(BODY, SENDER, [BOB, CAROL]), script)
    assert result.delivered == [BOB, CAROL]


def test_R1_pipelined_MAIL_RCPT_DATA_in_one_write_and_one_round_trip() -> None:
    def make() -> Operation[SendResult]:
        session = open_session("PIPELINING", "SIZE 1000000", "8BITMIME")
        return session.send_message(BODY, SENDER, [BOB, CAROL])

    script = [
        Expect.send(mail("SIZE=22") + rcpt(BOB) + rcpt(CAROL) + b"DATA\r\n", phase="DATA"),
        Reply(ok(3) + b"354 go ahead\r\n", phase="MAIL", timeout=300.0),
        Expect.send(BODY + DOT, phase="END-OF-MESSAGE", timeout=180.0),
        Reply(QUEUED, phase="END-OF-MESSAGE", timeout=600.0),
    ]
    result = run_both(make, script)
    assert isinstance(result, SendResult)
    assert result.all_delivered
    assert result.delivered == [BOB, CAROL]
    assert getattr(result[BOB].data_reply, "code", None) == 250
    assert result[BOB].accepted
    # The transaction's own replies, beside each recipient's.
    assert getattr(result.mail_reply, "code", None) == 250
    assert result.data_reply is result[BOB].data_reply is result[CAROL].data_reply


def test_C4_without_pipelining_one_command_per_write_and_data_only_after_354() -> None:
    session = open_session("SIZE 0")  # SIZE 0: no stated limit, the parameter is still sent
    script = [
        Expect.send(mail("SIZE=22"), phase="MAIL"),
        Reply(ok()),
        Expect.send(rcpt(BOB), phase="RCPT"),
        Reply(ok()),
        Expect.send(rcpt(CAROL)),
        Reply(ok()),
        Expect.send(b"DATA\r\n", phase="DATA"),
        Reply(b"354 go ahead\r\n", phase="DATA", timeout=120.0),
        Expect.send(BODY + DOT),
        Reply(QUEUED),
    ]
    assert run(session.send_message(BODY, SENDER, [BOB, CAROL]), script).all_delivered


def test_C5_body_without_final_CRLF_gets_exactly_one_and_dots_are_stuffed() -> None:
    session = open_session()
    script = [
        Expect.send(mail()),
        Reply(ok()),
        Expect.send(rcpt(BOB)),
        Reply(ok()),
        Expect.send(b"DATA\r\n"),
        Reply(b"354 go\r\n"),
        Expect.send(b"a\r\n..b\r\n.\r\n"),
        Reply(QUEUED),
    ]
    run(session.send_message(b"a\n.b", SENDER, [BOB]), script)


def test_CHUNKING_one_flight_BDAT_LAST_with_MAIL_and_RCPT() -> None:
    def make() -> Operation[SendResult]:
        session = open_session("PIPELINING", "CHUNKING", "SIZE 1000")
        return session.send_message(BODY, SENDER, [BOB, CAROL])

    script = [
        Expect.send(
            mail("SIZE=22") + rcpt(BOB) + rcpt(CAROL) + b"BDAT 22 LAST\r\n" + BODY,
            phase="BDAT-LAST",
        ),
        Reply(ok(4)),
    ]
    assert run_both(make, script).all_delivered


def test_S2_one_flight_BDAT_text_is_CRLF_normalised() -> None:
    session = open_session("PIPELINING", "CHUNKING")

    def check(sent: bytes) -> None:
        assert sent.endswith(b"BDAT 9 LAST\r\na\r\n.\r\nb\r\n")

    script = [Expect.send(check), Reply(ok(3))]
    run(session.send_message(b"a\n.\nb\r\n", SENDER, [BOB]), script)


def test_CHUNKING_body_of_unknown_content_uses_DATA(tmp_path: Path) -> None:
    path = tmp_path / "message.eml"
    path.write_bytes(BODY)
    session = open_session("PIPELINING", "CHUNKING", "8BITMIME")
    script = [
        # A file's content is unknown until read: declare 8 bits, and stream it with DATA.
        Expect.send(mail("BODY=8BITMIME") + rcpt(BOB) + b"DATA\r\n"),
        Reply(ok(2) + b"354 go\r\n"),
        Expect.send(BODY + DOT),
        Reply(QUEUED),
    ]
    run(session.send_message(path, SENDER, [BOB]), script)


def test_CHUNKING_body_over_the_one_flight_limit_uses_DATA() -> None:
    body = b"x" * (ONE_FLIGHT_BDAT_LIMIT + 1)
    session = open_session("PIPELINING", "CHUNKING")
    sent: list[bytes] = []
    chunks = -(-len(body) // CHUNK_SIZE)

    def last(data: bytes) -> None:  # the last chunk goes out with the end of data
        assert data.endswith(b"\r\n.\r\n")
        sent.append(data[:-5])

    script: list[Step] = [
        Expect.send(mail() + rcpt(BOB) + b"DATA\r\n"),
        Reply(ok(2) + b"354 go\r\n"),
        *[Expect.send(sent.append) for _ in range(chunks - 1)],
        Expect.send(last),
        Reply(QUEUED),
    ]
    run(session.send_message(body, SENDER, [BOB]), script)
    assert b"".join(sent) == body


def test_prepared_message_is_sent_as_is() -> None:
    message = prepare_message(BODY, SENDER, [BOB])
    session = open_session("PIPELINING", "CHUNKING")
    run(
        session.send_message(message),
        [Expect.send(mail() + rcpt(BOB) + b"BDAT 22 LAST\r\n" + BODY), Reply(ok(3))],
    )


# -- checks made before anything is sent --------------------------------------------------


def test_SIZE_too_large_sends_nothing() -> None:
    session = open_session("PIPELINING", "SIZE 10")
    with pytest.raises(MessageTooLarge) as caught:
        run(session.send_message(BODY, SENDER, [BOB]), [])
    assert (caught.value.size, caught.value.limit) == (22, 10)
    assert not session.closed


def test_8BITMIME_8bit_body_without_it_sends_nothing() -> None:
    session = open_session("PIPELINING")
    with pytest.raises(MessageEncodingError, match="8BITMIME"):
        run(session.send_message("café\r\n", SENDER, [BOB]), [])
    assert not session.closed


def test_8BITMIME_8bit_body_declared() -> None:
    session = open_session("8BITMIME")
    body = "café\r\n".encode()
    script = [
        Expect.send(mail("BODY=8BITMIME")),
        Reply(ok()),
        Expect.send(rcpt(BOB)),
        Reply(ok()),
        Expect.send(b"DATA\r\n"),
        Reply(b"354 go\r\n"),
        Expect.send(body + DOT),
        Reply(QUEUED),
    ]
    run(session.send_message(body, SENDER, [BOB]), script)


def test_SMTPUTF8_non_ASCII_address_without_it_sends_nothing() -> None:
    session = open_session("PIPELINING", "8BITMIME")
    with pytest.raises(MessageEncodingError, match="SMTPUTF8"):
        run(session.send_message(BODY, SENDER, ["jöran@example.net"]), [])


def test_SMTPUTF8_non_ASCII_address_with_it() -> None:
    session = open_session("PIPELINING", "SMTPUTF8")
    script = [
        Expect.send(mail("SMTPUTF8") + rcpt("jöran@example.net") + b"DATA\r\n"),
        Reply(ok(2) + b"354 go\r\n"),
        Expect.send("é\r\n".encode() + DOT),
        Reply(QUEUED),
    ]
    # With SMTPUTF8, 8-bit content needs no 8BITMIME of its own.
    run(session.send_message("é\r\n", SENDER, ["jöran@example.net"]), script)


def test_G7_DSN_parameters_sent_only_when_DSN_is_advertised() -> None:
    options = SendOptions(ret="HDRS", envid="QQ314159", notify=("SUCCESS", "FAILURE"))
    session = open_session("PIPELINING", "DSN")
    script = [
        Expect.send(
            mail("RET=HDRS", "ENVID=QQ314159") + rcpt(BOB, "NOTIFY=SUCCESS,FAILURE") + b"DATA\r\n"
        ),
        Reply(ok(2) + b"354 go\r\n"),
        Expect.send(BODY + DOT),
        Reply(QUEUED),
    ]
    run(session.send_message(BODY, SENDER, [BOB], options=options), script)

    session = open_session("PIPELINING")
    script[0] = Expect.send(mail() + rcpt(BOB) + b"DATA\r\n")
    run(session.send_message(BODY, SENDER, [BOB], options=options), script)


def test_G7_MT_PRIORITY_sent_only_when_advertised() -> None:
    session = open_session("PIPELINING", "MT-PRIORITY")
    script = [
        Expect.send(mail("MT-PRIORITY=3") + rcpt(BOB) + b"DATA\r\n"),
        Reply(ok(2) + b"354 go\r\n"),
        Expect.send(BODY + DOT),
        Reply(QUEUED),
    ]
    run(session.send_message(BODY, SENDER, [BOB], options=SendOptions(mt_priority=3)), script)
    session = open_session("PIPELINING")
    script[0] = Expect.send(mail() + rcpt(BOB) + b"DATA\r\n")
    run(session.send_message(BODY, SENDER, [BOB], options=SendOptions(mt_priority=3)), script)


def test_REQUIRETLS_sent_when_advertised() -> None:
    session = open_session("PIPELINING", "CHUNKING", "REQUIRETLS", tls=True)
    script = [
        Expect.send(mail("REQUIRETLS") + rcpt(BOB) + b"BDAT 22 LAST\r\n" + BODY),
        Reply(ok(3)),
    ]
    run(session.send_message(BODY, SENDER, [BOB], options=SendOptions(requiretls=True)), script)


def test_REQUIRETLS_not_advertised_sends_nothing_and_closes() -> None:
    session = open_session("PIPELINING")
    with pytest.raises(TLSRequiredError, match="REQUIRETLS"):
        run(
            session.send_message(BODY, SENDER, [BOB], options=SendOptions(requiretls=True)),
            [Expect.close()],
        )


# -- per-recipient results and refusals -----------------------------------------------------


def test_C11_some_recipients_refused_is_a_result_per_recipient() -> None:
    def make() -> Operation[SendResult]:
        return open_session("PIPELINING").send_message(BODY, SENDER, [BOB, CAROL, DAVE])

    script = [
        Expect.send(mail() + rcpt(BOB) + rcpt(CAROL) + rcpt(DAVE) + b"DATA\r\n"),
        Reply(
            b"250 2.1.0 ok\r\n",
            b"550 5.1.1 no such user\r\n250 2.1.5 ok\r\n",
            b"450 4.2.1 try later\r\n354 go\r\n",
        ),
        Expect.send(BODY + DOT),
        Reply(QUEUED),
    ]
    result = run_both(make, script)
    assert result.delivered == [CAROL]
    assert result.failed == [BOB, DAVE]
    assert not result.all_delivered
    assert result[BOB].permanent
    assert not result[BOB].temporary
    assert not result[BOB].accepted
    assert result[BOB].rcpt_reply.code == 550
    assert result[DAVE].temporary
    assert getattr(result[CAROL].data_reply, "code", None) == 250
    assert [r.recipient for r in result] == [BOB, CAROL, DAVE]
    with pytest.raises(KeyError):
        result["nobody@example.net"]


def test_C11_C12_an_address_given_twice_is_reported_by_its_accepted_RCPT() -> None:
    # Some servers refuse a repeated RCPT; the message still went to that address, through the
    # RCPT that was accepted, so the address counts as delivered either way round.
    for first, second in (
        (b"250 2.1.5 ok\r\n", b"550 5.1.1 dup\r\n"),
        (b"550 5.1.1 dup\r\n", b"250 2.1.5 ok\r\n"),
    ):
        script = [
            Expect.send(mail() + rcpt(BOB) + rcpt(BOB) + b"DATA\r\n"),
            Reply(b"250 2.1.0 ok\r\n" + first + second + b"354 go\r\n"),
            Expect.send(BODY + DOT),
            Reply(QUEUED),
        ]
        result = run(open_session("PIPELINING").send_message(BODY, SENDER, [BOB, BOB]), script)
        assert result.delivered == [BOB, BOB]
        assert getattr(result[BOB].data_reply, "code", None) == 250


def test_C11_all_refused_with_pipelined_DATA_answered_354_sends_a_lone_dot_then_RSET() -> None:
    session = open_session("PIPELINING")
    script = [
        Expect.send(mail() + rcpt(BOB) + rcpt(CAROL) + b"DATA\r\n"),
        Reply(ok() + b"550 5.1.1 no\r\n451 4.3.0 later\r\n354 go\r\n"),
        Expect.send(DOT),
        Reply(b"554 5.5.1 no valid recipients\r\n"),
        Expect.send(RSET),
        Reply(ok()),
    ]
    with pytest.raises(RecipientsRefused) as caught:
        run(session.send_message(BODY, SENDER, [BOB, CAROL]), script)
    assert {r.recipient: r.rcpt_reply.code for r in caught.value.result} == {BOB: 550, CAROL: 451}
    assert caught.value.temporary  # one of them may work later
    assert not session.closed


def test_C11_all_refused_with_pipelined_DATA_refused_sends_RSET() -> None:
    session = open_session("PIPELINING")
    script = [
        Expect.send(mail() + rcpt(BOB) + b"DATA\r\n"),
        Reply(ok() + b"550 5.1.1 no\r\n554 5.5.1 no valid recipients\r\n"),
        Expect.send(RSET),
        Reply(ok()),
    ]
    with pytest.raises(RecipientsRefused) as caught:
        run(session.send_message(BODY, SENDER, [BOB]), script)
    assert not caught.value.temporary


def test_C11_all_refused_without_pipelining_skips_DATA() -> None:
    session = open_session()
    script = [
        Expect.send(mail()),
        Reply(ok()),
        Expect.send(rcpt(BOB)),
        Reply(b"550 5.1.1 no\r\n"),
        Expect.send(RSET),
        Reply(ok()),
    ]
    with pytest.raises(RecipientsRefused):
        run(session.send_message(BODY, SENDER, [BOB]), script)


def test_C11_all_refused_with_one_flight_BDAT_sends_RSET() -> None:
    session = open_session("PIPELINING", "CHUNKING")
    script = [
        Expect.send(mail() + rcpt(BOB) + b"BDAT 22 LAST\r\n" + BODY),
        Reply(ok() + b"550 5.1.1 no\r\n554 5.5.1 no valid recipients\r\n"),
        Expect.send(RSET),
        Reply(ok()),
    ]
    with pytest.raises(RecipientsRefused):
        run(session.send_message(BODY, SENDER, [BOB]), script)


def test_MAIL_refused_pipelined_sends_RSET() -> None:
    session = open_session("PIPELINING")
    script = [
        Expect.send(mail() + rcpt(BOB) + b"DATA\r\n"),
        Reply(b"553 5.1.8 bad sender\r\n503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n"),
        Expect.send(RSET),
        Reply(ok()),
    ]
    with pytest.raises(SenderRefused) as caught:
        run(session.send_message(BODY, SENDER, [BOB]), script)
    assert caught.value.code == 553
    assert not caught.value.temporary


def test_MAIL_refused_without_pipelining_sends_no_RCPT() -> None:
    session = open_session()
    script = [
        Expect.send(mail()),
        Reply(b"451 4.3.0 later\r\n"),
        Expect.send(RSET),
        Reply(ok()),
    ]
    with pytest.raises(SenderRefused) as caught:
        run(session.send_message(BODY, SENDER, [BOB]), script)
    assert caught.value.temporary


@pytest.mark.parametrize("pipelining", [True, False])
def test_C4_DATA_refused_sends_no_data_then_RSET(pipelining: bool) -> None:
    session = open_session(*(["PIPELINING"] if pipelining else []))
    if pipelining:
        script = [Expect.send(mail() + rcpt(BOB) + b"DATA\r\n"), Reply(ok(2) + b"451 later\r\n")]
    else:
        script = [Expect.send(mail()), Reply(ok()), Expect.send(rcpt(BOB)), Reply(ok())]
        script += [Expect.send(b"DATA\r\n"), Reply(b"451 later\r\n")]
    script += [Expect.send(RSET), Reply(ok())]
    with pytest.raises(DataRefused, match="refused DATA") as caught:
        run(session.send_message(BODY, SENDER, [BOB]), script)
    assert caught.value.temporary


@pytest.mark.parametrize(("code", "temporary"), [(451, True), (554, False)])
def test_C12_end_of_data_refused_is_DataRefused(code: int, temporary: bool) -> None:
    session = open_session("PIPELINING")
    script = [
        Expect.send(mail() + rcpt(BOB) + b"DATA\r\n"),
        Reply(ok(2) + b"354 go\r\n"),
        Expect.send(BODY + DOT),
        Reply(b"%d no\r\n" % code),
    ]
    with pytest.raises(DataRefused, match="refused the message") as caught:
        run(session.send_message(BODY, SENDER, [BOB]), script)
    assert caught.value.temporary is temporary
    # The session is ready for the next transaction.
    run(session.noop(), [Expect.send(b"NOOP\r\n"), Reply(ok())])


# -- lost connections and timeouts ----------------------------------------------------------


def test_C12_C16_connection_lost_after_the_final_dot_is_never_delivered() -> None:
    session = open_session("PIPELINING")
    script = [
        Expect.send(mail() + rcpt(BOB) + b"DATA\r\n"),
        Reply(ok(2) + b"354 go\r\n"),
        Expect.send(BODY + DOT),
        EOF,
        Expect.close(),
    ]
    with pytest.raises(ConnectionLostError) as caught:
        run(session.send_message(BODY, SENDER, [BOB]), script)
    assert caught.value.phase == "END-OF-MESSAGE"
    assert caught.value.temporary
    assert session.closed


def test_C16_connection_reset_while_writing_the_body_closes() -> None:
    session = open_session("PIPELINING")
    script = [
        Expect.send(mail() + rcpt(BOB) + b"DATA\r\n"),
        Reply(ok(2) + b"354 go\r\n"),
        Fail(ConnectionLostError("MESSAGE-DATA", "reset by peer")),
        Expect.close(),
    ]
    with pytest.raises(ConnectionLostError):
        run(session.send_message(BODY, SENDER, [BOB]), script)


def test_C17_timeout_waiting_for_the_end_of_data_reply_closes() -> None:
    session = open_session("PIPELINING")
    script = [
        Expect.send(mail() + rcpt(BOB) + b"DATA\r\n"),
        Reply(ok(2) + b"354 go\r\n"),
        Expect.send(BODY + DOT),
        Fail(SMTPTimeoutError("END-OF-MESSAGE", 600.0)),
        Expect.close(),
    ]
    with pytest.raises(SMTPTimeoutError):
        run(session.send_message(BODY, SENDER, [BOB]), script)
    assert session.closed


@pytest.mark.parametrize("pipelining", [True, False])
def test_C15_421_during_a_transaction_is_a_temporary_failure(pipelining: bool) -> None:
    session = open_session(*(["PIPELINING"] if pipelining else []))
    closing = b"421 4.3.2 shutting down\r\n"
    if pipelining:
        script = [Expect.send(mail() + rcpt(BOB) + b"DATA\r\n"), Reply(ok(2) + closing)]
    else:
        script = [Expect.send(mail()), Reply(closing)]
    with pytest.raises(SMTPError) as caught:
        run(session.send_message(BODY, SENDER, [BOB]), [*script, Expect.close()])
    assert caught.value.temporary
    assert not isinstance(caught.value, LocalProtocolError)


# -- too many recipients (C10) and large recipient lists -------------------------------------


def test_C10_452_too_many_recipients_go_in_a_second_transaction() -> None:
    def make() -> Operation[SendResult]:
        return open_session("PIPELINING").send_message(BODY, SENDER, [BOB, CAROL, DAVE])

    too_many = b"452 4.5.3 too many recipients\r\n"
    script = [
        Expect.send(mail() + rcpt(BOB) + rcpt(CAROL) + rcpt(DAVE) + b"DATA\r\n"),
        Reply(ok(2) + too_many * 2 + b"354 go\r\n"),
        Expect.send(BODY + DOT),
        Reply(QUEUED),
        Expect.send(mail() + rcpt(CAROL) + rcpt(DAVE) + b"DATA\r\n"),
        Reply(ok(3) + b"354 go\r\n"),
        Expect.send(BODY + DOT),
        Reply(QUEUED),
    ]
    result = run_both(make, script)
    assert result.all_delivered


def test_C10_452_without_enhanced_code_counts_as_too_many() -> None:
    session = open_session("PIPELINING", "CHUNKING")
    script = [
        Expect.send(mail() + rcpt(BOB) + rcpt(CAROL) + b"BDAT 22 LAST\r\n" + BODY),
        Reply(ok(2) + b"452 too many\r\n" + QUEUED),
        Expect.send(mail() + rcpt(CAROL) + b"BDAT 22 LAST\r\n" + BODY),
        Reply(ok(2) + QUEUED),
    ]
    assert run(session.send_message(BODY, SENDER, [BOB, CAROL]), script).all_delivered


def test_C10_452_for_another_reason_is_not_retried() -> None:
    session = open_session("PIPELINING", "CHUNKING")
    script = [
        Expect.send(mail() + rcpt(BOB) + rcpt(CAROL) + b"BDAT 22 LAST\r\n" + BODY),
        Reply(ok(2) + b"452 4.2.2 mailbox full\r\n" + QUEUED),
    ]
    result = run(session.send_message(BODY, SENDER, [BOB, CAROL]), script)
    assert result.delivered == [BOB]
    assert result[CAROL].temporary


def test_C10_one_shot_stream_is_not_sent_twice() -> None:
    session = open_session("PIPELINING", "8BITMIME")
    script = [
        Expect.send(mail("BODY=8BITMIME") + rcpt(BOB) + rcpt(CAROL) + b"DATA\r\n"),
        Reply(ok(2) + b"452 4.5.3 too many recipients\r\n354 go\r\n"),
        Expect.send(b"part 1\r\n"),
        Expect.send(b"part 2\r\n" + DOT),
        Reply(QUEUED),
    ]
    result = run(
        session.send_message(iter([b"part 1\r\n", b"", b"part 2\r\n"]), SENDER, [BOB, CAROL]),
        script,
    )
    assert result.delivered == [BOB]
    assert result[CAROL].temporary
    assert result[CAROL].rcpt_reply.code == 452


def _first_transaction_deferring_carol() -> list[Step]:
    return [
        Expect.send(mail() + rcpt(BOB) + rcpt(CAROL) + b"DATA\r\n"),
        Reply(ok(2) + b"452 4.5.3 too many recipients\r\n354 go\r\n"),
        Expect.send(BODY + DOT),
        Reply(QUEUED),
    ]


def test_C10_C12_follow_up_refused_again_keeps_the_first_delivery() -> None:
    """The follow-up transaction's refusal is a result: BOB was delivered and must stay so."""
    session = open_session("PIPELINING")
    script = [
        *_first_transaction_deferring_carol(),
        Expect.send(mail() + rcpt(CAROL) + b"DATA\r\n"),
        Reply(ok() + b"452 4.5.3 too many recipients\r\n554 no valid recipients\r\n"),
        Expect.send(RSET),
        Reply(ok()),
    ]
    result = run(session.send_message(BODY, SENDER, [BOB, CAROL]), script)
    assert result.delivered == [BOB]
    assert result[CAROL].temporary
    assert result[CAROL].rcpt_reply.code == 452


def test_C10_C12_follow_up_message_refused_is_a_result() -> None:
    session = open_session("PIPELINING")
    script = [
        *_first_transaction_deferring_carol(),
        Expect.send(mail() + rcpt(CAROL) + b"DATA\r\n"),
        Reply(ok(2) + b"354 go\r\n"),
        Expect.send(BODY + DOT),
        Reply(b"554 5.6.0 rejected\r\n"),
    ]
    result = run(session.send_message(BODY, SENDER, [BOB, CAROL]), script)
    assert result.delivered == [BOB]
    assert result[CAROL].permanent
    assert getattr(result[CAROL].data_reply, "code", None) == 554


def test_C10_C16_follow_up_connection_lost_counts_as_451_and_closes() -> None:
    session = open_session("PIPELINING")
    script = [
        *_first_transaction_deferring_carol(),
        Expect.send(mail() + rcpt(CAROL) + b"DATA\r\n"),
        EOF,
        Expect.close(),
    ]
    result = run(session.send_message(BODY, SENDER, [BOB, CAROL]), script)
    assert result.delivered == [BOB]
    assert result[CAROL].temporary
    assert result[CAROL].rcpt_reply.code == 451
    assert session.closed


def test_C10_follow_up_body_that_became_8bit_is_a_result(tmp_path: Path) -> None:
    """A file rewritten between the two transactions: the follow-up cannot send it."""
    path = tmp_path / "m.eml"
    path.write_bytes(b"ascii\r\n")

    def rewrite(sent: bytes) -> None:
        assert sent == b"ascii\r\n" + DOT
        path.write_bytes("é\r\n".encode())

    session = open_session("PIPELINING")
    script = [
        Expect.send(mail() + rcpt(BOB) + rcpt(CAROL) + b"DATA\r\n"),
        Reply(ok(2) + b"452 4.5.3 too many recipients\r\n354 go\r\n"),
        Expect.send(rewrite),
        Reply(QUEUED),
        Expect.send(mail() + rcpt(CAROL) + b"DATA\r\n"),
        Reply(ok(2) + b"354 go\r\n"),
        Expect.close(),
    ]
    result = run(session.send_message(path, SENDER, [BOB, CAROL]), script)
    assert result.delivered == [BOB]
    assert not result[CAROL].delivered
    assert session.closed


def test_PIPELINING_150_recipients_are_written_in_bounded_groups() -> None:
    recipients = [f"user{i}@example.net" for i in range(150)]
    commands = [mail()] + [rcpt(r) for r in recipients] + [b"DATA\r\n"]
    # Reply 0 answers MAIL; RCPT 7 is refused.
    replies = [ok() if i != 8 else b"550 5.1.1 no\r\n" for i in range(151)] + [b"354 go\r\n"]
    group = PIPELINE_GROUP

    def write(start: int, stop: int) -> Step:
        return Expect.send(b"".join(commands[start:stop]))

    def answer(start: int, stop: int) -> Step:
        return Reply(b"".join(replies[start:stop]))

    # A further group is written whenever fewer than PIPELINE_GROUP commands are unanswered:
    # no write carries more than PIPELINE_GROUP commands.
    script = [
        write(0, group),
        answer(0, 1),
        write(group, 2 * group),
        answer(1, group + 1),
        write(2 * group, 3 * group),
        answer(group + 1, 2 * group + 1),
        write(3 * group, 152),
        answer(2 * group + 1, 152),
        Expect.send(BODY + DOT),
        Reply(QUEUED),
    ]

    def make() -> Operation[SendResult]:
        return open_session("PIPELINING").send_message(BODY, SENDER, recipients)

    result = run_both(make, script)
    assert result.failed == [recipients[7]]
    assert len(result.delivered) == 149


# -- LMTP ------------------------------------------------------------------------------------


def test_LMTP_one_final_reply_per_accepted_recipient() -> None:
    def make() -> Operation[SendResult]:
        session = open_session("PIPELINING", lmtp=True)
        return session.send_message(BODY, SENDER, [BOB, CAROL, DAVE])

    script = [
        Expect.send(mail() + rcpt(BOB) + rcpt(CAROL) + rcpt(DAVE) + b"DATA\r\n"),
        Reply(ok(3) + b"550 5.1.1 no such user\r\n354 go\r\n"),
        Expect.send(BODY + DOT),
        Reply(b"250 2.0.0 bob ok\r\n", b"452 4.2.2 carol over quota\r\n"),
    ]
    result = run_both(make, script)
    assert result.delivered == [BOB]
    assert result[CAROL].accepted
    assert result[CAROL].temporary
    assert getattr(result[CAROL].data_reply, "code", None) == 452
    assert result[DAVE].permanent
    assert not result[DAVE].accepted


def test_LMTP_one_flight_BDAT_reads_a_reply_per_recipient() -> None:
    session = open_session("PIPELINING", "CHUNKING", lmtp=True)
    script = [
        Expect.send(mail() + rcpt(BOB) + rcpt(CAROL) + b"BDAT 22 LAST\r\n" + BODY),
        Reply(ok(4) + b"550 5.2.1 carol disabled\r\n"),
    ]
    result = run(session.send_message(BODY, SENDER, [BOB, CAROL]), script)
    assert result.delivered == [BOB]
    assert result[CAROL].permanent


def test_LMTP_one_flight_BDAT_partly_refused_leaves_the_session_usable() -> None:
    session = open_session("PIPELINING", "CHUNKING", lmtp=True)
    flight = mail() + rcpt(BOB) + rcpt(CAROL) + b"BDAT 22 LAST\r\n" + BODY
    script = [Expect.send(flight), Reply(ok(4) + b"550 5.2.1 carol disabled\r\n")]
    assert run(session.send_message(BODY, SENDER, [BOB, CAROL]), script).delivered == [BOB]
    flight = mail() + rcpt(BOB) + b"BDAT 22 LAST\r\n" + BODY
    assert run(session.send_message(BODY, SENDER, [BOB]), [Expect.send(flight), Reply(ok(3))])


def test_LMTP_every_recipient_refused_at_the_end_is_DataRefused() -> None:
    session = open_session(lmtp=True)
    script = [
        Expect.send(mail()),
        Reply(ok()),
        Expect.send(rcpt(BOB)),
        Reply(ok()),
        Expect.send(rcpt(CAROL)),
        Reply(ok()),
        Expect.send(b"DATA\r\n"),
        Reply(b"354 go\r\n"),
        Expect.send(BODY + DOT),
        Reply(b"452 4.2.2 full\r\n552 5.2.2 full\r\n"),
    ]
    with pytest.raises(DataRefused) as caught:
        run(session.send_message(BODY, SENDER, [BOB, CAROL]), script)
    assert caught.value.code == 452


# -- stream bodies ----------------------------------------------------------------------------


def _stream() -> Iterator[bytes]:
    yield b"Subject: hi\r\n\r\n"
    yield "café\r\n".encode()


def test_C8_8bit_content_found_mid_DATA_without_8BITMIME_drops_the_connection() -> None:
    session = open_session("PIPELINING")
    script = [
        # Unknown content and no 8BITMIME: nothing to declare.
        Expect.send(mail() + rcpt(BOB) + b"DATA\r\n"),
        Reply(ok(2) + b"354 go\r\n"),
        Expect.send(b"Subject: hi\r\n\r\n"),
        # The 8-bit chunk cannot be sent; the only way out of DATA without a "." is to close.
        Expect.close(),
    ]
    with pytest.raises(MessageEncodingError, match="8BITMIME"):
        run(session.send_message(_stream(), SENDER, [BOB]), script)
    assert session.closed


def test_CHUNKING_refused_BDAT_is_followed_by_RSET_and_the_session_stays_usable() -> None:
    session = open_session("PIPELINING", "CHUNKING")
    script = [
        Expect.send(mail() + rcpt(BOB) + b"BDAT 22 LAST\r\n" + BODY),
        Reply(ok(2) + b"554 5.6.0 content rejected\r\n"),
        Expect.send(RSET),
        Reply(ok()),
    ]
    with pytest.raises(DataRefused):
        run(session.send_message(BODY, SENDER, [BOB]), script)
    run(
        session.send_message(BODY, SENDER, [BOB]),
        [Expect.send(mail() + rcpt(BOB) + b"BDAT 22 LAST\r\n" + BODY), Reply(ok(3))],
    )


def test_C7_a_chunk_that_encodes_to_nothing_writes_nothing() -> None:
    """A lone CR is held back until its LF arrives: no empty write is asked of the adapter."""
    session = open_session("PIPELINING", "8BITMIME")
    script = [
        Expect.send(mail("BODY=8BITMIME") + rcpt(BOB) + b"DATA\r\n"),
        Reply(ok(2) + b"354 go\r\n"),
        Expect.send(b"part 1"),
        Expect.send(b"\r\npart 2\r\n" + DOT),
        Reply(QUEUED),
    ]
    result = run(
        session.send_message(iter([b"part 1", b"\r", b"\npart 2\r\n"]), SENDER, [BOB]), script
    )
    assert result.delivered == [BOB]


# -- a reply code outside 2xx-5xx (R5, C14) ------------------------------------------------------


def test_R5_C14_code_651_ends_the_transaction_and_the_session_still_quits() -> None:
    """A well-framed 651 to RCPT is a protocol error for the transaction: RSET, and the session
    goes on to a polite QUIT, whatever the cut of the bytes."""

    def make() -> Operation[SendResult]:
        return open_session().send_message(BODY, SENDER, [BOB])

    script = [
        Expect.send(mail()),
        Reply(ok()),
        Expect.send(rcpt(BOB)),
        Reply(b"651 6.1.1 no such code\r\n"),
        Expect.send(RSET),
        Reply(ok()),
    ]
    with pytest.raises(UnexpectedReplyCode) as caught:
        run_both(make, script)
    assert caught.value.code == 651
    session = open_session()
    with pytest.raises(UnexpectedReplyCode):
        run(session.send_message(BODY, SENDER, [BOB]), script)
    assert not session.closed
    quit_script = [Expect.send(b"QUIT\r\n"), Reply(b"221 bye\r\n"), Expect.close(graceful=True)]
    run(session.quit(), quit_script)


def test_R5_651_with_a_pipelined_DATA_already_answered_354_drops_the_connection() -> None:
    """The server is reading data: only dropping the line keeps an empty message undelivered."""
    session = open_session("PIPELINING")
    script = [
        Expect.send(mail() + rcpt(BOB) + rcpt(CAROL) + b"DATA\r\n"),
        Reply(ok() + b"651 odd\r\n" + ok() + b"354 go\r\n"),
        Expect.close(graceful=False),
    ]
    with pytest.raises(UnexpectedReplyCode):
        run(session.send_message(BODY, SENDER, [BOB, CAROL]), script)
    assert session.closed


# -- the code decides, and a refusal is not remembered -------------------------------------


def test_R4_the_code_decides_never_the_text() -> None:
    """A 250 that says "rejected" accepts; a 550 that says "OK" refuses."""
    session = open_session("PIPELINING")
    script = [
        Expect.send(mail() + rcpt(BOB) + rcpt(CAROL) + b"DATA\r\n"),
        Reply(
            b"250 2.1.0 ERROR? no: fine\r\n"
            b"250 2.1.5 rejected (only in words)\r\n"
            b"550 5.1.1 OK, delivered\r\n"
            b"354 failure is not an option\r\n"
        ),
        Expect.send(BODY + DOT),
        Reply(b"250 2.0.0 error-free, not an error\r\n"),
    ]
    result = run(session.send_message(BODY, SENDER, [BOB, CAROL]), script)
    assert result.delivered == [BOB]
    assert result.failed == [CAROL]


def test_C18_a_refused_MAIL_is_not_cached_and_one_copy_goes_for_all_recipients() -> None:
    """After a 550 to MAIL, the next message asks again with its own MAIL; a message for three
    recipients on one server is one MAIL, three RCPTs and one DATA (RFC 5321 §4.5.4.1)."""
    session = open_session("PIPELINING")
    refused = [
        Expect.send(mail() + rcpt(BOB) + b"DATA\r\n"),
        Reply(b"550 5.7.1 not now\r\n503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n"),
        Expect.send(RSET),
        Reply(ok()),
    ]
    with pytest.raises(SenderRefused):
        run(session.send_message(BODY, SENDER, [BOB]), refused)
    one_copy = [
        Expect.send(mail() + rcpt(BOB) + rcpt(CAROL) + rcpt(DAVE) + b"DATA\r\n"),
        Reply(ok(4) + b"354 go ahead\r\n"),
        Expect.send(BODY + DOT),
        Reply(QUEUED),
    ]
    result = run(session.send_message(BODY, SENDER, [BOB, CAROL, DAVE]), one_copy)
    assert result.delivered == [BOB, CAROL, DAVE]
