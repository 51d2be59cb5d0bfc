"""How much a server may make the client buffer: the bounds of reply lines and replies."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_LIMITS", "Limits"]


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what the server may make us buffer (checklist R6, S6/S7).

    Line lengths count the CRLF.  During AUTH the line limit rises to ``max_auth_line_length``
    (RFC 4954 §4 lets challenges reach 12288 octets).
    """

    max_line_length: int = 4096
    max_auth_line_length: int = 16384
    max_reply_lines: int = 1000
    max_reply_bytes: int = 65536

    def __post_init__(self) -> None:
        if self.max_line_length < 512:
            raise ValueError("max_line_length must be at least 512 (RFC 5321 §4.5.3.1.5)")
        if self.max_auth_line_length < 12288:
            raise ValueError("max_auth_line_length must be at least 12288 (RFC 4954 §4)")
        if self.max_reply_lines < 1:
            raise ValueError("max_reply_lines must be at least 1")
        if self.max_reply_bytes < self.max_line_length:
            raise ValueError("max_reply_bytes must be at least max_line_length")


#: Immutable, so one instance serves every connection that keeps the defaults.
DEFAULT_LIMITS = Limits()
