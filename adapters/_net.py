"""What the adapters share about sockets: TLS contexts (verified by default, unverified only
when asked) and the wording of socket errors."""

from __future__ import annotations

import os
import socket
import ssl

from smtpproto import ConnectError, ConnectionLostError, TLSError
from smtpproto.driver import Connect

__all__ = [
    "HANDSHAKE",
    "RECEIVE_SIZE",
    "client_context",
    "connect_failed",
    "connect_timed_out",
    "handshake_refused",
    "no_connection",
    "os_reason",
]

#: The phase a TLS handshake's timeouts and losses are reported in (STARTTLS or implicit).
HANDSHAKE = "TLS handshake"
#: The most each driver asks of its socket or stream in one read.
RECEIVE_SIZE = 1 << 16


def client_context(configured: ssl.SSLContext | None, verify: bool) -> ssl.SSLContext:
    """The context for one handshake.

    ``verify=True`` uses the caller's context, or the system's defaults: certificate chain and
    host name checked (RFC 7817).  ``verify=False`` (opportunistic MX delivery, RFC 7435) still
    encrypts but accepts any certificate; the session records that it was not verified.
    """
    if verify:
        if configured is not None and (
            configured.verify_mode != ssl.CERT_REQUIRED or not configured.check_hostname
        ):
            # Trusting such a context would report unverified TLS as verified (and let AUTH
            # send a password over it): say verify=False to mean it.
            raise ValueError(
                "the ssl_context does not verify certificates and host names; "
                "pass verify=False (opportunistic TLS) instead"
            )
        return configured or ssl.create_default_context()
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


# getaddrinfo's failures (socket.gaierror) by their EAI_* code, mostly in glibc's gai_strerror
# words: the code names the failure everywhere, its message differs (musl, macOS), and
# os.strerror knows none of these codes ("Unknown error -2").  Codes a platform lacks are left out.
_RESOLVER_REASONS = {
    getattr(socket, name): reason
    for name, reason in (
        ("EAI_NONAME", "name or service not known"),
        ("EAI_NODATA", "no address associated with the name"),
        ("EAI_AGAIN", "temporary failure in name resolution"),
        ("EAI_FAIL", "non-recoverable failure in name resolution"),
        ("EAI_ADDRFAMILY", "no address of the requested family for the name"),
        ("EAI_FAMILY", "address family not supported"),
        ("EAI_SERVICE", "service not supported for the socket type"),
        ("EAI_MEMORY", "out of memory while resolving the name"),
        ("EAI_SYSTEM", "system error while resolving the name"),
    )
    if hasattr(socket, name)
}


def os_reason(exc: OSError) -> str:
    """The operating system's words for a socket error ("Connection refused"), whatever
    wording the event loop put in the exception's message; a failed name lookup is worded from
    its EAI_* code ("name or service not known"), the same on every platform and Python."""
    if isinstance(exc, socket.gaierror):
        code = exc.errno
        return _RESOLVER_REASONS.get(code, f"name resolution failed (error {code})")
    return os.strerror(exc.errno) if exc.errno else (exc.strerror or str(exc))


def connect_failed(request: Connect, exc: OSError, reason: str | None = None) -> ConnectError:
    """A connect that failed; a name that did not resolve says so ("cannot resolve h: ...")."""
    resolving = isinstance(exc, socket.gaierror)
    return ConnectError(request.host, request.port, reason or os_reason(exc), resolving=resolving)


def connect_timed_out(request: Connect) -> ConnectError:
    return ConnectError(request.host, request.port, "timed out", timed_out=True)


def handshake_refused(server_hostname: str, reason: object) -> TLSError:
    """The TLS layer refused the handshake (a certificate, a protocol version...)."""
    return TLSError(f"TLS handshake with {server_hostname} failed: {reason}")


def no_connection(phase: str) -> ConnectionLostError:
    """An I/O request with no connection open: a lost connection, never a silent no-op."""
    return ConnectionLostError(phase, "the connection is closed")
