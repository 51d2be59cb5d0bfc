"""What the command-line modules share: exit codes, the usage error, address parsing, and the
TLS context and DNS resolver the options ask for.

The exit codes follow BSD's ``sysexits.h`` so that scripts (and mail systems calling us as a
transport) can tell "retry later" from "give up".
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from typing import Any, Literal

from smtpproto import DeliveryReport

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_SOFTWARE",
    "EXIT_TEMPFAIL",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "PASSWORD_ENV",
    "Endpoint",
    "MissingExtra",
    "UsageError",
    "exit_code_for",
    "make_resolver",
    "parse_endpoint",
    "ssl_context_for",
]

#: Every recipient was delivered (or, for ``mx``, a server answered).
EXIT_OK = 0
#: The command line, or a file it names, is wrong: nothing was sent (EX_USAGE).
EXIT_USAGE = 64
#: At least one recipient failed for good: retrying will not help (EX_UNAVAILABLE).
EXIT_UNAVAILABLE = 69
#: A bug in smtpproto (EX_SOFTWARE); ``--debug`` shows the traceback.
EXIT_SOFTWARE = 70
#: Some recipient failed temporarily and none for good: try again later (EX_TEMPFAIL).
EXIT_TEMPFAIL = 75
#: Interrupted with Ctrl-C (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130

#: The only way besides a prompt to give the AUTH password: never an option, so it stays out of
#: the process list and the shell history.
PASSWORD_ENV = "SMTPPROTO_PASSWORD"

ColorChoice = Literal["auto", "always", "never"]


class MissingExtra(Exception):
    """An optional dependency is not installed; the message says which extra brings it."""


class UsageError(Exception):
    """The user asked for something impossible; the message is shown as one sentence."""


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int | None


def parse_endpoint(text: str, what: str) -> Endpoint:
    """``HOST``, ``HOST:PORT``, ``[IPV6]`` or ``[IPV6]:PORT``."""
    host, port_text = text, ""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise UsageError(f"{what} {text!r} is not HOST[:PORT]")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    if not host:
        raise UsageError(f"{what} {text!r} has no host")
    if not port_text:
        return Endpoint(host, None)
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise UsageError(f"{what} {text!r} has an invalid port")
    return Endpoint(host, int(port_text))


def exit_code_for(report: DeliveryReport) -> int:
    """0 when all were delivered; 69 when any failed for good; 75 when only temporarily."""
    if report.with_status("permanent"):
        return EXIT_UNAVAILABLE
    if report.with_status("temporary"):
        return EXIT_TEMPFAIL
    return EXIT_OK


def use_color(stream_is_tty: bool, choice: ColorChoice) -> bool:
    """Colours on a terminal only, unless told otherwise; ``NO_COLOR`` (no-color.org) wins."""
    if choice == "never" or (choice == "auto" and os.environ.get("NO_COLOR")):
        return False
    return choice == "always" or stream_is_tty


def ssl_context_for(cafile: str | None) -> ssl.SSLContext | None:
    """A verifying context trusting only ``cafile``, or None for the system's defaults."""
    if cafile is None:
        return None
    try:
        return ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"cannot load the CA certificates in {cafile!r}: {exc}") from None


def make_resolver(endpoint: Endpoint, *, asynchronous: bool = False) -> Any:
    """A resolver that asks only ``endpoint`` (for tests and private zones)."""
    import dns.asyncresolver  # noqa: PLC0415 -- only the commands that resolve need dnspython
    import dns.resolver  # noqa: PLC0415

    resolver = (
        dns.asyncresolver.Resolver(configure=False)
        if asynchronous
        else dns.resolver.Resolver(configure=False)
    )
    resolver.nameservers = [endpoint.host]
    resolver.port = endpoint.port or 53
    resolver.lifetime = 5.0
    return resolver
