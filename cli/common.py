"""What the command-line modules share: exit codes, the usage error, address parsing, and the
TLS context and DNS resolver the options ask for.

The exit codes follow BSD's ``sysexits.h`` so that scripts (and mail systems calling us as a
transport) can tell "retry later" from "give up".
"""

from __future__ import annotations

import dataclasses
import math
import os
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from smtpproto import DeliveryReport, Timeouts

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_SOFTWARE",
    "EXIT_TEMPFAIL",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "PASSWORD_ENV",
    "PHASES",
    "PORT_BLOCKED",
    "Endpoint",
    "MissingExtra",
    "UsageError",
    "exit_code_for",
    "make_resolver",
    "parse_endpoint",
    "ssl_context_for",
    "timeouts_for",
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

#: The phases ``--phase-timeout PHASE=SECONDS`` can set: :class:`~smtpproto.Timeouts`' fields,
#: spelt with hyphens as options are.
PHASES = tuple(f.name.replace("_", "-") for f in dataclasses.fields(Timeouts))

#: The port-25 advice in command-line words (the report's own names ``deliver(relay=...)``).
PORT_BLOCKED = (
    "No server could be reached on port {port} at any of {count} addresses: every connection was "
    "refused or timed out. Many Internet providers block outgoing connections to port 25; from "
    "such a network, send through your provider's submission server instead: "
    "smtpproto send --server HOST:587 --auth-user USER ..."
)


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


def timeouts_for(seconds: float, overrides: Sequence[str] = ()) -> Timeouts:
    """``--timeout`` for every phase, then each ``--phase-timeout PHASE=SECONDS``."""
    changes: dict[str, float] = {}
    for override in overrides:
        phase, _, value = override.partition("=")
        phase = phase.strip().lower().replace("_", "-")
        if phase not in PHASES:
            raise UsageError(
                f"--phase-timeout {override!r}: the phase is one of {', '.join(PHASES)}"
            )
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not (math.isfinite(number) and number > 0):
            raise UsageError(f"--phase-timeout {override!r}: give PHASE=SECONDS, SECONDS > 0")
        changes[phase.replace("-", "_")] = number
    return dataclasses.replace(Timeouts.uniform(seconds), **changes)


def make_resolver(endpoint: Endpoint | None, *, lifetime: float, asynchronous: bool = False) -> Any:
    """A resolver that gives up after ``lifetime`` seconds and asks ``endpoint`` (for tests and
    private zones), or the system's name servers; None when the system has none configured."""
    import dns.asyncresolver  # noqa: PLC0415 -- only the commands that resolve need dnspython
    import dns.resolver  # noqa: PLC0415

    kind = dns.asyncresolver.Resolver if asynchronous else dns.resolver.Resolver
    try:
        resolver = kind(configure=endpoint is None)
    except dns.resolver.NoResolverConfiguration:
        return None  # the adapter's default then says what is wrong
    if endpoint is not None:
        resolver.nameservers = [endpoint.host]
        resolver.port = endpoint.port or 53
    resolver.lifetime = lifetime
    return resolver
