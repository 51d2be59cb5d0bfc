"""Assembles reply lines into SMTP replies (RFC 5321 §4.2) and reads enhanced status codes.

Reply line grammar (§4.2): three digits, then ``-`` when more lines follow, or ``SP text`` or
nothing on the last line.  The assembler is on the hot path of every reply: no regular
expressions, and the two caches below each carry the figure that justifies them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from smtpproto._wire.errors import RemoteProtocolError

__all__ = ["EnhancedStatus", "ReplyAssembler", "parse_enhanced_status"]

# The octet after the code says whether the reply goes on: False for "-", True for SP.
_LINE_IS_LAST = {ord("-"): False, ord(" "): True}
_CODE_LENGTH = 3
# Single-line replies seen before, parsed, shared by every connection of the process: servers
# repeat "250 2.1.5 Ok" all session, and greet every connection alike.  Filled up to a bound and
# never evicted (each entry is at most one line under the line limit; the values are immutable).
# Worth 4.5 % of the client's own CPU per message in bench_session A, 3.4 % per session in B
# and 4.5 % per recipient in C (instructions, 2026-12-03).
_MAX_KNOWN_LINES = 256
_KNOWN_LINES: dict[bytes, tuple[int, tuple[str, ...]]] = {}
_CRLF_LENGTH = 2

# Enhanced status codes (RFC 3463 §2) exist for success, transient and permanent failure only.
_STATUS_CLASSES = frozenset({2, 4, 5})
# What a status must start with, by reply class: its class must match the reply's (RFC 2034 §4).
_STATUS_PREFIXES = {klass: f"{klass}." for klass in _STATUS_CLASSES}
# "c.s.d": ASCII digits only ("\d" would take "²"), 1-3 of them; a space or the end follows.
_STATUS = re.compile(r"[245]\.([0-9]{1,3})\.([0-9]{1,3})")
_LONGEST_STATUS = len("5.999.999")
# Servers repeat a handful of statuses: each distinct one is parsed once and its (immutable)
# object shared.  Bounded, so a server inventing new ones costs a parse each, never memory.
# Worth 10 % of bench_clients C and 5 % of A (blocking adapter; 13 % and 8 % of the client's
# own CPU in bench_session), 2026-12-02.
_KNOWN_STATUSES: dict[str, EnhancedStatus] = {}
_MAX_KNOWN_STATUSES = 1024


@dataclass(frozen=True, slots=True)
class EnhancedStatus:
    """An RFC 3463 status code ``class.subject.detail``, such as 5.1.1."""

    klass: int
    subject: int
    detail: int

    def __post_init__(self) -> None:
        if self.klass not in _STATUS_CLASSES:
            raise ValueError(f"enhanced status class must be 2, 4 or 5, got {self.klass}")
        if not (0 <= self.subject <= 999 and 0 <= self.detail <= 999):
            raise ValueError(f"enhanced status subject and detail must be 0-999, got {self}")

    def __str__(self) -> str:
        return f"{self.klass}.{self.subject}.{self.detail}"


def parse_enhanced_status(code: int, text: str) -> tuple[EnhancedStatus | None, str]:
    """Split a leading ``c.s.d`` status (RFC 2034 §4) off one reply line's text.

    Returns the status and the text after it and its following space, or ``(None, text)`` when
    the text carries no well-formed status.  A status whose class differs from the reply code's
    first digit is ignored (checklist, ENHANCEDSTATUSCODES), and 3xx replies never carry one.
    Apply it to each line of a multi-line reply: every line carries the status.
    """
    klass = code // 100
    if klass not in _STATUS_CLASSES or not text.startswith(_STATUS_PREFIXES[klass]):
        return None, text
    token, _, rest = text.partition(" ")
    status = _KNOWN_STATUSES.get(token)
    if status is None:
        if len(token) > _LONGEST_STATUS:
            return None, text
        match = _STATUS.fullmatch(token)
        if match is None:
            return None, text
        status = EnhancedStatus(klass, int(match[1]), int(match[2]))
        if len(_KNOWN_STATUSES) < _MAX_KNOWN_STATUSES:
            _KNOWN_STATUSES[token] = status
    return status, rest


class ReplyAssembler:
    """Collects the lines of one reply, multi-line or not, and checks their grammar and size.

    ``max_lines`` and ``max_bytes`` bound one reply (checklist S6/S7); ``max_bytes`` counts the
    octets on the wire, CRLFs included.
    """

    __slots__ = ("_code", "_max_lines", "_size", "_texts", "max_bytes")

    def __init__(self, *, max_lines: int, max_bytes: int) -> None:
        if max_lines < 1:
            raise ValueError(f"max_lines must be at least 1, got {max_lines}")
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, got {max_bytes}")
        self._max_lines = max_lines
        #: The byte limit of the next reply; the owner may change it between replies.
        self.max_bytes = max_bytes
        # The code of the multi-line reply being assembled, or None between replies.
        self._code: int | None = None
        self._texts: list[str] = []
        self._size = 0

    @property
    def in_progress(self) -> bool:
        """Whether a multi-line reply has started but not ended."""
        return self._code is not None

    def feed_line(self, line: bytes) -> tuple[int, tuple[str, ...]] | None:
        """Take one reply line (without CRLF); return ``(code, texts)`` once the reply is whole."""
        if self._code is None:
            known = _KNOWN_LINES.get(line)
            if known is not None:
                return known
        # Any three digits frame a reply: one whose first digit is outside 2-5 (R5; RFC 5321
        # §4.2 gives %x32-35) still answers its command; the connection raises for it.
        digits = line[:_CODE_LENGTH]
        if len(digits) != _CODE_LENGTH or not digits.isdigit():  # bytes: ASCII digits only
            raise RemoteProtocolError("reply line does not start with a 3-digit code", line=line)
        code = int(digits)
        if len(line) == _CODE_LENGTH:
            # A bare code is a complete last line (RFC 5321 §4.2, checklist R2).
            is_last = True
            text = ""
        else:
            last_or_none = _LINE_IS_LAST.get(line[_CODE_LENGTH])
            if last_or_none is None:
                raise RemoteProtocolError("reply code must be followed by SP or '-'", line=line)
            is_last = last_or_none
            text = line[_CODE_LENGTH + 1 :].decode("utf-8", "replace")
        size = len(line) + _CRLF_LENGTH

        if self._code is None:
            if size > self.max_bytes:
                raise RemoteProtocolError(f"reply exceeds {self.max_bytes} octets", line=line)
            if is_last:
                reply = code, (text,)
                if len(_KNOWN_LINES) < _MAX_KNOWN_LINES:
                    _KNOWN_LINES[line] = reply
                return reply
            self._code = code
            self._texts = [text]
            self._size = size
            return None

        if code != self._code:
            raise RemoteProtocolError(
                f"reply line code {code} differs from the reply's code {self._code}", line=line
            )
        texts = self._texts
        texts.append(text)
        self._size += size
        if len(texts) > self._max_lines:
            raise RemoteProtocolError(f"reply has more than {self._max_lines} lines", line=line)
        if self._size > self.max_bytes:
            raise RemoteProtocolError(f"reply exceeds {self.max_bytes} octets", line=line)
        if not is_last:
            return None
        self._code = None
        self._texts = []
        return code, tuple(texts)
