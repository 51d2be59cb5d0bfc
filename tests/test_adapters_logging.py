"""The ``smtpproto.transcript`` log of a real session, through each adapter."""

from __future__ import annotations

import base64
import logging
from typing import TYPE_CHECKING

import pytest

from smtpproto import TLSMode

if TYPE_CHECKING:  # imported for real by pytest_plugins, which rewrites its asserts
    from tests.adapters_harness import Adapter
    from tests.servers.fixtures import SMTPServerFactory
    from tests.servers.tls import TLSMaterial


USER, PASSWORD = "user", "Secret-Passw0rd"
CONTENT_MARKER = "private body text"


def test_transcript_shows_dialogue_but_no_secret_S8(
    adapter: Adapter,
    smtp_server_factory: SMTPServerFactory,
    tls_material: TLSMaterial,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = smtp_server_factory(starttls="offer", auth=(USER, PASSWORD))
    caplog.set_level(logging.DEBUG, logger="smtpproto.transcript")
    for mechanism in ("LOGIN", "PLAIN"):  # a challenge-response one and an initial-response one
        with adapter.connect(
            *server.address,
            tls=TLSMode.STARTTLS,
            ssl_context=tls_material.client_context(),
            local_hostname="client.test",
        ) as client:
            client.authenticate(USER, PASSWORD, mechanism=mechanism)
            client.send_message(
                f"Subject: log\r\n\r\n{CONTENT_MARKER}\r\n", "a@example.org", ["b@example.org"]
            )
    lines = [r.getMessage() for r in caplog.records if r.name == "smtpproto.transcript"]
    assert all(line.startswith(("C: ", "S: ")) for line in lines)
    assert "C: EHLO client.test" in lines
    assert "C: STARTTLS" in lines
    assert any(line.startswith("S: 220 ") for line in lines)
    assert "C: AUTH LOGIN" in lines
    assert "C: AUTH PLAIN <credentials hidden>" in lines
    assert "C: <credentials hidden>" in lines
    assert any(line.startswith("S: 235") for line in lines)
    assert "C: QUIT" in lines
    secrets = [
        PASSWORD,
        base64.b64encode(PASSWORD.encode()).decode(),
        base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode(),
        CONTENT_MARKER,
    ]
    text = "\n".join(lines)
    for secret in secrets:
        assert secret not in text
    assert [m.auth_user for m in server.messages] == [USER, USER]
