"""The driver contract: the I/O requests an operation makes, and the loop that runs it.

Every SMTP policy in smtpproto (greeting, EHLO/HELO fallback, STARTTLS, AUTH, transactions, MX
walking) is an *operation*: a generator that yields the requests below and receives their
results.  A driver performs one request at a time, in any way it likes (a blocking socket, an
event loop, a test script), and :func:`drive` (or :func:`drive_async`) does the rest::

    result = drive(session.send_message(body, sender, recipients), perform)

``perform(request)`` returns the request's result (``None`` unless stated) or raises the failure
as one of smtpproto's errors (:exc:`~smtpproto.ConnectError`, :exc:`~smtpproto.SMTPTimeoutError`,
:exc:`~smtpproto.ConnectionLostError`, :exc:`~smtpproto.TLSError`); the operation decides what
follows.  Anything else it raises (a cancellation, ``KeyboardInterrupt``, a bug) ends the
operation: the session counts its connection as lost, and the driver must drop the connection
itself, at once, before it lets the exception go on.

This module is stable API: the built-in adapters use it and nothing else of the core's insides.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Generator, Iterable
from dataclasses import dataclass, field
from typing import Any, BinaryIO, TypeVar

from ._wire.errors import SMTPError
from ._wire.frozen import fast_init

__all__ = [
    "BodyStream",
    "Close",
    "CloseBody",
    "Connect",
    "FetchPolicy",
    "LocalHostname",
    "Now",
    "OpenBody",
    "OpenedBody",
    "Operation",
    "PeerCertificates",
    "ReadBody",
    "Receive",
    "RemoveSpool",
    "ReplyClock",
    "Request",
    "ResolveAddresses",
    "ResolveMX",
    "ResolveTLSA",
    "ResolveTXT",
    "RunConcurrently",
    "Send",
    "SpoolBody",
    "StartTLSHandshake",
    "drive",
    "drive_async",
]

T = TypeVar("T")


# -- the connection ------------------------------------------------------------------------------


@fast_init
@dataclass(frozen=True, slots=True)
class Connect:
    """Open a TCP connection within ``timeout`` seconds (then the TLS handshake at once, when
    ``implicit_tls``), replacing any connection the driver had.

    ``server_hostname`` is the name the certificate must carry (and the SNI); ``verify=False``
    accepts any certificate (opportunistic MX delivery, RFC 7435).
    """

    host: str
    port: int
    timeout: float | None
    implicit_tls: bool = False
    server_hostname: str | None = None
    verify: bool = True


@fast_init
@dataclass(frozen=True, slots=True)
class Send:
    """Write all of ``data`` within ``timeout`` seconds.  ``phase`` names what is being sent
    (``"MAIL"``, ``"DATA-BLOCK"``...), for the error a failure becomes.

    With ``listen`` (a write of message content before its end: the first, then one per MiB
    written), the result is what the server has sent by the time the write is done, read without
    waiting (``b""``: nothing): a reply before the end of data answers nothing the client sent,
    and the session must see it before it ends the message, or it could take it for the answer
    to the end (checklist C12).  A driver that
    cannot read while it writes returns ``None``; the session then only catches a reply too
    many after the end of data.  Without ``listen`` the result is ``None`` (a driver may return
    bytes read meanwhile all the same: they are taken as if received).
    """

    data: bytes = field(repr=False)
    timeout: float | None
    phase: str
    listen: bool = False


@fast_init
@dataclass(frozen=True, slots=True)
class Receive:
    """Read some bytes (at least one; ``b""`` when the server closed the connection).

    ``timeout`` bounds the whole reply, not each read: a ``Receive`` with ``fresh=True`` starts
    a deadline ``timeout`` seconds away, and the following ones (``fresh=False``, same reply)
    get only what is left of it, so a server trickling a reply cannot stretch the wait (S7).
    :class:`ReplyClock` keeps that deadline for a driver.
    """

    timeout: float | None
    phase: str
    fresh: bool = True


@fast_init
@dataclass(frozen=True, slots=True)
class StartTLSHandshake:
    """Upgrade the open connection to TLS (after the 220 to STARTTLS), checking the certificate
    for ``server_hostname`` unless ``verify`` is false."""

    server_hostname: str
    timeout: float | None
    verify: bool = True


@fast_init
@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection (no reply expected).

    ``graceful`` is true only after QUIT was answered: then a TLS connection is worth its
    close_notify exchange (bounded by the driver).  Otherwise something failed or was cut
    short, and the connection is dropped at once.
    """

    graceful: bool = False


# -- DNS -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LocalHostname:
    """This machine's name for EHLO, when the caller gave none: ``socket.getfqdn()``, which may
    ask DNS (so an event loop's driver runs it in a worker thread); the result is a ``str``."""


@fast_init
@dataclass(frozen=True, slots=True)
class ResolveMX:
    """Look up the MX records of ``domain``; the result is a :class:`~smtpproto.mx.DNSAnswer`."""

    domain: str


@fast_init
@dataclass(frozen=True, slots=True)
class ResolveAddresses:
    """Look up the AAAA and A records of ``host``; the result is a
    :class:`~smtpproto.mx.DNSAnswer`."""

    host: str


@fast_init
@dataclass(frozen=True, slots=True)
class ResolveTLSA:
    """Look up the TLSA records of ``name`` (``_25._tcp.<host>.``) through a validating
    resolver, asking for the AD bit; the result is a :class:`smtpproto.dane.TLSAAnswer` (its
    ``authentic`` is the reply's AD bit; a bogus answer arrives as SERVFAIL)."""

    name: str


@fast_init
@dataclass(frozen=True, slots=True)
class ResolveTXT:
    """Look up the TXT records of ``name``; the result is a :class:`~smtpproto.mx.DNSAnswer`
    whose ``texts`` hold each record's strings joined (undecodable octets replaced)."""

    name: str


@fast_init
@dataclass(frozen=True, slots=True)
class FetchPolicy:
    """GET ``url`` (an MTA-STS policy, ``https://mta-sts.<domain>/...``) within ``timeout``
    seconds; the result is a :class:`smtpproto.mta_sts.PolicyFetch`.

    The driver resolves the host with its own resolver, verifies the certificate for the host
    name against its trust store, follows no redirect, and reads at most
    :data:`smtpproto.mta_sts.MAX_POLICY_SIZE` + 1 octets of the body (RFC 8461 §3.3).  Failures
    are reported in the result (``error``), never raised.
    """

    url: str
    timeout: float | None


@dataclass(frozen=True, slots=True)
class PeerCertificates:
    """The certificate chain the peer presented in the TLS handshake of the open connection,
    as DER, leaf first, whether or not it was verified; the result is a ``tuple[bytes, ...]``
    (empty without TLS).  DANE matches it against TLSA records."""


@dataclass(frozen=True, slots=True)
class Now:
    """The wall-clock time, POSIX seconds (``time.time()``): the core reads no clock, and
    MTA-STS policy ages and certificate validity need one.  The result is a ``float``."""


# -- message bodies the core cannot read itself ------------------------------------------------

#: A body that only a driver can read: a path, a binary file object, or an iterable of chunks.
BodyStream = os.PathLike[str] | BinaryIO | Iterable[bytes]


@fast_init
@dataclass(frozen=True, slots=True)
class OpenBody:
    """Get ready to read ``source`` from its start; the result is an :class:`OpenedBody`.

    ``start`` is ``None`` the first time a body is opened; a later pass over a seekable file
    gives back the ``start`` the first :class:`OpenedBody` reported, to begin where it began.
    """

    source: BodyStream
    start: int | None = None


@dataclass(frozen=True, slots=True)
class OpenedBody:
    """The result of :class:`OpenBody`.

    ``reader`` is the driver's own handle (the core passes it back in :class:`ReadBody` and
    :class:`CloseBody` and never looks inside); ``size`` the octets left to read when known
    without reading (a path's or a seekable file's size, for SIZE); ``start`` a seekable file's
    position, ``None`` when the body can be read only once (a pipe, an iterator).
    """

    reader: object
    size: int | None = None
    start: int | None = None


@fast_init
@dataclass(frozen=True, slots=True)
class ReadBody:
    """Read the next chunk of an opened body (at most ``max_bytes`` from a file; an iterable's
    chunks as they come); the result is ``bytes``, ``b""`` at the end."""

    reader: object
    max_bytes: int


@fast_init
@dataclass(frozen=True, slots=True)
class CloseBody:
    """Release what :class:`OpenBody` acquired (a file opened from a path).  A caller's own file
    object is left open."""

    reader: object


@dataclass(frozen=True, slots=True)
class SpoolBody:
    """Copy ``content`` to the end of a temporary file of the driver's (a new one when ``path``
    is ``None``); the result is the file's path, an ``os.PathLike[str]``.  ``content`` is the
    ``reader`` of an :class:`OpenedBody` (what is left of it is copied, and the caller still
    closes it) or ``bytes``.  DKIM signing reads a body twice: a body that can be read only once
    is spooled first, so that it is never held in memory."""

    content: object
    path: os.PathLike[str] | None = None


@dataclass(frozen=True, slots=True)
class RemoveSpool:
    """Delete the temporary file a :class:`SpoolBody` made; one already gone is no error."""

    path: os.PathLike[str]


@dataclass(frozen=True, slots=True)
class RunConcurrently:
    """Run each of ``operations`` to its end with a driver, and so a connection, of its own, at
    most ``limit`` at a time; the result is the list of their results, in order.  (Direct
    delivery asks it for its recipients' domains: a driver supplies only its concurrency.)"""

    operations: tuple[Operation[Any], ...]
    limit: int


Request = (
    Connect
    | Send
    | Receive
    | StartTLSHandshake
    | Close
    | ResolveMX
    | ResolveAddresses
    | ResolveTLSA
    | ResolveTXT
    | FetchPolicy
    | PeerCertificates
    | Now
    | LocalHostname
    | OpenBody
    | ReadBody
    | CloseBody
    | SpoolBody
    | RemoveSpool
    | RunConcurrently
)
#: An operation: a generator that yields requests, is sent their results, and returns a ``T``.
Operation = Generator[Request, Any, T]


# -- running operations --------------------------------------------------------------------------


def drive(operation: Operation[T], perform: Callable[[Request], Any]) -> T:
    """Run ``operation`` to its end, performing each request with ``perform``; return its
    result or raise its error."""
    runner = _run(operation, perform, awaits=False)
    try:
        runner.send(None)  # a perform that is not awaited never suspends the loop
    except StopIteration as stop:
        result: T = stop.value
        return result
    raise AssertionError("a synchronous perform suspended")


async def drive_async(operation: Operation[T], perform: Callable[[Request], Awaitable[Any]]) -> T:
    """:func:`drive` for an event loop: ``perform`` is awaited."""
    return await _run(operation, perform, awaits=True)


async def _run(operation: Operation[T], perform: Callable[[Request], Any], *, awaits: bool) -> T:
    """The loop of both: one coroutine per operation, not one per request (a coroutine wrapping
    each synchronous perform cost 2.9 % of the client's own CPU per session in
    bench/bench_session.py B, instructions, 2026-12-03)."""
    value: Any = None
    error: SMTPError | None = None
    while True:
        try:
            request = operation.send(value) if error is None else operation.throw(error)
        except StopIteration as stop:
            result: T = stop.value
            return result
        value, error = None, None
        try:
            value = perform(request)
            if awaits:
                value = await value
        except SMTPError as exc:
            error = exc
        except BaseException:
            operation.close()  # interrupted mid-exchange: the session's connection is lost
            raise


class ReplyClock:
    """The time left for the reply a :class:`Receive` belongs to: its ``timeout`` is a deadline
    for the whole reply, started by its first read (``fresh``), so a trickling server cannot
    make every read a new wait (S7).  ``now`` is the driver's monotonic clock."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self._deadline: float | None = None

    def remaining(self, request: Receive) -> float | None:
        if request.fresh:
            timeout = request.timeout
            self._deadline = None if timeout is None else self._now() + timeout
            return timeout
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - self._now())
