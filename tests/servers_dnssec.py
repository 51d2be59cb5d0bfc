"""A DNSSEC-signed test zone on loopback, behind a validating resolver, for DANE and MTA-STS.

Real parts, no mocks (Debian packages, installed by .ci/install-servers):

- ``ldns-keygen`` / ``ldns-signzone`` (ldnsutils) make the keys and sign ``dane.test``;
- NSD serves it, authoritative only, on ``127.0.0.116`` (a free port);
- Unbound validates on ``127.0.0.117`` with the zone's key as its only trust anchor, so it sets
  the AD bit for what the signatures prove and answers SERVFAIL for what they contradict.

The zone (see :func:`build_zone`) holds MX, A and TLSA records computed from trustme
certificates, the ``_mta-sts`` TXT record, an unsigned child zone ``plain.dane.test`` delegated
without DS (insecure: answers come without AD), and ``bogus.dane.test`` whose signature is broken
after signing (the resolver answers SERVFAIL).

``sts.dane.test`` has an MTA-STS policy and no TLSA records (for the MTA-STS-only cases), and
``alias.dane.test`` is a CNAME to ``mx.dane.test`` (the TLSA base domain after expansion).

A small HTTPS server (:class:`PolicyServer`) serves ``/.well-known/mta-sts.txt`` for
``mta-sts.dane.test`` and ``mta-sts.sts.dane.test`` with a trustme certificate, from a thread;
:func:`tls_listener` completes TLS handshakes on the MX address with the zone's certificates.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.servers.net import ServerStartError, check_loopback, pick_free_port

NSD = "/usr/sbin/nsd"
UNBOUND = "/usr/sbin/unbound"
LDNS_KEYGEN = "/usr/bin/ldns-keygen"
LDNS_SIGNZONE = "/usr/bin/ldns-signzone"
TOOLS = (NSD, UNBOUND, LDNS_KEYGEN, LDNS_SIGNZONE)

ZONE = "dane.test"
INSECURE_ZONE = "plain.dane.test"
AUTHORITATIVE_ADDRESS = "127.0.0.116"
RESOLVER_ADDRESS = "127.0.0.117"
POLICY_ADDRESS = "127.0.0.118"
MX_ADDRESS = "127.0.0.119"
#: mx2.dane.test has an address of its own: delivery tries each address once, so a skipped
#: mx.dane.test must not take mx2 with it.
MX2_ADDRESS = "127.0.0.121"
STS_ID = "20261202T000000"
POLICY = (
    "version: STSv1\r\nmode: enforce\r\nmx: mx.dane.test\r\nmx: *.dane.test\r\nmax_age: 86400\r\n"
)
# sts.dane.test: MTA-STS without DANE (its MX host has no TLSA record), for the MTA-STS cases.
STS_DOMAIN = f"sts.{ZONE}"
STS_POLICY = "version: STSv1\nmode: enforce\nmx: mail.sts.dane.test\nmax_age: 86400\n"
# encrypt.dane.test: its MX host's TLSA records are all unusable (TLS required, not
# authenticated, RFC 7672 §2.2), and an MTA-STS policy in testing mode lists it.
ENCRYPT_DOMAIN = f"encrypt.{ZONE}"
ENCRYPT_POLICY = "version: STSv1\nmode: testing\nmx: unusable.dane.test\nmax_age: 86400\n"


def tools_missing() -> list[str]:
    return [tool for tool in TOOLS if not os.access(tool, os.X_OK)]


def spki_sha256(cert_pem: bytes) -> str:
    cert = x509.load_pem_x509_certificate(cert_pem)
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


def cert_sha256(cert_pem: bytes) -> str:
    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(Encoding.DER)
    return hashlib.sha256(der).hexdigest()


@dataclass
class Certificates:
    """trustme material: ``ca`` signs ``mx`` (mx.dane.test, DANE-EE) and ``ta_mx``
    (mx2.dane.test, reached through DANE-TA of the CA), and ``policy`` (mta-sts.dane.test)."""

    ca: trustme.CA = field(default_factory=trustme.CA)
    mx: trustme.LeafCert = field(init=False)
    ta_mx: trustme.LeafCert = field(init=False)
    policy: trustme.LeafCert = field(init=False)
    #: sts.dane.test's two MX hosts (MTA-STS verifies them with the CA, no TLSA records).
    sts_mx: trustme.LeafCert = field(init=False)
    #: mx.dane.test's name, issued by another CA: matches no TLSA record, trusted by nobody.
    stranger: trustme.LeafCert = field(init=False)

    def __post_init__(self) -> None:
        self.mx = self.ca.issue_cert(f"mx.{ZONE}")
        self.ta_mx = self.ca.issue_cert(f"mx2.{ZONE}")
        self.policy = self.ca.issue_cert(
            f"mta-sts.{ZONE}", f"mta-sts.{STS_DOMAIN}", f"mta-sts.{ENCRYPT_DOMAIN}"
        )
        self.sts_mx = self.ca.issue_cert(f"mail.{STS_DOMAIN}", f"other.{STS_DOMAIN}")
        self.stranger = trustme.CA().issue_cert(f"mx.{ZONE}", f"mx2.{ZONE}")

    def server_context(self, leaf: trustme.LeafCert, *, with_ca: bool) -> ssl.SSLContext:
        """A server context presenting ``leaf``, followed by the CA certificate when
        ``with_ca`` (RFC 7672 §3.1.2: a DANE-TA server must send its trust anchor)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        if not with_ca:
            leaf.configure_cert(context)
            return context
        bundle = leaf.private_key_and_cert_chain_pem.bytes() + self.ca.cert_pem.bytes()
        with tempfile.NamedTemporaryFile(suffix=".pem") as pem:
            pem.write(bundle)
            pem.flush()
            context.load_cert_chain(pem.name)
        return context


def presented_chain(tls: ssl.SSLSocket) -> list[bytes]:
    """The DER chain the peer sent, leaf first, as a driver will report it after STARTTLS.

    Python 3.13 has ``SSLSocket.get_unverified_chain()``; 3.11 and 3.12 only the same method
    on the private ``_sslobj``.
    """
    public = getattr(tls, "get_unverified_chain", None)
    if public is not None:
        return [bytes(der) for der in public()]
    private = tls._sslobj.get_unverified_chain()  # type: ignore[attr-defined]
    return [cert.public_bytes(ssl._ssl.ENCODING_DER) for cert in private]  # type: ignore[attr-defined]


@contextmanager
def tls_listener(context: ssl.SSLContext, address: str = MX_ADDRESS) -> Iterator[int]:
    """Accept TLS connections on ``address`` (a free port, yielded) and complete the handshake;
    enough to test what a client sees of the server's certificates."""
    check_loopback(address)
    listener = socket.create_server((address, 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except OSError:
                pass

    thread = threading.Thread(target=serve, name="tls-listener", daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def build_zone(certs: Certificates, serial: int) -> str:
    """The unsigned zone file of ``dane.test``."""
    mx_pem = certs.mx.cert_chain_pems[0].bytes()
    ca_pem = certs.ca.cert_pem.bytes()
    ns = f"ns.{ZONE}."
    lines = [
        f"$ORIGIN {ZONE}.",
        "$TTL 300",
        f"@ IN SOA {ns} hostmaster.{ZONE}. {serial} 3600 600 86400 300",
        f"@ IN NS {ns}",
        f"ns IN A {AUTHORITATIVE_ADDRESS}",
        f"@ IN MX 10 mx.{ZONE}.",
        f"@ IN MX 20 mx2.{ZONE}.",
        f"mx IN A {MX_ADDRESS}",
        f"mx2 IN A {MX2_ADDRESS}",
        f"_25._tcp.mx IN TLSA 3 1 1 {spki_sha256(mx_pem)}",
        f"_25._tcp.mx2 IN TLSA 2 0 1 {cert_sha256(ca_pem)}",
        # usages PKIX-TA/PKIX-EE only: authentic, but unusable for SMTP (RFC 7672 §3.1.3)
        f"unusable IN A {MX_ADDRESS}",
        f"_25._tcp.unusable IN TLSA 1 1 1 {spki_sha256(mx_pem)}",
        f"encrypt IN MX 10 unusable.{ZONE}.",
        f'_mta-sts.encrypt IN TXT "v=STSv1; id={STS_ID};"',
        f"mta-sts.encrypt IN A {POLICY_ADDRESS}",
        f'_mta-sts IN TXT "v=STSv1; id={STS_ID};"',
        f"mta-sts IN A {POLICY_ADDRESS}",
        f"bogus IN A {MX_ADDRESS}",
        # badmx.dane.test: its first MX host's TLSA record is bogus (signature broken below)
        f"badmx IN MX 10 badtlsa.{ZONE}.",
        f"badmx IN MX 20 mx.{ZONE}.",
        f"badtlsa IN A {MX2_ADDRESS}",
        f"_25._tcp.badtlsa IN TLSA 3 1 1 {spki_sha256(mx_pem)}",
        # an MX host that is an alias: the TLSA base domain is the target (RFC 7672 §2.2.2)
        f"alias IN CNAME mx.{ZONE}.",
        f"aliasmx IN MX 10 alias.{ZONE}.",
        # MTA-STS only: a policy, and an MX host with no TLSA records (authenticated denial)
        f"sts IN MX 10 mail.{STS_DOMAIN}.",
        f"sts IN MX 20 other.{STS_DOMAIN}.",
        f"mail.sts IN A {MX_ADDRESS}",
        f"other.sts IN A {MX2_ADDRESS}",
        f'_mta-sts.sts IN TXT "v=STSv1; id={STS_ID};"',
        f"mta-sts.sts IN A {POLICY_ADDRESS}",
        # the insecure delegation: NS without DS
        f"{INSECURE_ZONE}. IN NS {ns}",
    ]
    return "\n".join(lines) + "\n"


def build_insecure_zone(serial: int) -> str:
    ns = f"ns.{ZONE}."
    return (
        "\n".join(
            [
                f"$ORIGIN {INSECURE_ZONE}.",
                "$TTL 300",
                f"@ IN SOA {ns} hostmaster.{ZONE}. {serial} 3600 600 86400 300",
                f"@ IN NS {ns}",
                f"@ IN MX 10 mx.{INSECURE_ZONE}.",
                f"mx IN A {MX_ADDRESS}",
                f"_25._tcp.mx IN TLSA 3 1 1 {'00' * 32}",
            ]
        )
        + "\n"
    )


def _run(*command: str, cwd: Path) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ServerStartError(f"{' '.join(command)} failed: {done.stderr.strip()}")
    return done.stdout


def sign_zone(directory: Path, zone_text: str) -> Path:
    """Write, key and sign ``dane.test`` in ``directory``; break ``bogus``'s signature; return
    the trust anchor file (the key-signing key's DNSKEY record)."""
    (directory / "dane.test.zone").write_text(zone_text)
    ksk = _run(LDNS_KEYGEN, "-a", "ECDSAP256SHA256", "-k", ZONE, cwd=directory).strip()
    zsk = _run(LDNS_KEYGEN, "-a", "ECDSAP256SHA256", ZONE, cwd=directory).strip()
    _run(LDNS_SIGNZONE, "-f", "dane.test.signed", "dane.test.zone", ksk, zsk, cwd=directory)
    signed = directory / "dane.test.signed"
    # The signature of bogus.dane.test's A record stays; the record changes under it.
    text = signed.read_text()
    old = f"bogus.{ZONE}.\t300\tIN\tA\t{MX_ADDRESS}"
    if old not in text:
        raise ServerStartError(f"cannot find {old!r} in the signed zone to break it")
    text = text.replace(old, old.rsplit(".", 1)[0] + ".120")
    # The TLSA record of badtlsa.dane.test changes under its signature too: a bogus answer.
    lines = text.splitlines(keepends=True)
    tlsa = [i for i, line in enumerate(lines) if line.startswith(f"_25._tcp.badtlsa.{ZONE}.")
            and "\tTLSA\t" in line]  # fmt: skip
    if len(tlsa) != 1:
        raise ServerStartError("cannot find badtlsa's TLSA record in the signed zone")
    line = lines[tlsa[0]].rstrip("\n")
    lines[tlsa[0]] = line[:-1] + ("0" if line[-1] != "0" else "1") + "\n"
    signed.write_text("".join(lines))
    anchor = directory / "anchor.key"
    shutil.copy(directory / f"{ksk}.key", anchor)
    return anchor


def _wait_for_dns(address: str, port: int, name: str, process: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and process.poll() is None:
        try:
            query = dns.message.make_query(name, "SOA")
            dns.query.udp(query, address, port=port, timeout=0.5)
            return True
        except (OSError, dns.exception.Timeout):
            time.sleep(0.1)
    return False


@dataclass
class SignedZone:
    """The running authoritative server and validating resolver."""

    resolver_address: str
    resolver_port: int
    authoritative_port: int
    certificates: Certificates
    directory: Path

    def query(self, name: str, rdtype: str) -> dns.message.Message:
        """Ask the validating resolver, with the DO bit, as a DANE client would."""
        message = dns.message.make_query(name, rdtype, want_dnssec=True)
        message.flags |= dns.flags.AD  # RFC 6840 §5.7: ask for the AD bit
        return dns.query.udp(message, self.resolver_address, port=self.resolver_port, timeout=5)


def _start(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        return subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def signed_zone(directory: Path) -> Iterator[SignedZone]:
    """Sign the zone, start NSD and Unbound in ``directory``; stop them on exit."""
    for address in (AUTHORITATIVE_ADDRESS, RESOLVER_ADDRESS):
        check_loopback(address)
    certs = Certificates()
    serial = int(time.time())
    anchor = sign_zone(directory, build_zone(certs, serial))
    (directory / "plain.zone").write_text(build_insecure_zone(serial))
    nsd_port = pick_free_port(AUTHORITATIVE_ADDRESS, socket.SOCK_DGRAM)
    unbound_port = pick_free_port(RESOLVER_ADDRESS, socket.SOCK_DGRAM)
    (directory / "nsd.conf").write_text(
        f"""server:
    ip-address: {AUTHORITATIVE_ADDRESS}@{nsd_port}
    port: {nsd_port}
    username: ""
    chroot: ""
    zonesdir: "{directory}"
    database: ""
    zonelistfile: "{directory}/zone.list"
    xfrdfile: "{directory}/xfrd.state"
    xfrdir: "{directory}"
    pidfile: "{directory}/nsd.pid"
    logfile: "{directory}/nsd.log"
    server-count: 1
    verbosity: 1
remote-control:
    control-enable: no
zone:
    name: "{ZONE}"
    zonefile: "dane.test.signed"
zone:
    name: "{INSECURE_ZONE}"
    zonefile: "plain.zone"
"""
    )
    (directory / "unbound.conf").write_text(
        f"""server:
    interface: {RESOLVER_ADDRESS}@{unbound_port}
    port: {unbound_port}
    do-daemonize: no
    username: ""
    chroot: ""
    directory: "{directory}"
    pidfile: "{directory}/unbound.pid"
    use-syslog: no
    logfile: ""
    verbosity: 1
    num-threads: 1
    so-reuseport: no
    do-ip6: no
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    module-config: "validator iterator"
    trust-anchor-file: "{anchor}"
    harden-dnssec-stripped: yes
    qname-minimisation: no
    local-zone: "test." nodefault
remote-control:
    control-enable: no
stub-zone:
    name: "{ZONE}"
    stub-addr: {AUTHORITATIVE_ADDRESS}@{nsd_port}
stub-zone:
    name: "{INSECURE_ZONE}"
    stub-addr: {AUTHORITATIVE_ADDRESS}@{nsd_port}
"""
    )
    _run(UNBOUND.replace("unbound", "unbound-checkconf"), str(directory / "unbound.conf"),
         cwd=directory)  # fmt: skip
    nsd = _start([NSD, "-d", "-c", str(directory / "nsd.conf")], directory / "nsd.out")
    unbound = None
    try:
        if not _wait_for_dns(AUTHORITATIVE_ADDRESS, nsd_port, ZONE, nsd):
            raise ServerStartError(f"nsd did not answer: {(directory / 'nsd.out').read_text()}")
        unbound = _start([UNBOUND, "-d", "-c", str(directory / "unbound.conf")],
                         directory / "unbound.out")  # fmt: skip
        if not _wait_for_dns(RESOLVER_ADDRESS, unbound_port, ZONE, unbound):
            log = (directory / "unbound.out").read_text()
            raise ServerStartError(f"unbound did not answer: {log}")
        yield SignedZone(RESOLVER_ADDRESS, unbound_port, nsd_port, certs, directory)
    finally:
        if unbound is not None:
            _stop(unbound)
        _stop(nsd)


class _PolicyHandler(http.server.BaseHTTPRequestHandler):
    # Replaced per server: Host -> policy text, and the media type to serve it as.
    policies: dict[str, str] = {}  # noqa: RUF012 - set on a subclass per server
    content_type = "text/plain"

    def do_GET(self) -> None:
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].lower()
        policy = self.policies.get(host)
        if self.path != "/.well-known/mta-sts.txt" or policy is None:
            self.send_error(404)
            return
        body = policy.encode()
        self.send_response(200)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class PolicyServer:
    """``https://mta-sts.<domain>/.well-known/mta-sts.txt`` on ``address:port``.  ``policies``
    (keyed by ``mta-sts.<domain>``) may be changed while it runs: a new policy for a new id."""

    address: str
    port: int
    ca: trustme.CA
    policies: dict[str, str]

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context


@contextmanager
def policy_server(
    certs: Certificates,
    policies: dict[str, str] | None = None,
    *,
    content_type: str = "text/plain",
    port: int = 0,
) -> Iterator[PolicyServer]:
    """Serve the policies of dane.test and sts.dane.test over HTTPS with the certificate of
    ``mta-sts.dane.test`` and ``mta-sts.sts.dane.test``, on ``port`` (0: a free one; delivery
    fetches from 443)."""
    check_loopback(POLICY_ADDRESS)
    if policies is None:
        policies = {
            f"mta-sts.{ZONE}": POLICY,
            f"mta-sts.{STS_DOMAIN}": STS_POLICY,
            f"mta-sts.{ENCRYPT_DOMAIN}": ENCRYPT_POLICY,
        }
    attributes = {"policies": policies, "content_type": content_type}
    handler = type("Handler", (_PolicyHandler,), attributes)
    server = http.server.ThreadingHTTPServer((POLICY_ADDRESS, port), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    certs.policy.configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, name="mta-sts-https", daemon=True)
    thread.start()
    try:
        yield PolicyServer(POLICY_ADDRESS, server.server_address[1], certs.ca, policies)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
