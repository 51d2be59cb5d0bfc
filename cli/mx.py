"""``smtpproto mx DOMAIN``: where mail for a domain would go, and what each server says.

The plan is the one delivery uses (:func:`smtpproto._delivery.policy.survey`, driven by the
blocking adapter's driver), with the TLS policy delivery would apply to each MX host (DANE,
MTA-STS, opportunistic); each address is then probed without sending mail: greeting, EHLO,
STARTTLS with the certificate's subject, issuer and expiry, and QUIT.  A certificate that fails
verification is reported, and the probe goes on without verification.
"""

from __future__ import annotations

import contextlib
import hashlib
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dns.resolver

from smtpproto import (
    ConnectError,
    Extensions,
    Reply,
    Session,
    SessionOptions,
    SMTPError,
    Timeouts,
    TLSError,
    TLSMode,
)
from smtpproto._delivery.policy import DeliveryOptions, Survey, survey
from smtpproto.driver import Request, ResolveAddresses, ResolveMX, StartTLSHandshake
from smtpproto.mx import Attempt, DNSAnswer, DNSStatus

from .common import EXIT_OK, EXIT_TEMPFAIL, EXIT_UNAVAILABLE, PORT_BLOCKED

if TYPE_CHECKING:  # mypy knows adapters/ as "adapters" (package-dir mapping)
    from adapters.blocking import _Driver
else:
    from smtpproto.adapters.blocking import _Driver

__all__ = ["Probe", "ProbeSettings", "probe", "run_mx"]

#: Addresses that must all refuse (or drop) connections before the port looks blocked: one
#: dead mail exchanger says nothing about the local network.
PORT_BLOCKED_EVIDENCE = 2


class _RecordingDriver(_Driver):
    """The blocking driver, keeping the DNS answers and what TLS changed, for the display."""

    def __init__(
        self,
        ssl_context: ssl.SSLContext | None = None,
        resolver: dns.resolver.Resolver | None = None,
        session: Session | None = None,
    ) -> None:
        super().__init__(ssl_context, resolver)
        self.session = session
        self.mx: DNSAnswer | None = None
        self.addresses: dict[str, DNSAnswer] = {}
        self.before_tls: Extensions | None = None
        self.certificate: dict[str, str] | None = None

    def perform(self, request: Request) -> Any:
        if isinstance(request, StartTLSHandshake) and self.session is not None:
            self.before_tls = self.session.conn.extensions  # STARTTLS makes the client forget it
        value = super().perform(request)
        if isinstance(request, ResolveMX):
            self.mx = value
        elif isinstance(request, ResolveAddresses):
            self.addresses[request.host] = value
        elif isinstance(request, StartTLSHandshake) and isinstance(self.sock, ssl.SSLSocket):
            self.certificate = certificate_summary(self.sock)
        return value


def certificate_summary(sock: ssl.SSLSocket) -> dict[str, str]:
    """Subject, issuer, names and expiry of the server's certificate, verified or not."""
    der = sock.getpeercert(binary_form=True) or b""
    summary = {"sha256": hashlib.sha256(der).hexdigest()}
    try:  # present with the demo extra (trustme needs it); it reads unverified certificates too
        from cryptography import x509  # noqa: PLC0415
    except ImportError:  # only the fingerprint then
        return summary
    cert = x509.load_der_x509_certificate(der)
    summary["subject"] = cert.subject.rfc4514_string() or "(empty)"
    summary["issuer"] = cert.issuer.rfc4514_string()
    summary["expires"] = cert.not_valid_after_utc.strftime("%Y-%m-%d %H:%M UTC")
    with contextlib.suppress(x509.ExtensionNotFound):
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        shown = [str(n.value) for n in names][:6]
        summary["names"] = ", ".join(shown) + (", …" if len(names) > len(shown) else "")
    return summary


@dataclass
class Probe:
    """What one address said; ``error`` is why the probe stopped early, if it did."""

    attempt: Attempt
    port: int
    greeting: Reply | None = None
    before_tls: Extensions | None = None
    extensions: Extensions | None = None
    tls: bool = False
    verified: bool = False
    verify_error: str | None = None
    certificate: dict[str, str] | None = None
    error: str | None = None
    connect_failed: bool = False


@dataclass(frozen=True)
class ProbeSettings:
    port: int
    context: ssl.SSLContext | None
    timeout: Timeouts  # --timeout for every phase, with the --phase-timeout overrides
    local_hostname: str


def _probe_once(attempt: Attempt, settings: ProbeSettings, verify: bool) -> Probe:
    port, context, timeout = settings.port, settings.context, settings.timeout
    session = Session(SessionOptions(local_hostname=settings.local_hostname, timeout=timeout))
    driver = _RecordingDriver(context, session=session)
    result = Probe(attempt, port)
    # An address literal has no name for the certificate to carry: check the address itself.
    name = attempt.address if attempt.host.startswith("[") else attempt.host
    try:
        open_op = session.open(
            attempt.address, port, tls=TLSMode.OPPORTUNISTIC, server_hostname=name, verify=verify
        )
        result.greeting = driver.run(open_op)
        result.extensions = session.conn.extensions
        result.tls, result.verified = session.tls_active, session.tls_verified
        result.before_tls, result.certificate = driver.before_tls, driver.certificate
    except SMTPError as exc:
        if verify and isinstance(exc, TLSError):
            raise  # probe() tries again without verification
        result.error = str(exc)
        result.connect_failed = isinstance(exc, ConnectError)
    finally:
        with contextlib.suppress(SMTPError):
            driver.run(session.quit())
        driver.drop()
    return result


def probe(attempt: Attempt, settings: ProbeSettings) -> Probe:
    """Probe one address: verified TLS first; on a certificate failure, again without."""
    try:
        return _probe_once(attempt, settings, verify=True)
    except TLSError as exc:
        result = _probe_once(attempt, settings, verify=False)
        result.verify_error = str(exc)
        return result


def _keywords(extensions: Extensions) -> str:
    return ", ".join(" ".join([k, *p]) for k, p in extensions.keywords) or "(none: HELO only)"


def _print_probe(result: Probe) -> None:
    attempt = result.attempt
    print(f"{attempt.host} [{attempt.address}] port {result.port}")
    if result.greeting is not None:
        # A multi-line greeting on one line, so the layout holds.
        print(f"  greeting: {result.greeting.code} {' / '.join(result.greeting.lines)}")
    if result.before_tls is not None:
        print(f"  EHLO before STARTTLS: {_keywords(result.before_tls)}")
    if result.extensions is not None:
        label = "EHLO after STARTTLS" if result.tls else "EHLO"
        print(f"  {label}: {_keywords(result.extensions)}")
    if result.tls:
        state = "verified" if result.verified else f"NOT verified ({result.verify_error})"
        print(f"  STARTTLS: encrypted; certificate {state}")
        for key, value in (result.certificate or {}).items():
            print(f"    {key}: {value}")
    elif result.extensions is not None:
        print("  STARTTLS: not offered: mail to this server travels in cleartext")
    if result.error is not None:
        print(f"  failed: {' / '.join(result.error.splitlines())}")


def _print_policies(found: Survey) -> None:
    """The TLS policy delivery would apply to each MX host, and why."""
    policy = found.policy
    if policy is None:
        return
    sts = policy.sts
    if found.mx is None:  # an address literal: no DNS, so neither MTA-STS nor DANE
        pass
    elif sts is None:
        print("MTA-STS: not looked up (turned off)")
    elif sts.policy is None:
        print("MTA-STS: no policy" + (f" ({sts.failure.result_type.value})" if sts.failure else ""))
    else:
        print(f"MTA-STS: mode {sts.policy.mode.value}, mx {', '.join(sts.policy.mx) or '-'}")
    if found.mx is not None:
        print(f"MX records authentic (DNSSEC): {'yes' if policy.mx_authentic else 'no'}")
    print("TLS policy per MX host:")
    for host, decided in found.hosts.items():
        requirement = decided.requirement
        words = [requirement.kind.value]
        if requirement.skip is not None:
            words.append(f"skipped: {requirement.skip.additional_information}")
        elif requirement.starttls_required:
            words.append(
                f"STARTTLS required, certificate checked: {requirement.verification.value}"
            )
        if decided.records:
            words.append("TLSA " + "; ".join(r.to_text() for r in decided.records))
        print(f"  {host}: {', '.join(words)}")


def _print_plan(domain: str, driver: _RecordingDriver, found: Survey) -> None:
    delivery_plan = found.plan
    mx = driver.mx
    if mx is not None and mx.mx:
        print(f"MX records of {domain}:")
        for record in sorted(mx.mx, key=lambda r: (r.preference, r.host)):
            host = record.host.rstrip(".").lower()
            answer = driver.addresses.get(host)
            if not host:
                where = "(null MX: the domain accepts no mail)"
            elif answer is None or not answer.addresses:
                where = f"(no address: {answer.status.value if answer else 'not looked up'})"
            else:
                where = " ".join(answer.addresses)
            print(f"  {record.preference:5d}  {host or '.'}  {where}")
    elif mx is not None and mx.status in (DNSStatus.OK, DNSStatus.NODATA):
        # Only then is the domain's own address used (X3): NXDOMAIN and DNS failures say
        # why not on the line below.
        print(f"{domain} has no MX record: its own address is used")
    if delivery_plan.error is not None:
        error = delivery_plan.error
        kind = "for now" if error.temporary else "for good"
        reason = f"{error.message} ({error.code} {error.enhanced_status})"
        print(f"{domain} cannot receive mail {kind}: {reason}")
        return
    print("Delivery order:")
    for number, attempt in enumerate(delivery_plan.attempts, 1):
        print(f"  {number}. {attempt.host} [{attempt.address}] (preference {attempt.preference})")
    _print_policies(found)


def run_mx(
    domain: str,
    *,
    resolver: dns.resolver.Resolver | None,
    settings: ProbeSettings,
    do_probe: bool,
) -> int:
    """Print the plan (and the probes); the exit code says whether mail could go there now."""
    driver = _RecordingDriver(resolver=resolver)
    found = driver.run(survey(domain, DeliveryOptions()))
    delivery_plan = found.plan
    _print_plan(domain, driver, found)
    if delivery_plan.error is not None:
        return EXIT_TEMPFAIL if delivery_plan.error.temporary else EXIT_UNAVAILABLE
    if not do_probe:
        return EXIT_OK
    results = []
    for attempt in delivery_plan.attempts:
        print()
        results.append(probe(attempt, settings))
        _print_probe(results[-1])
    addresses = {r.attempt.address for r in results}
    if len(addresses) >= PORT_BLOCKED_EVIDENCE and all(r.connect_failed for r in results):
        print()
        print(PORT_BLOCKED.format(port=settings.port, count=len(addresses)))
    return EXIT_OK if any(r.greeting is not None for r in results) else EXIT_TEMPFAIL
