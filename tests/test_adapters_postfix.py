"""Each adapter against a real MTA: the private Postfix on 127.0.0.25:25 (mx.postfix.test).

Postfix offers PIPELINING, CHUNKING, 8BITMIME, SMTPUTF8, DSN and STARTTLS, so these tests also
cover the one-flight ``BDAT LAST`` path and delivery into real Maildirs.  Postfix writes the
Maildir files with LF line ends, so the delivered text is compared in that form.
"""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from smtpproto import TLSMode

if TYPE_CHECKING:  # imported for real by pytest_plugins, which rewrites its asserts
    from tests.adapters_harness import Adapter, Client
    from tests.servers.postfix import PostfixInstance
    from tests.servers.tls import TLSMaterial

pytestmark = pytest.mark.postfix

SENDER = "sender@postfix.test"
LOG_WAIT = 5.0


@pytest.fixture
def postfix(postfix_server: PostfixInstance) -> PostfixInstance:
    """The shared instance with empty mailboxes (the session-wide instance keeps mail)."""
    postfix_server.clear_mailboxes()
    return postfix_server


def connect(adapter: Adapter, postfix: PostfixInstance, tls_material: TLSMaterial) -> Client:
    return adapter.connect(
        *postfix.address,
        tls=TLSMode.STARTTLS,
        server_hostname="mx.postfix.test",
        ssl_context=tls_material.client_context(),
        local_hostname="client.test",
    )


def session_summary(postfix: PostfixInstance, log_offset: int) -> str:
    """Postfix's ``disconnect from … ehlo=2 starttls=1 … bdat=1 …`` line of the next session
    with a MAIL that ends after ``log_offset``: smtpd counts the commands it received.  (The
    fixture's banner probe, a bare QUIT, may be logged late, hence the MAIL.)"""
    deadline = time.monotonic() + LOG_WAIT
    while True:
        lines = [
            line
            for line in postfix.log()[log_offset:].splitlines()
            if "postfix/smtpd" in line and " disconnect from " in line and " mail=" in line
        ]
        if lines:
            return lines[0]
        assert time.monotonic() < deadline, f"no disconnect line in the maillog:\n{postfix.log()}"
        time.sleep(0.02)


def lf(text: bytes) -> bytes:
    return text.replace(b"\r\n", b"\n")


def test_postfix_per_recipient_results_and_one_flight_bdat(
    adapter: Adapter,
    postfix: PostfixInstance,
    tls_material: TLSMaterial,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Delivered to alice and bob; reject… is 550 permanent, defer… is 450 temporary.  The
    8-bit body goes as BODY=8BITMIME in a single pipelined ``BDAT LAST``."""
    marker = uuid.uuid4().hex
    body = (
        f"Subject: postfix {marker}\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        ".a line that starts with a dot\r\n..two dots\r\nGrüße, naïve café — ✓\r\n"
    ).encode()
    caplog.set_level(logging.DEBUG, logger="smtpproto.transcript")
    log_offset = len(postfix.log())
    recipients = [
        "alice@postfix.test",
        "reject1@postfix.test",
        "bob@postfix.test",
        "defer1@postfix.test",
    ]
    with connect(adapter, postfix, tls_material) as client:
        assert client.tls_active and client.tls_verified
        ext = client.extensions
        assert ext.chunking and ext.pipelining and ext.eightbitmime and ext.smtputf8 and ext.dsn
        result = client.send_message(body, SENDER, recipients)
    assert result.delivered == ["alice@postfix.test", "bob@postfix.test"]
    rejected, deferred = result["reject1@postfix.test"], result["defer1@postfix.test"]
    assert (rejected.rcpt_reply.code, rejected.permanent, rejected.temporary) == (550, True, False)
    assert str(rejected.rcpt_reply.enhanced_status) == "5.1.1"
    assert (deferred.rcpt_reply.code, deferred.permanent, deferred.temporary) == (450, False, True)
    for local_part in ("alice", "bob"):
        (delivered,) = postfix.wait_for_messages(local_part, 1)
        assert delivered.endswith(b"\n\n" + lf(body).split(b"\n\n", 1)[1])
        assert marker.encode() in delivered
    sent = [r.getMessage() for r in caplog.records if r.name == "smtpproto.transcript"]
    assert f"C: BDAT {len(body)} LAST" in sent
    assert "C: DATA" not in sent
    assert any(line.startswith("C: MAIL FROM:<sender@postfix.test>") for line in sent)
    assert any("BODY=8BITMIME" in line for line in sent if line.startswith("C: MAIL"))
    summary = session_summary(postfix, log_offset)
    assert "bdat=1" in summary and "data=" not in summary and "rcpt=2/4" in summary


def test_postfix_smtputf8_recipient(
    adapter: Adapter, postfix: PostfixInstance, tls_material: TLSMaterial
) -> None:
    marker = uuid.uuid4().hex
    body = f"Subject: utf8 {marker}\r\n\r\nfür jösé\r\n".encode()
    with connect(adapter, postfix, tls_material) as client:
        result = client.send_message(body, SENDER, ["jösé@postfix.test"])
    assert result.delivered == ["jösé@postfix.test"]
    (delivered,) = postfix.wait_for_messages("jösé", 1)
    assert "Delivered-To: jösé@postfix.test".encode() in delivered
    assert f"Subject: utf8 {marker}\n".encode() in delivered
    assert delivered.endswith("\n\nfür jösé\n".encode())  # Postfix adds headers, not body


def test_postfix_five_megabytes_from_a_path(
    adapter: Adapter, postfix: PostfixInstance, tls_material: TLSMaterial, tmp_path: Path
) -> None:
    """A file body of unknown 8-bitness goes through DATA, streamed and dot-stuffed."""
    line = b"0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789\r\n"
    chunk = line * 99 + b".dot-led line every hundred lines\r\n"
    body = b"Subject: big\r\n\r\n" + chunk * (5_000_000 // len(chunk) + 1)
    path = tmp_path / "big.eml"
    path.write_bytes(body)
    log_offset = len(postfix.log())
    with connect(adapter, postfix, tls_material) as client:
        result = client.send_message(path, SENDER, ["carol@postfix.test"])
    assert result.all_delivered
    assert len(body) > 5_000_000
    (delivered,) = postfix.wait_for_messages("carol", 1)
    assert delivered.endswith(lf(body).split(b"\n\n", 1)[1])
    summary = session_summary(postfix, log_offset)
    assert "data=1" in summary and "bdat=" not in summary


def test_postfix_150_recipients(
    adapter: Adapter, postfix: PostfixInstance, tls_material: TLSMaterial
) -> None:
    """150 recipients in one transaction, pipelined in groups; Postfix has no
    recipient_delimiter, so each distinct name lands in the catch-all Maildir."""
    recipients = [f"many{n}@postfix.test" for n in range(150)]
    with connect(adapter, postfix, tls_material) as client:
        result = client.send_message(b"Subject: many\r\n\r\nhello\r\n", SENDER, recipients)
    assert result.delivered == recipients
    delivered = postfix.wait_for_messages("many0", 150, timeout=30.0)
    delivered_to = {
        line.split(b": ", 1)[1].decode()
        for message in delivered
        for line in message.split(b"\n")
        if line.startswith(b"Delivered-To: ")
    }
    assert delivered_to == set(recipients)
