"""DKIM signers and signing (RFC 6376, RFC 8463 for Ed25519, RFC 8301 for key sizes).

A :class:`DKIMSigner` is a signing identity: domain, selector, private key, which header
fields to sign, canonicalization and expiry.  :func:`sign_message` turns a
:class:`~smtpproto._wire.dkim_hash.HashedMessage` (header block and body hashes) into the
``DKIM-Signature`` header fields to put on top of the message.

The cryptography is done by libraries, imported only when a signer is made (the optional
``dkim`` extra): ``cryptography`` reads the key (PEM, PKCS#1 or PKCS#8, RSA or Ed25519) and
writes its public half for DNS; ``dkimpy`` canonicalizes and hashes the header fields, folds the
field and signs (RSA through its own PKCS#1 v1.5 code, Ed25519 through PyNaCl).  dkimpy's
``DKIM.sign`` hashes a whole in-memory body and reads the clock for ``t=``; we call the step
below it, ``DomainSigner.gen_header``, with a header block only, the body hash computed while
the message streamed, and ``t=`` from the caller's ``now``.  Both are pure computation (no
file, socket, clock or DNS), which is why this module may sit in the core.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from .addresses import ehlo_domain
from .dkim_hash import Canonicalization, HashedMessage, SigningError

__all__ = [
    "DEFAULT_OVERSIGNED_HEADERS",
    "DEFAULT_SIGNED_HEADERS",
    "DKIMSigner",
    "SigningAlgorithm",
    "dns_txt_record",
    "sign_message",
]

#: Signed when present: RFC 6376 §5.4.1's list, and List-Unsubscribe-Post (RFC 8058 §4).
DEFAULT_SIGNED_HEADERS = (
    "from", "sender", "reply-to", "subject", "date", "message-id", "to", "cc",
    "mime-version", "content-type", "content-transfer-encoding", "content-id",
    "content-description", "resent-date", "resent-from", "resent-sender", "resent-to",
    "resent-cc", "resent-message-id", "in-reply-to", "references", "list-id", "list-help",
    "list-unsubscribe", "list-unsubscribe-post", "list-subscribe", "list-post", "list-owner",
    "list-archive",
)  # fmt: skip
#: Signed once more than they occur (RFC 6376 §8.15), so that no instance can be added: the
#: fields RFC 5322 §3.6 allows once, what decides how the body is read, and the unsubscribe
#: fields a mailbox provider acts on.
DEFAULT_OVERSIGNED_HEADERS = (
    "from", "sender", "reply-to", "subject", "date", "message-id", "to", "cc", "in-reply-to",
    "references", "mime-version", "content-type", "content-transfer-encoding",
    "list-unsubscribe", "list-unsubscribe-post",
)  # fmt: skip
# Never signed: Bcc must not reach the recipients at all (RFC 5322 §3.6.3); a signature over
# DKIM-Signature or trace fields breaks on the way (RFC 6376 §5.4).
_NEVER_SIGNED = frozenset({"bcc", "resent-bcc", "dkim-signature", "received", "return-path"})
_FIELD_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+")  # RFC 5322 §3.6.8 ftext
_SELECTOR = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
_MIN_RSA_BITS = 1024  # RFC 8301 §3.2: verifiers reject shorter keys
_ED25519_SEED = 32  # octets of an Ed25519 private key (RFC 8032 §5.1.5)
_TXT_STRING = 255  # the longest string in a TXT record (RFC 1035 §3.3)
_EXTRA = "DKIM signing needs the optional dependencies: pip install 'smtpproto-sansio[dkim]'"


class SigningAlgorithm(enum.Enum):
    """The ``a=`` of a signature, decided by the kind of key."""

    RSA_SHA256 = "rsa-sha256"
    ED25519_SHA256 = "ed25519-sha256"  # RFC 8463

    @property
    def key_type(self) -> str:
        """The ``k=`` of the key's DNS record."""
        return "rsa" if self is SigningAlgorithm.RSA_SHA256 else "ed25519"


@dataclass(frozen=True)
class DKIMSigner:
    """One DKIM signing identity.  Made once, used for any number of messages.

    - ``domain`` (``d=``; U-labels become A-labels) and ``selector`` (``s=``): the public key is
      looked up at ``selector._domainkey.domain`` (:attr:`dns_name`).
    - ``private_key``: the key file's bytes — PEM (PKCS#1 or PKCS#8, RSA of 1024 bits or more,
      2048 recommended, or Ed25519), or the base64 of a raw 32-octet Ed25519 key as dkimpy's
      ``dknewkey`` writes it.  Reading the file is the caller's business.  The algorithm follows
      from the key (:attr:`algorithm`).
    - ``headers``: the fields signed where present (``From`` is required); ``oversign``: fields
      signed once more than present, so that none can be added without breaking the signature.
      ``Bcc``, ``Resent-Bcc``, ``DKIM-Signature``, ``Received`` and ``Return-Path`` are refused.
    - ``header_canonicalization``, ``body_canonicalization``: relaxed by default.
    - ``expires_in`` (seconds after the signing time) or ``expires_at`` (Unix time): ``x=``.

    Raises :exc:`ValueError` for a bad value or key, and :exc:`ImportError` naming the ``dkim``
    extra when its libraries are missing.
    """

    domain: str
    selector: str
    private_key: bytes = field(repr=False)
    _: KW_ONLY
    headers: Sequence[str] = DEFAULT_SIGNED_HEADERS
    oversign: Sequence[str] = DEFAULT_OVERSIGNED_HEADERS
    header_canonicalization: Canonicalization = Canonicalization.RELAXED
    body_canonicalization: Canonicalization = Canonicalization.RELAXED
    expires_in: int | None = None
    expires_at: int | None = None
    algorithm: SigningAlgorithm = field(init=False)
    _key: Any = field(init=False, repr=False, compare=False)
    _public_key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.domain.startswith("["):
            raise ValueError(f"a DKIM domain is a domain name, not {self.domain!r}")
        set_ = object.__setattr__  # a frozen dataclass's own fields
        set_(self, "domain", ehlo_domain(self.domain))
        if not all(map(_SELECTOR.fullmatch, self.selector.removesuffix(".").split("."))):
            raise ValueError(f"selector {self.selector!r} is not a sequence of DNS labels")
        set_(self, "selector", self.selector.removesuffix("."))
        set_(self, "headers", _field_names(self.headers))
        set_(self, "oversign", _field_names(self.oversign))
        if "from" not in (*self.headers, *self.oversign):
            raise ValueError("From must be signed (RFC 6376 §5.4)")
        if self.expires_in is not None and self.expires_at is not None:
            raise ValueError("give expires_in or expires_at, not both")
        if self.expires_in is not None and self.expires_in <= 0:
            raise ValueError("expires_in must be a positive number of seconds")
        algorithm, key, public = _load_key(self.private_key)
        set_(self, "algorithm", algorithm)
        set_(self, "_key", key)
        set_(self, "_public_key", public)

    @property
    def dns_name(self) -> str:
        """Where the public key is published: ``selector._domainkey.domain``."""
        return f"{self.selector}._domainkey.{self.domain}"

    @property
    def dns_record(self) -> str:
        """The TXT record to publish at :attr:`dns_name`: ``v=DKIM1; k=...; p=...``."""
        return f"v=DKIM1; k={self.algorithm.key_type}; p={self._public_key}"

    def zone_entry(self) -> str:
        """The record as a line of a DNS zone file, in strings of at most 255 characters."""
        record = self.dns_record
        strings = [record[at : at + _TXT_STRING] for at in range(0, len(record), _TXT_STRING)]
        quoted = " ".join(f'"{string}"' for string in strings)
        return f"{self.dns_name}. IN TXT ( {quoted} )"


def dns_txt_record(private_key: bytes) -> str:
    """The DKIM TXT record (``v=DKIM1; k=rsa; p=...``) for the public half of ``private_key``
    (any key a :class:`DKIMSigner` takes)."""
    algorithm, _, public = _load_key(private_key)
    return f"v=DKIM1; k={algorithm.key_type}; p={public}"


def sign_message(message: HashedMessage, signers: Sequence[DKIMSigner], *, now: int) -> bytes:
    """The ``DKIM-Signature`` header fields for ``message``, one per signer in that order, each
    ending with CRLF: put them before the message's first byte.

    ``now``: the signing time (``t=``), seconds since the Unix epoch, from the caller's clock.
    Raises :exc:`~smtpproto.dkim.SigningError` if the header block has no single From field or is
    malformed, :exc:`ValueError` if the message was hashed without a signer's body
    canonicalization or an ``expires_at`` is not after ``now``.
    """
    if not signers:
        raise ValueError("give at least one signer")
    if now < 0:
        raise ValueError("now is seconds since the Unix epoch")
    # The dkim extra, present since a signer was made.
    import dkim  # noqa: PLC0415
    import dkim.canonicalization  # noqa: PLC0415

    try:
        parsed = dkim.DKIM(message.header_block, linesep=b"\r\n")
    except (dkim.MessageFormatError, IndexError) as error:  # IndexError: a leading fold
        raise SigningError(f"the message's header block cannot be parsed: {error}") from None
    names = [name.lower().decode("ascii") for name, _ in parsed.headers]
    if names.count("from") != 1:
        raise SigningError("a signed message needs exactly one From field (RFC 6376 §5.4)")
    return b"".join(_signature(parsed, names, message, signer, int(now)) for signer in signers)


def _signature(
    parsed: Any, names: list[str], message: HashedMessage, signer: DKIMSigner, now: int
) -> bytes:
    import dkim.canonicalization  # noqa: PLC0415 -- imported by sign_message already

    body_hash = message.body_hashes.get(signer.body_canonicalization)
    if body_hash is None:
        raise ValueError(
            f"the message was hashed without {signer.body_canonicalization.value} body "
            "canonicalization: give the MessageHasher every signer's"
        )
    expires = signer.expires_at if signer.expires_in is None else now + signer.expires_in
    if expires is not None and expires <= now:
        raise ValueError(f"expires_at ({expires}) must be after the signing time ({now})")
    listed = set(signer.headers) | set(signer.oversign)
    signed = [name for name in names if name in listed] + list(signer.oversign)
    header_c, body_c = signer.header_canonicalization, signer.body_canonicalization
    canonicalization = f"{header_c.value}/{body_c.value}"
    fields = [
        (b"v", b"1"),
        (b"a", signer.algorithm.value.encode()),
        (b"c", canonicalization.encode()),
        (b"d", signer.domain.encode()),
        (b"s", signer.selector.encode()),
        (b"t", str(now).encode()),
        *([(b"x", str(expires).encode())] if expires is not None else []),
        (b"h", " : ".join(signed).encode()),
        (b"bh", base64.b64encode(body_hash)),
        # Last, as dkimpy's own sign() does: folding the real b= cannot move the tags before it.
        (b"b", b"0" * 60),
    ]
    parsed.signature_algorithm = signer.algorithm.value.encode()
    parsed.hasher = hashlib.sha256  # both algorithms hash with SHA-256
    policy = dkim.canonicalization.CanonicalizationPolicy.from_c_value(canonicalization.encode())
    value: bytes = parsed.gen_header(
        fields, [name.encode() for name in signed], policy, b"DKIM-Signature", signer._key
    )
    return b"DKIM-Signature: " + value


def _field_names(names: Iterable[str]) -> tuple[str, ...]:
    if isinstance(names, str):
        raise TypeError("give header field names as a sequence of strings")
    found = tuple(name.lower() for name in names)
    for name in found:
        if not _FIELD_NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not a header field name")
        if name in _NEVER_SIGNED:
            raise ValueError(f"the {name} field is never signed")
    return found


def _load_key(data: bytes) -> tuple[SigningAlgorithm, Any, str]:
    """The key's algorithm, the key as dkimpy signs with it, and its public half for ``p=``."""
    try:  # the dkim extra, only now: ``import smtpproto`` never needs it
        import dkim.crypto  # noqa: PLC0415
        import nacl.signing  # noqa: PLC0415
        from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
        from cryptography.hazmat.primitives.asymmetric import ed25519, rsa  # noqa: PLC0415
    except ImportError as error:
        raise ImportError(_EXTRA) from error

    text = data.strip()
    if text.startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(text, password=None)
        except TypeError:
            raise ValueError("the private key is encrypted: give it decrypted") from None
        except ValueError as error:
            raise ValueError(f"the private key cannot be read: {error}") from None
        if isinstance(key, rsa.RSAPrivateKey):
            if key.key_size < _MIN_RSA_BITS:
                raise ValueError(f"an RSA key of {key.key_size} bits is too short (RFC 8301 §3.2)")
            pkcs1 = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
            public = key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            rsa_key = dkim.crypto.parse_pem_private_key(pkcs1)
            return SigningAlgorithm.RSA_SHA256, rsa_key, base64.b64encode(public).decode()
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise ValueError(f"DKIM signs with RSA or Ed25519 keys, not {type(key).__name__}")
        seed = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
    else:
        try:
            seed = base64.b64decode(text, validate=True)
        except binascii.Error:
            seed = b""
        if len(seed) != _ED25519_SEED:
            raise ValueError(
                "the private key is neither PEM nor the base64 of a 32-octet Ed25519 key"
            )
    signing_key = nacl.signing.SigningKey(seed)
    public_key = base64.b64encode(bytes(signing_key.verify_key)).decode()
    return SigningAlgorithm.ED25519_SHA256, signing_key, public_key
