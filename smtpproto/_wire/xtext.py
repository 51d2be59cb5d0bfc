"""xtext (RFC 3461 §4) and the ESMTP parameter syntax (RFC 5321 §4.1.2).

Parameter values end up inside MAIL/RCPT command lines, so anything that is not a plain printable
character must be refused or encoded before a byte is written (checklist S1).  xtext is how DSN
(ENVID, ORCPT) and AUTH= carry arbitrary text in a parameter value.

Decision: ``xtext_decode`` is strict.  RFC 3461 §4 defines a hexchar as "+" and two *upper case*
hex digits, so ``+2b`` is refused, as is anything outside the xtext alphabet and octets that do
not form UTF-8.  Over-encoded characters (``+41`` for ``A``) are valid xtext and decode normally.
"""

from __future__ import annotations

import re

__all__ = ["check_esmtp_keyword", "check_esmtp_value", "xtext_decode", "xtext_encode"]

# xchar: octets 33-126 except "+" (43) and "=" (61); every other octet becomes "+HH".
_XCHARS = frozenset(range(33, 127)) - {ord("+"), ord("=")}
_ENCODED_OCTET = tuple(chr(octet) if octet in _XCHARS else f"+{octet:02X}" for octet in range(256))

_XTEXT = re.compile(r"(?:[!-*,-<>-~]|\+[0-9A-F]{2})*")
_HEXCHAR = re.compile(r"\+([0-9A-F]{2})")

# esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-"); esmtp-value = 1*(%d33-60 / %d62-126).
_ESMTP_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
_ESMTP_VALUE = re.compile(r"[!-<>-~]+")


def xtext_encode(value: str) -> str:
    """Encode ``value`` (as UTF-8) to xtext: ``"a+b=c"`` -> ``"a+2Bb+3Dc"``."""
    try:
        octets = value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"cannot xtext-encode {value!r}: {exc.reason}") from None
    return "".join(_ENCODED_OCTET[octet] for octet in octets)


def xtext_decode(value: str) -> str:
    """Decode xtext back to text; ``ValueError`` if it is not xtext of UTF-8 text."""
    if not _XTEXT.fullmatch(value):
        raise ValueError(
            f"{value!r} is not xtext: only printable ASCII other than '+' and '=', and '+' "
            "followed by two upper-case hex digits, may appear (RFC 3461 §4)"
        )
    # Every character is now below 256, so Latin-1 turns them into the octets they stand for.
    octets = _HEXCHAR.sub(lambda hexchar: chr(int(hexchar[1], 16)), value).encode("latin-1")
    try:
        return octets.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"xtext {value!r} does not decode to UTF-8 text: {exc.reason}") from None


def check_esmtp_keyword(keyword: str) -> str:
    """Return ``keyword`` upper-cased if it is a valid ESMTP parameter keyword, else raise."""
    if not _ESMTP_KEYWORD.fullmatch(keyword):
        raise ValueError(
            f"invalid ESMTP parameter keyword {keyword!r}: expected an ASCII letter or digit "
            "followed by letters, digits or hyphens (RFC 5321 §4.1.2)"
        )
    return keyword.upper()


def check_esmtp_value(value: str) -> str:
    """Return ``value`` if it is a valid ESMTP parameter value, else raise (S1).

    Only printable ASCII other than ``=`` passes; a space, CR, LF, NUL or non-ASCII character
    never does.  Values that may hold anything must be xtext-encoded first.
    """
    if not _ESMTP_VALUE.fullmatch(value):
        raise ValueError(
            f"invalid ESMTP parameter value {value!r}: only printable ASCII other than '=' and "
            "space may appear, at least one character (RFC 5321 §4.1.2); xtext-encode it"
        )
    return value
