"""DKIM signing (RFC 6376; Ed25519 per RFC 8463): signers, the streaming hasher, signing.

Signing a message takes two passes over it, and memory stays flat in both::

    from smtpproto.dkim import DKIMSigner, MessageHasher, sign_message

    signer = DKIMSigner("example.org", "mail2026", key_bytes)  # reading the key is yours
    hasher = MessageHasher({signer.body_canonicalization})
    for chunk in message_chunks:  # the message as it will be sent, in any chunks
        hasher.update(chunk)
    fields = sign_message(hasher.finish(), [signer], now=int(time.time()))
    # send fields + the message (read again, or from a spool)

Why this lives in the core: signing is pure computation over bytes and a key.  The caller
reads the key file and the clock (``now=``); nothing here opens a file or a socket, asks DNS or
reads the time, and the libraries that do the cryptography (the optional ``dkim`` extra:
dkimpy, PyNaCl, cryptography) are imported only when a :class:`DKIMSigner` is made, so ``import
smtpproto`` never needs them.  The implementation sits in the wire layer
(``smtpproto._wire.dkim_hash``, ``smtpproto._wire.dkim_sign``) so that the sending operations,
which live above it, can sign; this module is its public face.

What is signed is what goes on the wire: the hasher puts the message through the same line-end
normalisation as DATA and BDAT, before dot-stuffing, with the final CRLF the end of data adds.
An ``email.message.Message`` loses its ``Bcc`` when it is serialised for sending, before the
hasher sees a byte; bytes, files and streams are hashed and sent exactly as given, and ``Bcc``
is never among the signed fields.
"""

from __future__ import annotations

from ._wire.dkim_hash import (
    MAX_HEADER_BLOCK,
    Canonicalization,
    HashedMessage,
    MessageHasher,
    SigningError,
)
from ._wire.dkim_sign import (
    DEFAULT_OVERSIGNED_HEADERS,
    DEFAULT_SIGNED_HEADERS,
    DKIMSigner,
    SigningAlgorithm,
    dns_txt_record,
    sign_message,
)

__all__ = [
    "DEFAULT_OVERSIGNED_HEADERS",
    "DEFAULT_SIGNED_HEADERS",
    "MAX_HEADER_BLOCK",
    "Canonicalization",
    "DKIMSigner",
    "HashedMessage",
    "MessageHasher",
    "SigningAlgorithm",
    "SigningError",
    "dns_txt_record",
    "sign_message",
]
