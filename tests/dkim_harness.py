"""What the DKIM tests share: keys, a dnsmasq serving their TXT records, the messages, and
dkimpy as the verifier (tests/test_dkim.py, tests/test_dkim_streams.py)."""

from __future__ import annotations

import base64
import os
import re
import socket
import subprocess
import time
import tracemalloc
from collections.abc import Iterator

import dkim
import dkim.canonicalization
import dns.exception
import dns.message
import dns.query
import dns.rdatatype
import dns.resolver
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from smtpproto import DataEncoder
from smtpproto.dkim import (
    Canonicalization,
    DKIMSigner,
    HashedMessage,
    MessageHasher,
    sign_message,
)
from tests.servers.dnsmasq import DNSMASQ, Zone, dnsmasq_arguments
from tests.servers.fixtures import require_server
from tests.servers.net import pick_free_port

RELAXED, SIMPLE = Canonicalization.RELAXED, Canonicalization.SIMPLE
DOMAIN = "dkim.test"
NOW = 1_700_000_000  # a fixed signing time in the past: signatures are reproducible
MESSAGE = (
    b"From: Alice <alice@dkim.test>\r\nTo: bob@example.net\r\nSubject:  hello \t there \r\n"
    b"Date: Wed, 02 Dec 2026 19:00:00 +0000\r\nMessage-ID: <1@dkim.test>\r\n\r\n"
    b"Hi Bob,  \t\r\n\r\n.a line that starts with a dot\r\n..two\r\n\r\n\r\n"
)


def private_pem(
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey,
) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_keys() -> dict[str, bytes]:
    """RSA-2048 as PKCS#1 and PKCS#8 PEM, Ed25519 as PEM and as dkimpy's base64 seed."""
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ed_key = ed25519.Ed25519PrivateKey.generate()
    seed = ed_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    pkcs1 = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    return {
        "rsa": private_pem(rsa_key),
        "rsa-pkcs1": pkcs1.replace(b"\n", b"\r\n"),  # a key file with CRLF line ends
        "ed25519": private_pem(ed_key),
        "ed25519-seed": base64.b64encode(seed) + b"\n",
    }


class TXTServer:
    """dnsmasq serving TXT records under .test (the shared zone has no TXT records)."""

    def __init__(self, records: dict[str, str]) -> None:
        self.host = "127.0.0.53"
        self.port = pick_free_port(self.host, socket.SOCK_DGRAM)
        dead = f"{self.host}#1"  # the zone has no SERVFAIL or time-out domains
        arguments = dnsmasq_arguments(Zone(), self.host, self.port, dead, dead)
        arguments += [f"--txt-record={name},{value}" for name, value in records.items()]
        self._process = subprocess.Popen(
            arguments,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not self._answers():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"dnsmasq did not start: {' '.join(arguments)}")
            time.sleep(0.05)

    def _answers(self) -> bool:
        query = dns.message.make_query("probe.test", "TXT")
        try:
            dns.query.udp(query, self.host, timeout=0.5, port=self.port)
        except (dns.exception.Timeout, OSError):
            return False
        return True

    def txt(self, name: bytes, timeout: float = 5) -> bytes | None:
        """dkimpy's ``dnsfunc``: the TXT record's strings joined, or None."""
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [self.host]
        resolver.port = self.port
        resolver.lifetime = timeout
        try:
            answer = resolver.resolve(name.decode(), dns.rdatatype.TXT)
        except dns.resolver.NXDOMAIN:
            return None
        return b"".join(answer[0].strings)

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(timeout=5)


def signers_for(keys: dict[str, bytes]) -> dict[str, DKIMSigner]:
    """A signer per key, its selector named after the key."""
    return {name: DKIMSigner(DOMAIN, name, key) for name, key in keys.items()}


def serve_keys(signers: dict[str, DKIMSigner]) -> Iterator[TXTServer]:
    """A TXTServer publishing every signer's key until the generator is closed."""
    require_server(os.access(DNSMASQ, os.X_OK), "dnsmasq")
    server = TXTServer({s.dns_name: s.dns_record for s in signers.values()})
    try:
        yield server
    finally:
        server.stop()


def hashed_and_signed(
    message: bytes, signers: list[DKIMSigner], chunk: int = 1 << 16, now: int = NOW
) -> bytes:
    """The signature fields for ``message`` fed in pieces of ``chunk`` octets."""
    hasher = MessageHasher({s.body_canonicalization for s in signers})
    for at in range(0, len(message), chunk):
        hasher.update(message[at : at + chunk])
    return sign_message(hasher.finish(), signers, now=now)


def on_the_wire(message: bytes) -> bytes:
    """What a receiver gets: the DATA encoding of ``message``, dot-stuffing and the terminator
    undone."""
    encoder = DataEncoder()
    wire = encoder.encode(message) + encoder.end()
    return re.sub(rb"(?m)^\.", b"", wire[: -len(b".\r\n")])


def verify(txt_server: TXTServer, signed: bytes, index: int = 0) -> bool:
    """dkimpy's verdict on signature ``index``: a bad body hash or an expired signature is
    an exception in dkimpy, and a failure here."""
    verifier = dkim.DKIM(signed, minkey=1024)
    try:
        return bool(verifier.verify(idx=index, dnsfunc=txt_server.txt))
    except dkim.DKIMException:
        return False


def signed_message(message: bytes, signers: list[DKIMSigner], chunk: int = 1 << 16) -> bytes:
    return hashed_and_signed(message, signers, chunk) + on_the_wire(message)


EDGE_MESSAGES = [
    pytest.param(b"From: a@dkim.test\r\nSubject: empty\r\n\r\n", id="empty-body"),
    pytest.param(b"From: a@dkim.test\r\nSubject: no body at all\r\n", id="no-empty-line"),
    pytest.param(b"From: a@dkim.test\r\n\r\nlast line  \t", id="no-final-crlf"),
    pytest.param(b"From: a@dkim.test\n\n.\n.\n..\nend\n", id="dots-bare-lf"),
    pytest.param(b"From: a@dkim.test\r\rbody\r\r\r", id="bare-cr"),
    pytest.param(b"From: a@dkim.test\r\n\r\n \r\n\t\r\n", id="only-blank-lines"),
    pytest.param(
        "From: Jörg <jörg@dkim.test>\r\nSubject: Grüße  aus   Köln\r\n\r\nÄ ö ü\r\n".encode(),
        id="utf8-headers",
    ),
    pytest.param(b"From: a@dkim.test\r\nX-Raw: \xe9t\xe9\r\n\r\n\xff\xfe 8bit\r\n", id="8bit"),
]

HEADER = b"From: a@dkim.test\r\nSubject: big\r\n\r\n"
# About 64 KiB of text lines with runs of whitespace for relaxed to rewrite.
BLOCK = b"".join(b"line %06d  with\t some   spaces \r\n" % n for n in range(1900))


def hash_blocks(count: int) -> tuple[HashedMessage, int]:
    """Hash HEADER and ``count`` BLOCKs for both body canonicalizations; return the result and
    the peak of memory Python allocated meanwhile (tracemalloc)."""
    hasher = MessageHasher({RELAXED, SIMPLE})
    tracemalloc.start()
    try:
        hasher.update(HEADER)
        for _ in range(count):
            hasher.update(BLOCK)
        hashed = hasher.finish()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return hashed, peak


FIFTY_MB = 50 * (1 << 20) // len(BLOCK)


MAIL_DKIM_SCRIPT = """
use strict; use warnings;
use Mail::DKIM::Verifier; use Mail::DKIM::DNS; use Net::DNS::Resolver;
Mail::DKIM::DNS::resolver(Net::DNS::Resolver->new(
    nameservers => [$ARGV[0]], port => $ARGV[1], udp_timeout => 5, tcp_timeout => 5));
my $verifier = Mail::DKIM::Verifier->new();
binmode STDIN; local $/; $verifier->PRINT(<STDIN>); $verifier->CLOSE();
print $_->algorithm, " ", $_->result_detail, "\n" foreach $verifier->signatures;
"""


def mail_dkim_verdicts(txt_server: TXTServer, message: bytes) -> list[str]:
    """Mail::DKIM's verdict on each signature of ``message``: ``["rsa-sha256 pass", ...]``;
    skips the test when Perl's Mail::DKIM is missing."""
    probe = ["perl", "-MMail::DKIM::Verifier", "-e", "1"]
    found = subprocess.run(probe, check=False, capture_output=True).returncode == 0
    require_server(found, "Mail::DKIM (Debian package libmail-dkim-perl)")
    command = ["perl", "-e", MAIL_DKIM_SCRIPT, txt_server.host, str(txt_server.port)]
    done = subprocess.run(command, input=message, capture_output=True, check=True)
    return done.stdout.decode().splitlines()


def crlf(maildir_file: bytes) -> bytes:
    """A message as Postfix's Maildir keeps it (LF line ends) back in its CRLF form."""
    return maildir_file.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
