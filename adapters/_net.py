"""What the adapters share about sockets: TLS contexts (verified by default, unverified only
when asked) and the wording of socket errors."""

from __future__ import annotations

import os
import ssl

__all__ = ["client_context", "os_reason"]


def client_context(configured: ssl.SSLContext | None, verify: bool) -> ssl.SSLContext:
    """The context for one handshake.

    ``verify=True`` uses the caller's context, or the system's defaults: certificate chain and
    host name checked (RFC 7817).  ``verify=False`` (opportunistic MX delivery, RFC 7435) still
    encrypts but accepts any certificate; the session records that it was not verified.
    """
    if verify:
        return configured or ssl.create_default_context()
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def os_reason(exc: OSError) -> str:
    """The operating system's words for a socket error ("Connection refused"), whatever
    wording the event loop put in the exception's message."""
    return os.strerror(exc.errno) if exc.errno else (exc.strerror or str(exc))
