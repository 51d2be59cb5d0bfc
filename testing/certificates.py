"""Throwaway certificates for tests: a private certificate authority made with trustme.

Only the client contexts built here trust the CA, so a TLS test checks real verification against
certificates that no system store knows.  Besides a good certificate, the material holds the
usual ways verification fails: a wrong name, an untrusted issuer, an expired certificate.
"""

from __future__ import annotations

import datetime
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import trustme

__all__ = ["DEFAULT_IDENTITIES", "CertFiles", "CertKind", "TLSMaterial", "make_tls_material"]

#: Names the good certificate always covers: the loopback names and addresses.
DEFAULT_IDENTITIES: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")

CertKind = Literal["good", "wrong-name", "untrusted", "expired"]


@dataclass(frozen=True)
class CertFiles:
    """PEM files of one server certificate: ``cert`` holds the chain, ``key`` the private key."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class TLSMaterial:
    """Files of the test CA and of its server certificates.

    ``certs["good"]`` covers :data:`DEFAULT_IDENTITIES` (plus any extra names); the others
    exist to make verification fail: ``wrong-name`` is for ``wrong-name.invalid`` only,
    ``untrusted`` comes from a second CA that clients do not trust, ``expired`` ended a day ago.
    """

    ca_cert: Path
    certs: dict[CertKind, CertFiles]

    @property
    def cert(self) -> Path:
        return self.certs["good"].cert

    @property
    def key(self) -> Path:
        return self.certs["good"].key

    def client_context(self) -> ssl.SSLContext:
        """A fresh verifying client context (hostname check on) that trusts only the test CA."""
        # With a cafile, create_default_context loads no system roots.
        return ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca_cert))

    def server_context(self, kind: CertKind = "good") -> ssl.SSLContext:
        """A fresh server-side context presenting the certificate of the given kind."""
        files = self.certs[kind]
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(files.cert), str(files.key))
        return context


def _write_leaf(leaf: trustme.LeafCert, directory: Path, stem: str) -> CertFiles:
    cert = directory / f"{stem}.crt"
    key = directory / f"{stem}.key"
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(key))
    # World-readable, so that servers which drop privileges (Postfix's smtpd, smtp-sink -u)
    # can still read them: the key protects nothing but a test.
    cert.chmod(0o644)
    key.chmod(0o644)
    return CertFiles(cert=cert, key=key)


def make_tls_material(directory: Path, extra_identities: Iterable[str] = ()) -> TLSMaterial:
    """Create a CA and its server certificates as PEM files in ``directory``.

    Needs trustme (the ``testing`` extra).  ``extra_identities``: more host names or addresses
    the good certificate covers (``*.example.test`` wildcards too).
    """
    import trustme  # noqa: PLC0415 -- optional: only this function needs it

    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="smtpproto test CA")
    other_ca = trustme.CA(organization_name="smtpproto untrusted CA")
    identities = (*DEFAULT_IDENTITIES, *extra_identities)
    now = datetime.datetime.now(datetime.UTC)
    leaves: dict[CertKind, trustme.LeafCert] = {
        "good": ca.issue_cert(*identities),
        "wrong-name": ca.issue_cert("wrong-name.invalid"),
        "untrusted": other_ca.issue_cert(*identities),
        "expired": ca.issue_cert(
            *identities,
            not_before=now - datetime.timedelta(days=30),
            not_after=now - datetime.timedelta(days=1),
        ),
    }
    ca_cert = directory / "ca.crt"
    ca.cert_pem.write_to_path(str(ca_cert))
    ca_cert.chmod(0o644)
    certs = {kind: _write_leaf(leaf, directory, kind) for kind, leaf in leaves.items()}
    return TLSMaterial(ca_cert=ca_cert, certs=certs)
