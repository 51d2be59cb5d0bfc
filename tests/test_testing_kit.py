"""The testing kit (``smtpproto.testing``) does what its documentation says, for all three
adapters: replies whole or cut into pieces read the same, every TLS mode works with the
throwaway certificates, delays and resets happen, ``async with`` works under asyncio and trio,
the plugin's fixtures arrive through the entry point, and the strategies produce what they
promise (checked against the protocol machine).

The same behaviours hold for the servers that are tasks of the event loop
(:class:`AsyncioScriptedServer`, :class:`TrioScriptedServer`), each with the client of its
loop running in the same loop and no thread started.

The fault matrix (close, reset, stall, 421 at every step) is ``test_faults.py``; hostile
callables are ``test_hostile.py``.  Both run on the kit too.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpproto import (
    NEED_DATA,
    ClientConnection,
    ConnectionLostError,
    Ehlo,
    MailFrom,
    ProtocolError,
    Reply,
    ServiceClosing,
    SessionOptions,
    SMTPError,
    SMTPTimeoutError,
    TLSError,
    TLSMode,
)
from smtpproto.driver import Now, Operation

if TYPE_CHECKING:  # mypy knows testing/ as "testing" (package-dir mapping)
    from testing import (
        Answer,
        AsyncioScriptedServer,
        Chunked,
        ConnectionRecord,
        Delayed,
        Fault,
        Peer,
        ScriptedServer,
        TLSMaterial,
        TrioScriptedServer,
        reply,
    )
    from testing import strategies as kit
    from testing.plugin import ScriptedSMTPFactory
    from testing.script import run as script_run
    from testing.unsafe import UnsafeRawConnection
    from tests.adapters_harness import Adapter
else:
    from smtpproto.testing import (
        Answer,
        AsyncioScriptedServer,
        Chunked,
        ConnectionRecord,
        Delayed,
        Fault,
        Peer,
        ScriptedServer,
        TLSMaterial,
        TrioScriptedServer,
        reply,
    )
    from smtpproto.testing import strategies as kit
    from smtpproto.testing.plugin import ScriptedSMTPFactory
    from smtpproto.testing.script import run as script_run
    from smtpproto.testing.unsafe import UnsafeRawConnection

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples" / "testing"
MESSAGE = b"Subject: kit\r\n\r\nhello\r\n"
EHLO_REPLY = reply(250, "kit.test", "PIPELINING", "SIZE 1000", "8BITMIME", "SMTPUTF8")
OPTIONS: dict[str, Any] = {"local_hostname": "client.test", "timeout": 5.0}


def send_one(adapter: Adapter, server: ScriptedServer, **options: Any) -> int | None:
    """Send MESSAGE to two recipients; the SIZE the server advertised."""
    with adapter.connect(*server.address, tls=TLSMode.NONE, **{**OPTIONS, **options}) as client:
        result = client.send_message(MESSAGE, "a@client.test", ["b@example.org", "c@example.org"])
        assert [r.accepted for r in result.recipients] == [True, True]
        size: int | None = client.extensions.size
    return size


def check_one_message(record: ConnectionRecord) -> None:
    assert record.verbs == ["EHLO", "MAIL", "RCPT", "RCPT", "DATA", "QUIT"]
    assert record.messages == [MESSAGE]
    assert record.delivered
    assert record.eof


def cut_rules(pieces: str) -> dict[str, Any]:
    """A multi-line EHLO reply and a multi-line RCPT reply, ``whole``, ``bytewise`` or ``odd``."""
    rcpt = reply(250, "2.1.5 first line", "2.1.5 ok")
    if pieces == "bytewise":
        return {"EHLO": Chunked(EHLO_REPLY, pause=0.001), "RCPT": Chunked(rcpt, pause=0.001)}
    if pieces == "odd":
        return {
            "EHLO": Chunked(EHLO_REPLY, sizes=(3, 7, 1, 20), pause=0.002),
            "RCPT": Chunked(rcpt, sizes=(5, 2)),
        }
    return {"EHLO": EHLO_REPLY, "RCPT": rcpt}


@pytest.mark.parametrize("pieces", ["whole", "bytewise", "odd"])
def test_replies_cut_anywhere_read_the_same(
    adapter: Adapter, scripted_smtp: ScriptedSMTPFactory, pieces: str
) -> None:
    """A multi-line EHLO reply and two pipelined RCPT replies, sent whole, one octet at a time,
    or in odd-sized pieces: the client sees the same replies."""
    server = scripted_smtp(cut_rules(pieces))
    assert send_one(adapter, server) == 1000
    server.finish()
    check_one_message(server.record)


def test_answer_computes_the_reply_from_the_command(
    adapter: Adapter, scripted_smtp: ScriptedSMTPFactory
) -> None:
    def rcpt(line: bytes) -> bytes:
        return b"550 5.1.1 unknown\r\n" if b"<c@" in line else b"250 2.1.5 ok\r\n"

    server = scripted_smtp({"RCPT": Answer(rcpt)})
    with adapter.connect(*server.address, tls=TLSMode.NONE, **OPTIONS) as client:
        result = client.send_message(MESSAGE, "a@client.test", ["b@example.org", "c@example.org"])
    assert [r.accepted for r in result.recipients] == [True, False]
    server.finish()
    assert server.record.messages == [MESSAGE]


def test_chunked_cuts_as_asked() -> None:
    assert Chunked(b"abcdefg", sizes=(2, 1)).pieces() == [b"ab", b"c", b"d", b"e", b"f", b"g"]
    assert Chunked(b"abc", sizes=(5,)).pieces() == [b"abc"]
    with pytest.raises(ValueError, match="positive"):
        Chunked(b"x", sizes=(0,))


def test_reply_builds_single_multi_and_bare_replies() -> None:
    assert reply(250, "ok") == b"250 ok\r\n"
    assert reply(250, "a", "b") == b"250-a\r\n250 b\r\n"
    assert reply(354) == b"354\r\n"


@pytest.mark.parametrize("tls", ["none", "starttls", "implicit"])
def test_every_tls_mode_with_throwaway_certificates(
    adapter: Adapter,
    scripted_smtp: ScriptedSMTPFactory,
    smtp_certificates: TLSMaterial,
    tls: Literal["none", "starttls", "implicit"],
) -> None:
    server = scripted_smtp(tls=tls)
    mode = {"none": TLSMode.NONE, "starttls": TLSMode.STARTTLS, "implicit": TLSMode.IMPLICIT}[tls]
    with adapter.connect(
        *server.address,
        tls=mode,
        server_hostname="localhost",
        ssl_context=smtp_certificates.client_context(),
        **OPTIONS,
    ) as client:
        client.send_message(MESSAGE, "a@client.test", ["b@example.org"])
        assert client.tls_verified is (tls != "none")
    server.finish()
    record = server.record
    assert record.tls is (tls != "none")
    assert record.sni == ("localhost" if tls != "none" else None)
    assert record.messages == [MESSAGE]
    hellos = ["EHLO", "STARTTLS", "EHLO"] if tls == "starttls" else ["EHLO"]
    assert record.verbs[: len(hellos)] == hellos


def test_untrusted_certificate_fails_verification(
    scripted_smtp: ScriptedSMTPFactory, smtp_certificates: TLSMaterial
) -> None:
    """The other certificate kinds exist to fail: the server records the failed handshake."""
    server = scripted_smtp(tls="implicit", certificate="untrusted")
    context = smtp_certificates.client_context()
    with pytest.raises(OSError, match="CERTIFICATE_VERIFY_FAILED"):
        UnsafeRawConnection.open(*server.address, tls_context=context, server_hostname="localhost")
    server.finish()
    assert server.record.handshake_error is not None
    assert not server.record.tls


def test_implicit_tls_needs_a_context() -> None:
    with pytest.raises(ValueError, match="tls_context"):
        ScriptedServer(implicit_tls=True)


def test_delayed_reply_arrives_late_but_whole(
    adapter: Adapter, scripted_smtp: ScriptedSMTPFactory
) -> None:
    server = scripted_smtp({"MAIL": Delayed(0.2, b"250 2.1.0 late but fine\r\n")})
    send_one(adapter, server)
    server.finish()
    check_one_message(server.record)


def test_delay_longer_than_the_timeout_is_a_timeout(
    adapter: Adapter, scripted_smtp: ScriptedSMTPFactory
) -> None:
    """A Delayed rule is how a test makes a client's timeout fire (cut short at finish)."""
    server = scripted_smtp({"DATA": Delayed(30, b"354 go ahead\r\n")})
    with pytest.raises(SMTPTimeoutError):
        send_one(adapter, server, timeout=0.3)
    server.finish()
    assert server.record.steps[-1] == "DATA"


def test_raw_connection_reads_multi_line_and_tolerates_bare_lf() -> None:
    with (
        ScriptedServer({"EHLO": b"250-a\n250-b\r\n250 c\r\n"}) as server,
        UnsafeRawConnection.open(*server.address, timeout=5) as raw,
    ):
        greeting = raw.read_reply()
        assert greeting is not None
        assert greeting.code == 220
        raw.send_unchecked(b"EHLO x\r\nNOOP\r\n")
        ehlo = raw.read_reply()
        assert ehlo is not None
        assert (ehlo.code, ehlo.lines) == (250, (b"250-a", b"250-b", b"250 c"))
        assert str(raw.read_reply()) == "250 2.0.0 ok"
        assert raw.read_available(0.05) == b""
        raw.send_unchecked(b"QUIT\r\n")
        assert raw.read_reply() is not None
        assert raw.read_reply(timeout=1) is None  # closed
    assert server.record.commands == [b"EHLO x", b"NOOP", b"QUIT"]


def async_send(module: str, server: ScriptedServer) -> object:
    """A coroutine function sending one message with ``module``'s client inside the server's
    ``async with``."""
    client_module = __import__(f"smtpproto.adapters.{module}", fromlist=["SMTPClient"])

    async def main() -> None:
        async with (
            server,
            await client_module.SMTPClient.connect(
                *server.address, tls=TLSMode.NONE, options=SessionOptions(timeout=5.0)
            ) as client,
        ):
            await client.send_message(MESSAGE, "a@client.test", ["b@example.org"])
        # Leaving ``async with`` waited for the connection's thread, off the event loop.
        assert server.record.eof

    return main


def test_async_with_under_asyncio() -> None:
    server = ScriptedServer()
    asyncio.run(async_send("asyncio", server)())  # type: ignore[operator]
    assert server.record.messages == [MESSAGE]


def test_async_with_under_trio() -> None:
    server = ScriptedServer()
    trio.run(async_send("trio", server))  # type: ignore[arg-type]
    assert server.record.messages == [MESSAGE]


def test_finish_reports_a_connection_still_served() -> None:
    server = ScriptedServer()
    with UnsafeRawConnection.open(*server.address) as raw:
        assert raw.read_reply() is not None
        with pytest.raises(RuntimeError, match="still running"):
            server.finish(timeout=0.2)  # the client neither speaks nor closes
    server.finish()
    assert server.record.eof


def test_record_needs_exactly_one_connection() -> None:
    with ScriptedServer() as server, pytest.raises(LookupError, match="0 connections"):
        server.record  # noqa: B018 -- the property raises


def test_the_documented_pytest_examples_pass_through_the_entry_point(tmp_path: Path) -> None:
    """docs/testing.rst's worked examples (one per adapter), copied into a project of their own
    with no conftest: the fixtures come from the installed plugin, as for a user."""
    for example in EXAMPLES.glob("test_kit_*.py"):
        shutil.copy(example, tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 passed" in done.stdout, done.stdout


# -- the servers that are tasks of the event loop -------------------------------------------------

Loop = Literal["asyncio", "trio"]
LoopServer = AsyncioScriptedServer | TrioScriptedServer
LOOPS: list[Loop] = ["asyncio", "trio"]
LOOP_OPTIONS = SessionOptions(local_hostname="client.test", timeout=5.0)


def loop_server(loop: Loop, rules: dict[str, Any] | None = None, **options: Any) -> LoopServer:
    kind = AsyncioScriptedServer if loop == "asyncio" else TrioScriptedServer
    return kind(rules, **options)


def run_in(loop: Loop, main: Callable[[], Awaitable[None]]) -> None:
    if loop == "asyncio":
        asyncio.run(main())  # type: ignore[arg-type]
    else:
        trio.run(main)


def loop_client(loop: Loop, server: LoopServer, **options: Any) -> Any:
    """The connecting client of ``loop``'s adapter (``async with`` it)."""
    module = __import__(f"smtpproto.adapters.{loop}", fromlist=["SMTPClient"])
    options.setdefault("tls", TLSMode.NONE)
    options.setdefault("options", LOOP_OPTIONS)
    return module.SMTPClient.connect(*server.address, **options)


def serve_one(loop: Loop, server: LoopServer, **options: Any) -> int | None:
    """Send MESSAGE to two recipients inside ``async with server``, in one event loop, and
    check that neither the server's accepting nor its dialogue started a thread; the SIZE the
    server advertised."""
    sizes: list[int | None] = []

    async def main() -> None:
        threads = threading.active_count()
        async with server, loop_client(loop, server, **options) as client:
            # Greeting, EHLO and any handshake are over: all served by tasks of this loop.
            assert threading.active_count() == threads, threading.enumerate()
            result = await client.send_message(
                MESSAGE, "a@client.test", ["b@example.org", "c@example.org"]
            )
            assert [r.accepted for r in result.recipients] == [True, True]
            sizes.append(client.extensions.size)
        assert server.record.eof  # leaving the block waited for the connection's task

    run_in(loop, main)
    return sizes[0]


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("pieces", ["whole", "bytewise", "odd"])
def test_loop_server_replies_cut_anywhere_read_the_same(loop: Loop, pieces: str) -> None:
    server = loop_server(loop, cut_rules(pieces))
    assert serve_one(loop, server) == 1000
    check_one_message(server.record)


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("tls", ["none", "starttls", "implicit"])
def test_loop_server_every_tls_mode(
    loop: Loop, tls: Literal["none", "starttls", "implicit"], smtp_certificates: TLSMaterial
) -> None:
    options: dict[str, Any] = {}
    if tls != "none":
        options = {"tls_context": smtp_certificates.server_context()}
        options["implicit_tls"] = tls == "implicit"
    server = loop_server(loop, chunking=True, **options)
    mode = {"none": TLSMode.NONE, "starttls": TLSMode.STARTTLS, "implicit": TLSMode.IMPLICIT}[tls]
    context = smtp_certificates.client_context()
    serve_one(loop, server, tls=mode, server_hostname="localhost", ssl_context=context)
    record = server.record
    assert record.tls is (tls != "none")
    assert record.sni == ("localhost" if tls != "none" else None)
    hellos = ["EHLO", "STARTTLS", "EHLO"] if tls == "starttls" else ["EHLO"]
    assert record.verbs == [*hellos, "MAIL", "RCPT", "RCPT", "BDAT", "QUIT"]
    assert record.messages == [MESSAGE]
    assert record.errors == []


@pytest.mark.parametrize("loop", LOOPS)
def test_loop_server_records_a_failed_handshake(loop: Loop, smtp_certificates: TLSMaterial) -> None:
    server = loop_server(
        loop, tls_context=smtp_certificates.server_context("untrusted"), implicit_tls=True
    )
    context = smtp_certificates.client_context()

    async def main() -> None:
        async with server:
            with pytest.raises(TLSError, match="CERTIFICATE_VERIFY_FAILED"):
                await loop_client(
                    loop,
                    server,
                    tls=TLSMode.IMPLICIT,
                    server_hostname="localhost",
                    ssl_context=context,
                )

    run_in(loop, main)
    assert server.record.handshake_error is not None
    assert not server.record.tls
    assert server.record.steps == []
    # trio runs the SNI callback in the connection's task; asyncio in a transport callback,
    # where a failed handshake leaves nothing to find the name by.
    assert server.record.sni == ("localhost" if loop == "trio" else None)


@pytest.mark.parametrize("loop", LOOPS)
def test_loop_server_delays_on_the_loop(loop: Loop) -> None:
    """A delay is the loop's sleep: the client, in the same loop, times out while it runs,
    and leaving the block cuts the rest short."""
    server = loop_server(loop, {"MAIL": Delayed(0.2, b"250 2.1.0 late\r\n")})
    serve_one(loop, server)
    check_one_message(server.record)

    slow = loop_server(loop, {"DATA": Delayed(30, b"354 go ahead\r\n")})

    async def main() -> None:
        async with slow, loop_client(loop, slow, options=SessionOptions(timeout=0.3)) as client:
            with pytest.raises(SMTPTimeoutError):
                await client.send_message(MESSAGE, "a@client.test", ["b@example.org"])

    run_in(loop, main)  # would take 30 s if the delay were not cut short
    assert slow.record.steps[-1] == "DATA"


FAULT_ERRORS = {
    Fault.CLOSE: ConnectionLostError,
    Fault.RESET: ConnectionLostError,
    Fault.STALL: SMTPTimeoutError,
    Fault.SERVICE_CLOSING: ServiceClosing,
}


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("fault", list(Fault))
def test_loop_server_faults(loop: Loop, fault: Fault) -> None:
    server = loop_server(loop, {"DATA": fault})

    async def main() -> None:
        async with server, loop_client(loop, server, options=SessionOptions(timeout=0.5)) as c:
            with pytest.raises(FAULT_ERRORS[fault]):
                await c.send_message(MESSAGE, "a@client.test", ["b@example.org"])

    run_in(loop, main)
    record = server.record
    assert record.fault == ("DATA", fault)
    assert not record.delivered
    assert record.received.endswith(b"DATA\r\n")


@pytest.mark.parametrize("loop", LOOPS)
def test_loop_server_refuses_a_callable_action_in_the_record(loop: Loop) -> None:
    def hostile(peer: Peer) -> None:  # pragma: no cover -- a loop server never calls it
        peer.send(b"garbage\r\n")

    server = loop_server(loop, {"GREETING": hostile})

    async def main() -> None:
        async with server:
            with pytest.raises(ConnectionLostError):
                await loop_client(loop, server)

    run_in(loop, main)
    assert "threaded ScriptedServer" in server.record.errors[-1]


@pytest.mark.parametrize("loop", LOOPS)
def test_loop_server_reports_a_connection_still_served(loop: Loop) -> None:
    server = loop_server(loop)
    server.finish_timeout = 0.2

    async def main() -> None:
        with pytest.raises(RuntimeError, match="still running"):
            async with server:
                client = await loop_client(loop, server)  # kept open: the server waits
        with contextlib.suppress(SMTPError):  # the server gave up on the connection
            await client.disconnect()

    run_in(loop, main)
    assert server.record.verbs == ["EHLO"]


def test_the_trio_server_is_imported_when_asked_for() -> None:
    import smtpproto.testing as kit_package  # noqa: PLC0415

    assert kit_package.TrioScriptedServer is TrioScriptedServer
    with pytest.raises(AttributeError, match="NoSuchServer"):
        kit_package.NoSuchServer  # noqa: B018 -- the lookup raises


# -- the strategies, checked against the protocol machine ----------------------------------------


def ready_connection() -> ClientConnection:
    conn = ClientConnection(local_hostname="client.test")
    conn.receive_data(b"220 mx ESMTP\r\n")
    assert isinstance(conn.next_event(), Reply)
    conn.send(Ehlo())
    conn.receive_data(b"250-mx\r\n250 PIPELINING\r\n")
    assert isinstance(conn.next_event(), Reply)
    return conn


@settings(max_examples=150)
@given(st.data())
def test_well_formed_and_edge_replies_parse_whole_and_cut(data: st.DataObject) -> None:
    codes = st.integers(200, 299) | st.integers(500, 599)  # what EHLO may be answered with
    wire = data.draw(kit.replies(codes) | kit.edge_replies(codes))
    pieces = data.draw(kit.cuts(wire))
    assert b"".join(pieces) == wire
    assert all(pieces)
    for feed in ([wire], pieces):
        conn = ready_connection()
        conn.send(Ehlo())
        for piece in feed:
            conn.receive_data(piece)
        event = conn.next_event()
        assert isinstance(event, Reply), event
        assert event.code == int(wire[:3])
        assert conn.next_event() is NEED_DATA


@settings(max_examples=150)
@given(kit.hostile_replies())
def test_hostile_replies_give_replies_or_a_protocol_error(wire: bytes) -> None:
    conn = ready_connection()
    conn.send(Ehlo())
    try:
        conn.receive_data(wire)
        for _ in range(10):
            event = conn.next_event()
            if event is NEED_DATA:
                break
    except ProtocolError:
        pass


@given(kit.reply_sequences())
def test_reply_sequences_are_well_formed_replies(sequence: list[bytes]) -> None:
    assert sequence
    assert all(r.endswith(b"\r\n") and r[:1] in b"2345" for r in sequence)


@given(kit.addresses(smtputf8=True))
def test_addresses_are_accepted(address: str) -> None:
    MailFrom(address)


@given(kit.hostile_addresses())
def test_hostile_addresses_are_refused_before_sending(address: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 -- the message names the character
        MailFrom(address)


def test_script_answers_the_time_only_when_given() -> None:
    """``run(..., now=)`` answers ``Now``; without it the script fails, naming the keyword."""

    def asks_the_time() -> Operation[float]:
        now: float = yield Now()
        return now

    assert script_run(asks_the_time(), [], now=12.5) == 12.5
    with pytest.raises(AssertionError, match="now="):
        script_run(asks_the_time(), [])
