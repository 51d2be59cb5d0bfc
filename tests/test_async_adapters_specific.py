"""What only the asyncio and trio adapters have: ``connect()`` as an awaitable and as an
``async with`` target, cancellation, and the default name looked up off the event loop.

The scenarios shared with the blocking adapter live in ``tests/test_adapters_*.py``.  Each test
here is written once against a :class:`Kit` and run under asyncio (``asyncio.run``) and trio
(pytest-trio).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pytest
import trio

from smtpproto import (
    ConnectError,
    ConnectionLostError,
    SessionOptions,
    SMTPError,
    SMTPTimeoutError,
    Timeouts,
    TLSError,
    TLSMode,
)
from smtpproto.driver import Send
from tests.servers.fixtures import SMTPServerFactory
from tests.servers.tls import TLSMaterial, make_tls_material

if TYPE_CHECKING:  # mypy knows adapters/ as "adapters" (package-dir mapping)
    import adapters.asyncio as asyncio_adapter
    import adapters.trio as trio_adapter
else:
    import smtpproto.adapters.asyncio as asyncio_adapter
    import smtpproto.adapters.trio as trio_adapter

# A socket left for the garbage collector to close (ResourceWarning in __del__) fails the test:
# every path here must close its connection itself.
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")

MESSAGE = b"Subject: hi\r\n\r\nhello\r\n"
EOF_WAIT = 5.0


@dataclass(frozen=True)
class Kit:
    """One adapter module and the event loop's primitives the scenarios need."""

    module: Any
    sleep: Callable[[float], Awaitable[None]]
    #: Runs the awaitable under an outer deadline; True when that deadline cancelled it.
    cancel_after: Callable[[float, Awaitable[Any]], Awaitable[bool]]
    #: Runs a blocking call (``function, *args``) in a worker thread while the loop goes on.
    in_thread: Callable[..., Awaitable[Any]]


async def _asyncio_cancel_after(seconds: float, awaitable: Awaitable[Any]) -> bool:
    try:
        await asyncio.wait_for(awaitable, seconds)
    except TimeoutError:
        return True
    return False


async def _trio_cancel_after(seconds: float, awaitable: Awaitable[Any]) -> bool:
    with trio.move_on_after(seconds) as scope:
        await awaitable
    return scope.cancelled_caught


ASYNCIO = Kit(asyncio_adapter, asyncio.sleep, _asyncio_cancel_after, asyncio.to_thread)
TRIO = Kit(trio_adapter, trio.sleep, _trio_cancel_after, trio.to_thread.run_sync)


class RawServer:
    """A one-connection loopback server: answers commands from a table until the command named
    ``silent_after``, answers that one too, then ``then``: ``"drain"`` reads on without
    answering, ``"stall"`` stops reading, ``"reset"`` resets the connection.  Records the command
    lines, and whether the client closed the connection (EOF)."""

    REPLIES: ClassVar[dict[str, bytes]] = {
        "EHLO": b"250-raw.test\r\n250-STARTTLS\r\n250 8BITMIME\r\n",
        "STARTTLS": b"220 go ahead\r\n",
        "DATA": b"354 go ahead\r\n",
        "QUIT": b"221 bye\r\n",
    }

    def __init__(
        self,
        silent_after: str | None = None,
        then: str = "drain",
        replies: dict[str, bytes] | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.silent_after = silent_after
        self.then = then
        self.replies = {**self.REPLIES, **(replies or {})}
        #: With a server context, a 220 to STARTTLS is followed by a real handshake.
        self.tls = tls
        self.lines: list[bytes] = []
        self.closed_by_client = threading.Event()
        self._stopping = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        self._thread = threading.Thread(target=self._serve, name="raw-server", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        connection, _ = self._listener.accept()
        reader = connection.makefile("rb")
        try:
            connection.sendall(b"220 raw.test ESMTP\r\n")
            while line := reader.readline():
                self.lines.append(line)
                verb = line.split(b" ", 1)[0].strip().upper().decode("ascii", "replace")
                connection.sendall(self.replies.get(verb, b"250 ok\r\n"))
                if verb == self.silent_after:
                    self._go_silent(connection, reader)
                    return
                if verb == "STARTTLS" and self.tls is not None:
                    reader.close()
                    connection = self.tls.wrap_socket(connection, server_side=True)
                    reader = connection.makefile("rb")
            self.closed_by_client.set()
        finally:
            reader.close()
            connection.close()

    def _go_silent(self, connection: socket.socket, reader: Any) -> None:
        if self.then == "reset":  # linger 0: close() sends RST
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif self.then == "stall":
            self._stopping.wait(EOF_WAIT)
        else:
            while reader.read1(1 << 16):  # message data or a TLS ClientHello: ignored
                pass
            self.closed_by_client.set()

    @property
    def verbs(self) -> list[str]:
        return [line.split(b" ", 1)[0].strip().decode("ascii", "replace") for line in self.lines]

    def stop(self) -> None:
        self._stopping.set()
        self._listener.close()
        self._thread.join(EOF_WAIT)


@pytest.fixture
def raw_servers() -> Iterator[Callable[..., RawServer]]:
    servers: list[RawServer] = []

    def start(
        silent_after: str | None = None,
        then: str = "drain",
        replies: dict[str, bytes] | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> RawServer:
        servers.append(RawServer(silent_after, then, replies, tls))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


async def server_saw_the_close(kit: Kit, server: RawServer) -> bool:
    """Whether the server sees the client's close within ``EOF_WAIT``, waited for as an
    application would: with its event loop running.  asyncio closes an aborted transport's socket
    on the loop's next iteration, so a blocking wait here would stop the very close it waits for.
    """
    return bool(await kit.in_thread(server.closed_by_client.wait, EOF_WAIT))


def read_until_eof(listener: socket.socket) -> None:
    """Accept the connection waiting on ``listener`` and read until the client closes it."""
    listener.settimeout(EOF_WAIT)
    connection, _ = listener.accept()
    with connection:
        connection.settimeout(EOF_WAIT)
        while connection.recv(1 << 16):  # the ClientHello, then EOF
            pass


def endless_body() -> Iterator[bytes]:
    """Message content that never ends, so only cancellation can stop the send."""
    yield b"Subject: endless\r\n\r\n"
    while True:
        yield b"x" * 998 + b"\r\n"


# -- connect(): awaitable and async context manager ------------------------------------------


async def connect_forms(kit: Kit, factory: SMTPServerFactory, tls: TLSMaterial) -> None:
    server = factory(starttls="offer")
    context = tls.client_context()
    async with kit.module.SMTPClient.connect(
        server.host, server.port, ssl_context=context, local_hostname="me.test"
    ) as client:
        assert client.tls_active and client.tls_verified
        await client.send_message(MESSAGE, "a@example.org", ["b@example.org"])
    client = await kit.module.SMTPClient.connect(
        server.host, server.port, ssl_context=context, local_hostname="me.test"
    )
    assert (await client.noop()).code == 250
    await client.disconnect()
    await client.disconnect()  # a second call does nothing
    verbs = [record.verbs for record in server.connections]
    assert verbs == [
        ["EHLO", "STARTTLS", "EHLO", "MAIL", "RCPT", "DATA", "QUIT"],
        ["EHLO", "STARTTLS", "EHLO", "NOOP", "QUIT"],
    ]


def test_connect_awaitable_and_context_manager_asyncio_C14(
    smtp_server_factory: SMTPServerFactory, tls_material: TLSMaterial
) -> None:
    """``await connect()`` and ``async with connect()``; leaving the block QUITs (C14)."""
    asyncio.run(connect_forms(ASYNCIO, smtp_server_factory, tls_material))


@pytest.mark.trio
async def test_connect_awaitable_and_context_manager_trio_C14(
    smtp_server_factory: SMTPServerFactory, tls_material: TLSMaterial
) -> None:
    """``await connect()`` and ``async with connect()``; leaving the block QUITs (C14)."""
    await connect_forms(TRIO, smtp_server_factory, tls_material)


# -- cancellation -----------------------------------------------------------------------------


async def cancel_mid_send(kit: Kit, server: RawServer) -> None:
    client = await kit.module.SMTPClient.connect(
        *server.address, tls=TLSMode.NONE, local_hostname="me.test"
    )
    send = client.send_message(endless_body(), "a@example.org", ["b@example.org"])
    assert await kit.cancel_after(0.3, send)
    assert await server_saw_the_close(kit, server)
    with pytest.raises(SMTPError):  # the session is gone, never silently reused
        await client.noop()
    await client.disconnect()  # nothing left to do, and no error


def test_cancel_mid_send_closes_the_connection_asyncio(
    raw_servers: Callable[..., RawServer],
) -> None:
    """Cancelled while streaming a message: the connection is closed at once, without QUIT.
    (asyncio's drain() does not yield while the buffer is low: the adapter must, or an endless
    send to a fast reader would starve the loop and never see the cancellation.)"""
    server = raw_servers(silent_after="DATA")
    asyncio.run(cancel_mid_send(ASYNCIO, server))
    assert server.verbs == ["EHLO", "MAIL", "RCPT", "DATA"]


@pytest.mark.trio
async def test_cancel_mid_send_closes_the_connection_trio(
    raw_servers: Callable[..., RawServer],
) -> None:
    """Cancelled while streaming a message: the connection is closed at once, without QUIT."""
    server = raw_servers(silent_after="DATA")
    await cancel_mid_send(TRIO, server)
    assert server.verbs == ["EHLO", "MAIL", "RCPT", "DATA"]


async def cancel_in_block(kit: Kit, server: RawServer) -> None:
    async def session() -> None:
        async with kit.module.SMTPClient.connect(
            *server.address, tls=TLSMode.NONE, local_hostname="me.test"
        ) as client:
            await client.noop()
            await kit.sleep(30)

    assert await kit.cancel_after(0.3, session())
    assert await server_saw_the_close(kit, server)


def test_cancel_inside_async_with_skips_quit_asyncio(
    raw_servers: Callable[..., RawServer],
) -> None:
    """Leaving ``async with`` because of a cancellation closes without QUIT."""
    server = raw_servers()
    asyncio.run(cancel_in_block(ASYNCIO, server))
    assert server.verbs == ["EHLO", "NOOP"]


@pytest.mark.trio
async def test_cancel_inside_async_with_skips_quit_trio(
    raw_servers: Callable[..., RawServer],
) -> None:
    """Leaving ``async with`` because of a cancellation closes without QUIT."""
    server = raw_servers()
    await cancel_in_block(TRIO, server)
    assert server.verbs == ["EHLO", "NOOP"]


async def cancel_mid_handshake(kit: Kit, server: RawServer) -> None:
    connecting = kit.module.SMTPClient.connect(
        *server.address, tls=TLSMode.STARTTLS, local_hostname="me.test"
    )
    assert await kit.cancel_after(0.3, connecting)
    assert await server_saw_the_close(kit, server)


def test_cancel_mid_starttls_handshake_closes_the_connection_asyncio(
    raw_servers: Callable[..., RawServer],
) -> None:
    """A server that says 220 to STARTTLS and never answers the ClientHello: cancelling the
    handshake still closes the connection (it is not yet the client's current stream)."""
    server = raw_servers(silent_after="STARTTLS")
    asyncio.run(cancel_mid_handshake(ASYNCIO, server))
    assert server.verbs == ["EHLO", "STARTTLS"]


@pytest.mark.trio
async def test_cancel_mid_starttls_handshake_closes_the_connection_trio(
    raw_servers: Callable[..., RawServer],
) -> None:
    """A server that says 220 to STARTTLS and never answers the ClientHello: cancelling the
    handshake still closes the connection (it is not yet the client's current stream)."""
    server = raw_servers(silent_after="STARTTLS")
    await cancel_mid_handshake(TRIO, server)
    assert server.verbs == ["EHLO", "STARTTLS"]


async def cancel_mid_implicit_handshake(kit: Kit) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # the kernel accepts; nobody speaks
        connecting = kit.module.SMTPClient.connect(
            *silent.getsockname()[:2], tls=TLSMode.IMPLICIT, local_hostname="me.test"
        )
        assert await kit.cancel_after(0.3, connecting)
        await kit.in_thread(read_until_eof, silent)


def test_cancel_mid_implicit_tls_handshake_closes_the_connection_asyncio() -> None:
    """Cancelled while the implicit-TLS handshake waits for the server: the socket is closed."""
    asyncio.run(cancel_mid_implicit_handshake(ASYNCIO))


@pytest.mark.trio
async def test_cancel_mid_implicit_tls_handshake_closes_the_connection_trio() -> None:
    """Cancelled while the implicit-TLS handshake waits for the server: the socket is closed."""
    await cancel_mid_implicit_handshake(TRIO)


# -- the default local name -------------------------------------------------------------------


async def default_name(kit: Kit, server: RawServer) -> None:
    async with kit.module.SMTPClient.connect(*server.address, tls=TLSMode.NONE):
        pass


def test_default_local_hostname_is_the_fqdn_asyncio_G5(
    raw_servers: Callable[..., RawServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ``local_hostname``, EHLO names ``socket.getfqdn()`` (looked up off the loop)."""
    monkeypatch.setattr(socket, "getfqdn", lambda: "client.fqdn.test")
    server = raw_servers()
    asyncio.run(default_name(ASYNCIO, server))
    assert server.lines[0] == b"EHLO client.fqdn.test\r\n"


@pytest.mark.trio
async def test_default_local_hostname_is_the_fqdn_trio_G5(
    raw_servers: Callable[..., RawServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ``local_hostname``, EHLO names ``socket.getfqdn()`` (looked up in a thread)."""
    monkeypatch.setattr(socket, "getfqdn", lambda: "client.fqdn.test")
    server = raw_servers()
    await default_name(TRIO, server)
    assert server.lines[0] == b"EHLO client.fqdn.test\r\n"


# -- asyncio on Python 3.10 -------------------------------------------------------------------


# -- how the async drivers map I/O failures (their code differs from the blocking adapter's) --

Scenario = Callable[[Kit, Callable[..., RawServer], pytest.MonkeyPatch], Coroutine[Any, Any, None]]


async def reply_lost_to_a_reset_C16(
    kit: Kit, raw_servers: Callable[..., RawServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server resets the connection instead of answering: ConnectionLostError (C16)."""
    server = raw_servers(silent_after="NOOP", then="reset", replies={"NOOP": b""})
    client = await kit.module.SMTPClient.connect(
        *server.address, tls=TLSMode.NONE, local_hostname="me.test"
    )
    with pytest.raises(ConnectionLostError) as caught:
        await client.noop()
    assert caught.value.phase == "NOOP"


async def write_after_a_reset_C16(
    kit: Kit, raw_servers: Callable[..., RawServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writing to a connection the server has reset: ConnectionLostError (C16)."""
    server = raw_servers(silent_after="EHLO", then="reset")
    client = await kit.module.SMTPClient.connect(
        *server.address, tls=TLSMode.NONE, local_hostname="me.test"
    )
    await kit.sleep(0.2)  # the reset arrives
    with pytest.raises(ConnectionLostError) as caught:
        await client.noop()
    assert caught.value.phase == "NOOP"


async def write_timeout_C17(
    kit: Kit, raw_servers: Callable[..., RawServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that stops reading mid-message: the data block's timeout ends the send (C17)."""
    server = raw_servers(silent_after="DATA", then="stall")
    client = await kit.module.SMTPClient.connect(
        *server.address,
        tls=TLSMode.NONE,
        local_hostname="me.test",
        timeout=Timeouts(data_block=0.3),
    )
    with pytest.raises(SMTPTimeoutError) as caught:
        await client.send_message(endless_body(), "a@example.org", ["b@example.org"])
    assert caught.value.timeout == 0.3


async def handshake_timeout_C17(
    kit: Kit, raw_servers: Callable[..., RawServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server never answers the ClientHello: SMTPTimeoutError for the handshake (C17)."""
    server = raw_servers(silent_after="STARTTLS")
    with pytest.raises(SMTPTimeoutError) as caught:
        await kit.module.SMTPClient.connect(
            *server.address, local_hostname="me.test", timeout=Timeouts(command=0.3)
        )
    assert caught.value.phase == "TLS handshake"


async def handshake_reset_S3(
    kit: Kit, raw_servers: Callable[..., RawServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reset during the STARTTLS handshake: the session ends, nothing more is sent (S3)."""
    server = raw_servers(silent_after="STARTTLS", then="reset")
    with pytest.raises((ConnectionLostError, TLSError)) as caught:
        await kit.module.SMTPClient.connect(*server.address, local_hostname="me.test")
    assert "handshake" in str(caught.value)
    assert server.verbs == ["EHLO", "STARTTLS"]


async def connect_timeout(
    kit: Kit, raw_servers: Callable[..., RawServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection attempt that never completes: ConnectError with ``timed_out``."""

    async def never(*args: Any, **kwargs: Any) -> Any:
        await kit.sleep(30)

    if kit is ASYNCIO:
        monkeypatch.setattr(asyncio, "open_connection", never)
    else:
        monkeypatch.setattr(trio, "open_tcp_stream", never)
    with pytest.raises(ConnectError) as caught:
        await kit.module.SMTPClient.connect("192.0.2.1", 25, timeout=Timeouts(connect=0.2))
    assert caught.value.timed_out


async def closed_after_cancellation(
    kit: Kit, raw_servers: Callable[..., RawServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelled while waiting for a reply inside ``async with``: closed at once, no QUIT; the
    client then refuses to run commands on the closed connection."""
    server = raw_servers(silent_after="NOOP", replies={"NOOP": b""})
    client = await kit.module.SMTPClient.connect(
        *server.address, tls=TLSMode.NONE, local_hostname="me.test"
    )

    async def session() -> None:
        async with client:
            await client.noop()

    assert await kit.cancel_after(0.3, session())
    assert await server_saw_the_close(kit, server)
    with pytest.raises(ConnectionLostError, match="the connection is closed"):
        await client.reset()
    assert server.verbs == ["EHLO", "NOOP"]


async def disconnect_from_a_peer_that_never_closes_C14(
    kit: Kit, raw_servers: Callable[..., RawServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """QUIT gets its 221 (C14), then the TLS peer neither answers close_notify nor closes:
    the graceful close gives up after its grace period instead of hanging."""
    with tempfile.TemporaryDirectory() as directory:
        tls = make_tls_material(Path(directory))
        server = raw_servers(silent_after="QUIT", then="stall", tls=tls.server_context())
        client = await kit.module.SMTPClient.connect(
            *server.address, ssl_context=tls.client_context(), local_hostname="localhost"
        )
    assert client.tls_verified
    monkeypatch.setattr(kit.module, "CLOSE_GRACE", 0.3)
    started = time.monotonic()
    await client.disconnect()
    assert time.monotonic() - started < 2.0
    assert server.verbs == ["EHLO", "STARTTLS", "EHLO", "QUIT"]


async def driver_refusals(
    kit: Kit, raw_servers: Callable[..., RawServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The driver's side of the contract with the operations: I/O without a connection is a
    lost connection, never a silent no-op."""
    driver = kit.module.SMTPClient(SessionOptions(local_hostname="me.test"))._driver
    with pytest.raises(ConnectionLostError) as caught:
        await driver.perform(Send(b"NOOP\r\n", 1.0, "NOOP"))
    assert caught.value.phase == "NOOP"


ERROR_SCENARIOS: list[Scenario] = [
    reply_lost_to_a_reset_C16,
    write_after_a_reset_C16,
    write_timeout_C17,
    handshake_timeout_C17,
    handshake_reset_S3,
    connect_timeout,
    closed_after_cancellation,
    disconnect_from_a_peer_that_never_closes_C14,
    driver_refusals,
]


@pytest.mark.parametrize("scenario", ERROR_SCENARIOS, ids=lambda s: s.__name__)
def test_failures_asyncio(
    scenario: Scenario, raw_servers: Callable[..., RawServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    asyncio.run(scenario(ASYNCIO, raw_servers, monkeypatch))


@pytest.mark.parametrize("scenario", ERROR_SCENARIOS, ids=lambda s: s.__name__)
@pytest.mark.trio
async def test_failures_trio(
    scenario: Scenario, raw_servers: Callable[..., RawServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    await scenario(TRIO, raw_servers, monkeypatch)
