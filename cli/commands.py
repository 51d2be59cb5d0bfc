"""The ``smtpproto`` command: ``send`` a message, look at a domain's ``mx`` hosts, run the ``demo``.

Run as ``smtpproto ...`` (the console script) or ``python -m smtpproto ...``.  Exit codes follow
``sysexits.h`` (see :mod:`smtpproto.cli.common`): 0 delivered, 64 usage, 69 permanent
failure, 70 internal error, 75 temporary failure.  Errors are one sentence on standard error;
``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import logging
import math
import socket
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

from smtpproto import TLSMode

from .common import (
    EXIT_INTERRUPTED,
    EXIT_SOFTWARE,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    PASSWORD_ENV,
    PHASES,
    MissingExtra,
    UsageError,
    make_resolver,
    parse_endpoint,
    ssl_context_for,
    timeouts_for,
    use_color,
)
from .message import MessageSpec, parse_header
from .probe import add_probe_parser

__all__ = ["build_parser", "main"]

_EPILOG = (
    "exit codes: 0 every recipient delivered; 64 usage error (nothing sent); 69 a recipient "
    "failed for good; 75 a recipient failed temporarily, none for good (retry later); 70 internal "
    "error"
)


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line and exit code 64 (EX_USAGE) instead of 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def _notify(text: str) -> tuple[str, ...]:
    # Checked with the other DSN options, by the core's rules, before anything is sent.
    return tuple(c.strip().upper() for c in text.split(","))


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not (math.isfinite(value) and value > 0):  # "nan" and "inf" parse as floats too
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def _add_timeouts(parser: _Parser, default: float) -> None:
    parser.add_argument(
        "--timeout",
        type=_positive,
        default=default,
        metavar="SECONDS",
        help="the longest wait in any phase: each DNS lookup, the connection, the greeting, the "
        f"reply to each command, each write of the message, the end of data ({default:g} s)",
    )
    parser.add_argument(
        "--phase-timeout",
        action="append",
        default=[],
        metavar="PHASE=SECONDS",
        help=f"a different limit for one phase (repeatable); PHASE: {', '.join(PHASES)}",
    )


def _common() -> _Parser:
    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    common.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour the transcript (auto: on a terminal, unless NO_COLOR is set)",
    )
    common.add_argument(
        "--plain", action="store_true", help="plain text even when rich is installed"
    )
    return common


def _add_send(commands: argparse._SubParsersAction[_Parser], common: _Parser) -> None:
    send = commands.add_parser(
        "send",
        parents=[common],
        help="send one message through a server or straight to the recipients' MX hosts",
        description="Send one message and print the SMTP transcript and a result per recipient. "
        f"The AUTH password is read from ${PASSWORD_ENV} or asked for; it is never an option.",
        epilog=_EPILOG,
    )
    send.add_argument("--from", dest="sender", required=True, metavar="ADDRESS")
    send.add_argument("--to", action="append", required=True, metavar="ADDRESS", help="repeatable")
    route = send.add_mutually_exclusive_group(required=True)
    route.add_argument("--server", metavar="HOST[:PORT]", help="a relay or submission server")
    route.add_argument("--direct", action="store_true", help="deliver to the MX hosts (DNS)")
    send.add_argument(
        "--tls",
        choices=[m.value for m in TLSMode],
        help="TLS mode. Default with --server: from the port: 465 implicit (TLS from the first "
        "byte), 587 starttls (required, certificate verified), 25 opportunistic (STARTTLS when "
        "offered), any other port starttls; no port: starttls on 587. With --direct: "
        "opportunistic; starttls requires it with a verified certificate",
    )
    send.add_argument("--auth-user", metavar="USER", help="authenticate (needs --server)")
    send.add_argument(
        "--allow-cleartext-auth", action="store_true", help="allow AUTH without TLS (unsafe)"
    )
    send.add_argument("--subject", default="smtpproto test message")
    send.add_argument("--body", metavar="FILE", help="UTF-8 text body; - for standard input")
    send.add_argument("--header", action="append", default=[], metavar="'NAME: VALUE'")
    send.add_argument("--attach", action="append", default=[], metavar="FILE")
    send.add_argument("--dsn-notify", type=_notify, metavar="NEVER|SUCCESS,FAILURE,DELAY")
    send.add_argument("--dsn-ret", choices=("FULL", "HDRS"), type=str.upper)
    send.add_argument("--dsn-envid", metavar="ID")
    dkim = send.add_argument_group("DKIM signing (the dkim extra)")
    dkim.add_argument(
        "--dkim-key", action="append", default=[], metavar="FILE", help="private key; repeatable"
    )
    dkim.add_argument(
        "--dkim-selector", action="append", default=[], metavar="S", help="one per --dkim-key"
    )
    dkim.add_argument(
        "--dkim-domain",
        action="append",
        default=[],
        metavar="D",
        help="d= of the signatures: one for all keys or one per key (default: --from's domain)",
    )
    send.add_argument("--adapter", choices=("blocking", "asyncio", "trio"), default="blocking")
    send.add_argument("--cafile", metavar="PEM", help="trust these CAs instead of the system's")
    send.add_argument(
        "--insecure", action="store_true", help="do not verify the server's certificate"
    )
    send.add_argument("--resolver", metavar="HOST[:PORT]", help="DNS server for --direct")
    send.add_argument("--port", type=int, help="SMTP port for --direct (25)")
    send.add_argument("--ehlo", metavar="NAME", help="our name in EHLO (default: this host's)")
    _add_timeouts(send, 60.0)
    send.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="list every host tried for every recipient, delivered ones too",
    )
    send.add_argument(
        "--progress",
        choices=("auto", "always", "never"),
        default="auto",
        help="progress display on standard error (auto: bodies of 1 MiB or more, on a terminal)",
    )
    output = send.add_mutually_exclusive_group()
    output.add_argument("--quiet", action="store_true", help="print nothing but errors")
    output.add_argument("--json", action="store_true", help="print the report as JSON only")
    send.set_defaults(handler=_send)


def _add_mx(commands: argparse._SubParsersAction[_Parser], common: _Parser) -> None:
    mx = commands.add_parser(
        "mx",
        parents=[common],
        help="show where mail for a domain goes, and probe each server (no mail is sent)",
        description="Print the delivery plan of DOMAIN (MX hosts, preferences, addresses) and "
        "probe each address: greeting, EHLO, STARTTLS and its certificate, QUIT. Exit 0 when a "
        "server answered, 75 when none could be reached or DNS failed for now, 69 when the "
        "domain accepts no mail.",
    )
    mx.add_argument("domain")
    mx.add_argument("--resolver", metavar="HOST[:PORT]", help="ask this DNS server")
    mx.add_argument("--port", type=int, default=25, help="SMTP port to probe (25)")
    mx.add_argument("--no-probe", action="store_true", help="print the plan only")
    mx.add_argument("--cafile", metavar="PEM", help="trust these CAs instead of the system's")
    _add_timeouts(mx, 10.0)
    mx.add_argument("--ehlo", metavar="NAME", help="our name in EHLO (default: this host's)")
    mx.set_defaults(handler=_mx)


def _add_dkim_record(commands: argparse._SubParsersAction[_Parser], common: _Parser) -> None:
    record = commands.add_parser(
        "dkim-record",
        parents=[common],
        help="print the DNS TXT record to publish for a DKIM private key",
        description="Print the DKIM TXT record (v=DKIM1; k=...; p=...) for the public half of "
        "a private key (PEM, RSA or Ed25519). With --selector and --domain, print it as a zone "
        "file line at SELECTOR._domainkey.DOMAIN, in strings of at most 255 characters.",
    )
    record.add_argument("--key", required=True, metavar="FILE", help="the private key")
    record.add_argument("--selector", metavar="S")
    record.add_argument("--domain", metavar="D")
    record.set_defaults(handler=_dkim_record)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="smtpproto",
        description="smtpproto's command line: send mail, inspect MX hosts, run the demo.",
        epilog=_EPILOG,
    )
    common = _common()
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_send(commands, common)
    _add_mx(commands, common)
    add_probe_parser(commands, common)
    _add_dkim_record(commands, common)
    demo = commands.add_parser(
        "demo",
        parents=[common],
        help="send two messages through an embedded local server and show what happened",
        description="Start an SMTP server on 127.0.0.1 (STARTTLS with a throwaway certificate, "
        "AUTH), send one message with the staged API and one with send_message, and print the "
        "transcript, the results and where the server stored the messages.",
    )
    demo.set_defaults(handler=_demo)
    return parser


def _color(args: argparse.Namespace) -> bool:
    return use_color(sys.stdout.isatty(), args.color)


def _send(args: argparse.Namespace) -> int:
    from .dkim import signers_from  # noqa: PLC0415
    from .output import TranscriptPrinter  # noqa: PLC0415 -- load only what runs
    from .send import SendRequest, run_send  # noqa: PLC0415

    output = "json" if args.json else "quiet" if args.quiet else "text"
    dkim = signers_from(args.dkim_key, args.dkim_selector, args.dkim_domain, args.sender)
    request = SendRequest(
        spec=MessageSpec(
            sender=args.sender,
            recipients=args.to,
            subject=args.subject,
            headers=[parse_header(h) for h in args.header],
            body=args.body,
            attachments=args.attach,
        ),
        server=parse_endpoint(args.server, "--server") if args.server else None,
        tls=TLSMode(args.tls) if args.tls else None,
        local_hostname=args.ehlo or socket.getfqdn(),
        auth_user=args.auth_user,
        allow_cleartext_auth=args.allow_cleartext_auth,
        cafile=args.cafile,
        insecure=args.insecure,
        adapter=args.adapter,
        resolver=parse_endpoint(args.resolver, "--resolver") if args.resolver else None,
        port=args.port,
        timeouts=timeouts_for(args.timeout, args.phase_timeout),
        dns_lifetime=args.timeout,
        verbose=args.verbose,
        notify=args.dsn_notify,
        ret=args.dsn_ret,
        envid=args.dsn_envid,
        dkim=dkim,
        output=output,
        color=_color(args),
        fancy=not args.plain,
        progress="never" if output != "text" else args.progress,
    )
    printer = TranscriptPrinter(color=request.color) if output == "text" else None
    return run_send(request, printer)


def _dkim_record(args: argparse.Namespace) -> int:
    from .dkim import run_dkim_record  # noqa: PLC0415

    return run_dkim_record(args.key, args.selector, args.domain)


def _mx(args: argparse.Namespace) -> int:
    from .mx import ProbeSettings, run_mx  # noqa: PLC0415

    endpoint = parse_endpoint(args.resolver, "--resolver") if args.resolver else None
    settings = ProbeSettings(
        port=args.port,
        context=ssl_context_for(args.cafile),
        timeout=timeouts_for(args.timeout, args.phase_timeout),
        local_hostname=args.ehlo or socket.getfqdn(),
    )
    resolver = make_resolver(endpoint, lifetime=args.timeout)
    return run_mx(args.domain, resolver=resolver, settings=settings, do_probe=not args.no_probe)


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo  # noqa: PLC0415

    return run_demo(color=_color(args), fancy=not args.plain)


def _fail(message: str, debug: bool) -> None:
    if debug:
        traceback.print_exc()
    print(f"smtpproto: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in arguments  # known even when parsing fails
    if debug:
        logging.basicConfig(level=logging.DEBUG, format="%(name)s: %(message)s")
    try:
        args = build_parser().parse_args(arguments)
        code: int = args.handler(args)
    except UsageError as exc:
        _fail(str(exc), debug)
        return EXIT_USAGE
    except ValueError as exc:  # smtpproto refuses bad input with ValueError, before sending
        _fail(f"invalid input: {exc}", debug)
        return EXIT_USAGE
    except KeyboardInterrupt:
        _fail("interrupted", debug)
        return EXIT_INTERRUPTED
    except MissingExtra as exc:
        _fail(str(exc), debug)
        return EXIT_UNAVAILABLE
    except Exception as exc:
        _fail(f"internal error: {exc!r} (run with --debug for the traceback)", debug)
        return EXIT_SOFTWARE
    return code
