"""dnspython's answers and errors, as the core's :class:`~smtpproto.mx.DNSAnswer`.

Shared by the three adapters: ``dns.resolver`` and ``dns.asyncresolver`` return the same answer
objects and raise the same exceptions, so only the awaiting differs.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, TypeVar

import dns.asyncbackend
import dns.asyncresolver
import dns.exception
import dns.flags
import dns.message
import dns.resolver

from smtpproto.driver import ResolveAddresses, ResolveMX
from smtpproto.mx import DNSAnswer, DNSStatus, MXRecord

__all__ = [
    "ADDRESS_TYPES",
    "DNS_ERRORS",
    "addresses_answer",
    "denial_authentic",
    "mx_answer",
    "reply_authentic",
    "resolve_async",
    "resolve_sync",
    "status_of",
    "with_ad_flag",
]

#: AAAA first: within each family the resolver's order is kept; the planner applies preference.
ADDRESS_TYPES = ("AAAA", "A")
DNS_ERRORS = (dns.exception.DNSException,)
R = TypeVar("R", dns.resolver.Resolver, dns.asyncresolver.Resolver)


def with_ad_flag(resolver: R) -> R:
    """A copy of ``resolver`` whose queries set AD (and RD): a validating resolver then says
    whether it validated the answer (RFC 6840 §5.7), which DANE needs of the MX, address and
    TLSA answers (RFC 7672 §2.1).  The caller's resolver is left as it was."""
    flagged = copy.copy(resolver)
    flagged.flags = dns.flags.RD | dns.flags.AD
    return flagged


def reply_authentic(response: dns.message.Message | None) -> bool:
    """The AD bit of a reply."""
    return response is not None and bool(response.flags & dns.flags.AD)


def denial_authentic(error: dns.exception.DNSException) -> bool:
    """Whether a validating resolver proved the name or the type absent (NXDOMAIN or NODATA with
    the AD bit): an authentic NODATA for MX makes the domain its own, authentic, MX host."""
    if isinstance(error, dns.resolver.NXDOMAIN):
        responses: dict[Any, dns.message.Message] = error.kwargs.get("responses") or {}
        return bool(responses) and all(reply_authentic(r) for r in responses.values())
    if isinstance(error, dns.resolver.NoAnswer):
        return reply_authentic(error.kwargs.get("response"))
    return False


def status_of(error: dns.exception.DNSException) -> DNSStatus:
    """What a dnspython exception means for delivery (RFC 5321 §5.1, checklist X2)."""
    if isinstance(error, dns.resolver.NXDOMAIN):
        return DNSStatus.NXDOMAIN
    if isinstance(error, dns.resolver.NoAnswer):
        return DNSStatus.NODATA
    if isinstance(error, dns.exception.Timeout):
        return DNSStatus.TIMEOUT
    return DNSStatus.SERVFAIL  # NoNameservers (SERVFAIL/REFUSED everywhere) and anything else


def mx_answer(answer: dns.resolver.Answer) -> DNSAnswer:
    records = tuple(MXRecord(int(rr.preference), rr.exchange.to_text()) for rr in answer)
    return DNSAnswer(DNSStatus.OK, mx=records, authentic=reply_authentic(answer.response))


def addresses_answer(results: Sequence[dns.resolver.Answer | DNSStatus]) -> DNSAnswer:
    """Combine the AAAA and A lookups of one host into one answer."""
    addresses = tuple(
        rr.to_text() for result in results if not isinstance(result, DNSStatus) for rr in result
    )
    if addresses:
        found = [r for r in results if not isinstance(r, DNSStatus) and r.rrset]
        # The CNAME an address lookup went through: DANE's TLSA base domain (RFC 7672 §2.2.2).
        canonical = {r.canonical_name.to_text() for r in found if r.canonical_name != r.qname}
        return DNSAnswer(
            DNSStatus.OK,
            addresses=addresses,
            authentic=all(reply_authentic(r.response) for r in found),
            cname_target=canonical.pop() if len(canonical) == 1 else None,
        )
    statuses = [r for r in results if isinstance(r, DNSStatus)]
    for status in (DNSStatus.NXDOMAIN, DNSStatus.SERVFAIL, DNSStatus.TIMEOUT):
        if status in statuses:
            return DNSAnswer(status)
    return DNSAnswer(DNSStatus.NODATA)


def resolve_sync(
    resolver: dns.resolver.Resolver | None, request: ResolveMX | ResolveAddresses
) -> DNSAnswer:
    """Answer a DNS request of the core with ``dns.resolver`` (blocking)."""
    resolver = with_ad_flag(resolver or dns.resolver.get_default_resolver())
    if isinstance(request, ResolveMX):
        try:
            return mx_answer(resolver.resolve(request.domain, "MX"))
        except DNS_ERRORS as exc:
            return DNSAnswer(status_of(exc), authentic=denial_authentic(exc))
    results: list[dns.resolver.Answer | DNSStatus] = []
    for rdtype in ADDRESS_TYPES:
        try:
            results.append(resolver.resolve(request.host, rdtype))
        except DNS_ERRORS as exc:
            results.append(status_of(exc))
    return addresses_answer(results)


async def resolve_async(
    resolver: dns.asyncresolver.Resolver | None,
    request: ResolveMX | ResolveAddresses,
    backend: str,
) -> DNSAnswer:
    """Answer a DNS request of the core with ``dns.asyncresolver`` on ``backend`` ("asyncio" or
    "trio": named, because dnspython would otherwise keep the first event loop it detected)."""
    resolver = with_ad_flag(resolver or dns.asyncresolver.get_default_resolver())
    io = dns.asyncbackend.get_backend(backend)
    if isinstance(request, ResolveMX):
        try:
            return mx_answer(await resolver.resolve(request.domain, "MX", backend=io))
        except DNS_ERRORS as exc:
            return DNSAnswer(status_of(exc), authentic=denial_authentic(exc))
    results: list[dns.resolver.Answer | DNSStatus] = []
    for rdtype in ADDRESS_TYPES:
        try:
            results.append(await resolver.resolve(request.host, rdtype, backend=io))
        except DNS_ERRORS as exc:
            results.append(status_of(exc))
    return addresses_answer(results)
