"""What ``send --server`` chooses when the user does not say, and what a failure means in the
command line's own words.

The library's errors name Python arguments (``allow_cleartext=True``); a user of the command line
needs the flag that does the same (``--allow-cleartext-auth``), and a hint only when the evidence
supports it: no "use TLS" when TLS was up, ``--tls implicit`` only when the server stayed silent
where a TLS server would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from smtpproto import (
    AuthNotSupported,
    CleartextAuthRefused,
    ConnectError,
    ConnectionLostError,
    SMTPError,
    SMTPTimeoutError,
    TLSError,
    TLSMode,
    TLSRequiredError,
)

from .common import Endpoint

if TYPE_CHECKING:
    from .send import SendRequest

__all__ = ["IMPLICIT_TLS_PORTS", "PORT_TLS", "RelayRoute", "explain", "relay_route"]

#: The TLS mode a well-known port implies (RFC 8314 §3.3, RFC 6409, RFC 5321).
PORT_TLS = {465: TLSMode.IMPLICIT, 587: TLSMode.STARTTLS, 25: TLSMode.OPPORTUNISTIC}
#: Ports where a server waits for a TLS ClientHello before it says a word.
IMPLICIT_TLS_PORTS = frozenset({465})
_SUBMISSION = 587


@dataclass(frozen=True)
class RelayRoute:
    """The port and TLS mode of ``--server``, and why (shown as the first transcript line)."""

    port: int
    tls: TLSMode
    why: str


def relay_route(server: Endpoint, tls: TLSMode | None) -> RelayRoute:
    """``--tls`` when given; else the mode the port implies (465 implicit, 587 STARTTLS
    required, 25 opportunistic, others STARTTLS required); no port: 465 for ``--tls implicit``,
    else 587."""
    if tls is not None:
        port = server.port or (465 if tls is TLSMode.IMPLICIT else _SUBMISSION)
        return RelayRoute(port, tls, f"TLS: {tls.value}, from --tls")
    port = server.port or _SUBMISSION
    mode = PORT_TLS.get(port, TLSMode.STARTTLS)
    why = f"the default for port {port}" if port in PORT_TLS else "the default; --tls to change"
    return RelayRoute(port, mode, f"TLS: {mode.value}, {why}")


def explain(
    error: SMTPError, request: SendRequest, route: RelayRoute, *, tls_active: bool
) -> tuple[str, str]:
    """``error`` for the command line: what happened (for the report's table), and the flags
    that help ("" when none would); standard error gets both, as one sentence."""
    if isinstance(error, CleartextAuthRefused):  # the library's words name allow_cleartext=
        return _cleartext_auth(route, tls_active)
    return str(error), _hint(error, request, route, tls_active)


def _cleartext_auth(route: RelayRoute, tls_active: bool) -> tuple[str, str]:
    if tls_active:  # TLS was up, but nobody checked who is at the other end
        return (
            "refusing to send the password: the server's certificate was not verified "
            "(--insecure), so whoever answered could read it",
            "drop --insecure (give its CA with --cafile PEM), or add --allow-cleartext-auth to "
            "send it anyway",
        )
    why = (
        "--tls none"
        if route.tls is TLSMode.NONE
        else "the server offered no STARTTLS (--tls opportunistic)"
    )
    return (
        f"refusing to send the password in cleartext ({why})",
        "use --tls starttls or --tls implicit, or add --allow-cleartext-auth to send it anyway",
    )


def _hint(error: SMTPError, request: SendRequest, route: RelayRoute, tls_active: bool) -> str:
    silent = (
        isinstance(error, (SMTPTimeoutError, ConnectionLostError)) and error.phase == "GREETING"
    )
    if silent and route.tls is not TLSMode.IMPLICIT:
        if route.port in IMPLICIT_TLS_PORTS:
            return (
                f"port {route.port} expects TLS from the first byte, before any greeting: "
                "use --tls implicit"
            )
        return (
            "a server that expects TLS from the first byte says nothing until then: try --tls "
            "implicit; a slow server needs a longer --timeout"
        )
    if isinstance(error, TLSError):
        text = str(error)
        if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
            return (
                "give the CA that signed the server's certificate with --cafile PEM, or skip "
                "verification with --insecure"
            )
        if route.tls is TLSMode.IMPLICIT:
            return (
                "if the server expects STARTTLS rather than TLS from the first byte, use "
                "--tls starttls"
            )
        return ""
    if isinstance(error, TLSRequiredError):
        return (
            "--tls opportunistic goes on without TLS when it is not offered (AUTH then needs "
            "--allow-cleartext-auth)"
        )
    timed_out = isinstance(error, SMTPTimeoutError) or (
        isinstance(error, ConnectError) and error.timed_out
    )
    if timed_out:
        return "--timeout SECONDS (or --phase-timeout PHASE=SECONDS) waits longer"
    if isinstance(error, AuthNotSupported) and not tls_active and request.auth_user:
        return "many servers offer AUTH only after STARTTLS: use --tls starttls or --tls implicit"
    return ""
