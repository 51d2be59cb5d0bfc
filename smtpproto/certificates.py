"""What DANE needs to know about an X.509 certificate, read by ``cryptography``.

This module lives in the core, not in the adapters, because reading a certificate is computation
over bytes the driver already holds (the DER chain the peer presented), like parsing a reply: no
socket, file, clock or DNS is involved, and keeping it here lets the DANE decisions of
:mod:`smtpproto.dane` be tested without a handshake.  Certificates are not parsed by hand: the
``cryptography`` package does it, and is imported only when a certificate is read, so the rest of
the core works without it.  Install it with the ``dane`` extra::

    pip install 'smtpproto-sansio[dane]'
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

__all__ = ["Certificate", "MissingExtraError", "available", "issued_by", "parse_certificate"]


class MissingExtraError(ImportError):
    """An optional dependency of smtpproto is not installed; the message names the extra."""


def _crypto() -> tuple[ModuleType, type[Exception]]:
    """``cryptography.x509`` and its signature error, or a :class:`MissingExtraError`."""
    try:
        from cryptography import x509  # noqa: PLC0415 - optional: only DANE needs it
        from cryptography.exceptions import InvalidSignature  # noqa: PLC0415
    except ImportError as exc:
        raise MissingExtraError(
            "reading certificates for DANE needs the 'cryptography' package: "
            "pip install 'smtpproto-sansio[dane]'"
        ) from exc
    return x509, InvalidSignature


def available() -> bool:
    """Whether certificates can be read: the ``dane`` extra (``cryptography``) is installed."""
    try:
        _crypto()
    except MissingExtraError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Certificate:
    """One certificate of a presented chain, reduced to what DANE matching and name checks use.

    ``not_before``/``not_after`` are POSIX seconds (UTC), comparable with the ``now`` callers pass.
    ``dns_names`` are the subjectAltName dNSName entries, lower-cased, without a trailing dot;
    ``common_names`` the subject's CN values, consulted only when there is no dNSName (RFC 6125).
    """

    der: bytes
    spki_der: bytes
    dns_names: tuple[str, ...]
    common_names: tuple[str, ...]
    not_before: float
    not_after: float


def _normal(name: str) -> str:
    return name.rstrip(".").lower()


def parse_certificate(der: bytes) -> Certificate:
    """Read one DER certificate.  Raises :class:`ValueError` if it is not one, and
    :class:`MissingExtraError` if ``cryptography`` is not installed."""
    x509, _ = _crypto()
    from cryptography.hazmat.primitives.serialization import (  # noqa: PLC0415
        Encoding,
        PublicFormat,
    )

    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns_names = tuple(_normal(n) for n in san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        dns_names = ()
    common = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return Certificate(
        der=bytes(der),
        spki_der=cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo),
        dns_names=dns_names,
        common_names=tuple(_normal(str(a.value)) for a in common),
        not_before=cert.not_valid_before_utc.timestamp(),
        not_after=cert.not_valid_after_utc.timestamp(),
    )


def issued_by(child: Certificate, issuer: Certificate) -> bool:
    """Whether ``issuer`` names and signed ``child`` (the signature checks with its key)."""
    x509, invalid_signature = _crypto()
    try:
        x509.load_der_x509_certificate(child.der).verify_directly_issued_by(
            x509.load_der_x509_certificate(issuer.der)
        )
    except (ValueError, TypeError, invalid_signature):
        return False
    return True
