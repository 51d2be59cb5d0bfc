"""A loopback DNS server (dnsmasq) that serves only a test zone described in Python.

dnsmasq runs with ``--no-resolv --no-hosts`` and ``--local=/test/``: it knows the records of
the :class:`Zone` and nothing else, every other name under ``.test`` is NXDOMAIN and names
outside it are REFUSED. What dnsmasq cannot produce by itself:

- SERVFAIL: queries for the zone's ``servfail`` domains are forwarded to a tiny responder in a
  thread of the test process that answers SERVFAIL to everything; dnsmasq passes that on.
- A timeout: ``timeout`` domains are forwarded to a loopback port where nothing listens, so
  the client gets no answer at all.

Null MX needs no trick: ``--mx-host=DOMAIN,.,0`` is served as ``MX 0 .``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dns.asyncresolver
import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.resolver

from .net import ServerStartError, check_loopback, pick_free_port

DNSMASQ = "/usr/sbin/dnsmasq"
NULL_MX = "."


@dataclass(frozen=True)
class Zone:
    """The records a test DNS server answers with (all names are absolute, without a dot)."""

    #: domain -> [(preference, exchange)]; ``[(0, NULL_MX)]`` is a null MX (RFC 7505).
    mx: Mapping[str, Sequence[tuple[int, str]]] = field(default_factory=dict)
    #: host -> IPv4 and IPv6 addresses (A and AAAA records), in the order served.
    addresses: Mapping[str, Sequence[str]] = field(default_factory=dict)
    #: alias -> target (CNAME). dnsmasq serves only CNAMEs whose target is in this zone.
    cnames: Mapping[str, str] = field(default_factory=dict)
    #: Domains (with their subdomains) whose every query gets SERVFAIL.
    servfail: Sequence[str] = ()
    #: Domains (with their subdomains) whose queries are never answered.
    timeout: Sequence[str] = ()
    #: Unlisted names under these suffixes are NXDOMAIN (rather than REFUSED).
    local_suffixes: Sequence[str] = ("test",)

    def identities(self) -> list[str]:
        """Every name and address in the zone, for a certificate that covers them all."""
        names = {*self.mx, *self.addresses, *self.cnames, *self.cnames.values()}
        names |= {exchange for exchanges in self.mx.values() for _, exchange in exchanges}
        names.discard(NULL_MX)
        found = {address for addresses in self.addresses.values() for address in addresses}
        return sorted(names) + sorted(found)

    def address(self, host: str) -> str:
        """The first address of ``host`` (for starting a server where the zone points)."""
        return self.addresses[host][0]


#: The zone the ``dns_server`` fixture serves. Addresses are loopback only; nothing listens on
#: them until a test starts a server there (e.g. aiosmtpd on port 25 of mx1.ordered.test).
DEFAULT_ZONE = Zone(
    mx={
        # ordered MXs
        "ordered.test": [
            (20, "mx2.ordered.test"),
            (10, "mx1.ordered.test"),
            (30, "mx3.ordered.test"),
        ],
        # equal preferences: 10, 10, then 20
        "equal.test": [(10, "a.equal.test"), (10, "b.equal.test"), (20, "c.equal.test")],
        # the best MX has an address where nothing listens
        "deadmx.test": [(10, "dead.deadmx.test"), (20, "live.deadmx.test")],
        # the best MX has no address record at all (NXDOMAIN for its A/AAAA)
        "noaddress.test": [(10, "ghost.noaddress.test"), (20, "mx.noaddress.test")],
        # RFC 7505 null MX: accepts no mail
        "nullmx.test": [(0, NULL_MX)],
        # one MX host with two IPv4 addresses
        "multihomed.test": [(10, "mx.multihomed.test")],
        # one MX host with an IPv4 and an IPv6 address
        "dualstack.test": [(10, "mx.dualstack.test")],
        # the private Postfix instance (tests.servers.postfix, port 25)
        "postfix.test": [(10, "mx.postfix.test")],
    },
    addresses={
        "mx1.ordered.test": ["127.0.0.11"],
        "mx2.ordered.test": ["127.0.0.12"],
        "mx3.ordered.test": ["127.0.0.13"],
        "a.equal.test": ["127.0.0.21"],
        "b.equal.test": ["127.0.0.22"],
        "c.equal.test": ["127.0.0.23"],
        "dead.deadmx.test": ["127.0.0.31"],
        "live.deadmx.test": ["127.0.0.32"],
        "mx.noaddress.test": ["127.0.0.42"],
        # no MX: mail goes to the implicit MX, the domain's own address
        "implicit.test": ["127.0.0.51"],
        "mx.multihomed.test": ["127.0.0.61", "127.0.0.62"],
        "mx.dualstack.test": ["127.0.0.71", "::1"],
        "mx.postfix.test": ["127.0.0.25"],
    },
    cnames={
        # a CNAME'd mail domain: its MX records are those of ordered.test
        "alias.test": "ordered.test",
        # a CNAME'd host: its address is implicit.test's
        "www.implicit.test": "implicit.test",
    },
    servfail=["servfail.test"],
    timeout=["timeout.test"],
)
#: A name under .test that the zone does not have.
NXDOMAIN_NAME = "nxdomain.test"


class _ServfailResponder:
    """Answers every UDP query with SERVFAIL; dnsmasq forwards the ``servfail`` domains here."""

    def __init__(self, host: str) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_DGRAM)
        self._socket.bind((host, 0))
        self._socket.settimeout(0.2)
        self.host = host
        self.port: int = self._socket.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="dns-servfail", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                query, peer = self._socket.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                response = dns.message.make_response(dns.message.from_wire(query))
            except dns.exception.DNSException:
                continue
            response.set_rcode(dns.rcode.SERVFAIL)
            self._socket.sendto(response.to_wire(), peer)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._socket.close()


def dnsmasq_arguments(zone: Zone, host: str, port: int, servfail: str, dead: str) -> list[str]:
    """dnsmasq's command line for ``zone``; ``servfail``, ``dead``: ``ADDR#PORT`` upstreams."""
    arguments = [
        DNSMASQ,
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--no-poll",
        "--pid-file=",
        f"--listen-address={host}",
        "--bind-interfaces",
        f"--port={port}",
        "--log-queries",
        "--log-facility=-",
    ]
    arguments += [f"--local=/{suffix}/" for suffix in zone.local_suffixes]
    for domain, exchanges in zone.mx.items():
        arguments += [
            f"--mx-host={domain},{exchange},{preference}" for preference, exchange in exchanges
        ]
    for name, addresses in zone.addresses.items():
        arguments += [f"--host-record={name},{address}" for address in addresses]
    arguments += [f"--cname={alias},{target}" for alias, target in zone.cnames.items()]
    arguments += [f"--server=/{domain}/{servfail}" for domain in zone.servfail]
    arguments += [f"--server=/{domain}/{dead}" for domain in zone.timeout]
    return arguments


def make_resolver(host: str, port: int, *, lifetime: float = 3.0) -> dns.resolver.Resolver:
    """A dnspython resolver that asks only the test server (no /etc/resolv.conf, no cache)."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [host]
    resolver.port = port
    resolver.timeout = lifetime
    resolver.lifetime = lifetime
    return resolver


def make_async_resolver(
    host: str, port: int, *, lifetime: float = 3.0
) -> dns.asyncresolver.Resolver:
    """Like :func:`make_resolver`, for asyncio and trio (dnspython picks the backend)."""
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [host]
    resolver.port = port
    resolver.timeout = lifetime
    resolver.lifetime = lifetime
    return resolver


class DNSServer:
    """A running dnsmasq (plus its SERVFAIL responder) serving one :class:`Zone`."""

    def __init__(
        self,
        zone: Zone,
        host: str,
        port: int,
        *,
        process: subprocess.Popen[bytes],
        responder: _ServfailResponder,
        log_path: Path,
    ) -> None:
        self.zone = zone
        self.host = host
        self.port = port
        self._process = process
        self._responder = responder
        self._log_path = log_path

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def resolver(self, *, lifetime: float = 3.0) -> dns.resolver.Resolver:
        return make_resolver(self.host, self.port, lifetime=lifetime)

    def async_resolver(self, *, lifetime: float = 3.0) -> dns.asyncresolver.Resolver:
        return make_async_resolver(self.host, self.port, lifetime=lifetime)

    def log(self) -> str:
        try:
            return self._log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no dnsmasq log)"

    def stop(self, timeout: float = 5.0) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=timeout)
        self._responder.stop()
        self._log_path.unlink(missing_ok=True)

    def __repr__(self) -> str:
        return f"<DNSServer {self.host}#{self.port}>"


def _answers(host: str, port: int) -> bool:
    query = dns.message.make_query("probe.invalid", "A")
    try:
        dns.query.udp(query, host, port=port, timeout=0.5)
    except (dns.exception.Timeout, OSError):
        return False
    return True


def start_dns_server(
    zone: Zone = DEFAULT_ZONE,
    *,
    host: str = "127.0.0.53",
    port: int = 0,
    timeout: float = 10.0,
    attempts: int = 3,
) -> DNSServer:
    """Start dnsmasq for ``zone`` on ``host`` (UDP and TCP) and wait until it answers.

    With ``port=0`` a free port is picked, and picked again if dnsmasq could not bind it.
    """
    check_loopback(host)
    for attempt in range(1, attempts + 1):
        try:
            return _start_dnsmasq(
                zone, host, port or pick_free_port(host, socket.SOCK_DGRAM), timeout
            )
        except ServerStartError:
            if port or attempt == attempts:
                raise
    raise AssertionError("unreachable")


def _start_dnsmasq(zone: Zone, host: str, port: int, timeout: float) -> DNSServer:
    responder = _ServfailResponder(host)
    # Nothing listens there: the port was free a moment ago and nobody binds it.
    dead_port = pick_free_port(host, socket.SOCK_DGRAM)
    arguments = dnsmasq_arguments(
        zone, host, port, f"{host}#{responder.port}", f"{host}#{dead_port}"
    )
    log_file, log_name = tempfile.mkstemp(prefix="smtpproto-dnsmasq-", suffix=".log")
    process = subprocess.Popen(
        arguments,
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=log_file,
        start_new_session=True,
    )
    os.close(log_file)
    server = DNSServer(
        zone, host, port, process=process, responder=responder, log_path=Path(log_name)
    )
    deadline = time.monotonic() + timeout
    while not _answers(host, port):
        if process.poll() is not None or time.monotonic() > deadline:
            log = server.log()
            server.stop()
            raise ServerStartError(
                f"dnsmasq did not answer on {host}#{port}:\n{' '.join(arguments)}\n{log}"
            )
        time.sleep(0.05)
    return server
