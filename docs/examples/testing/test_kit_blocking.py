"""Testing code that sends mail with the blocking client, against the kit's scripted server.

Run with ``pytest`` once smtpproto is installed with its ``testing`` extra: the fixtures
``scripted_smtp`` and ``smtp_certificates`` come from smtpproto's pytest plugin.
"""

from __future__ import annotations

import ssl
from email.message import EmailMessage

import pytest
from smtpproto.adapters.blocking import SMTPClient
from smtpproto.testing import Chunked, Fault, TLSMaterial, reply
from smtpproto.testing.plugin import ScriptedSMTPFactory

from smtpproto import ConnectionLostError, TLSMode


def notify(
    server_address: tuple[str, int], context: ssl.SSLContext, recipients: list[str]
) -> list[str]:
    """The code under test: mail a notice, and return who could not get it."""
    message = EmailMessage()
    message["Subject"] = "Build failed"
    message.set_content("See the log.\n.\nA line with only a dot, above.\n")
    host, port = server_address
    with SMTPClient.connect(
        host, port, tls=TLSMode.STARTTLS, server_hostname="localhost", ssl_context=context
    ) as client:
        result = client.send_message(message, "ci@example.org", recipients)
    return [r.recipient for r in result.recipients if not r.accepted]


def test_a_refused_recipient_is_reported(
    scripted_smtp: ScriptedSMTPFactory, smtp_certificates: TLSMaterial
) -> None:
    server = scripted_smtp(
        # The second RCPT gets a multi-line refusal, sent one octet at a time.
        {"RCPT2": Chunked(reply(550, "5.1.1 no such user", "5.1.1 try another"), sizes=(1,))},
        tls="starttls",
    )
    context = smtp_certificates.client_context()
    assert notify(server.address, context, ["a@example.net", "b@example.net"]) == ["b@example.net"]
    server.finish()
    record = server.record
    assert record.tls  # the message never crossed the wire in cleartext
    assert record.verbs == ["EHLO", "STARTTLS", "EHLO", "MAIL", "RCPT", "RCPT", "DATA", "QUIT"]
    assert b"\r\n..\r\n" in record.messages[0]  # the lone dot was stuffed


def test_a_server_that_hangs_up_is_an_error(
    scripted_smtp: ScriptedSMTPFactory, smtp_certificates: TLSMaterial
) -> None:
    server = scripted_smtp({"DATA": Fault.CLOSE}, tls="starttls")
    with pytest.raises(ConnectionLostError):
        notify(server.address, smtp_certificates.client_context(), ["a@example.net"])
    server.finish()
    assert not server.record.delivered
