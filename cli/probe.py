"""``smtpproto probe HOST[:PORT]``: how an SMTP server behaves, checked against the RFCs.

Each check opens its own connection, so one server's reaction cannot spoil the next check.
Commands that break the rules on purpose (a bare LF, STARTTLS with a command behind it, a BDAT
chunk that looks like commands) are written with :mod:`smtpproto.testing.unsafe`, never with
the client.  No transaction is completed — every MAIL is followed by RSET or a hang-up — unless
``--deliver-to`` is given: then the end-of-data checks send small probe messages there.

Exit codes: 0 no check failed (warnings allowed); 1 at least one check failed; 64 usage;
69 the server could not be reached or refused the session.
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Literal, TypeVar

from .common import EXIT_OK, EXIT_UNAVAILABLE, parse_endpoint, ssl_context_for

if TYPE_CHECKING:  # mypy knows testing/ as "testing" (package-dir mapping)
    from testing.lookalikes import END_OF_DATA_LOOKALIKES
    from testing.unsafe import RawReply, UnsafeRawConnection
else:
    from smtpproto.testing.lookalikes import END_OF_DATA_LOOKALIKES
    from smtpproto.testing.unsafe import RawReply, UnsafeRawConnection

__all__ = ["EXIT_FAILED", "Finding", "ProbeSettings", "add_probe_parser", "run_probe"]

#: At least one check failed.
EXIT_FAILED = 1
ParserT = TypeVar("ParserT", bound=argparse.ArgumentParser)
Status = Literal["pass", "fail", "warn", "info", "skip"]
Severity = Literal["none", "low", "medium", "high"]


@dataclass(frozen=True)
class Finding:
    """One check's verdict, with the rule it checks."""

    check: str
    status: Status
    severity: Severity
    rfc: str
    summary: str


@dataclass(frozen=True)
class ProbeSettings:
    host: str
    port: int
    implicit_tls: bool = False
    timeout: float = 10.0
    #: How long to wait for a reply that must not come (a smuggled or injected command's).
    quiet_wait: float = 1.5
    local_hostname: str = "probe.invalid"
    mail_from: str = ""
    deliver_to: str | None = None
    context: ssl.SSLContext | None = None  # verification of the certificate (system CAs if None)


class Unreachable(Exception):
    """No SMTP session: connection refused, no greeting, or a greeting that is not 220."""


@dataclass
class _Opened:
    raw: UnsafeRawConnection
    greeting: RawReply
    keywords: dict[str, list[str]] = field(default_factory=dict)


def _unverified() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _keywords(reply: RawReply) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in reply.lines[1:]:
        words = line[4:].decode("utf-8", "replace").split()
        if words:
            found[words[0].upper()] = words[1:]
    return found


class Prober:
    """Runs the checks against one server; :attr:`delivered` counts completed transactions."""

    def __init__(self, settings: ProbeSettings) -> None:
        self.settings = settings
        self.delivered = 0

    @contextmanager
    def session(self) -> Iterator[_Opened]:
        """A fresh connection, greeted and EHLO'd (over TLS with ``implicit_tls``)."""
        s = self.settings
        try:
            raw = UnsafeRawConnection.open(
                s.host,
                s.port,
                timeout=s.timeout,
                tls_context=_unverified() if s.implicit_tls else None,
            )
        except OSError as exc:
            raise Unreachable(f"cannot connect to {s.host}:{s.port}: {exc}") from exc
        try:
            greeting = raw.read_reply()
            if greeting is None or greeting.code != 220:
                raise Unreachable(f"no 220 greeting: {greeting}")
            opened = _Opened(raw, greeting)
            opened.keywords = self.ehlo(opened)
            yield opened
        finally:
            raw.close()

    def ehlo(self, opened: _Opened) -> dict[str, list[str]]:
        reply = self.command(opened, b"EHLO " + self.settings.local_hostname.encode())
        if reply is None or reply.code != 250:
            raise Unreachable(f"EHLO refused: {reply}")
        return _keywords(reply)

    def command(self, opened: _Opened, line: bytes) -> RawReply | None:
        opened.raw.send_unchecked(line + b"\r\n")
        return opened.raw.read_reply()

    def mail(self, opened: _Opened, parameters: str = "") -> RawReply | None:
        line = f"MAIL FROM:<{self.settings.mail_from}>{' ' + parameters if parameters else ''}"
        return self.command(opened, line.encode())

    # -- the checks: each returns its findings ----------------------------------------------

    def capabilities(self) -> list[Finding]:
        with self.session() as opened:
            listed = ", ".join(" ".join([k, *v]) for k, v in opened.keywords.items()) or "none"
            return [Finding("capabilities", "info", "none", "RFC 5321 §4.1.1.1", listed)]

    def pipelining(self) -> list[Finding]:
        """Nothing early (no reply to half a command), then one reply per pipelined command,
        in order, and nothing more (RFC 2920 §3.2)."""
        rfc = "RFC 2920 §3.2"
        with self.session() as opened:
            if "PIPELINING" not in opened.keywords:
                return [Finding("pipelining", "info", "none", rfc, "PIPELINING not offered")]
            # Half a command first: nothing may be answered before its line ends.
            opened.raw.send_unchecked(b"NOOP")
            early = opened.raw.read_available(self.settings.quiet_wait / 2)
            opened.raw.send_unchecked(b"\r\nRSET\r\nNOOP\r\n")
            replies = [opened.raw.read_reply() for _ in range(3)]
            extra = opened.raw.read_available(self.settings.quiet_wait)
        if early:
            summary = f"answered before the command line ended: {early[:60]!r}"
            return [Finding("pipelining", "fail", "medium", rfc, summary)]
        codes = [r.code if r else None for r in replies]
        if codes == [250, 250, 250] and not extra:
            return [Finding("pipelining", "pass", "none", rfc, "3 commands, 3 replies in order")]
        detail = f"replies {codes}" + (f", then unexpected {extra[:60]!r}" if extra else "")
        return [Finding("pipelining", "fail", "medium", rfc, f"not honoured: {detail}")]

    def size(self) -> list[Finding]:
        rfc = "RFC 1870 §6.1"
        with self.session() as opened:
            limit = opened.keywords.get("SIZE")
            if limit is None:
                return [Finding("size", "info", "none", rfc, "SIZE not offered")]
            if not limit or not limit[0].isdigit() or int(limit[0]) == 0:
                return [Finding("size", "info", "none", rfc, "SIZE offered without a limit")]
            over = int(limit[0]) + 1
            reply = self.mail(opened, f"SIZE={over}")
            self.command(opened, b"RSET")
        if reply is not None and reply.code in (552, 452, 555, 554, 550):
            return [Finding("size", "pass", "none", rfc, f"SIZE={over} refused at MAIL: {reply}")]
        return [Finding("size", "fail", "low", rfc, f"SIZE={over} above the limit: {reply}")]

    def mail_parameters(self) -> list[Finding]:
        found = []
        for keyword, parameter, rfc in (
            ("8BITMIME", "BODY=8BITMIME", "RFC 6152 §3"),
            ("SMTPUTF8", "SMTPUTF8", "RFC 6531 §3.4"),
        ):
            check = keyword.lower()
            with self.session() as opened:
                if keyword not in opened.keywords:
                    found.append(Finding(check, "info", "none", rfc, f"{keyword} not offered"))
                    continue
                reply = self.mail(opened, parameter)
                self.command(opened, b"RSET")
            ok = reply is not None and reply.code == 250
            found.append(
                Finding(
                    check,
                    "pass" if ok else "fail",
                    "none" if ok else "low",
                    rfc,
                    f"offered; MAIL … {parameter}: {reply}",
                )
            )
        return found

    def chunking(self) -> list[Finding]:
        """A BDAT chunk whose content looks like commands must be read as octets, even when the
        BDAT itself is refused (no recipient here): one reply to BDAT, none to its content.
        Not ``LAST``: the transaction cannot complete."""
        rfc = "RFC 3030 §2"
        with self.session() as opened:
            if "CHUNKING" not in opened.keywords:
                return [Finding("chunking", "info", "none", rfc, "CHUNKING not offered")]
            self.mail(opened)
            opened.raw.send_unchecked(b"BDAT 12\r\nNOOP\r\nNOOP\r\n")
            bdat = opened.raw.read_reply()
            rset = self.command(opened, b"RSET")
            extra = opened.raw.read_available(self.settings.quiet_wait)
        if bdat is not None and rset is not None and rset.code == 250 and not extra:
            return [Finding("chunking", "pass", "none", rfc, f"chunk read as data: BDAT {bdat}")]
        return [
            Finding(
                "chunking",
                "fail",
                "medium",
                rfc,
                f"chunk content answered as commands: BDAT {bdat}, then {rset}, {extra[:60]!r}",
            )
        ]

    def auth_in_cleartext(self) -> list[Finding]:
        rfc = "RFC 4954 §4"
        if self.settings.implicit_tls:
            return [Finding("auth-cleartext", "pass", "none", rfc, "the session is TLS throughout")]
        with self.session() as opened:
            mechanisms = opened.keywords.get("AUTH")
        if mechanisms is None:
            return [Finding("auth-cleartext", "pass", "none", rfc, "no AUTH before TLS")]
        plain = [m for m in mechanisms if m.upper() in ("PLAIN", "LOGIN")]
        severity: Severity = "medium" if plain else "low"
        return [
            Finding(
                "auth-cleartext",
                "warn",
                severity,
                rfc,
                f"AUTH {' '.join(mechanisms)} offered before TLS"
                + (" (passwords in the clear)" if plain else ""),
            )
        ]

    def bare_line_ends(self) -> list[Finding]:
        """A command ended by a bare LF or CR must not be answered as one (RFC 5321 §2.3.8):
        a server that does so is likely to read the same in message content (smuggling)."""
        found = []
        for name, ending in (("LF", b"\n"), ("CR", b"\r")):
            with self.session() as opened:
                opened.raw.send_unchecked(b"NOOP" + ending)
                reply = opened.raw.read_reply(self.settings.quiet_wait)
            check, rfc = f"bare-{name.lower()}-command", "RFC 5321 §2.3.8"
            if reply is not None and reply.code is not None and reply.code < 400:
                found.append(
                    Finding(check, "warn", "medium", rfc, f"NOOP<{name}> answered: {reply}")
                )
            else:
                what = f"refused: {reply}" if reply else "not taken as a line end"
                found.append(Finding(check, "pass", "none", rfc, f"NOOP<{name}> {what}"))
        return found

    def starttls(self) -> list[Finding]:
        rfc = "RFC 3207"
        if self.settings.implicit_tls:
            return self._certificate("RFC 8314 §3")
        with self.session() as opened:
            offered = "STARTTLS" in opened.keywords
        if not offered:
            return [Finding("starttls", "warn", "medium", rfc, "STARTTLS not offered")]
        return [
            Finding("starttls", "pass", "none", rfc, "offered"),
            *self._certificate("RFC 3207 §4.1, RFC 6125"),
            *self._old_versions(),
            self._injection(),
        ]

    def _handshake(self, context: ssl.SSLContext) -> ssl.SSLSocket:
        """A connection up to the end of a TLS handshake made with ``context``."""
        s = self.settings
        sock = socket.create_connection((s.host, s.port), timeout=s.timeout)
        raw = UnsafeRawConnection(sock, s.timeout)
        try:
            if not s.implicit_tls:
                opened = _Opened(raw, raw.read_reply() or RawReply(None, ()))
                self.ehlo(opened)
                reply = self.command(opened, b"STARTTLS")
                if reply is None or reply.code != 220:
                    raise ssl.SSLError(f"STARTTLS refused: {reply}")
            tls = context.wrap_socket(sock, server_hostname=s.host)
        except BaseException:
            raw.close()
            raise
        return tls

    def _certificate(self, rfc: str) -> list[Finding]:
        context = self.settings.context or ssl.create_default_context()
        try:
            tls = self._handshake(context)
        except ssl.SSLCertVerificationError as exc:
            tls = self._handshake(_unverified())
            version = tls.version()
            tls.close()
            return [
                Finding("certificate", "fail", "medium", rfc, f"not verified: {exc}"),
                Finding("tls-version", "info", "none", "RFC 8446", f"negotiated {version}"),
            ]
        cert = tls.getpeercert() or {}
        version, cipher = tls.version(), (tls.cipher() or ("?",))[0]
        tls.close()
        names = [str(pair[1]) for pair in cert.get("subjectAltName", ()) if pair[0] == "DNS"]
        until = cert.get("notAfter", "?")
        return [
            Finding(
                "certificate",
                "pass",
                "none",
                rfc,
                f"verified for {self.settings.host}: names {', '.join(names[:3]) or '-'}, "
                f"valid until {until}",
            ),
            Finding("tls-version", "info", "none", "RFC 8446", f"negotiated {version}, {cipher}"),
        ]

    def _old_versions(self) -> list[Finding]:
        found = []
        for name, version in (("TLSv1", ssl.TLSVersion.TLSv1), ("TLSv1.1", ssl.TLSVersion.TLSv1_1)):
            context = _unverified()
            try:
                context.set_ciphers("DEFAULT:@SECLEVEL=0")
                with warnings.catch_warnings():  # deprecated on purpose: that is the check
                    warnings.simplefilter("ignore", DeprecationWarning)
                    context.minimum_version = context.maximum_version = version
                self._handshake(context).close()
            except ssl.SSLError as exc:
                status: Status
                if "NO_PROTOCOLS_AVAILABLE" in str(exc) or "UNSUPPORTED_PROTOCOL" in str(exc):
                    status, summary = "skip", f"{name} cannot be offered by this machine's OpenSSL"
                else:
                    status, summary = "pass", f"{name} refused"
                found.append(Finding(f"old-{name.lower()}", status, "none", "RFC 8996", summary))
                continue
            except OSError as exc:
                found.append(
                    Finding(
                        f"old-{name.lower()}", "pass", "none", "RFC 8996", f"{name} refused ({exc})"
                    )
                )
                continue
            found.append(
                Finding(f"old-{name.lower()}", "warn", "medium", "RFC 8996", f"{name} accepted")
            )
        return found

    def _injection(self) -> Finding:
        """CVE-2011-0411: a command sent in the same packet as STARTTLS must be discarded, never
        answered after the handshake: the session starts afresh there (RFC 3207 §4.2), so
        nothing received before it may be acted on after it."""
        check, rfc = "starttls-injection", "RFC 3207 §4.2, CVE-2011-0411"
        with self.session() as opened:
            opened.raw.send_unchecked(b"STARTTLS\r\nNOOP\r\n")
            reply = opened.raw.read_reply()
            if reply is None or reply.code != 220:
                return Finding(check, "skip", "none", rfc, f"STARTTLS refused: {reply}")
            plaintext = opened.raw.read_available(0.3)
            if plaintext:
                return Finding(
                    check,
                    "fail",
                    "high",
                    rfc,
                    f"the injected NOOP was answered in plaintext: {plaintext[:60]!r}",
                )
            opened.raw.start_tls(_unverified(), self.settings.host)
            after = opened.raw.read_available(self.settings.quiet_wait)
        if after:
            return Finding(
                check,
                "fail",
                "high",
                rfc,
                f"the NOOP sent with STARTTLS was answered after the handshake: {after[:60]!r}",
            )
        return Finding(check, "pass", "none", rfc, "the command sent with STARTTLS was discarded")

    def end_of_data(self) -> list[Finding]:
        """SMTP smuggling (CVE-2023-51764 and siblings): only ``<CRLF>.<CRLF>`` ends the data."""
        rfc = "RFC 5321 §4.1.1.4, CVE-2023-51764"
        if self.settings.deliver_to is None:
            return [
                Finding(
                    "end-of-data",
                    "skip",
                    "none",
                    rfc,
                    "needs --deliver-to: these checks complete transactions",
                )
            ]
        return [
            self._lookalike(name, sequence, rfc)
            for name, sequence in END_OF_DATA_LOOKALIKES.items()
        ]

    def _lookalike(self, name: str, sequence: bytes, rfc: str) -> Finding:
        check = f"end-of-data-{name}"
        with self.session() as opened:
            if (r := self.mail(opened)) is None or r.code != 250:
                return Finding(check, "skip", "none", rfc, f"MAIL refused: {r}")
            rcpt = f"RCPT TO:<{self.settings.deliver_to}>".encode()
            if (r := self.command(opened, rcpt)) is None or r.code not in (250, 251):
                return Finding(check, "skip", "none", rfc, f"RCPT refused: {r}")
            if (r := self.command(opened, b"DATA")) is None or r.code != 354:
                return Finding(check, "skip", "none", rfc, f"DATA refused: {r}")
            subject = f"Subject: smtpproto probe, end-of-data look-alike {name}\r\n\r\n"
            opened.raw.send_unchecked(subject.encode() + b"before" + sequence + b"NOOP\r\n")
            early = opened.raw.read_reply(self.settings.quiet_wait)
            if early is not None and early.code is not None and early.code < 400:
                self.delivered += 1
                return Finding(
                    check,
                    "fail",
                    "high",
                    rfc,
                    f"{name} ended the data: {early} (a message can be smuggled)",
                )
            if early is not None:
                return Finding(check, "pass", "none", rfc, f"{name} refused: {early}")
            final = self.command(opened, b"\r\n.")
            if final is not None and final.code == 250:
                self.delivered += 1
            return Finding(check, "pass", "none", rfc, f"{name} kept as content; end: {final}")

    def run(self) -> list[Finding]:
        checks: list[Callable[[], list[Finding]]] = [
            self.capabilities,
            self.pipelining,
            self.size,
            self.mail_parameters,
            self.chunking,
            self.starttls,
            self.auth_in_cleartext,
            self.bare_line_ends,
            self.end_of_data,
        ]
        findings: list[Finding] = []
        for check in checks:
            try:
                findings += check()
            except Unreachable:
                if not findings:
                    raise  # the first check is the server's only chance to answer at all
                findings.append(
                    Finding(check.__name__, "skip", "none", "-", "the session broke off")
                )
            except OSError as exc:
                findings.append(Finding(check.__name__, "skip", "none", "-", f"error: {exc}"))
        return findings


# -- the command line ----------------------------------------------------------------------------


def add_probe_parser(commands: argparse._SubParsersAction[ParserT], common: ParserT) -> None:
    probe = commands.add_parser(
        "probe",
        parents=[common],
        help="check how an SMTP server behaves: pipelining, CHUNKING, SIZE, STARTTLS, smuggling",
        description="Check a server's capabilities and behaviour against the RFCs and print a "
        "finding per check, with its RFC section and severity. No transaction is completed "
        "unless --deliver-to is given (the end-of-data checks then send probe messages there). "
        "Exit 0 when no check failed, 1 when one did, 69 when the server could not be reached.",
    )
    probe.add_argument("server", metavar="HOST[:PORT]", help="port 25 by default; 465 is TLS")
    probe.add_argument("--implicit-tls", action="store_true", help="TLS from the start")
    probe.add_argument("--cafile", metavar="PEM", help="trust these CAs instead of the system's")
    probe.add_argument("--timeout", type=float, default=10.0, help="per reply (10 s)")
    probe.add_argument("--ehlo", metavar="NAME", default="probe.invalid", help="our EHLO name")
    probe.add_argument("--mail-from", metavar="ADDRESS", default="", help="MAIL FROM (<>)")
    probe.add_argument(
        "--deliver-to",
        metavar="ADDRESS",
        help="run the end-of-data checks, delivering up to 7 probe messages to ADDRESS",
    )
    probe.add_argument("--json", action="store_true", help="print the findings as JSON")
    probe.set_defaults(handler=_probe)


def _probe(args: argparse.Namespace) -> int:
    endpoint = parse_endpoint(args.server, "server")
    port = endpoint.port or 25
    settings = ProbeSettings(
        host=endpoint.host,
        port=port,
        implicit_tls=args.implicit_tls or port == 465,
        timeout=args.timeout,
        local_hostname=args.ehlo,
        mail_from=args.mail_from,
        deliver_to=args.deliver_to,
        context=ssl_context_for(args.cafile),
    )
    return run_probe(settings, as_json=args.json)


def run_probe(settings: ProbeSettings, *, as_json: bool = False) -> int:
    """Probe, print, and return the exit code."""
    prober = Prober(settings)
    try:
        findings = prober.run()
    except Unreachable as exc:
        print(f"smtpproto: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    target = f"{settings.host}:{settings.port}"
    if as_json:
        document = {
            "server": target,
            "transactions_completed": prober.delivered,
            "findings": [asdict(f) for f in findings],
        }
        print(json.dumps(document, indent=2))
    else:
        print(_table(findings))
        print(
            f"\n{target}: {prober.delivered} transaction(s) completed"
            + ("" if settings.deliver_to else " (none without --deliver-to)")
        )
    return EXIT_FAILED if any(f.status == "fail" for f in findings) else EXIT_OK


def _table(findings: list[Finding]) -> str:
    rows = [("STATUS", "SEVERITY", "CHECK", "RULE", "FINDING")]
    rows += [(f.status.upper(), f.severity, f.check, f.rfc, f.summary) for f in findings]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True))
        + "  "
        + row[4]
        for row in rows
    )
