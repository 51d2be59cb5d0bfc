"""The C:/S: transcript on the ``smtpproto.transcript`` logger: complete, and never a secret."""

from __future__ import annotations

import base64
import logging

import pytest

from smtpproto import AuthenticationError

from .scripted import Expect, Reply, open_session, run

LOGGER = "smtpproto.transcript"
PASSWORD = "s3cr3t-PASS"
CONTENT = b"Subject: TOP-SECRET-BODY\r\n\r\nclassified\r\n"


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def assert_no_secret(logged: list[str]) -> None:
    text = "\n".join(logged)
    secrets = [PASSWORD, "TOP-SECRET", "classified"]
    secrets += [base64.b64encode(f"\0user\0{PASSWORD}".encode()).decode()]
    secrets += [base64.b64encode(PASSWORD.encode()).decode(), base64.b64encode(b"user").decode()]
    for secret in secrets:
        assert secret not in text


def test_S8_transcript_of_a_session_hides_credentials_and_content(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    session = open_session("PIPELINING", "AUTH PLAIN", tls=True)
    run(
        session.authenticate("user", PASSWORD),
        [Expect.send(lambda sent: None), Reply(b"235 2.7.0 ok\r\n")],
    )
    script = [
        Expect.send(lambda sent: None),
        Reply(b"250 ok\r\n250 ok\r\n354 go\r\n"),
        Expect.send(CONTENT + b".\r\n"),
        Reply(b"250 queued\r\n"),
    ]
    run(session.send_message(CONTENT, "a@example.org", ["b@example.net"]), script)
    logged = lines(caplog)
    assert logged == [
        "S: 220 mx.example.net ESMTP",
        "C: EHLO client.example.org",
        "S: 250-mx.example.net greets client.example.org",
        "S: 250-PIPELINING",
        "S: 250 AUTH PLAIN",
        "C: AUTH PLAIN <credentials hidden>",
        "S: 235 2.7.0 ok",
        "C: MAIL FROM:<a@example.org>",
        "C: RCPT TO:<b@example.net>",
        "C: DATA",
        "S: 250 ok",
        "S: 250 ok",
        "S: 354 go",
        f"C: <{len(CONTENT)} octets of message content>",
        "C: .",
        "S: 250 queued",
    ]
    assert_no_secret(logged)


def test_S8_transcript_of_LOGIN_and_a_cancel(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    session = open_session("AUTH LOGIN", tls=True)
    caplog.clear()
    script = [
        Expect.send(b"AUTH LOGIN\r\n"),
        Reply(b"334 VXNlcm5hbWU6\r\n"),
        Expect.send(base64.b64encode(b"user") + b"\r\n"),
        Reply(b"334 UGFzc3dvcmQ6\r\n"),
        Expect.send(base64.b64encode(PASSWORD.encode()) + b"\r\n"),
        Reply(b"334 !!\r\n"),
        Expect.send(b"*\r\n"),
        Reply(b"501 cancelled\r\n"),
    ]
    with pytest.raises(AuthenticationError):
        run(session.authenticate("user", PASSWORD), script)
    logged = lines(caplog)
    assert logged == [
        "C: AUTH LOGIN",
        "S: 334 VXNlcm5hbWU6",
        "C: <credentials hidden>",
        "S: 334 UGFzc3dvcmQ6",
        "C: <credentials hidden>",
        "S: 334 !!",
        "C: *",
        "S: 501 cancelled",
    ]
    assert_no_secret(logged)


def test_S8_BDAT_shows_only_its_header(caplog: pytest.LogCaptureFixture) -> None:
    session = open_session("PIPELINING", "CHUNKING")
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    script = [Expect.send(lambda sent: None), Reply(b"250 ok\r\n250 ok\r\n250 queued\r\n")]
    run(session.send_message(CONTENT, "a@example.org", ["b@example.net"]), script)
    logged = lines(caplog)
    assert f"C: BDAT {len(CONTENT)} LAST" in logged
    assert_no_secret(logged)


def test_transcript_is_silent_unless_DEBUG_is_enabled(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    session = open_session()
    run(session.noop(), [Expect.send(b"NOOP\r\n"), Reply(b"250 ok\r\n")])
    assert lines(caplog) == []
