"""DKIM signing as an operation: one pass over a message's body source, hashed, then signed.

The sending paths call :func:`signed` before MAIL FROM (the signature must be known before the
first byte of the message goes out); the message it returns sends the signature fields
followed by a second pass over the same source.  The body is read as it is sent: from memory,
or through the driver's body requests, so memory stays flat for a path or a file.  A body that
can be read only once (an iterable, a pipe) is first copied to a temporary file by the driver
(``SpoolBody``), read from there twice, and removed after it was sent (see docs/signing.rst).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Sequence

from smtpproto._wire.dkim_hash import HashedMessage, MessageHasher, SigningError
from smtpproto._wire.dkim_sign import DKIMSigner, sign_message
from smtpproto._wire.encoder import CRLFNormalizer
from smtpproto.driver import Now, Operation, RemoveSpool, SpoolBody

from .message import BodyReader, BodySource, OutgoingMessage, body_source

__all__ = ["hash_message", "signature_for", "signed", "signed_source"]


def signed(message: OutgoingMessage) -> Operation[OutgoingMessage]:
    """``message`` signed with the signers of its options (``SendOptions.dkim``, not empty),
    which the signed message no longer has, so that it is not signed twice.

    The signing time comes from the driver (``Now``).  Raises :exc:`~smtpproto.SigningError`
    when the message cannot be signed, and :exc:`~smtpproto.BodyReadError` when the driver
    cannot read or spool the body; either way nothing was sent, and no spool is left behind.
    """
    body = yield from signed_source(message.body, message.options.dkim)
    options = dataclasses.replace(message.options, dkim=())
    return OutgoingMessage(message.sender, message.recipients, body, options)


def signed_source(source: BodySource, signers: Sequence[DKIMSigner]) -> Operation[BodySource]:
    """The body of ``source`` with the signature fields of ``signers`` first, as
    :func:`signed` makes it."""
    now = int((yield Now()))
    if source.data is not None:
        fields, _ = _signature(_hashed_bytes(source.data, signers), signers, now)
        return body_source(fields + _wire_bytes(source.data))
    return (yield from _signed_stream(source, signers, now))


def _hashed_bytes(data: bytes, signers: Sequence[DKIMSigner]) -> HashedMessage:
    hasher = MessageHasher({signer.body_canonicalization for signer in signers})
    hasher.update(data)
    return hasher.finish()


def _wire_bytes(data: bytes) -> bytes:
    """``data`` as the hasher saw it: CRLF line ends, and the final CRLF that the end of data
    adds (sent here, so BDAT carries the same octets as DATA)."""
    normalizer = CRLFNormalizer()
    wire = normalizer.feed(data) + normalizer.flush()
    return wire if normalizer.at_line_start else wire + b"\r\n"


def _signature(
    hashed: HashedMessage, signers: Sequence[DKIMSigner], now: int
) -> tuple[bytes, HashedMessage]:
    try:
        return sign_message(hashed, signers, now=now), hashed
    except ValueError as error:  # an expiry not after the signing time
        raise SigningError(str(error)) from None


def _signed_stream(
    source: BodySource, signers: Sequence[DKIMSigner], now: int
) -> Operation[BodySource]:
    """The signed copy of a body the driver reads: hashed in one pass (from a spool if it can
    be read only once), to be read again when it is sent."""
    reader = yield from source.open()
    spool: os.PathLike[str] | None = None
    try:
        if source.single_use:
            spool = yield SpoolBody(reader.handle)
            yield from reader.close()
            source = BodySource(None, spool)
            reader = yield from source.open()
        hashed, digest = yield from _hash_pass(reader, signers)
        fields, hashed = _signature(hashed, signers, now)
    except Exception:  # BodyReadError, SigningError: no spool may stay behind
        yield from reader.close()
        if spool is not None:
            yield RemoveSpool(spool)
        raise
    return source.signed_copy(fields, len(fields) + hashed.size, digest, spool)


def _hash_pass(
    reader: BodyReader, signers: Sequence[DKIMSigner]
) -> Operation[tuple[HashedMessage, bytes]]:
    """Hash the message for DKIM, and its octets as read (for the check of the second pass)."""
    hasher = MessageHasher({signer.body_canonicalization for signer in signers})
    seen = hashlib.sha256()
    while chunk := (yield from reader.next_chunk()):
        hasher.update(chunk)
        seen.update(chunk)
    yield from reader.close()
    return hasher.finish(), seen.digest()


def hash_message(source: BodySource, signers: Sequence[DKIMSigner]) -> Operation[HashedMessage]:
    """Read ``source`` once and hash it for ``signers``' body canonicalizations.

    Raises :exc:`~smtpproto.BodyReadError` when the driver cannot read the body, and
    :exc:`~smtpproto.dkim.SigningError` for a header block too large to sign; the body is
    released either way.
    """
    reader = yield from source.open()
    try:
        hashed, _ = yield from _hash_pass(reader, signers)
    except Exception:
        yield from reader.close()
        raise
    return hashed


def signature_for(
    source: BodySource, signers: Sequence[DKIMSigner], *, now: int
) -> Operation[tuple[bytes, HashedMessage]]:
    """The ``DKIM-Signature`` fields for the message in ``source`` (to send before it), and
    what was hashed (``hashed.size + len(fields)`` is the message's size on the wire)."""
    hashed = yield from hash_message(source, signers)
    return _signature(hashed, signers, now)
