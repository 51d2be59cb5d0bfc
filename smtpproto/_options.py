"""The choices a caller makes about a session."""

from __future__ import annotations

import enum

__all__ = ["TLSMode"]


class TLSMode(enum.Enum):
    """How a session protects itself (RFC 3207, RFC 8314)."""

    #: TLS from the first byte (port 465).
    IMPLICIT = "implicit"
    #: STARTTLS is required: no STARTTLS offered, a 454, or a failed handshake ends the session.
    STARTTLS = "starttls"
    #: Use STARTTLS when offered, carry on in cleartext when not (the default for MX delivery).
    OPPORTUNISTIC = "opportunistic"
    #: Cleartext, explicitly.
    NONE = "none"
