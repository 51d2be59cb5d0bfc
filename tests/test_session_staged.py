"""The staged transaction: create_message, add_recipient, append_message, close_message."""

from __future__ import annotations

import io
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from smtpproto import (
    DataRefused,
    LocalProtocolError,
    MessageEncodingError,
    MessageTooLarge,
    RecipientsRefused,
    SenderRefused,
    SendOptions,
    SMTPTimeoutError,
    TLSMode,
    TLSRequiredError,
)

from .scripted import Expect, Fail, Reply, greeted, open_session, run

SENDER = "alice@example.org"
BOB, CAROL = "bob@example.net", "carol@example.net"
OK = b"250 2.1.0 ok\r\n"
GO = b"354 go ahead\r\n"
DOT = b".\r\n"
QUEUED = b"250 2.0.0 queued\r\n"


def test_staged_message_from_several_pieces(tmp_path: Path) -> None:
    path = tmp_path / "part.txt"
    path.write_bytes(b"from a path\r\n")
    session = open_session("PIPELINING", "SIZE 1000", "8BITMIME", "DSN")

    mail = run(
        session.create_message(SENDER, size=100, options=SendOptions(ret="FULL", envid="id1")),
        [
            Expect.send(
                b"MAIL FROM:<alice@example.org> SIZE=100 BODY=8BITMIME RET=FULL ENVID=id1\r\n"
            ),
            Reply(OK),
        ],
    )
    assert mail.code == 250
    bob = run(
        session.add_recipient(BOB, notify=["FAILURE"], orcpt=BOB),
        [
            Expect.send(
                b"RCPT TO:<bob@example.net> NOTIFY=FAILURE ORCPT=rfc822;bob@example.net\r\n"
            ),
            Reply(OK),
        ],
    )
    assert bob.accepted
    # A refused recipient is a result, not an exception.
    carol = run(
        session.add_recipient(CAROL),
        [Expect.send(b"RCPT TO:<carol@example.net>\r\n"), Reply(b"550 5.1.1 unknown\r\n")],
    )
    assert not carol.accepted
    assert carol.permanent

    # DATA goes out once, at the first append.
    run(
        session.append_message(b"Subject: parts\r\n\r\n"),
        [Expect.send(b"DATA\r\n"), Reply(GO), Expect.send(b"Subject: parts\r\n\r\n")],
    )
    run(session.append_message(path), [Expect.send(b"from a path\r\n")])
    run(session.append_message(io.BytesIO(b"from a file\r\n")), [Expect.send(b"from a file\r\n")])
    run(
        session.append_message([b".dot", b"ted\r\n"]),
        [Expect.send(b"..dot"), Expect.send(b"ted\r\n")],
    )
    run(session.append_message("é"), [Expect.send("é".encode())])

    result = run(session.close_message(), [Expect.send(b"\r\n" + DOT), Reply(QUEUED)])
    assert result.delivered == [BOB]
    assert result[CAROL].rcpt_reply.code == 550
    assert getattr(result[BOB].data_reply, "code", None) == 250


def test_staged_parameters_left_out_when_not_advertised() -> None:
    session = open_session()
    run(
        session.create_message(SENDER, size=100, options=SendOptions(ret="HDRS", envid="x")),
        [Expect.send(b"MAIL FROM:<alice@example.org>\r\n"), Reply(OK)],
    )
    run(
        session.add_recipient(BOB, notify=["NEVER"], orcpt=BOB),
        [Expect.send(b"RCPT TO:<bob@example.net>\r\n"), Reply(OK)],
    )


def test_staged_SMTPUTF8_follows_the_sender_unless_given() -> None:
    session = open_session("SMTPUTF8", "8BITMIME")
    run(
        session.create_message("jöran@example.org"),
        [
            Expect.send("MAIL FROM:<jöran@example.org> BODY=8BITMIME SMTPUTF8\r\n".encode()),
            Reply(OK),
        ],
    )
    session = open_session("SMTPUTF8", "8BITMIME")
    run(
        session.create_message(SENDER, smtputf8=True, body="7BIT"),
        [Expect.send(b"MAIL FROM:<alice@example.org> BODY=7BIT SMTPUTF8\r\n"), Reply(OK)],
    )


def test_staged_SIZE_too_large_sends_nothing() -> None:
    session = open_session("SIZE 10")
    with pytest.raises(MessageTooLarge):
        session.create_message(SENDER, size=11)


@pytest.mark.parametrize(
    ("extensions", "kwargs", "error"),
    [
        # The same checks as send_message, before anything is sent (C8, G7, REQUIRETLS).
        ((), {"sender": "jöran@example.org"}, MessageEncodingError),
        ((), {"sender": SENDER, "body": "8BITMIME"}, MessageEncodingError),
        (("8BITMIME",), {"sender": SENDER, "body": "BINARYMIME"}, MessageEncodingError),
        (
            ("REQUIRETLS",),
            {"sender": SENDER, "options": SendOptions(requiretls=True)},
            TLSRequiredError,
        ),
    ],
)
def test_C8_G7_staged_MAIL_the_server_cannot_take_sends_nothing_and_keeps_the_session(
    extensions: tuple[str, ...], kwargs: dict[str, Any], error: type[Exception]
) -> None:
    session = open_session(*extensions)
    sender = kwargs.pop("sender")
    with pytest.raises(error):
        session.create_message(sender, **kwargs)
    assert not session.closed
    assert run(session.noop(), [Expect.send(b"NOOP\r\n"), Reply(OK)]).code == 250


def test_staged_MT_PRIORITY_sent_when_advertised() -> None:
    session = open_session("MT-PRIORITY")
    run(
        session.create_message(SENDER, options=SendOptions(mt_priority=3)),
        [Expect.send(b"MAIL FROM:<alice@example.org> MT-PRIORITY=3\r\n"), Reply(OK)],
    )


def test_staged_message_open_refuses_another_message_and_keeps_the_session() -> None:
    session = open_session()
    run(
        session.create_message(SENDER),
        [Expect.send(b"MAIL FROM:<alice@example.org>\r\n"), Reply(OK)],
    )
    with pytest.raises(LocalProtocolError, match="close_message"):
        session.send_message(b"hi\r\n", SENDER, [BOB])
    with pytest.raises(LocalProtocolError, match="close_message"):
        session.create_message(SENDER)
    assert not session.closed
    run(session.add_recipient(BOB), [Expect.send(b"RCPT TO:<bob@example.net>\r\n"), Reply(OK)])


def test_staged_sender_refused_sends_RSET() -> None:
    session = open_session()
    script = [
        Expect.send(b"MAIL FROM:<alice@example.org>\r\n"),
        Reply(b"550 5.7.1 not you\r\n"),
        Expect.send(b"RSET\r\n"),
        Reply(OK),
    ]
    with pytest.raises(SenderRefused):
        run(session.create_message(SENDER), script)
    with pytest.raises(LocalProtocolError, match="create_message"):
        session.add_recipient(BOB)


def test_staged_add_recipient_before_create_message_is_a_local_error() -> None:
    session = open_session()
    with pytest.raises(LocalProtocolError, match="no message is open"):
        session.add_recipient(BOB)
    with pytest.raises(LocalProtocolError):
        session.append_message(b"x")
    with pytest.raises(LocalProtocolError):
        run(session.close_message(), [])


def test_C11_staged_append_with_no_accepted_recipient_sends_RSET() -> None:
    session = open_session()
    run(
        session.create_message(SENDER),
        [Expect.send(b"MAIL FROM:<alice@example.org>\r\n"), Reply(OK)],
    )
    run(
        session.add_recipient(BOB),
        [Expect.send(b"RCPT TO:<bob@example.net>\r\n"), Reply(b"450 4.2.1 later\r\n")],
    )
    with pytest.raises(RecipientsRefused) as caught:
        run(session.append_message(b"x"), [Expect.send(b"RSET\r\n"), Reply(OK)])
    assert caught.value.temporary
    with pytest.raises(LocalProtocolError):
        session.append_message(b"x")  # the message was abandoned


def test_C4_staged_DATA_refused_sends_RSET() -> None:
    session = open_session()
    run(
        session.create_message(SENDER),
        [Expect.send(b"MAIL FROM:<alice@example.org>\r\n"), Reply(OK)],
    )
    run(session.add_recipient(BOB), [Expect.send(b"RCPT TO:<bob@example.net>\r\n"), Reply(OK)])
    script = [
        Expect.send(b"DATA\r\n"),
        Reply(b"554 5.5.1 no\r\n"),
        Expect.send(b"RSET\r\n"),
        Reply(OK),
    ]
    with pytest.raises(DataRefused):
        run(session.append_message(b"x"), script)


def test_C12_staged_close_message_refused_is_DataRefused() -> None:
    session = open_session()
    run(
        session.create_message(SENDER),
        [Expect.send(b"MAIL FROM:<alice@example.org>\r\n"), Reply(OK)],
    )
    run(session.add_recipient(BOB), [Expect.send(b"RCPT TO:<bob@example.net>\r\n"), Reply(OK)])
    run(
        session.append_message(b"x\r\n"),
        [Expect.send(b"DATA\r\n"), Reply(GO), Expect.send(b"x\r\n")],
    )
    with pytest.raises(DataRefused) as caught:
        run(session.close_message(), [Expect.send(DOT), Reply(b"451 4.3.0 later\r\n")])
    assert caught.value.temporary


def test_C5_staged_close_message_without_append_sends_an_empty_message() -> None:
    session = open_session()
    run(
        session.create_message(SENDER),
        [Expect.send(b"MAIL FROM:<alice@example.org>\r\n"), Reply(OK)],
    )
    run(session.add_recipient(BOB), [Expect.send(b"RCPT TO:<bob@example.net>\r\n"), Reply(OK)])
    result = run(
        session.close_message(),
        [Expect.send(b"DATA\r\n"), Reply(GO), Expect.send(DOT), Reply(QUEUED)],
    )
    assert result.all_delivered


def test_C17_staged_timeout_on_the_implicit_DATA_closes() -> None:
    session = open_session()
    run(
        session.create_message(SENDER),
        [Expect.send(b"MAIL FROM:<alice@example.org>\r\n"), Reply(OK)],
    )
    run(session.add_recipient(BOB), [Expect.send(b"RCPT TO:<bob@example.net>\r\n"), Reply(OK)])
    script = [Expect.send(b"DATA\r\n"), Fail(SMTPTimeoutError("DATA", 120.0)), Expect.close()]
    with pytest.raises(SMTPTimeoutError):
        run(session.close_message(), script)


def test_C17_staged_timeout_on_RCPT_closes() -> None:
    session = open_session()
    run(
        session.create_message(SENDER),
        [Expect.send(b"MAIL FROM:<alice@example.org>\r\n"), Reply(OK)],
    )
    script = [
        Expect.send(b"RCPT TO:<bob@example.net>\r\n"),
        Fail(SMTPTimeoutError("RCPT", 300.0)),
        Expect.close(),
    ]
    with pytest.raises(SMTPTimeoutError):
        run(session.add_recipient(BOB), script)
    assert session.closed


def test_staged_BINARYMIME_content_needs_send_message() -> None:
    session = open_session("CHUNKING", "BINARYMIME")
    run(
        session.create_message(SENDER, body="BINARYMIME"),
        [Expect.send(b"MAIL FROM:<alice@example.org> BODY=BINARYMIME\r\n"), Reply(OK)],
    )
    run(session.add_recipient(BOB), [Expect.send(b"RCPT TO:<bob@example.net>\r\n"), Reply(OK)])
    with pytest.raises(MessageEncodingError, match="BINARYMIME"):
        run(session.append_message(b"\0binary"), [])


def test_C8_staged_8bit_append_without_8BITMIME_drops_the_connection() -> None:
    session = open_session()
    run(
        session.create_message(SENDER),
        [Expect.send(b"MAIL FROM:<alice@example.org>\r\n"), Reply(OK)],
    )
    run(session.add_recipient(BOB), [Expect.send(b"RCPT TO:<bob@example.net>\r\n"), Reply(OK)])
    run(
        session.append_message(b"ascii\r\n"),
        [Expect.send(b"DATA\r\n"), Reply(GO), Expect.send(b"ascii\r\n")],
    )
    with pytest.raises(MessageEncodingError):
        run(session.append_message("café"), [Expect.close()])
    assert session.closed
    with pytest.raises(LocalProtocolError):
        session.append_message(b"more")


def test_staged_LMTP_close_message_has_a_reply_per_recipient() -> None:
    session = open_session(lmtp=True)
    run(
        session.create_message(SENDER),
        [Expect.send(b"MAIL FROM:<alice@example.org>\r\n"), Reply(OK)],
    )
    run(session.add_recipient(BOB), [Expect.send(b"RCPT TO:<bob@example.net>\r\n"), Reply(OK)])
    run(session.add_recipient(CAROL), [Expect.send(b"RCPT TO:<carol@example.net>\r\n"), Reply(OK)])
    run(
        session.append_message(b"x\r\n"),
        [Expect.send(b"DATA\r\n"), Reply(GO), Expect.send(b"x\r\n")],
    )
    result = run(
        session.close_message(),
        [Expect.send(DOT), Reply(QUEUED + b"552 5.2.2 carol is full\r\n")],
    )
    assert result.delivered == [BOB]
    assert result[CAROL].permanent


def test_staged_reset_abandons_the_message() -> None:
    session = open_session()
    run(
        session.create_message(SENDER),
        [Expect.send(b"MAIL FROM:<alice@example.org>\r\n"), Reply(OK)],
    )
    run(session.reset(), [Expect.send(b"RSET\r\n"), Reply(OK)])
    with pytest.raises(LocalProtocolError):
        session.add_recipient(BOB)


def test_C14_quit_mid_data_drops_the_connection_without_QUIT() -> None:
    session = open_session()
    run(
        session.create_message(SENDER),
        [Expect.send(b"MAIL FROM:<alice@example.org>\r\n"), Reply(OK)],
    )
    run(session.add_recipient(BOB), [Expect.send(b"RCPT TO:<bob@example.net>\r\n"), Reply(OK)])
    run(session.append_message(b"x"), [Expect.send(b"DATA\r\n"), Reply(GO), Expect.send(b"x")])
    # A QUIT now would be message content; only closing abandons the message safely.
    run(session.quit(), [Expect.close()])
    assert session.closed


def test_C14_quit_before_data_sends_QUIT() -> None:
    session = open_session()
    run(
        session.create_message(SENDER),
        [Expect.send(b"MAIL FROM:<alice@example.org>\r\n"), Reply(OK)],
    )
    run(session.quit(), [Expect.send(b"QUIT\r\n"), Reply(b"221 bye\r\n"), Expect.close()])


def test_C14_quit_after_reopening_sends_QUIT() -> None:
    session = open_session()
    run(
        session.create_message(SENDER),
        [Expect.send(b"MAIL FROM:<alice@example.org>\r\n"), Reply(OK)],
    )
    run(session.add_recipient(BOB), [Expect.send(b"RCPT TO:<bob@example.net>\r\n"), Reply(OK)])
    run(session.append_message(b"x"), [Expect.send(b"DATA\r\n"), Reply(GO), Expect.send(b"x")])
    run(session.quit(), [Expect.close()])
    run(session.open("mx.example.net", 25, tls=TLSMode.NONE), greeted())
    run(session.quit(), [Expect.send(b"QUIT\r\n"), Reply(b"221 bye\r\n"), Expect.close()])


def test_staged_append_of_an_email_Message_keeps_Bcc_out_of_the_content() -> None:
    message = EmailMessage()
    message["Subject"] = "hello"
    message["Bcc"] = "hidden@example.net"
    message.set_content("hi\n")
    session = open_session("8BITMIME")
    run(
        session.create_message(SENDER),
        [Expect.send(b"MAIL FROM:<alice@example.org> BODY=8BITMIME\r\n"), Reply(OK)],
    )
    run(session.add_recipient(BOB), [Expect.send(b"RCPT TO:<bob@example.net>\r\n"), Reply(OK)])
    sent: list[bytes] = []
    run(
        session.append_message(message),
        [Expect.send(b"DATA\r\n"), Reply(GO), Expect.send(sent.append)],
    )
    assert b"Subject: hello\r\n" in sent[0]
    assert b"hidden" not in sent[0]
    assert message["Bcc"] == "hidden@example.net"  # the caller's object is left alone
