"""Streaming encoders for message content: CRLF normalisation, DATA dot-stuffing, body inspection.

Every function here works on whole chunks with C-level ``bytes`` methods; nothing loops per byte or
per line in Python, and nothing keeps more than one chunk (plus one held-back CR) in memory.

Speed notes (CPython 3.11, measured on 64 KiB chunks of mail text, see ``bench/bench_core.py``):
single-byte ``find``/``replace`` run on ``memchr`` (several GB/s) while two-byte patterns such as
``b"\\r\\n"`` fall back to a scan of under 1 GB/s.  So the fast paths test single bytes, and the
"already CRLF" check is "drop every CR, expand every LF, compare": three memchr-speed passes.  The
dot-stuffing pass uses a precompiled regex because ``re`` finds ``b"\\n."`` about twice as fast as
``bytes.replace`` does.
"""

from __future__ import annotations

import re

from .errors import LocalProtocolError

__all__ = [
    "MAX_TEXT_LINE",
    "BodyInspector",
    "CRLFNormalizer",
    "DataEncoder",
    "check_crlf_chunk",
    "is_pure_crlf",
]

# RFC 5321 §4.5.3.1.6: a text line is at most 1000 octets including its CRLF.
MAX_TEXT_LINE = 998

_CR = b"\r"
_LF = b"\n"
_CRLF = b"\r\n"
# After normalisation every LF is part of a CRLF, so "LF then dot" is exactly "a line starts with a
# dot" (RFC 5321 §4.5.2); the first line of a chunk is handled separately.
_DOT_AFTER_LINE_BREAK = re.compile(rb"\n\.")
_STUFFED_DOT_AFTER_LINE_BREAK = b"\n.."
_END_OF_DATA = b".\r\n"


def is_pure_crlf(data: bytes) -> bool:
    """True if every CR in ``data`` starts a CRLF and every LF ends one."""
    return data.replace(_CR, b"").replace(_LF, _CRLF) == data


def check_crlf_chunk(chunk: bytes, pending_cr: bool) -> bool:
    """Refuse a bare CR or LF in one chunk of a CRLF text sent in chunks (BDAT text is CRLF text
    too: RFC 3030 §2, S2).  ``pending_cr``: the previous chunk ended with CR, so this one must
    start with LF.  Returns whether this one ends with CR."""
    if pending_cr:
        if not chunk.startswith(b"\n"):
            raise LocalProtocolError("a BDAT chunk ended with a bare CR")
        chunk = chunk[1:]
    ends_with_cr = chunk.endswith(b"\r")
    if ends_with_cr:
        chunk = chunk[:-1]
    if not is_pure_crlf(chunk):
        raise LocalProtocolError(
            "a text BDAT chunk contains a bare CR or LF: normalise line endings to CRLF first"
        )
    return ends_with_cr


def _normalize_complete(data: bytes) -> bytes:
    """Turn CRLF, bare CR and bare LF into CRLF; ``data`` must not end inside a CRLF."""
    if _CR not in data:
        return data.replace(_LF, _CRLF)  # Unix line ends: the common case
    if _LF not in data:
        return data.replace(_CR, _CRLF)  # classic Mac line ends
    if is_pure_crlf(data):
        return data
    # Mixed line ends: fold every kind to LF, then expand (two-byte search, but only here).
    return data.replace(_CRLF, _LF).replace(_CR, _LF).replace(_LF, _CRLF)


class CRLFNormalizer:
    """Streaming line-end normaliser: bare CR and bare LF become CRLF, CRLF stays.

    The result does not depend on how the input is cut into chunks.  A chunk that ends with CR
    cannot be decided yet (the next chunk may start with LF), so that CR is held back and emitted by
    the next :meth:`feed` or by :meth:`flush`.

    :meth:`flush` marks the end of the input and emits a held-back CR as CRLF.  It does not reset
    the object: feeding may continue afterwards, but a CR that was flushed is already committed as
    a line break even if the next chunk starts with LF.  :attr:`at_line_start` always describes all
    output emitted so far.
    """

    __slots__ = ("_at_line_start", "_held_cr")

    def __init__(self) -> None:
        self._held_cr = False
        self._at_line_start = True

    def feed(self, chunk: bytes) -> bytes:
        """Normalise ``chunk`` and return what can be emitted now (possibly ``b""``)."""
        if self._held_cr:
            chunk = _CR + chunk
            self._held_cr = False
        if chunk.endswith(_CR):
            chunk = chunk[:-1]
            self._held_cr = True
        if not chunk:
            return b""
        out = _normalize_complete(chunk)
        # Normalised output has no bare LF, so ending with LF means ending with CRLF.
        self._at_line_start = out.endswith(_LF)
        return out

    def flush(self) -> bytes:
        """End of input: return a held-back CR as CRLF (or ``b""`` if none is held)."""
        if not self._held_cr:
            return b""
        self._held_cr = False
        self._at_line_start = True
        return _CRLF

    @property
    def at_line_start(self) -> bool:
        """True if nothing was emitted yet or everything emitted ends with CRLF."""
        return self._at_line_start


class DataEncoder:
    """Encodes message content for the DATA command (RFC 5321 §4.1.1.4, §4.5.2, §2.3.8).

    Line ends are normalised to CRLF *before* dot-stuffing (C7, S2), so a bare-LF or bare-CR
    "terminator" such as ``b"\\n.\\n"`` or ``b"\\r.\\r"`` becomes a stuffed ``..`` line and the
    sequence CRLF.CRLF can only ever appear as the real terminator.  A line starting with ``.``
    gets a second one (C6).  :meth:`end` returns the tail: CRLF if the content did not already end
    with one (C5: exactly one, never an extra), then ``.\\r\\n``; an empty message yields just
    ``.\\r\\n``.  Once :meth:`end` was called, :meth:`encode` and :meth:`end` raise ``ValueError``.
    """

    __slots__ = ("_ended", "_normalizer", "_octets_in")

    def __init__(self) -> None:
        self._normalizer = CRLFNormalizer()
        self._octets_in = 0
        self._ended = False

    def encode(self, chunk: bytes) -> bytes:
        """Return the wire bytes for the next piece of content (possibly ``b""``)."""
        if self._ended:
            raise ValueError("DataEncoder.encode() called after end()")
        self._octets_in += len(chunk)
        at_line_start = self._normalizer.at_line_start
        out = self._normalizer.feed(chunk)
        # No dot at all (base64 attachments, most binary-free parts): nothing to stuff.
        if b"." in out:
            out = _DOT_AFTER_LINE_BREAK.sub(_STUFFED_DOT_AFTER_LINE_BREAK, out)
            if at_line_start and out.startswith(b"."):
                out = b"." + out
        return out

    def end(self) -> bytes:
        """Return the final bytes: a missing last CRLF, then the ``.\\r\\n`` terminator."""
        if self._ended:
            raise ValueError("DataEncoder.end() called twice")
        self._ended = True
        tail = self._normalizer.flush()  # b"" or b"\r\n": neither can hold a dot
        if not self._normalizer.at_line_start:
            tail += _CRLF
        return tail + _END_OF_DATA

    @property
    def octets_in(self) -> int:
        """Number of content octets passed to :meth:`encode` so far."""
        return self._octets_in


class BodyInspector:
    """Streamed look at a body to choose the BODY= type it needs (RFC 6152, RFC 3030).

    Call :meth:`feed` with each chunk; the properties describe the body fed so far as if it ended
    there:

    - ``size``: octets fed.
    - ``eight_bit``: some octet is >= 0x80.
    - ``binary``: a NUL octet, or a CR or LF that is not part of a CRLF (RFC 2045 §2.7/2.8: such
      content is not 7bit/8bit text).  A body ending in CR counts as binary until a chunk starting
      with LF arrives.
    - ``longest_line``: the longest line in octets, not counting its line break.  Lines are what
      :class:`DataEncoder` would send: CRLF, bare LF and bare CR each end one.

    Feed a :class:`CRLFNormalizer`'s output instead of the raw body to ask "which type does the
    body need once its line ends are normalised?".
    """

    __slots__ = (
        "_bare_line_end",
        "_eight_bit",
        "_longest_line",
        "_nul",
        "_partial_line",
        "_pending_cr",
        "_size",
    )

    def __init__(self) -> None:
        self._size = 0
        self._eight_bit = False
        self._nul = False
        self._bare_line_end = False
        self._pending_cr = False  # the body so far ends with CR; its LF may come next
        self._longest_line = 0
        self._partial_line = 0  # length of the unterminated line at the end so far

    def feed(self, chunk: bytes) -> None:
        """Account for the next chunk of the body."""
        if not chunk:
            return  # also keeps a pending CR pending
        self._size += len(chunk)
        if not self._eight_bit:
            self._eight_bit = not chunk.isascii()
        if not self._nul:
            self._nul = b"\0" in chunk
        if not self._bare_line_end:
            self._bare_line_end = self._has_bare_line_end(chunk)
        self._pending_cr = chunk.endswith(_CR)
        self._measure_lines(chunk)

    def _has_bare_line_end(self, chunk: bytes) -> bool:
        if self._pending_cr:
            if not chunk.startswith(_LF):
                return True
            chunk = chunk[1:]  # that LF completes the previous chunk's CR
        if chunk.endswith(_CR):
            chunk = chunk[:-1]  # decided by the next chunk (or by ``binary`` at the end)
        if _CR not in chunk:
            return _LF in chunk
        return not is_pure_crlf(chunk)

    def _measure_lines(self, chunk: bytes) -> None:
        last_break = max(chunk.rfind(_LF), chunk.rfind(_CR))
        if last_break < 0:
            self._partial_line += len(chunk)
        else:
            # Every line completed in this chunk is at most partial + last_break long, so a chunk
            # that cannot beat the record needs no splitting.
            if self._partial_line + last_break > self._longest_line:
                # bytes.splitlines breaks at exactly CRLF, CR and LF.  A CRLF split across chunks
                # yields an empty first line here, which cannot change the maximum.
                lines = chunk.splitlines()
                self._longest_line = max(
                    self._longest_line, self._partial_line + len(lines[0]), *map(len, lines)
                )
            self._partial_line = len(chunk) - last_break - 1
        self._longest_line = max(self._longest_line, self._partial_line)

    @property
    def size(self) -> int:
        return self._size

    @property
    def eight_bit(self) -> bool:
        return self._eight_bit

    @property
    def binary(self) -> bool:
        return self._nul or self._bare_line_end or self._pending_cr

    @property
    def longest_line(self) -> int:
        return self._longest_line

    @property
    def needs_body(self) -> str:
        """``"7BIT"``, ``"8BITMIME"`` or ``"BINARYMIME"``: the least the body needs.

        Lines longer than :data:`MAX_TEXT_LINE` octets also need BINARYMIME: 7bit and 8bit text
        keep the 1000-octet line limit (RFC 6152 §3, RFC 5321 §4.5.3.1.6).
        """
        if self.binary or self._longest_line > MAX_TEXT_LINE:
            return "BINARYMIME"
        if self._eight_bit:
            return "8BITMIME"
        return "7BIT"
