"""DKIM's view of a message as it streams: the header block, and the body hash per body
canonicalization (RFC 6376 §3.4.3 simple, §3.4.4 relaxed, §3.7 the body hash).

The hasher is fed the message exactly as the body source yields it (bytes before any encoding),
and first puts it through the same :class:`~smtpproto._wire.encoder.CRLFNormalizer` the DATA and
BDAT paths use, so what it hashes is what goes on the wire: line ends normalised to CRLF, not
dot-stuffed, and ending with the CRLF that the end of data adds to a message without one
(RFC 5321 §4.1.1.4).  Both canonicalizations treat the body as CRLF-terminated lines, so a
message is hashed as the receiver will see it.

Memory stays flat whatever the size of the body: the header block is kept (it is signed
whole, and bounded by :data:`MAX_HEADER_BLOCK`); of the body only a count of held-back empty
lines and one bit of held-back whitespace survive a chunk.  Nothing loops per byte or per line
in Python: each chunk goes through a few C-level ``bytes`` passes.  The output does
not depend on how the input is cut into chunks (tests/test_dkim.py cuts at every byte).
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .encoder import CRLFNormalizer
from .errors import SMTPError

__all__ = [
    "MAX_HEADER_BLOCK",
    "BodyCanonicalizer",
    "Canonicalization",
    "HashedMessage",
    "MessageHasher",
    "SigningError",
]

#: The largest header block the hasher keeps (it must be signed whole).  Real header blocks are
#: a few KiB; this bound only keeps a message with no empty line from filling memory.
MAX_HEADER_BLOCK = 1 << 20

_CRLF = b"\r\n"
_SPACE_BEFORE_CRLF = b" \r\n"
_TWO_SPACES = b"  "


class SigningError(SMTPError):
    """The message cannot be signed as it stands: no From header field, a malformed or
    oversized header block.  Raised before anything of the message is sent."""


class Canonicalization(enum.Enum):
    """A DKIM canonicalization algorithm (RFC 6376 §3.4), for the header or the body."""

    SIMPLE = "simple"
    RELAXED = "relaxed"


class BodyCanonicalizer:
    """Canonicalizes a body given as CRLF text in pieces, and hashes it with SHA-256.

    Every piece must be pure CRLF text that does not end inside a CRLF (what a
    :class:`CRLFNormalizer` emits).  Empty lines at the end are held back as a count, because
    only the end of the body says whether they are trailing (and ignored); relaxed also holds
    back the whitespace at the end of a piece, because the next piece says whether it ends the
    line (removed) or sits inside it (one space).
    """

    __slots__ = ("_content", "_hash", "_held_crlfs", "_held_space", "_relaxed")

    def __init__(self, canonicalization: Canonicalization) -> None:
        self._relaxed = canonicalization is Canonicalization.RELAXED
        self._hash = hashlib.sha256()
        self._held_crlfs = 0  # CRLFs at the end of what was fed, not yet hashed
        self._held_space = False  # relaxed: the text so far ends with WSP, not yet hashed
        self._content = False  # some non-empty line was hashed

    def update(self, text: bytes) -> None:
        if self._relaxed:
            if self._held_space:
                text = b" " + text  # merges with the WSP that follows, or goes before CRLF
            # Every run of WSP becomes one SP (RFC 6376 §3.4.4 b): tabs become spaces, then each
            # pass halves the runs of spaces.  On lines full of runs this is 106 MB/s against 31
            # for one re.sub; plain text is unchanged, about 250 (bench/bench_dkim.py, 2026-12-02).
            text = text.replace(b"\t", b" ")
            while _TWO_SPACES in text:
                text = text.replace(_TWO_SPACES, b" ")
            if _SPACE_BEFORE_CRLF in text:
                text = text.replace(_SPACE_BEFORE_CRLF, _CRLF)
            self._held_space = text.endswith(b" ")
            if self._held_space:
                text = text[:-1]
        # In CRLF text a trailing run of CR and LF octets is whole CRLFs.
        lines = text.rstrip(_CRLF)
        if lines:
            self._hash.update(_CRLF * self._held_crlfs + lines)
            self._content = True
            self._held_crlfs = 0
        self._held_crlfs += (len(text) - len(lines)) // 2

    def digest(self) -> bytes:
        """The body hash: trailing empty lines ignored, the last line ended with CRLF; an empty
        body is ``CRLF`` in simple and nothing in relaxed (RFC 6376 §3.4.3, §3.4.4)."""
        hash_ = self._hash.copy()
        if self._content or not self._relaxed:
            hash_.update(_CRLF)
        return hash_.digest()


@dataclass(frozen=True)
class HashedMessage:
    """What signing needs of a message: its header block and its body hashes."""

    #: The header fields as they go on the wire, each ending with CRLF, without the empty line.
    header_block: bytes
    #: SHA-256 of the canonicalized body, per body canonicalization asked for.
    body_hashes: Mapping[Canonicalization, bytes]
    #: Octets of the message on the wire (CRLF-normalised, before dot-stuffing), without the
    #: signatures that will be prepended: for SIZE.
    size: int


class MessageHasher:
    """Feed it a message in chunks, as the body source yields them; :meth:`finish` returns the
    :class:`HashedMessage` that :func:`~smtpproto.dkim.sign_message` signs.

    ``canonicalizations``: the body canonicalizations to hash for (one hash each), usually
    ``{signer.body_canonicalization for signer in signers}``.
    """

    __slots__ = ("_body", "_finished", "_header", "_in_body", "_normalizer", "_size")

    def __init__(self, canonicalizations: Iterable[Canonicalization]) -> None:
        self._normalizer = CRLFNormalizer()
        self._body = {c: BodyCanonicalizer(c) for c in canonicalizations}
        if not self._body:
            raise ValueError("give at least one body canonicalization")
        self._header = bytearray()
        self._in_body = False
        self._size = 0
        self._finished = False

    def update(self, chunk: bytes) -> None:
        """Account for the next chunk of the message (raw, line ends as the source has them)."""
        if self._finished:
            raise ValueError("MessageHasher.update() called after finish()")
        self._take(self._normalizer.feed(chunk))

    def finish(self) -> HashedMessage:
        """The end of the message.  Raises :exc:`SigningError` for a header block larger than
        :data:`MAX_HEADER_BLOCK`."""
        if self._finished:
            raise ValueError("MessageHasher.finish() called twice")
        self._finished = True
        self._take(self._normalizer.flush())
        if not self._normalizer.at_line_start:
            self._take(_CRLF)  # the CRLF the end of data adds (RFC 5321 §4.1.1.4)
        header = bytes(self._header)
        hashes = {c: body.digest() for c, body in self._body.items()}
        return HashedMessage(header, hashes, self._size)

    def _take(self, text: bytes) -> None:
        """Route normalised ``text`` to the header block until its empty line, then to the body
        canonicalizers."""
        self._size += len(text)
        if not self._in_body:
            start = max(len(self._header) - 2, 0)  # "CRLF" + "CRLF" may span two pieces
            self._header += text
            header = self._header
            if header.startswith(_CRLF):  # no header fields at all
                end = 0
            else:
                end = header.find(b"\r\n\r\n", start)
                if end < 0:
                    self._check_header_size()
                    return
                end += 2  # keep the last field's CRLF
            text = bytes(header[end + 2 :])
            del header[end:]
            self._in_body = True
            self._check_header_size()
        if text:
            for body in self._body.values():
                body.update(text)

    def _check_header_size(self) -> None:
        if len(self._header) > MAX_HEADER_BLOCK:
            raise SigningError(
                f"the message's header block is over {MAX_HEADER_BLOCK} octets (or has no empty "
                "line before the body): it cannot be signed"
            )
