"""DKIM signing as an option of sending (``SendOptions(dkim=...)``): the mail that servers
actually received, verified by dkimpy and by Mail::DKIM with the keys served by dnsmasq.

Postfix (PIPELINING, CHUNKING, 8BITMIME, SMTPUTF8) takes an in-memory body as one ``BDAT
LAST`` and a file or a stream through DATA; the batch sink takes DATA, or BDAT with
``chunking=True``.  A path and a seekable file are read twice; a one-pass stream is spooled to a
temporary file by the driver, which is gone afterwards.
"""

from __future__ import annotations

import asyncio
import io
import re
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import trio

from smtpproto import (
    BodyReadError,
    DeliveryOptions,
    DeliveryReport,
    RecipientsRefused,
    SendOptions,
    SendResult,
    SessionOptions,
    SigningError,
    TLSMode,
    prepare_message,
)
from smtpproto.dkim import DKIMSigner
from tests.dkim_harness import (
    DOMAIN,
    TXTServer,
    crlf,
    mail_dkim_verdicts,
    make_keys,
    serve_keys,
    verify,
)
from tests.servers.dnsmasq import DNSServer, make_async_resolver, make_resolver

from .batch_sink import BatchSink

if TYPE_CHECKING:  # imported for real by pytest_plugins, which rewrites its asserts
    import adapters.asyncio as asyncio_adapter
    import adapters.blocking as blocking_adapter
    import adapters.trio as trio_adapter
    from tests.adapters_harness import Adapter, Client
    from tests.servers.fixtures import SMTPServerFactory
    from tests.servers.postfix import PostfixInstance
    from tests.servers.tls import TLSMaterial

else:
    import smtpproto.adapters.asyncio as asyncio_adapter
    import smtpproto.adapters.blocking as blocking_adapter
    import smtpproto.adapters.trio as trio_adapter

pytest_plugins = ["tests.adapters_harness"]

SENDER = "sender@postfix.test"


@pytest.fixture(scope="module")
def keys() -> dict[str, bytes]:
    return make_keys()


@pytest.fixture(scope="module")
def signers(keys: dict[str, bytes]) -> dict[str, DKIMSigner]:
    return {name: DKIMSigner(DOMAIN, name, keys[name]) for name in ("rsa", "ed25519")}


@pytest.fixture(scope="module")
def txt_server(signers: dict[str, DKIMSigner]) -> Iterator[TXTServer]:
    yield from serve_keys(signers)


@pytest.fixture
def both(signers: dict[str, DKIMSigner]) -> SendOptions:
    """RSA and Ed25519 together (RFC 8463 §4)."""
    return SendOptions(dkim=(signers["rsa"], signers["ed25519"]))


@pytest.fixture
def spool_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the drivers' spools go in this test (tempfile's directory, for every thread)."""
    spools = tmp_path / "spools"
    spools.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spools))
    return spools


@pytest.fixture
def postfix(postfix_server: PostfixInstance) -> PostfixInstance:
    postfix_server.clear_mailboxes()
    return postfix_server


def message(marker: str, extra: str = "") -> bytes:
    return (
        f"From: Sender <{SENDER}>\r\nTo: alice@postfix.test\r\nSubject: signed {marker}\r\n"
        f"Date: Wed, 02 Dec 2026 20:00:00 +0000\r\nMessage-ID: <{marker}@postfix.test>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Transfer-Encoding: 8bit\r\n\r\n.a line that starts with a dot\r\n..two\r\n"
        f"Grüße  \t aus Köln{extra}\r\n\r\n\r\n"
    ).encode()


def assert_verified(txt_server: TXTServer, received: bytes, count: int = 2) -> None:
    """Every signature verifies with dkimpy; Mail::DKIM agrees on the RSA one (its Debian 12
    version knows no Ed25519)."""
    assert received.count(b"DKIM-Signature:") == count, received[:2000]
    for index in range(count):
        assert verify(txt_server, received, index), f"signature {index} fails:\n{received[:3000]!r}"
    verdicts = mail_dkim_verdicts(txt_server, received)
    assert "rsa-sha256 pass" in verdicts, verdicts


def unstuffed(content: bytes) -> bytes:
    """What the batch sink kept of a DATA transfer, with the dot-stuffing undone."""
    return re.sub(rb"(?m)^\.", b"", content)


def connect_postfix(adapter: Adapter, postfix: PostfixInstance, tls: TLSMaterial) -> Client:
    return adapter.connect(
        *postfix.address,
        tls=TLSMode.STARTTLS,
        server_hostname="mx.postfix.test",
        ssl_context=tls.client_context(),
        local_hostname="client.test",
    )


def connect_sink(adapter: Adapter, sink: BatchSink) -> Client:
    return adapter.connect(*sink.address, tls=TLSMode.NONE, local_hostname="client.test")


def bodies(data: bytes, path: Path) -> dict[str, Any]:
    path.write_bytes(data)
    return {
        "bytes": data,
        "path": path,
        "seekable-file": io.BytesIO(b"ignored before the position" + data),
        "stream": iter([data[:7], data[7:100], data[100:]]),
    }


# -- through Postfix ---------------------------------------------------------------------------


@pytest.mark.postfix
@pytest.mark.parametrize("kind", ["bytes", "path", "seekable-file", "stream"])
def test_signed_mail_delivered_by_postfix_verifies(
    adapter: Adapter,
    *,
    postfix: PostfixInstance,
    tls_material: TLSMaterial,
    txt_server: TXTServer,
    both: SendOptions,
    spool_dir: Path,
    tmp_path: Path,
    kind: str,
) -> None:
    """8-bit text with a dot-led line: bytes go as one BDAT LAST, the rest through DATA."""
    marker = uuid.uuid4().hex
    body = bodies(message(marker), tmp_path / "message.eml")[kind]
    if kind == "seekable-file":
        body.seek(len(b"ignored before the position"))
    with connect_postfix(adapter, postfix, tls_material) as client:
        result = client.send_message(body, SENDER, ["alice@postfix.test"], options=both)
    assert result.all_delivered
    (received,) = postfix.wait_for_messages("alice", 1)
    assert marker.encode() in received
    assert_verified(txt_server, crlf(received))
    assert list(spool_dir.iterdir()) == []  # the stream's spool was removed


@pytest.mark.postfix
def test_signed_smtputf8_mail_verifies(
    adapter: Adapter,
    postfix: PostfixInstance,
    tls_material: TLSMaterial,
    txt_server: TXTServer,
    both: SendOptions,
) -> None:
    marker = uuid.uuid4().hex
    body = message(marker).replace(b"To: alice@postfix.test", "To: jösé@postfix.test".encode())
    with connect_postfix(adapter, postfix, tls_material) as client:
        result = client.send_message(body, "jörg@postfix.test", ["jösé@postfix.test"], options=both)
    assert result.all_delivered
    (received,) = postfix.wait_for_messages("jösé", 1)
    assert_verified(txt_server, crlf(received))


@pytest.fixture(scope="module")
def fifty_megabytes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    line = b"0123456789 abcdefghijklmnopqrstuvwxyz  \t ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789\r\n"
    block = line * 99 + b".dot-led line every hundred lines\r\n"
    path = tmp_path_factory.mktemp("big") / "big.eml"
    with path.open("wb") as file:
        file.write(message("fifty"))
        for _ in range(50_000_000 // len(block) + 1):
            file.write(block)
    return path


def test_signed_fifty_megabyte_file_verifies(
    adapter: Adapter,
    smtp_server_factory: SMTPServerFactory,
    txt_server: TXTServer,
    both: SendOptions,
    fifty_megabytes: Path,
) -> None:
    """Through aiosmtpd (Postfix here takes at most 10 MB), read twice from the path."""
    server = smtp_server_factory(size_limit=1 << 27)
    with adapter.connect(*server.address, tls=TLSMode.NONE, local_hostname="c.test") as client:
        result = client.send_message(fifty_megabytes, SENDER, ["carol@x.test"], options=both)
    assert result.all_delivered
    (received,) = server.messages
    assert len(received.content) > 50_000_000
    assert_verified(txt_server, received.content)


# -- DATA and BDAT, byte for byte ---------------------------------------------------------------


@pytest.mark.parametrize("chunking", [False, True], ids=["DATA", "BDAT"])
@pytest.mark.parametrize("kind", ["bytes", "stream"])
def test_signed_as_sent_with_data_and_bdat(
    adapter: Adapter,
    *,
    txt_server: TXTServer,
    both: SendOptions,
    spool_dir: Path,
    tmp_path: Path,
    chunking: bool,
    kind: str,
) -> None:
    """A message without a final CRLF and with bare LFs: BDAT carries the CRLF the hasher
    counted, DATA's end of data adds it."""
    data = message("x").replace(b"\r\n", b"\n")[:-3]
    with BatchSink(chunking=chunking) as sink:
        client = connect_sink(adapter, sink)
        body = bodies(data, tmp_path / "m.eml")[kind]
        result = client.send_message(body, SENDER, ["alice@postfix.test"], options=both)
        client.disconnect()
    assert result.all_delivered
    (content,) = sink.delivered
    bdat = chunking and kind == "bytes"  # a stream goes through DATA
    received = content if bdat else unstuffed(content)
    assert received.endswith(b"K\xc3\xb6ln\r\n")
    assert_verified(txt_server, received)
    assert list(spool_dir.iterdir()) == []


def test_send_messages_signs_each_message(
    adapter: Adapter, txt_server: TXTServer, both: SendOptions, signers: dict[str, DKIMSigner]
) -> None:
    """Signed and unsigned messages in one pipelined batch; a message that cannot be signed
    (no From) is its own outcome, and the others go on."""
    only_ed = SendOptions(dkim=(signers["ed25519"],))
    messages = [
        prepare_message(message("1"), SENDER, ["alice@postfix.test"], options=both),
        prepare_message(b"Subject: no From\r\n\r\nx\r\n", SENDER, ["a@x.test"], options=both),
        prepare_message(message("3"), SENDER, ["alice@postfix.test"]),
        prepare_message(message("4"), SENDER, ["alice@postfix.test"], options=only_ed),
    ]
    with BatchSink(chunking=True) as sink:
        client = connect_sink(adapter, sink)
        outcomes = list(client.send_messages(messages, quit=True))
    assert isinstance(outcomes[1], SigningError)
    assert [isinstance(o, SendResult) and o.all_delivered for o in outcomes] == [
        True,
        False,
        True,
        True,
    ]
    first, third, fourth = sink.delivered
    assert_verified(txt_server, first)
    assert b"DKIM-Signature" not in third
    assert fourth.count(b"DKIM-Signature:") == 1 and verify(txt_server, fourth)


# -- what is never delivered --------------------------------------------------------------------


class ChangingFile(io.BytesIO):
    """A seekable file whose content changes once it was read to its end (between the hash
    and the send)."""

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        if not data and not getattr(self, "changed", False):
            self.changed = True
            here = self.tell()
            self.seek(here - 5)
            self.write(b"CHANGED"[:3])
            self.seek(here)
        return data


def test_a_file_changed_after_signing_is_not_delivered(adapter: Adapter, both: SendOptions) -> None:
    with BatchSink() as sink:
        client = connect_sink(adapter, sink)
        with pytest.raises(BodyReadError, match="changed after it was signed"):
            client.send_message(ChangingFile(message("c")), SENDER, ["a@x.test"], options=both)
    assert sink.delivered == []


def test_a_stream_that_cannot_be_spooled_is_not_sent(
    adapter: Adapter, both: SendOptions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    with BatchSink() as sink:
        client = connect_sink(adapter, sink)
        with pytest.raises(BodyReadError):
            client.send_message(iter([message("s")]), SENDER, ["a@x.test"], options=both)
        # Nothing was sent: the session goes on.
        assert client.send_message(message("n"), SENDER, ["a@x.test"]).all_delivered
        client.disconnect()
    assert len(sink.delivered) == 1 and b"DKIM-Signature" not in sink.delivered[0]


def test_unsignable_messages_are_refused_before_sending(
    both: SendOptions, keys: dict[str, bytes], spool_dir: Path
) -> None:
    """No From; an expiry before the signing time; a header block too large (read from a
    spooled stream, whose spool is removed).  Nothing was sent: the session goes on."""
    from smtpproto.adapters.blocking import SMTPClient  # noqa: PLC0415

    past = SendOptions(dkim=(DKIMSigner(DOMAIN, "ed25519", keys["ed25519"], expires_at=1),))
    with BatchSink() as sink:
        client = SMTPClient.connect(*sink.address, tls=TLSMode.NONE, local_hostname="c.test")
        with pytest.raises(SigningError, match="From"):
            client.send_message(b"Subject: x\r\n\r\nx\r\n", SENDER, ["a@x.test"], options=both)
        with pytest.raises(SigningError, match="expires_at"):
            client.send_message(message("e"), SENDER, ["a@x.test"], options=past)
        too_big = iter([b"X-Long: " + b"x" * (1 << 16)] * 17)
        with pytest.raises(SigningError, match="header block"):
            client.send_message(too_big, SENDER, ["a@x.test"], options=both)
        assert list(spool_dir.iterdir()) == []
        result = client.send_message(message("ok"), SENDER, ["a@x.test"], options=both)
        client.disconnect()
    assert result.all_delivered and len(sink.delivered) == 1


def test_signers_are_checked_by_send_options(signers: dict[str, DKIMSigner]) -> None:
    with pytest.raises(TypeError, match="sequence"):
        SendOptions(dkim=signers["rsa"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="DKIMSigner"):
        SendOptions(dkim=("key",))  # type: ignore[arg-type]
    assert SendOptions(dkim=[signers["rsa"]]).dkim == (signers["rsa"],)  # type: ignore[arg-type]


# -- deliver() ---------------------------------------------------------------------------------


@pytest.mark.dns
@pytest.mark.postfix
@pytest.mark.parametrize("adapter_name", ["blocking", "asyncio", "trio"])
def test_deliver_signs_once(
    adapter_name: str,
    dns_server: DNSServer,
    postfix: PostfixInstance,
    txt_server: TXTServer,
    both: SendOptions,
) -> None:
    """Signed before the recipients are split by domain and host: every copy carries the
    same signatures."""
    marker = uuid.uuid4().hex
    options = DeliveryOptions(
        session=SessionOptions(local_hostname="client.test", timeout=10.0), send=both
    )
    recipients = ["alice@postfix.test", "bob@postfix.test"]
    host, port = dns_server.address
    body = message(marker)
    if adapter_name == "blocking":
        resolver = make_resolver(host, port, lifetime=3.0)
        report = blocking_adapter.deliver(
            body, SENDER, recipients, options=options, resolver=resolver
        )
    else:
        async_resolver = make_async_resolver(host, port, lifetime=3.0)
        module = asyncio_adapter if adapter_name == "asyncio" else trio_adapter

        async def deliver() -> DeliveryReport:
            report: DeliveryReport = await module.deliver(
                body, SENDER, recipients, options=options, resolver=async_resolver
            )
            return report

        report = asyncio.run(deliver()) if adapter_name == "asyncio" else trio.run(deliver)
    assert report.all_delivered
    (alice,) = postfix.wait_for_messages("alice", 1)
    (bob,) = postfix.wait_for_messages("bob", 1)
    assert_verified(txt_server, crlf(alice))
    signature = re.compile(rb"DKIM-Signature:.*?(?=\n\S)", re.DOTALL)
    assert signature.findall(alice) == signature.findall(bob)


def test_delivery_options_carry_signers(both: SendOptions) -> None:
    assert DeliveryOptions(send=both).send.dkim == both.dkim


# -- the staged API --------------------------------------------------------------------------


def failing_part() -> Iterator[bytes]:
    yield b"X-Part: one\r\n"
    raise OSError("the part's disk went away")


def test_staged_parts_are_spooled_and_signed_at_close(
    adapter: Adapter, txt_server: TXTServer, both: SendOptions, spool_dir: Path, tmp_path: Path
) -> None:
    """Bytes, a path and a one-pass stream appended in turn: DATA waits for close_message,
    which signs the whole; the spool is gone after it."""
    data = message("staged")
    head, rest = data.split(b"\r\n\r\n", 1)
    (tmp_path / "middle.txt").write_bytes(b"\r\n\r\n" + rest[:20])
    with BatchSink() as sink:
        client = connect_sink(adapter, sink)
        client.create_message(SENDER, options=both)
        client.add_recipient("alice@postfix.test")
        client.append_message(head)
        client.append_message(tmp_path / "middle.txt")
        assert len(list(spool_dir.iterdir())) == 1
        client.append_message(iter([rest[20:30], rest[30:]]))
        assert not any(read.startswith(b"DATA") for read in sink.reads)
        result = client.close_message()
        client.disconnect()
    assert result.all_delivered
    (content,) = sink.delivered
    assert unstuffed(content).endswith(rest)
    assert_verified(txt_server, unstuffed(content))
    assert list(spool_dir.iterdir()) == []


def test_staged_signing_failures_leave_the_session_usable(
    adapter: Adapter, both: SendOptions, spool_dir: Path
) -> None:
    """A message that cannot be signed, a part that cannot be read, a reset, nobody accepted:
    each ends its message without DATA, and no spool stays behind."""
    with BatchSink(plan={4: {"RCPT": b"550 5.1.1 no\r\n"}}) as sink:
        client = connect_sink(adapter, sink)
        client.create_message(SENDER, options=both)
        client.add_recipient("a@x.test")
        client.append_message(b"Subject: no From\r\n\r\nbody\r\n")
        with pytest.raises(SigningError, match="From"):
            client.close_message()
        client.create_message(SENDER, options=both)
        client.add_recipient("a@x.test")
        with pytest.raises(SigningError, match="From"):
            client.close_message()  # nothing appended: an empty message
        client.create_message(SENDER, options=both)
        client.add_recipient("a@x.test")
        client.append_message(b"From: a@x.test\r\n")
        with pytest.raises(BodyReadError, match="went away"):
            client.append_message(failing_part())
        client.create_message(SENDER, options=both)
        client.add_recipient("a@x.test")
        with pytest.raises(RecipientsRefused):
            client.close_message()
        client.create_message(SENDER, options=both)
        client.append_message(message("reset"))
        assert client.reset().code == 250
        assert client.send_message(message("after"), SENDER, ["a@x.test"]).all_delivered
        client.disconnect()
    assert [b"DATA" in read for read in sink.reads].count(True) == 1
    assert list(spool_dir.iterdir()) == []


def test_binarymime_is_never_signed(both: SendOptions) -> None:
    from smtpproto import Session  # noqa: PLC0415

    with pytest.raises(SigningError, match="BINARYMIME"):
        Session().create_message(SENDER, body="BINARYMIME", options=both)
