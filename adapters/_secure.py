"""What the three adapters share for DANE and MTA-STS: lookups that report the AD bit, the
policy fetch over HTTPS, and the certificate chain a peer presented.

DNS answers are trusted for DANE only when the resolver says it validated them (the AD bit,
RFC 7672 §2.1).  Every query is sent with the AD flag set, which asks a validating resolver to
report it (RFC 6840 §5.7); the caller's resolver object is copied, never changed.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import urllib.parse
from typing import Any

import dns.asyncbackend
import dns.asyncresolver
import dns.exception
import dns.resolver

from smtpproto.dane import TLSAAnswer, TLSARecord
from smtpproto.driver import FetchPolicy, ResolveTLSA, ResolveTXT
from smtpproto.mta_sts import MAX_POLICY_SIZE, PolicyFetch
from smtpproto.mx import DNSAnswer, DNSStatus

from ._dns import DNS_ERRORS, denial_authentic, reply_authentic, status_of, with_ad_flag

__all__ = [
    "fetch_policy",
    "policy_host",
    "presented_chain",
    "resolve_secure_async",
    "resolve_secure_sync",
]


def _tlsa(answer: dns.resolver.Answer) -> TLSAAnswer:
    records = tuple(
        TLSARecord(int(rd.usage), int(rd.selector), int(rd.mtype), bytes(rd.cert))
        for rd in answer.rrset or ()
    )
    authentic = reply_authentic(answer.response)
    status = DNSStatus.OK if records else DNSStatus.NODATA
    return TLSAAnswer(status, records, authentic=authentic)


def _txt(answer: dns.resolver.Answer) -> DNSAnswer:
    texts = tuple(b"".join(rd.strings).decode("utf-8", "replace") for rd in answer.rrset or ())
    status = DNSStatus.OK if texts else DNSStatus.NODATA
    return DNSAnswer(status, texts=texts, authentic=reply_authentic(answer.response))


def _failed(request: ResolveTLSA | ResolveTXT, error: dns.exception.DNSException) -> Any:
    status = status_of(error)
    authentic = denial_authentic(error)
    if isinstance(request, ResolveTLSA):
        return TLSAAnswer(status, authentic=authentic)
    return DNSAnswer(status, authentic=authentic)


def _rdtype(request: ResolveTLSA | ResolveTXT) -> str:
    return "TLSA" if isinstance(request, ResolveTLSA) else "TXT"


def _answer(request: ResolveTLSA | ResolveTXT, answer: dns.resolver.Answer) -> Any:
    return _tlsa(answer) if isinstance(request, ResolveTLSA) else _txt(answer)


def resolve_secure_sync(
    resolver: dns.resolver.Resolver | None, request: ResolveTLSA | ResolveTXT
) -> Any:
    """A :class:`~smtpproto.dane.TLSAAnswer` or a TXT :class:`~smtpproto.mx.DNSAnswer`."""
    flagged = with_ad_flag(resolver or dns.resolver.get_default_resolver())
    try:
        answer = flagged.resolve(request.name, _rdtype(request), raise_on_no_answer=False)
    except DNS_ERRORS as exc:
        return _failed(request, exc)
    return _answer(request, answer)


async def resolve_secure_async(
    resolver: dns.asyncresolver.Resolver | None,
    request: ResolveTLSA | ResolveTXT,
    backend: str,
) -> Any:
    flagged = with_ad_flag(resolver or dns.asyncresolver.get_default_resolver())
    io = dns.asyncbackend.get_backend(backend)
    try:
        answer = await flagged.resolve(
            request.name, _rdtype(request), raise_on_no_answer=False, backend=io
        )
    except DNS_ERRORS as exc:
        return _failed(request, exc)
    return _answer(request, answer)


def policy_host(request: FetchPolicy) -> tuple[str, int]:
    """The host name and port of the policy URL (443 unless the URL says otherwise)."""
    url = urllib.parse.urlsplit(request.url)
    return url.hostname or "", url.port or 443


def fetch_policy(
    request: FetchPolicy, addresses: tuple[str, ...], context: ssl.SSLContext
) -> PolicyFetch:
    """GET the policy from the first of ``addresses`` that answers (blocking): TLS verified by
    ``context`` for the URL's host name, no redirect followed, the body read up to one octet
    past :data:`MAX_POLICY_SIZE`."""
    host, port = policy_host(request)
    if not addresses:
        return PolicyFetch(error=f"cannot resolve {host}")
    path = urllib.parse.urlsplit(request.url).path or "/"
    error = "no address"
    for address in addresses:
        try:
            raw = socket.create_connection((address, port), timeout=request.timeout)
        except OSError as exc:
            error = f"cannot connect to {host} [{address}]: {exc}"
            continue
        try:
            with context.wrap_socket(raw, server_hostname=host) as tls:
                tls.sendall(
                    f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
                    "Accept: text/plain\r\n\r\n".encode("ascii")
                )
                response = http.client.HTTPResponse(tls)
                response.begin()
                body = response.read(MAX_POLICY_SIZE + 1)
                content_type = response.getheader("Content-Type", "") or ""
                return PolicyFetch(response.status, content_type, body)
        except ssl.SSLCertVerificationError as exc:
            return PolicyFetch(error=f"{host}: {exc.verify_message}", webpki_failed=True)
        except (OSError, http.client.HTTPException) as exc:
            error = f"fetching from {host} [{address}] failed: {exc}"
        finally:
            raw.close()
    return PolicyFetch(error=error)


def presented_chain(tls: ssl.SSLSocket | ssl.SSLObject | None) -> tuple[bytes, ...]:
    """The DER chain the peer sent, leaf first, verified or not.

    Python 3.13 has ``get_unverified_chain()``; 3.11 and 3.12 have it only on the private
    ``_sslobj``; failing both, the leaf alone (enough for DANE-EE).
    """
    if tls is None:
        return ()
    public = getattr(tls, "get_unverified_chain", None)
    if public is not None:
        return tuple(_der(cert) for cert in public() or ())
    private = getattr(getattr(tls, "_sslobj", None), "get_unverified_chain", None)
    if private is not None:
        return tuple(_der(cert) for cert in private() or ())
    leaf = tls.getpeercert(binary_form=True)
    return (leaf,) if leaf else ()


def _der(cert: Any) -> bytes:
    if isinstance(cert, bytes):
        return cert
    der: bytes = cert.public_bytes(ssl._ssl.ENCODING_DER)  # type: ignore[attr-defined]
    return der
