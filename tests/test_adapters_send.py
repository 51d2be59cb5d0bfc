"""Sending through each adapter to a real aiosmtpd server on loopback (cleartext)."""

from __future__ import annotations

import email.message
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from smtpproto import (
    ConnectionLostError,
    DataRefused,
    GreetingRefused,
    MessageTooLarge,
    RecipientsRefused,
    TLSMode,
    UnexpectedReplyCode,
)

if TYPE_CHECKING:  # imported for real by pytest_plugins, which rewrites its asserts
    from tests.adapters_harness import Adapter, Client
    from tests.servers.aiosmtpd_server import RunningSMTPServer
    from tests.servers.fixtures import SMTPServerFactory


SENDER = "sender@example.org"
MESSAGE = (
    b"From: sender@example.org\r\nTo: rcpt@example.org\r\nSubject: adapters\r\n\r\n"
    b".a line that starts with a dot\r\nbody\r\n"
)


def open_client(adapter: Adapter, server: RunningSMTPServer) -> Client:
    return adapter.connect(*server.address, tls=TLSMode.NONE, local_hostname="client.test")


def test_send_bytes_pipelined_dot_stuffed_C6(
    adapter: Adapter, smtp_server: RunningSMTPServer
) -> None:
    """Bytes go out dot-stuffed and arrive unchanged; MAIL, RCPT and DATA are pipelined."""
    with open_client(adapter, smtp_server) as client:
        assert client.extensions.pipelining
        result = client.send_message(MESSAGE, SENDER, ["one@example.org", "two@example.org"])
    assert result.all_delivered
    assert result.delivered == ["one@example.org", "two@example.org"]
    assert all(getattr(r.data_reply, "code", None) == 250 for r in result)
    (message,) = smtp_server.messages
    assert message.mail_from == SENDER
    assert message.rcpt_tos == ("one@example.org", "two@example.org")
    assert message.content == MESSAGE
    assert "BODY=8BITMIME" not in message.mail_options  # the body is plain ASCII
    (connection,) = smtp_server.connections
    assert connection.lines[0] == b"EHLO client.test\r\n"
    assert connection.verbs == ["EHLO", "MAIL", "RCPT", "RCPT", "DATA", "QUIT"]


def test_send_normalizes_bare_line_ends_no_smuggling_C7_S2(
    adapter: Adapter, smtp_server: RunningSMTPServer
) -> None:
    """S2: a bare-LF "end of data" in the body can never end the message on the wire."""
    body = b"Subject: s2\r\n\r\na\n.\r\nMAIL FROM:<evil@example.org>\r\nlast\rline\n"
    with open_client(adapter, smtp_server) as client:
        client.send_message(body, SENDER, ["one@example.org"])
    (message,) = smtp_server.messages
    assert message.content == (
        b"Subject: s2\r\n\r\na\r\n.\r\nMAIL FROM:<evil@example.org>\r\nlast\r\nline\r\n"
    )
    assert smtp_server.connections[0].verbs == ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]


def test_send_email_message_strips_bcc(adapter: Adapter, smtp_server: RunningSMTPServer) -> None:
    """An EmailMessage gives its own envelope: To, Cc and Bcc; the sent copy has no Bcc."""
    msg = email.message.EmailMessage()
    msg["From"] = "Sender <sender@example.org>"
    msg["To"] = "to@example.org"
    msg["Cc"] = "cc@example.org"
    msg["Bcc"] = "hidden@example.org"
    msg["Subject"] = "bcc"
    msg.set_content("Grüße\n")
    with open_client(adapter, smtp_server) as client:
        result = client.send_message(msg)
    assert result.delivered == ["to@example.org", "cc@example.org", "hidden@example.org"]
    (message,) = smtp_server.messages
    assert message.mail_from == SENDER
    assert message.rcpt_tos == ("to@example.org", "cc@example.org", "hidden@example.org")
    assert b"hidden@example.org" not in message.content
    assert b"\r\nBcc:" not in message.content
    assert b"\r\nCc: cc@example.org\r\n" in message.content
    assert msg["Bcc"] == "hidden@example.org"  # the caller's object is left alone


def test_one_refused_recipient_is_a_result_C11(
    adapter: Adapter, smtp_server_factory: SMTPServerFactory
) -> None:
    server = smtp_server_factory(recipient_replies={"bad@example.org": "550 5.1.1 no such user"})
    with open_client(adapter, server) as client:
        result = client.send_message(MESSAGE, SENDER, ["bad@example.org", "good@example.org"])
    bad, good = result["bad@example.org"], result["good@example.org"]
    assert not bad.accepted and not bad.delivered
    assert bad.permanent and not bad.temporary
    assert bad.rcpt_reply.code == 550
    assert str(bad.rcpt_reply.enhanced_status) == "5.1.1"
    assert good.delivered and getattr(good.data_reply, "code", None) == 250
    assert result.failed == ["bad@example.org"]
    (message,) = server.messages
    assert message.rcpt_tos == ("good@example.org",)


def test_R5_C14_a_651_to_RCPT_ends_the_transaction_and_the_session_quits(
    adapter: Adapter, smtp_server_factory: SMTPServerFactory
) -> None:
    """A well-framed reply outside 2xx-5xx: the transaction ends as a protocol error (RSET),
    the session stays usable and ends with QUIT, in every adapter."""
    server = smtp_server_factory(recipient_replies={"odd@example.org": "651 6.1.1 odd code"})
    with open_client(adapter, server) as client:
        with pytest.raises(UnexpectedReplyCode) as caught:
            client.send_message(MESSAGE, SENDER, ["odd@example.org"])
        assert caught.value.code == 651
        assert client.noop().code == 250
    assert server.messages == []
    (connection,) = server.connections
    assert connection.verbs[-3:] == ["RSET", "NOOP", "QUIT"]


def test_all_recipients_refused_sends_nothing_C11(
    adapter: Adapter, smtp_server_factory: SMTPServerFactory
) -> None:
    server = smtp_server_factory(
        recipient_replies={
            "bad@example.org": "550 5.1.1 no such user",
            "later@example.org": "450 4.2.1 mailbox busy",
        }
    )
    with open_client(adapter, server) as client:
        with pytest.raises(RecipientsRefused) as caught:
            client.send_message(MESSAGE, SENDER, ["bad@example.org", "later@example.org"])
        assert caught.value.result["bad@example.org"].rcpt_reply.code == 550
        assert caught.value.result["later@example.org"].rcpt_reply.code == 450
        assert caught.value.temporary  # one of the refusals was a 4xx
        assert client.noop().code == 250  # the session is still usable after the RSET
    assert server.messages == []
    assert "RSET" in server.connections[0].verbs


def test_staged_api_chunks_from_bytes_path_and_iterable(
    adapter: Adapter, smtp_server_factory: SMTPServerFactory, tmp_path: Path
) -> None:
    """create / add (a refusal is a result) / append ×3 / close."""
    server = smtp_server_factory(recipient_replies={"bad@example.org": "550 5.1.1 no such user"})
    part = tmp_path / "part.txt"
    part.write_bytes(b"from a file\r\n.dotted line in the file\r\n")
    with open_client(adapter, server) as client:
        assert client.create_message(SENDER).code == 250
        good = client.add_recipient("good@example.org")
        bad = client.add_recipient("bad@example.org")
        assert good.accepted and not good.delivered
        assert not bad.accepted and bad.rcpt_reply.code == 550
        client.append_message(b"Subject: staged\r\n\r\nfrom bytes\r\n")
        client.append_message(part)
        client.append_message(iter([b"from an ", b"iterable\r\n", b".dot at a chunk start\r\n"]))
        result = client.close_message()
    assert result["good@example.org"].delivered
    assert not result["bad@example.org"].delivered
    assert result["bad@example.org"].permanent
    (message,) = server.messages
    assert message.rcpt_tos == ("good@example.org",)
    assert message.content == (
        b"Subject: staged\r\n\r\nfrom bytes\r\n"
        b"from a file\r\n.dotted line in the file\r\n"
        b"from an iterable\r\n.dot at a chunk start\r\n"
    )


def test_reset_noop_verify_C13(adapter: Adapter, smtp_server: RunningSMTPServer) -> None:
    with open_client(adapter, smtp_server) as client:
        assert client.noop().code == 250
        assert client.verify("someone@example.org").code == 252
        client.create_message(SENDER)
        client.add_recipient("dropped@example.org")
        assert client.reset().code == 250
        result = client.send_message(MESSAGE, SENDER, ["kept@example.org"])
    assert result.all_delivered
    (message,) = smtp_server.messages
    assert message.rcpt_tos == ("kept@example.org",)
    assert smtp_server.connections[0].verbs == [
        "EHLO",
        "NOOP",
        "VRFY",
        "MAIL",
        "RCPT",
        "RSET",
        "MAIL",
        "RCPT",
        "DATA",
        "QUIT",
    ]


def test_disconnect_twice_quits_once_C14(adapter: Adapter, smtp_server: RunningSMTPServer) -> None:
    """C14: QUIT is the last command, sent once; a second disconnect is a no-op."""
    with open_client(adapter, smtp_server) as client:
        client.noop()
        client.disconnect()
    client.disconnect()
    assert smtp_server.connections[0].verbs == ["EHLO", "NOOP", "QUIT"]


def test_greeting_554_refused_G2(adapter: Adapter, smtp_server_factory: SMTPServerFactory) -> None:
    """G2: a 554 greeting: GreetingRefused, and QUIT (no EHLO) is the only command sent."""
    server = smtp_server_factory(greeting="554 5.3.2 no service here")
    with pytest.raises(GreetingRefused) as caught:
        open_client(adapter, server)
    assert caught.value.code == 554
    assert not caught.value.temporary
    assert server.connections[0].verbs == ["QUIT"]


def test_ehlo_502_falls_back_to_helo_G4(
    adapter: Adapter, smtp_server_factory: SMTPServerFactory
) -> None:
    server = smtp_server_factory(ehlo_reply="502 5.5.2 EHLO not implemented")
    with open_client(adapter, server) as client:
        assert not client.extensions.esmtp
        assert not client.extensions.pipelining
        result = client.send_message(MESSAGE, SENDER, ["one@example.org"])
    assert result.all_delivered
    (message,) = server.messages
    assert message.content == MESSAGE
    assert server.connections[0].verbs == ["EHLO", "HELO", "MAIL", "RCPT", "DATA", "QUIT"]


def test_message_over_size_limit_sends_nothing(
    adapter: Adapter, smtp_server_factory: SMTPServerFactory
) -> None:
    """RFC 1870: a message larger than the advertised SIZE is refused before MAIL."""
    server = smtp_server_factory(size_limit=1000)
    with open_client(adapter, server) as client:
        assert client.extensions.size == 1000
        with pytest.raises(MessageTooLarge) as caught:
            client.send_message(b"x" * 2000 + b"\r\n", SENDER, ["one@example.org"])
        assert (caught.value.size, caught.value.limit) == (2002, 1000)
        assert client.noop().code == 250  # nothing was sent, the session goes on
    assert server.messages == []
    assert server.connections[0].verbs == ["EHLO", "NOOP", "QUIT"]


def test_connection_lost_after_final_dot_is_not_delivered_C12_C16(
    adapter: Adapter, smtp_server_factory: SMTPServerFactory
) -> None:
    """No reply to the final dot: ConnectionLostError (a 451, C16), never reported delivered
    and never resent (C12); leaving the block afterwards raises nothing."""
    server = smtp_server_factory(drop_after_data=True)
    with open_client(adapter, server) as client:
        with pytest.raises(ConnectionLostError) as caught:
            client.send_message(MESSAGE, SENDER, ["one@example.org"])
        assert caught.value.temporary
    assert len(server.messages) == 1  # the server had it, but never said so: not resent
    assert len(server.connections) == 1
    assert server.connections[0].verbs == ["EHLO", "MAIL", "RCPT", "DATA"]


def test_data_reply_451_is_temporary_refusal_C12(
    adapter: Adapter, smtp_server_factory: SMTPServerFactory
) -> None:
    server = smtp_server_factory(data_reply="451 4.3.0 try again later")
    with open_client(adapter, server) as client:
        with pytest.raises(DataRefused) as caught:
            client.send_message(MESSAGE, SENDER, ["one@example.org"])
        assert caught.value.code == 451
        assert caught.value.temporary
        assert client.noop().code == 250


def test_too_many_recipients_continue_in_new_transactions_C10(
    adapter: Adapter, smtp_server_factory: SMTPServerFactory
) -> None:
    """C10: after ``452 4.5.3`` the remaining recipients go in follow-up transactions."""
    server = smtp_server_factory(max_recipients=2)
    recipients = [f"r{n}@example.org" for n in range(5)]
    with open_client(adapter, server) as client:
        result = client.send_message(MESSAGE, SENDER, recipients)
    assert result.delivered == recipients
    messages = server.wait_for_messages(3)
    assert [m.rcpt_tos for m in messages] == [
        ("r0@example.org", "r1@example.org"),
        ("r2@example.org", "r3@example.org"),
        ("r4@example.org",),
    ]
    assert all(m.content == MESSAGE for m in messages)
