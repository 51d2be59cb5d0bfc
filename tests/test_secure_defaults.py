"""Secure defaults, tested through each adapter against what the server actually received
(issue 7, part 4; checklist S1-S5, S8 and section 4).

The :class:`~smtpproto.testing.ScriptedServer` records every octet it receives, so these tests
check the wire itself: what the client sent, what it never sent, and when it stopped.  Certificate
failures with the wrong CA, a wrong-name or an expired certificate are in
``test_adapters_tls.py``; here are the checks it lacks.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import logging
import ssl
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
import trio

from smtpproto import (
    AuthenticationError,
    CleartextAuthRefused,
    DeliveryOptions,
    DeliveryReport,
    Relay,
    RemoteProtocolError,
    SendOptions,
    SendResult,
    SessionOptions,
    Timeouts,
    TLSError,
    TLSMode,
    TLSRequiredError,
)

if TYPE_CHECKING:  # mypy knows testing/ as "testing"; the harness comes from pytest_plugins
    from testing import Action, ConnectionRecord, Peer, ScriptedServer
    from tests.adapters_harness import Adapter, Client
    from tests.servers.postfix import PostfixInstance
    from tests.servers.tls import CertKind, TLSMaterial
else:
    from smtpproto.testing import Action, ConnectionRecord, Peer, ScriptedServer

SENDER = "sender@client.test"
RECIPIENT = "rcpt@example.org"
MESSAGE = b"Subject: secure\r\n\r\nbody\r\n"
USERNAME = "user@client.test"
PASSWORD = "s3cret-Passw0rd-never-shown"
#: Every form the password takes on the wire: as typed, LOGIN's base64, PLAIN's base64 blob.
SECRET_FORMS = (
    PASSWORD,
    base64.b64encode(PASSWORD.encode()).decode(),
    base64.b64encode(f"\0{USERNAME}\0{PASSWORD}".encode()).decode(),
)
TIMEOUTS = Timeouts.uniform(2.0)


def connect(adapter: Adapter, server: ScriptedServer, **options: Any) -> Client:
    options.setdefault("local_hostname", "client.test")
    options.setdefault("timeout", TIMEOUTS)
    return adapter.connect(*server.address, **options)


def after(record: ConnectionRecord, marker: bytes) -> bytes:
    """What the server received after the first ``marker`` (which must be there)."""
    data = bytes(record.received)
    assert marker in data, data[:200]
    return data[data.index(marker) + len(marker) :]


def run_deliver(
    adapter: Adapter, relay: Relay, ssl_context: ssl.SSLContext | None = None
) -> DeliveryReport:
    """This adapter's ``deliver()`` through ``relay``, run to completion in a helper thread."""
    deliver = adapter.module.deliver
    session = SessionOptions(local_hostname="client.test", timeout=TIMEOUTS)
    options = {
        "relay": relay,
        "options": DeliveryOptions(session=session),
        "ssl_context": ssl_context,
    }
    result: list[DeliveryReport] = []
    errors: list[BaseException] = []

    async def run_async() -> DeliveryReport:
        report: DeliveryReport = await deliver(MESSAGE, SENDER, [RECIPIENT], **options)
        return report

    def target() -> None:
        try:
            if adapter.name == "blocking":
                result.append(deliver(MESSAGE, SENDER, [RECIPIENT], **options))
            elif adapter.name == "asyncio":
                result.append(asyncio.run(run_async()))
            else:
                result.append(trio.run(run_async))
        except BaseException as exc:  # handed to the test's thread
            errors.append(exc)

    thread = threading.Thread(target=target, name="deliver", daemon=True)
    thread.start()
    thread.join(10.0)
    assert not thread.is_alive(), "deliver() hung"
    if errors:
        raise errors[0]
    return result[0]


# -- certificate verification (S3, section 4) ----------------------------------------------------


def test_verification_is_on_by_default_section_4(adapter: Adapter) -> None:
    """Section 4 (RFC 8314, 7817): every entry point verifies unless told otherwise, uses
    STARTTLS by default, and never sends a password in cleartext by default (S8)."""
    client_class = adapter.module.SMTPClient
    for method in (client_class.connect, client_class.open):
        parameters = inspect.signature(method).parameters
        assert parameters["verify"].default is True
        assert parameters["tls"].default is TLSMode.STARTTLS
    assert (
        inspect.signature(client_class.authenticate).parameters["allow_cleartext"].default is False
    )
    relay = Relay("relay.example")
    assert relay.tls is TLSMode.STARTTLS
    assert relay.allow_cleartext_auth is False


@pytest.mark.parametrize("name", ["mail.example.com", "deep.sub.postfix.test"])
def test_reference_identity_is_the_configured_name_section_4(
    adapter: Adapter, tls_material: TLSMaterial, name: str
) -> None:
    """RFC 7817: the certificate is checked against ``server_hostname``, not the address
    connected to (which it does cover); a wildcard matches the leftmost label only (the good
    certificate has ``*.postfix.test``, not ``deep.sub.postfix.test``).  Nothing follows."""
    with (
        ScriptedServer(tls_context=tls_material.server_context()) as server,
        pytest.raises(TLSError),
    ):
        connect(
            adapter,
            server,
            tls=TLSMode.STARTTLS,
            server_hostname=name,
            ssl_context=tls_material.client_context(),
        )
    assert server.record.verbs == ["EHLO", "STARTTLS"]
    assert not server.record.tls
    assert server.record.sni == name  # SNI carries the configured name (RFC 8461 §7.1)


def test_verified_session_sends_sni_section_4(adapter: Adapter, tls_material: TLSMaterial) -> None:
    with (
        ScriptedServer(tls_context=tls_material.server_context()) as server,
        connect(
            adapter,
            server,
            tls=TLSMode.STARTTLS,
            server_hostname="mx1.test",
            ssl_context=tls_material.client_context(),
        ) as client,
    ):
        assert client.tls_verified
    assert server.record.sni == "mx1.test"
    assert server.record.tls


def _no_verification() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@pytest.mark.parametrize("weakness", ["no-certificate-check", "no-host-name-check"])
def test_a_context_that_does_not_verify_is_not_verified_TLS_S8(
    adapter: Adapter, tls_material: TLSMaterial, weakness: str
) -> None:
    """S8: credentials need *verified* TLS; a context that verifies nothing is not that."""
    cert: CertKind = "untrusted"
    context = _no_verification()
    if weakness == "no-host-name-check":
        context = tls_material.client_context()
        context.check_hostname = False
        cert = "wrong-name"
    with ScriptedServer(tls_context=tls_material.server_context(cert)) as server:
        try:
            client = connect(adapter, server, tls=TLSMode.STARTTLS, ssl_context=context)
        except (ValueError, TLSError):
            return  # refusing such a context outright is a fix too
        with client:
            assert not client.tls_verified
            with pytest.raises(CleartextAuthRefused):
                client.authenticate(USERNAME, PASSWORD)
    assert "AUTH" not in server.record.verbs


# -- STARTTLS stripping (S3) ----------------------------------------------------------------------


def test_starttls_454_quits_and_sends_nothing_else_S3(
    adapter: Adapter, tls_material: TLSMaterial
) -> None:
    """S3: TLS required, STARTTLS answered 454: TLSRequiredError, then QUIT and nothing else."""
    actions: dict[str, Action] = {"STARTTLS": b"454 4.7.0 TLS not available\r\n"}
    with (
        ScriptedServer(actions, tls_context=tls_material.server_context()) as server,
        pytest.raises(TLSRequiredError, match="454"),
    ):
        connect(adapter, server, tls=TLSMode.STARTTLS, ssl_context=tls_material.client_context())
    assert server.record.verbs == ["EHLO", "STARTTLS", "QUIT"]
    assert server.record.eof


def test_failed_handshake_sends_nothing_else_S3(
    adapter: Adapter, tls_material: TLSMaterial
) -> None:
    """S3: a server that answers the ClientHello with plaintext: TLSError, and after STARTTLS
    the wire holds the TLS handshake only — no QUIT, no EHLO, no AUTH in the clear."""

    def not_tls(peer: Peer) -> None:
        peer.receive()  # the ClientHello
        peer.send(b"500 5.5.1 this is not TLS\r\n")

    with (
        ScriptedServer({"HANDSHAKE": not_tls}, tls_context=tls_material.server_context()) as server,
        pytest.raises(TLSError),
    ):
        connect(adapter, server, tls=TLSMode.STARTTLS, ssl_context=tls_material.client_context())
    behind = after(server.record, b"STARTTLS\r\n")
    assert behind[:1] == b"\x16"  # a TLS handshake record: the ClientHello
    for verb in (b"EHLO", b"AUTH", b"MAIL", b"QUIT"):  # (the ClientHello is random enough)
        assert verb not in behind
    assert server.record.eof


def test_relay_without_starttls_never_sends_the_password_S3_S8(
    adapter: Adapter, tls_material: TLSMaterial
) -> None:
    """S3/S8, RFC 8314 §5.2: a relay that stops offering STARTTLS gets neither the credentials
    nor the message (no silent cleartext fallback); the recipient stays temporarily failed."""
    with ScriptedServer() as server:  # offers AUTH PLAIN LOGIN, and no STARTTLS
        report = run_deliver(
            adapter,
            Relay("127.0.0.1", server.address[1], username=USERNAME, password=PASSWORD),
            ssl_context=tls_material.client_context(),
        )
    (outcome,) = report.outcomes
    assert outcome.status == "temporary"
    assert server.record.verbs == ["EHLO", "QUIT"]
    wire = bytes(server.record.received).decode("latin-1")
    assert not any(secret in wire for secret in SECRET_FORMS)


# -- response injection (S4) and command injection (S5) -----------------------------------------


INJECTED = b"250-evil.test\r\n250 AUTH PLAIN\r\n"


def inject_with_the_220(peer: Peer) -> None:
    peer.send(b"220 2.0.0 go ahead\r\n" + INJECTED)


def inject_after_the_220(peer: Peer) -> None:
    """The injection arrives a moment later, while the client is in the handshake; the server
    then really does the handshake, and answers normally after it."""
    peer.send(b"220 2.0.0 go ahead\r\n")
    time.sleep(0.005)
    peer.send(INJECTED)
    if peer.start_tls():  # (if it fails, the server goes on to read until the client closes)
        while (line := peer.readline()) is not None:
            peer.record.commands.append(line[:-2])
            peer.send(peer.server.ehlo_reply(tls=True) if line[:4] == b"EHLO" else b"250 ok\r\n")


@pytest.mark.parametrize("mode", [TLSMode.STARTTLS, TLSMode.OPPORTUNISTIC])
def test_plaintext_after_the_220_is_never_parsed_S4(
    adapter: Adapter, tls_material: TLSMaterial, mode: TLSMode
) -> None:
    """S4: ``220 go`` and an injected EHLO reply in one packet: RemoteProtocolError carrying
    the injected bytes unparsed; the connection is dropped before any handshake or command."""
    with (
        ScriptedServer(
            {"STARTTLS": inject_with_the_220}, tls_context=tls_material.server_context()
        ) as server,
        pytest.raises(RemoteProtocolError) as caught,
    ):
        connect(adapter, server, tls=mode, ssl_context=tls_material.client_context())
    assert caught.value.line == INJECTED
    assert after(server.record, b"STARTTLS\r\n") == b""  # not even a ClientHello
    assert server.record.eof


def test_plaintext_during_the_handshake_is_never_parsed_S4(
    adapter: Adapter, tls_material: TLSMaterial
) -> None:
    """S4: injected plaintext that arrives once the handshake began is TLS garbage to the
    client: the session fails, and no SMTP command follows STARTTLS."""
    with (
        ScriptedServer(
            {"STARTTLS": inject_after_the_220}, tls_context=tls_material.server_context()
        ) as server,
        pytest.raises((TLSError, RemoteProtocolError)),
    ):
        connect(adapter, server, tls=TLSMode.STARTTLS, ssl_context=tls_material.client_context())
    assert server.record.verbs == ["EHLO", "STARTTLS"]
    assert server.record.eof


def test_nothing_is_sent_behind_starttls_S5(adapter: Adapter, tls_material: TLSMaterial) -> None:
    """S5: with PIPELINING offered, the client still sends nothing after STARTTLS until the
    220 (the server holds it back 0.2 s and watches), then EHLO again before AUTH and MAIL."""
    with (
        ScriptedServer(tls_context=tls_material.server_context(), starttls_grace=0.2) as server,
        connect(
            adapter, server, tls=TLSMode.STARTTLS, ssl_context=tls_material.client_context()
        ) as client,
    ):
        client.authenticate(USERNAME, PASSWORD)
        assert client.send_message(MESSAGE, SENDER, [RECIPIENT]).all_delivered
    assert server.record.behind_starttls == b""
    assert server.record.verbs[:4] == ["EHLO", "STARTTLS", "EHLO", "AUTH"]


# -- credentials (S8) ---------------------------------------------------------------------------


def test_no_password_over_unverified_tls_S8(adapter: Adapter, tls_material: TLSMaterial) -> None:
    """S8 (RFC 4954 §14): opportunistic TLS with an unverified certificate encrypts, but an
    impostor could be at the other end: the password is refused unless explicitly allowed."""
    with (
        ScriptedServer(tls_context=tls_material.server_context("untrusted")) as server,
        connect(adapter, server, tls=TLSMode.OPPORTUNISTIC, verify=False) as client,
    ):
        assert client.tls_active
        assert not client.tls_verified
        with pytest.raises(CleartextAuthRefused):
            client.authenticate(USERNAME, PASSWORD)
        client.authenticate(USERNAME, PASSWORD, allow_cleartext=True)
    assert server.record.verbs == ["EHLO", "STARTTLS", "EHLO", "AUTH", "QUIT"]


@pytest.mark.parametrize("allowed", [False, True])
def test_relay_cleartext_auth_only_with_opt_in_S8(adapter: Adapter, allowed: bool) -> None:
    """S8: a relay without TLS gets the password only with ``allow_cleartext_auth=True``;
    otherwise neither AUTH nor the message is sent."""
    with ScriptedServer() as server:
        relay = Relay(
            "127.0.0.1",
            server.address[1],
            username=USERNAME,
            password=PASSWORD,
            tls=TLSMode.NONE,
            allow_cleartext_auth=allowed,
        )
        report = run_deliver(adapter, relay)
    (outcome,) = report.outcomes
    wire = bytes(server.record.received).decode("latin-1")
    if allowed:
        assert outcome.status == "delivered"
        assert server.record.verbs[:2] == ["EHLO", "AUTH"]
    else:
        assert outcome.status != "delivered"
        assert "allow_cleartext" in outcome.detail  # the report says what would allow it
        assert server.record.verbs == ["EHLO", "QUIT"]
        assert not any(secret in wire for secret in SECRET_FORMS)


@pytest.fixture
def everything_logged(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every logger, at DEBUG (the transcript, asyncio's, trio's, ours)."""
    with caplog.at_level(logging.DEBUG):
        yield caplog


def _leaks(text: str) -> list[str]:
    return [form for form in SECRET_FORMS if form in text]


@pytest.mark.parametrize(
    ("mechanism", "refusal_step"), [("PLAIN", "AUTH"), ("LOGIN", "AUTH-RESPONSE")]
)
def test_password_never_in_logs_errors_reprs_or_reports_S8(
    adapter: Adapter,
    tls_material: TLSMaterial,
    everything_logged: pytest.LogCaptureFixture,
    mechanism: str,
    refusal_step: str,
) -> None:
    """S8: over verified TLS the password goes to the server (and only there); it is absent
    from every log record, the AuthenticationError (message, repr, traceback), the client's
    repr, a Relay's repr and the delivery report."""
    actions: dict[str, Action] = {refusal_step: b"535 5.7.8 authentication failed\r\n"}
    with ScriptedServer(
        actions, tls_context=tls_material.server_context(), auth=[mechanism]
    ) as server:
        with connect(
            adapter, server, tls=TLSMode.STARTTLS, ssl_context=tls_material.client_context()
        ) as client:
            with pytest.raises(AuthenticationError) as caught:
                client.authenticate(USERNAME, PASSWORD)
            reprs = [repr(client), repr(getattr(client, "raw", client))]
        relay = Relay("127.0.0.1", server.address[1], username=USERNAME, password=PASSWORD)
        report = run_deliver(adapter, relay, ssl_context=tls_material.client_context())
    # The secret did cross the (encrypted) wire, so the checks below are not vacuous.
    assert _leaks(bytes(server.connections[0].received).decode("latin-1"))
    error = caught.value
    assert error.code == 535
    texts = {
        "logs": everything_logged.text,
        "error": f"{error}\n{error!r}\n" + "".join(traceback.format_exception(error)),
        "reprs": "\n".join([*reprs, repr(relay), str(relay)]),
        "report": f"{report!r}\n" + json.dumps([o.to_dict() for o in report.outcomes]),
    }
    assert report.outcomes[0].status == "permanent"  # 535 is permanent: the report says so
    assert {where: _leaks(text) for where, text in texts.items()} == {where: [] for where in texts}


# -- CR/LF/NUL injection through public arguments (S1) --------------------------------------------


PAYLOADS = ["\r\nRSET", "\nRSET", "\rRSET", "\0RSET"]
Call = Callable[["Client", str], object]


@dataclass(frozen=True)
class Injection:
    """A public argument that reaches a command line: ``call`` puts the payload into it, after
    ``setup`` (a legitimate command the injected one would follow)."""

    call: Call
    setup: Callable[[Client], object] | None = None
    #: Payloads refused with ValueError; the others must be encoded so they cannot break a line.
    refused: tuple[str, ...] = tuple(PAYLOADS)


def _staged(client: Client) -> object:
    return client.create_message(SENDER)


INJECTIONS: dict[str, Injection] = {
    "send_message-sender": Injection(
        lambda c, p: c.send_message(MESSAGE, f"a{p}@client.test", [RECIPIENT])
    ),
    "send_message-recipient": Injection(
        lambda c, p: c.send_message(MESSAGE, SENDER, [f"r{p}@example.org"])
    ),
    "send_message-ret": Injection(
        lambda c, p: c.send_message(
            MESSAGE,
            SENDER,
            [RECIPIENT],
            options=SendOptions(ret=f"FULL{p}"),  # type: ignore[arg-type]
        )
    ),
    "send_message-notify": Injection(
        lambda c, p: c.send_message(
            MESSAGE,
            SENDER,
            [RECIPIENT],
            options=SendOptions(notify=(f"SUCCESS{p}",)),  # type: ignore[arg-type]
        )
    ),
    "create_message-sender": Injection(lambda c, p: c.create_message(f"a{p}@client.test")),
    "add_recipient": Injection(lambda c, p: c.add_recipient(f"r{p}@example.org"), _staged),
    "add_recipient-notify": Injection(
        lambda c, p: c.add_recipient(RECIPIENT, notify=[f"SUCCESS{p}"]), _staged
    ),
    "verify": Injection(lambda c, p: c.verify(f"someone{p}")),
    "authenticate-mechanism": Injection(
        lambda c, p: c.authenticate(USERNAME, PASSWORD, mechanism=f"PLAIN{p}", allow_cleartext=True)
    ),
    "authenticate-XOAUTH2-username": Injection(
        lambda c, p: c.authenticate(
            f"u{p}", token="bearer-token", mechanism="XOAUTH2", allow_cleartext=True
        )
    ),
    # Encoded: xtext for ESMTP parameters, base64 for SASL (PLAIN refuses only NUL, its
    # field separator).
    "send_message-envid": Injection(
        lambda c, p: c.send_message(
            MESSAGE, SENDER, [RECIPIENT], options=SendOptions(envid=f"e{p}")
        ),
        refused=(),
    ),
    "create_message-envid": Injection(
        lambda c, p: c.create_message(SENDER, options=SendOptions(envid=f"e{p}")), refused=()
    ),
    "add_recipient-orcpt": Injection(
        lambda c, p: c.add_recipient(RECIPIENT, orcpt=f"o{p}@example.org"), _staged, refused=()
    ),
    "authenticate-PLAIN-username": Injection(
        lambda c, p: c.authenticate(f"u{p}", PASSWORD, mechanism="PLAIN", allow_cleartext=True),
        refused=("\0RSET",),
    ),
    "authenticate-LOGIN-username": Injection(
        lambda c, p: c.authenticate(f"u{p}", PASSWORD, mechanism="LOGIN", allow_cleartext=True),
        refused=(),
    ),
}


def _injection_server() -> ScriptedServer:
    return ScriptedServer(extensions=["DSN", "8BITMIME"], auth=["PLAIN", "LOGIN", "XOAUTH2"])


def test_ehlo_name_injection_refused_before_connecting_S1(adapter: Adapter) -> None:
    """S1: a CR, LF or NUL in the EHLO name is a ValueError before any connection."""
    with _injection_server() as server:
        for payload in PAYLOADS:
            with pytest.raises(ValueError, match="forbidden character"):
                connect(adapter, server, tls=TLSMode.NONE, local_hostname=f"client{payload}.test")
    assert server.connections == []


@pytest.mark.parametrize("argument", list(INJECTIONS))
def test_injection_refused_before_a_byte_is_written_or_encoded_S1(
    adapter: Adapter, argument: str
) -> None:
    """S1: CR, LF or NUL in ``argument`` is either a ValueError before one octet of the
    command reaches the server (only the QUIT of leaving the session may follow), or encoded
    (xtext, base64) so that every line the server receives is one command — never the
    injected RSET."""
    injection = INJECTIONS[argument]
    marks: list[tuple[ConnectionRecord, int, bool]] = []
    with _injection_server() as server:
        for payload in PAYLOADS:
            client = connect(adapter, server, tls=TLSMode.NONE)
            if injection.setup is not None:
                injection.setup(client)
            client.noop()  # the server has recorded everything up to here
            record = server.connections[-1]
            refused = payload in injection.refused
            marks.append((record, len(record.received), refused))
            if refused:
                with pytest.raises(ValueError, match=r"forbidden|must|unsupported|NUL|control"):
                    injection.call(client, payload)
            else:
                injection.call(client, payload)
            client.disconnect()
    assert len(marks) == len(PAYLOADS)
    for record, mark, refused in marks:
        assert b"RSET" not in record.commands
        for line in record.commands:
            assert not any(char in line for char in (b"\r", b"\n", b"\0")), line
        if refused:
            assert bytes(record.received[mark:]) in (b"", b"QUIT\r\n"), bytes(record.received)


@pytest.mark.parametrize(
    "argument", [name for name, i in INJECTIONS.items() if name[:5] == "send_" and i.refused]
)
def test_refused_argument_leaves_the_session_usable_S1(adapter: Adapter, argument: str) -> None:
    with _injection_server() as server, connect(adapter, server, tls=TLSMode.NONE) as client:
        with pytest.raises(ValueError, match=r"forbidden|must"):
            INJECTIONS[argument].call(client, "\r\nRSET")
        client.noop()
    assert server.record.verbs == ["EHLO", "NOOP", "QUIT"]


# -- SMTP smuggling (S2) --------------------------------------------------------------------------


SMUGGLING_PAYLOADS = {
    "LF.LF": b"\n.\n",
    "CR.CR": b"\r.\r",
    "CRLF.LF": b"\r\n.\n",
    "LF.CRLF": b"\n.\r\n",
}
SMUGGLED_TRANSACTION = b"MAIL FROM:<evil@attacker.test>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\n"


def smuggling_body(payload: bytes) -> bytes:
    return (
        b"Subject: smuggling\r\n\r\nbefore"
        + payload
        + SMUGGLED_TRANSACTION
        + b"Subject: smuggled\r\n\r\nsmuggled"
        + payload
        + b"after\r\n"
    )


def _bare_line_ends(data: bytes) -> int:
    """How many CR not followed by LF, or LF not preceded by CR, ``data`` holds."""
    normalised = data.replace(b"\r\n", b"")
    return normalised.count(b"\r") + normalised.count(b"\n")


def send_in_pieces(client: Client, body: bytes) -> SendResult:
    """The staged API, appending 7 octets at a time: every payload is cut somewhere."""
    client.create_message(SENDER)
    client.add_recipient(RECIPIENT)
    for start in range(0, len(body), 7):
        client.append_message(body[start : start + 7])
    return client.close_message()


@pytest.mark.parametrize("transport", ["DATA", "BDAT", "staged-DATA"])
@pytest.mark.parametrize("payload", list(SMUGGLING_PAYLOADS))
def test_smuggling_never_makes_a_second_terminator_S2(
    adapter: Adapter, payload: str, transport: str
) -> None:
    """S2: with each smuggling payload in the body, the raw octets the server received hold
    exactly one end of data, at the end, no bare CR or LF at all, and one transaction."""
    body = smuggling_body(SMUGGLING_PAYLOADS[payload])
    with (
        ScriptedServer(chunking=transport == "BDAT") as server,
        connect(adapter, server, tls=TLSMode.NONE) as client,
    ):
        result = send_in_pieces(client, body) if transport == "staged-DATA" else None
        result = result or client.send_message(body, SENDER, [RECIPIENT])
        assert result.all_delivered
    record = server.record
    assert record.verbs == [
        "EHLO",
        "MAIL",
        "RCPT",
        "BDAT" if transport == "BDAT" else "DATA",
        "QUIT",
    ]
    (content,) = record.messages
    assert _bare_line_ends(content) == 0
    assert SMUGGLED_TRANSACTION in content  # the would-be commands stayed message text
    if transport != "BDAT":  # BDAT is framed by its length and never dot-stuffed (RFC 3030)
        (wire,) = record.data_wire
        assert wire.endswith(b"\r\n.\r\n")
        assert wire.count(b"\r\n.\r\n") == 1  # dot-stuffed: the only end of data is ours
        assert _bare_line_ends(wire) == 0


@pytest.mark.postfix
@pytest.mark.parametrize("transport", ["DATA", "BDAT"])
def test_smuggling_against_postfix_delivers_one_message_S2(
    adapter: Adapter, postfix_server: PostfixInstance, tls_material: TLSMaterial, transport: str
) -> None:
    """S2 end to end: Postfix (CHUNKING) receives every payload at once in one message, by
    ``BDAT LAST`` or by DATA (a chunk iterator has no size, so it goes by DATA), and the
    smuggled recipient gets nothing."""
    postfix_server.clear_mailboxes()
    smuggled = b"MAIL FROM:<evil@postfix.test>\r\nRCPT TO:<bob@postfix.test>\r\nDATA\r\n"
    body = (
        b"Subject: smuggling "
        + transport.encode()
        + b"\r\n\r\nstart"
        + b"".join(payload + smuggled for payload in SMUGGLING_PAYLOADS.values())
        + b"end\r\n"
    )
    message: Any = body if transport == "BDAT" else iter([body[:50], body[50:]])
    with adapter.connect(
        *postfix_server.address,
        tls=TLSMode.STARTTLS,
        server_hostname="mx.postfix.test",
        ssl_context=tls_material.client_context(),
        local_hostname="client.test",
    ) as client:
        assert client.extensions.chunking
        result = client.send_message(message, "sender@postfix.test", ["alice@postfix.test"])
    assert result.all_delivered
    (delivered,) = postfix_server.wait_for_messages("alice")
    assert delivered.count(b"RCPT TO:<bob@postfix.test>") == len(SMUGGLING_PAYLOADS)
    time.sleep(0.3)  # a smuggled message would be delivered about as fast as alice's
    assert postfix_server.messages("bob") == []
