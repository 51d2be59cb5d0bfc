"""pytest fixtures for the loopback servers.

Load them with ``pytest_plugins = ["tests.servers.fixtures"]`` (tests/conftest.py does).

Set ``SMTPPROTO_REQUIRE_SERVERS=1`` (``.ci/run`` does) to turn "Postfix/dnsmasq not installed"
skips into failures. When a test fails, the logs of the servers it used are attached to its
report (Postfix's maillog, dnsmasq's query log, aiosmtpd transcripts).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator
from typing import Any

import dns.resolver
import pytest

from .aiosmtpd_server import RunningSMTPServer, SMTPServerConfig, start_smtp_server
from .dnsmasq import DEFAULT_ZONE, DNSMASQ, DNSServer, Zone, start_dns_server
from .postfix import (
    PostfixInstance,
    SmtpSink,
    postfix_available,
    smtp_sink_available,
    start_postfix,
    start_smtp_sink,
)
from .tls import TLSMaterial, make_tls_material

REQUIRE_SERVERS_ENV = "SMTPPROTO_REQUIRE_SERVERS"
#: Where the ``postfix_server`` fixture listens: the address of mx.postfix.test in DEFAULT_ZONE.
POSTFIX_ADDRESS = (DEFAULT_ZONE.address("mx.postfix.test"), 25)
_LOG_TAIL = 6000


def require_server(available: bool, what: str) -> None:
    """Skip when ``what`` is missing, or fail if the environment demands the real servers."""
    if available:
        return
    reason = f"{what} is not available (install with .ci/install-servers; needs root)"
    if os.environ.get(REQUIRE_SERVERS_ENV) == "1":
        pytest.fail(f"{reason}, but {REQUIRE_SERVERS_ENV}=1", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def tls_material(tmp_path_factory: pytest.TempPathFactory) -> TLSMaterial:
    """The test CA and server certificates (``.client_context()`` trusts the CA).

    The good certificate covers localhost, 127.0.0.1, ::1 and every name and address of
    ``DEFAULT_ZONE`` (so a client may verify ``mx1.ordered.test`` or ``127.0.0.25``).
    """
    return make_tls_material(tmp_path_factory.mktemp("tls"), DEFAULT_ZONE.identities())


class SMTPServerFactory:
    """Starts aiosmtpd servers for one test; all are stopped when the test ends."""

    def __init__(self, tls: TLSMaterial) -> None:
        self._tls = tls
        self.servers: list[RunningSMTPServer] = []

    def __call__(self, **options: Any) -> RunningSMTPServer:
        """Start a server; ``options`` are :class:`SMTPServerConfig` fields (default tls: ours)."""
        options.setdefault("tls", self._tls)
        server = start_smtp_server(SMTPServerConfig(**options))
        self.servers.append(server)
        return server

    def stop_all(self) -> None:
        for server in self.servers:
            server.stop()


@pytest.fixture
def smtp_server_factory(tls_material: TLSMaterial) -> Iterator[SMTPServerFactory]:
    """``smtp_server_factory(host="127.0.0.11", port=25, starttls="require", ...)``."""
    factory = SMTPServerFactory(tls_material)
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture
def smtp_server(smtp_server_factory: SMTPServerFactory) -> RunningSMTPServer:
    """A plain aiosmtpd server on 127.0.0.1 (free port) that accepts everything."""
    return smtp_server_factory()


@pytest.fixture(scope="session")
def postfix_server(tls_material: TLSMaterial) -> Iterator[PostfixInstance]:
    """The private Postfix on 127.0.0.25:25 (mx.postfix.test), STARTTLS with the test CA."""
    require_server(postfix_available(), "Postfix")
    instance = start_postfix(host=POSTFIX_ADDRESS[0], port=POSTFIX_ADDRESS[1], tls=tls_material)
    try:
        yield instance
    finally:
        instance.cleanup()


@pytest.fixture
def postfix_factory(tls_material: TLSMaterial) -> Iterator[Callable[..., PostfixInstance]]:
    """``postfix_factory(main_cf={...})`` starts an extra private Postfix (free port on
    127.0.0.1 unless ``host``/``port`` are given; about 2-3 s), stopped after the test."""
    require_server(postfix_available(), "Postfix")
    instances: list[PostfixInstance] = []

    def start(**options: Any) -> PostfixInstance:
        options.setdefault("tls", tls_material)
        instance = start_postfix(**options)
        instances.append(instance)
        return instance

    try:
        yield start
    finally:
        for instance in instances:
            instance.cleanup()


@pytest.fixture(scope="session")
def smtp_sink() -> Iterator[SmtpSink]:
    """Postfix's smtp-sink on 127.0.0.1 (free port): accepts and discards everything."""
    require_server(smtp_sink_available(), "smtp-sink")
    sink = start_smtp_sink()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture(scope="session")
def dns_server() -> Iterator[DNSServer]:
    """dnsmasq on 127.0.0.53 (free port) serving ``tests.servers.dnsmasq.DEFAULT_ZONE``."""
    require_server(os.access(DNSMASQ, os.X_OK), "dnsmasq")
    server = start_dns_server(DEFAULT_ZONE)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def dns_resolver(dns_server: DNSServer) -> dns.resolver.Resolver:
    """A fresh dnspython resolver that asks only ``dns_server`` (3 s lifetime)."""
    return dns_server.resolver()


@pytest.fixture
def dns_server_factory() -> Generator[Callable[[Zone], DNSServer], None, None]:
    """``dns_server_factory(Zone(...))`` starts dnsmasq for a custom zone until the test ends."""
    require_server(os.access(DNSMASQ, os.X_OK), "dnsmasq")
    servers: list[DNSServer] = []

    def start(zone: Zone) -> DNSServer:
        server = start_dns_server(zone)
        servers.append(server)
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


def _tail(text: str) -> str:
    return text if len(text) <= _LOG_TAIL else "…" + text[-_LOG_TAIL:]


def _transcripts(servers: list[RunningSMTPServer]) -> str:
    parts = []
    for server in servers:
        for number, connection in enumerate(server.connections):
            lines = b"".join(connection.lines).decode("utf-8", "replace")
            parts.append(f"{server!r} connection {number} from {connection.peer}:\n{lines}")
    return "\n".join(parts)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, Any]:
    report = yield
    if report.failed:
        values: dict[str, Any] = getattr(item, "funcargs", {})
        for value in values.values():
            if isinstance(value, PostfixInstance):
                report.sections.append(("postfix maillog", _tail(value.log())))
            elif isinstance(value, DNSServer):
                report.sections.append(("dnsmasq log", _tail(value.log())))
            elif isinstance(value, SMTPServerFactory):
                report.sections.append(("aiosmtpd transcripts", _tail(_transcripts(value.servers))))
    return report
