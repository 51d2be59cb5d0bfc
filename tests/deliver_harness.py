"""Shared pieces of the ``test_deliver_*`` modules: one synchronous ``deliver`` for all adapters.

The test modules get its fixtures through tests/conftest.py (it holds no
tests; the lead may move it to a non-``test_`` name, which would make the self-registration
below unnecessary).  The
``deliver`` fixture is parametrized over the three adapters; each call runs the adapter's
``deliver()`` to completion (``asyncio.run`` / ``trio.run`` for the async ones) in a helper thread
bounded by :data:`CALL_TIMEOUT`, with a resolver that asks only the loopback dnsmasq.

Nothing listens on the addresses of the test zone until a test starts a server there, so an
address without a server refuses connections at once: that is the "dead MX".
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
import trio

from smtpproto import (
    DeliveryOptions,
    DeliveryReport,
    RecipientOutcome,
    Relay,
    SessionOptions,
    Timeouts,
)
from tests.servers.aiosmtpd_server import RunningSMTPServer
from tests.servers.dnsmasq import DEFAULT_ZONE, DNSServer, make_async_resolver, make_resolver
from tests.servers.fixtures import SMTPServerFactory
from tests.servers.net import pick_free_port

if TYPE_CHECKING:  # mypy knows adapters/ as "adapters" (package-dir mapping)
    import adapters.asyncio as asyncio_adapter
    import adapters.blocking as blocking_adapter
    import adapters.trio as trio_adapter
else:
    import smtpproto.adapters.asyncio as asyncio_adapter
    import smtpproto.adapters.blocking as blocking_adapter
    import smtpproto.adapters.trio as trio_adapter

# This module is collected as a test module too (its name matches test_*.py), and a module's own
# fixtures are then visible in that module only.  Registering it as a plugin at import time,
# before collection parses it, makes its fixtures global whichever module pytest imports first.

ADAPTER_NAMES = ("blocking", "asyncio", "trio")
#: Longest one ``deliver()`` may take before the test fails as hung.
CALL_TIMEOUT = 30.0
SENDER = "sender@client.test"
LOCAL_HOSTNAME = "client.test"
#: Default connect timeout of these tests: a loopback address answers (or refuses) at once.
CONNECT_TIMEOUT = 5.0
#: Every reply timeout, unless a test sets its own: a hung server shows up in the report as a
#: timeout well before :data:`CALL_TIMEOUT`.
TEST_TIMEOUTS = dataclasses.replace(Timeouts.uniform(10.0), connect=CONNECT_TIMEOUT)


def address(host: str) -> str:
    """Where the test zone puts ``host``."""
    return DEFAULT_ZONE.address(host)


def make_message(marker: str, recipients: Sequence[str]) -> bytes:
    return (
        f"From: {SENDER}\r\nTo: {', '.join(recipients)}\r\nSubject: deliver {marker}\r\n"
        f"Message-ID: <{marker}@client.test>\r\n\r\nbody {marker}\r\n"
    ).encode()


@dataclass
class Delivery:
    """What one ``deliver()`` call returned, and the marker its message carries."""

    report: DeliveryReport
    marker: str

    def __getitem__(self, recipient: str) -> RecipientOutcome:
        return self.report[recipient]


@dataclass
class Deliverer:
    """Calls one adapter's ``deliver()`` synchronously, against the loopback DNS server."""

    adapter: str
    dns: DNSServer | None
    #: Point the resolver here instead (host, port): e.g. at a port where no DNS server runs.
    dns_address: tuple[str, int] | None = None
    dns_lifetime: float = 3.0
    calls: list[Delivery] = field(default_factory=list)

    def __call__(
        self,
        recipients: Sequence[str],
        *,
        parallel: int | None = None,
        timeout: Timeouts = TEST_TIMEOUTS,
        relay: Relay | None = None,
        ssl_context: ssl.SSLContext | None = None,
        **fields: Any,
    ) -> Delivery:
        """``deliver(message, SENDER, recipients, ...)``; ``parallel`` is the options'
        ``concurrency``, further ``fields`` are :class:`DeliveryOptions` fields."""
        marker = uuid.uuid4().hex
        session = SessionOptions(local_hostname=LOCAL_HOSTNAME, timeout=timeout)
        if parallel is not None:
            fields["concurrency"] = parallel
        options: dict[str, Any] = {
            "options": DeliveryOptions(session=session, **fields),
            "relay": relay,
            "ssl_context": ssl_context,
        }
        message = make_message(marker, recipients)
        if self.dns_address is not None:
            host, port = self.dns_address
        else:
            assert self.dns is not None, "give a DNS server or an address to ask"
            host, port = self.dns.address
        if self.adapter == "blocking":
            resolver = make_resolver(host, port, lifetime=self.dns_lifetime)
            report = _bounded(
                lambda: blocking_adapter.deliver(
                    message, SENDER, recipients, resolver=resolver, **options
                )
            )
        else:
            async_resolver = make_async_resolver(host, port, lifetime=self.dns_lifetime)
            if self.adapter == "asyncio":
                coroutine = asyncio_adapter.deliver(
                    message, SENDER, recipients, resolver=async_resolver, **options
                )
                report = _bounded(lambda: asyncio.run(coroutine))
            else:

                async def run() -> DeliveryReport:
                    return await trio_adapter.deliver(
                        message, SENDER, recipients, resolver=async_resolver, **options
                    )

                report = _bounded(lambda: trio.run(run))
        delivery = Delivery(report, marker)
        self.calls.append(delivery)
        return delivery


def _bounded(call: Callable[[], DeliveryReport]) -> DeliveryReport:
    """Run ``call`` in a daemon thread; a hang fails the test instead of the whole run."""
    result: list[DeliveryReport] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(call())
        except BaseException as exc:  # handed to the test's thread
            errors.append(exc)

    thread = threading.Thread(target=target, name="deliver", daemon=True)
    thread.start()
    thread.join(CALL_TIMEOUT)
    if thread.is_alive():
        raise AssertionError(f"deliver() did not return within {CALL_TIMEOUT} s")
    if errors:
        raise errors[0]
    return result[0]


@pytest.fixture(params=ADAPTER_NAMES)
def adapter_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def deliver(adapter_name: str, dns_server: DNSServer) -> Deliverer:
    """``deliver(recipients, **options)`` through the adapter of this parametrization."""
    return Deliverer(adapter_name, dns_server)


@pytest.fixture
def deliver_without_dns(adapter_name: str) -> Deliverer:
    """Like ``deliver``, with a resolver that asks where no DNS server answers (0.5 s)."""
    return Deliverer(adapter_name, None, dns_address=unused_dns_address(), dns_lifetime=0.5)


@pytest.fixture
def mx(smtp_server_factory: SMTPServerFactory) -> MXServers:
    """``mx("mx1.ordered.test", **config)`` starts aiosmtpd on port 25 of that host's address."""
    return MXServers(smtp_server_factory)


class MXServers:
    def __init__(self, factory: SMTPServerFactory) -> None:
        self._factory = factory

    def __call__(self, host: str, *, at: str | None = None, **config: Any) -> RunningSMTPServer:
        """A server for the MX ``host`` of the shared zone (or of another zone: give ``at``)."""
        config.setdefault("hostname", host)
        return self._factory(host=at or address(host), port=25, **config)

    def at(self, ip: str, **config: Any) -> RunningSMTPServer:
        """A server on port 25 of ``ip``, whatever names point there."""
        return self._factory(host=ip, port=25, **config)


# -- a listener that accepts and never greets ------------------------------------------------


class SilentListener:
    """A TCP listener that accepts connections and never says a word; records when each came."""

    def __init__(self, host: str, port: int = 25) -> None:
        self._socket = socket.create_server((host, port))
        self._socket.settimeout(0.1)
        self._held: list[socket.socket] = []
        self._lock = threading.Lock()
        self.accepted_at: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="silent-mx", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            with self._lock:
                self.accepted_at.append(time.monotonic())
                self._held.append(connection)

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self.accepted_at)

    @property
    def port(self) -> int:
        """Where it listens (for a listener made on port 0)."""
        port: int = self._socket.getsockname()[1]
        return port

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._socket.close()
        with self._lock:
            for connection in self._held:
                connection.close()


@pytest.fixture
def silent() -> Iterator[Callable[[str], SilentListener]]:
    """``silent("mx1.ordered.test")``: a never-greeting listener on that host's port 25."""
    listeners: list[SilentListener] = []

    def start(host: str) -> SilentListener:
        listener = SilentListener(address(host))
        listeners.append(listener)
        return listener

    try:
        yield start
    finally:
        for listener in listeners:
            listener.close()


def unused_dns_address() -> tuple[str, int]:
    """A loopback UDP port where no DNS server answers: any lookup there times out."""
    return ("127.0.0.1", pick_free_port("127.0.0.1", socket.SOCK_DGRAM))


def received_by(server: RunningSMTPServer, marker: str) -> list[tuple[str, ...]]:
    """The recipient lists of the messages with ``marker`` that ``server`` accepted."""
    return [m.rcpt_tos for m in server.messages if marker.encode() in m.content]
