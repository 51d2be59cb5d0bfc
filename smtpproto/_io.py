"""The I/O requests that operations yield, and that an adapter's driver loop performs.

An operation is a generator: it yields one of these requests, and the driver sends back the
result (``None`` unless stated) or throws the failure into it as one of the errors of
:mod:`smtpproto._errors` (``ConnectError``, ``SMTPTimeoutError``, ``ConnectionLostError``,
``TLSError``).  That loop is an adapter's whole job; every decision is made above it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from ._frozen import fast_init

__all__ = [
    "Close",
    "Connect",
    "IORequest",
    "Receive",
    "ResolveAddresses",
    "ResolveMX",
    "Send",
    "StartTLSHandshake",
    "TLSMode",
]


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


@fast_init
@dataclass(frozen=True, slots=True)
class Connect:
    """Open a TCP connection (wrapped in TLS at once when ``implicit_tls``).

    ``server_hostname`` is the name the certificate must carry (and the SNI).
    """

    host: str
    port: int
    timeout: float | None
    implicit_tls: bool = False
    server_hostname: str | None = None
    verify: bool = True


@fast_init
@dataclass(frozen=True, slots=True)
class Send:
    """Write all of ``data`` within ``timeout`` seconds."""

    data: bytes = field(repr=False)
    timeout: float | None
    phase: str


@fast_init
@dataclass(frozen=True, slots=True)
class Receive:
    """Read some bytes (``b""`` at the end of the stream).

    ``timeout`` bounds the whole reply, not each read: a ``Receive`` with ``fresh=True`` starts
    a deadline ``timeout`` seconds away, and the following ones (``fresh=False``, same reply)
    get only what is left of it, so a server trickling a reply cannot stretch the wait (S7).
    """

    timeout: float | None
    phase: str
    fresh: bool = True


@fast_init
@dataclass(frozen=True, slots=True)
class StartTLSHandshake:
    """Upgrade the connection to TLS after the 220 to STARTTLS.

    ``verify=False`` is for opportunistic MX delivery, where an unverified certificate still
    beats cleartext (RFC 7435); the result says which it was.
    """

    server_hostname: str
    timeout: float | None
    verify: bool = True


@fast_init
@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection (no reply expected).

    ``graceful`` is true only after QUIT was answered: then a TLS connection is worth its
    close_notify exchange (bounded by the adapter).  Otherwise something failed or was cut
    short, and the connection is dropped at once.
    """

    graceful: bool = False


@fast_init
@dataclass(frozen=True, slots=True)
class ResolveMX:
    """Look up the MX records of ``domain``; the result is a ``DNSAnswer``."""

    domain: str


@fast_init
@dataclass(frozen=True, slots=True)
class ResolveAddresses:
    """Look up the A/AAAA records of ``host``; the result is a ``DNSAnswer``."""

    host: str


IORequest = Connect | Send | Receive | StartTLSHandshake | Close | ResolveMX | ResolveAddresses
