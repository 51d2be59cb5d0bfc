"""DKIM signing as an operation: one pass over a message's body source, hashed, then signed.

The sending paths call :func:`signature_for` before MAIL FROM (the signature must be known
before the first byte of the message goes out), then send the fields it returns followed by a
second pass over the same source.  The body is read as it is sent: from memory, or through the
driver's body requests, so memory stays flat for a path or a file.  A one-shot stream cannot be
read twice; the caller spools it first (see docs/signing.rst).
"""

from __future__ import annotations

from collections.abc import Sequence

from smtpproto._wire.dkim_hash import HashedMessage, MessageHasher
from smtpproto._wire.dkim_sign import DKIMSigner, sign_message
from smtpproto._wire.errors import SMTPError
from smtpproto.driver import Operation

from .message import BodySource

__all__ = ["hash_message", "signature_for"]


def hash_message(source: BodySource, signers: Sequence[DKIMSigner]) -> Operation[HashedMessage]:
    """Read ``source`` once and hash it for ``signers``' body canonicalizations.

    Raises :exc:`~smtpproto.BodyReadError` when the driver cannot read the body, and
    :exc:`~smtpproto.dkim.SigningError` for a header block too large to sign; the body is
    released either way.
    """
    hasher = MessageHasher({signer.body_canonicalization for signer in signers})
    reader = yield from source.open()
    try:
        while chunk := (yield from reader.next_chunk()):
            hasher.update(chunk)
    except SMTPError:
        yield from reader.close()
        raise
    yield from reader.close()
    return hasher.finish()


def signature_for(
    source: BodySource, signers: Sequence[DKIMSigner], *, now: int
) -> Operation[tuple[bytes, HashedMessage]]:
    """The ``DKIM-Signature`` fields for the message in ``source`` (to send before it), and
    what was hashed (``hashed.size + len(fields)`` is the message's size on the wire)."""
    hashed = yield from hash_message(source, signers)
    return sign_message(hashed, signers, now=now), hashed
