"""The choices a caller makes: how a session protects itself, how long it waits, what it asks
of the server for each message.  One typed object each, shared by :class:`~smtpproto.Session`,
every client and ``deliver()``."""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from smtpproto._machine.state import DATA_BLOCK, TIMEOUTS, CommandKind
from smtpproto._wire.dkim_sign import DKIMSigner
from smtpproto._wire.events import NotifyCondition, check_dsn_options
from smtpproto._wire.limits import DEFAULT_LIMITS, Limits

__all__ = ["RetType", "SendOptions", "SessionOptions", "TLSMode", "Timeouts", "TransactionWindow"]

#: What a bounce carries (DSN RET, RFC 3461 §4.3).
RetType = Literal["FULL", "HDRS"]


class TLSMode(enum.Enum):
    """How a session protects itself (RFC 3207, RFC 8314)."""

    #: TLS from the first byte (port 465).
    IMPLICIT = "implicit"
    #: STARTTLS is required: no STARTTLS offered, a 454, or a failed handshake ends the session.
    STARTTLS = "starttls"
    #: Use STARTTLS when offered, carry on in cleartext when not (the default for MX delivery).
    OPPORTUNISTIC = "opportunistic"
    #: Cleartext, explicitly.
    NONE = "none"


@dataclass(frozen=True, kw_only=True)
class Timeouts:
    """Seconds to wait in each phase of a session.  The names and defaults are those of RFC 5321
    §4.5.3.2; ``connect``, ``command`` and ``rset`` follow Postfix (``smtp_connect_timeout``,
    ``smtp_helo_timeout`` and the like, ``smtp_rset_timeout``).

    ``Timeouts.uniform(10)`` is the same limit everywhere; ``dataclasses.replace`` changes one.
    """

    #: Opening the TCP connection (and an implicit TLS handshake).
    connect: float = 30.0
    #: §4.5.3.2.1, the initial 220 message.
    greeting: float = 300.0
    #: EHLO, HELO, LHLO, STARTTLS (and its handshake), AUTH, NOOP, VRFY, QUIT.
    command: float = 300.0
    #: §4.5.3.2.2, the reply to MAIL.
    mail: float = 300.0
    #: §4.5.3.2.3, the reply to each RCPT.
    rcpt: float = 300.0
    #: §4.5.3.2.4, the 354 to DATA.
    data_initiation: float = 120.0
    #: §4.5.3.2.5, each write of message content (a BDAT chunk's reply too).
    data_block: float = 180.0
    #: §4.5.3.2.6, the reply to the end of data (the final dot, or BDAT LAST).
    data_termination: float = 600.0
    #: The reply to RSET.
    rset: float = 20.0

    def __post_init__(self) -> None:
        for phase in dataclasses.fields(self):
            seconds = getattr(self, phase.name)
            if isinstance(seconds, bool) or not isinstance(seconds, int | float):
                raise TypeError(f"timeout {phase.name} must be a number of seconds")
            if not (0 < seconds < math.inf):
                raise ValueError(f"timeout {phase.name} must be positive and finite: {seconds}")
        # Worked out once, here, for every session that shares these timeouts: 3.4 % of the
        # client's own CPU per session in bench_session B (instructions, 2026-12-03).  Kept as a
        # plain dict: a mappingproxy would stop the options from pickling or deep-copying.
        object.__setattr__(self, "_machine_timeouts", self._kinds())

    @classmethod
    def uniform(cls, seconds: float) -> Timeouts:
        """The same limit for every phase."""
        return cls(**{phase.name: seconds for phase in dataclasses.fields(cls)})

    def by_kind(self) -> Mapping[str, float]:
        """The limit for the reply to each kind of command, as the protocol machine takes it."""
        machine_timeouts: dict[str, float] = self.__dict__["_machine_timeouts"]
        return MappingProxyType(machine_timeouts)

    def _kinds(self) -> dict[str, float]:
        phase_of = {
            CommandKind.GREETING: self.greeting,
            CommandKind.MAIL: self.mail,
            CommandKind.RCPT: self.rcpt,
            CommandKind.DATA: self.data_initiation,
            DATA_BLOCK: self.data_block,
            CommandKind.BDAT: self.data_block,
            CommandKind.END_OF_MESSAGE: self.data_termination,
            CommandKind.BDAT_LAST: self.data_termination,
            CommandKind.RSET: self.rset,
        }
        return {kind: phase_of.get(kind, self.command) for kind in TIMEOUTS}


#: Immutable, so one instance serves every session that keeps the defaults.
_DEFAULT_TIMEOUTS = Timeouts()


@dataclass(frozen=True, kw_only=True)
class TransactionWindow:
    """How many whole transactions ``send_messages`` keeps in flight with CHUNKING and
    PIPELINING, each ``MAIL … RCPT … BDAT LAST`` carrying its message.

    Throughput is about ``messages`` per round trip, until ``octets`` of content are on their
    way: at a 50 ms round trip, 100 messages of 1 KB make 2000 messages a second.  The replies
    to a window (some 30 octets per command) stay far below any socket buffer, and the window
    refills when half of it has settled.
    """

    #: Transactions written and not yet settled, at most.
    messages: int = 100
    #: Octets of content written and not yet settled, at most (one message is always allowed).
    octets: int = 4 << 20

    def __post_init__(self) -> None:
        for name in ("messages", "octets"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"TransactionWindow.{name} must be a positive integer: {value!r}")


_DEFAULT_WINDOW = TransactionWindow()


@dataclass(frozen=True, kw_only=True)
class SessionOptions:
    """How a session behaves, whatever drives it."""

    #: The name said in EHLO; ``None``: this machine's (the driver's ``LocalHostname``).
    local_hostname: str | None = None
    #: A number of seconds for every phase, or :class:`Timeouts` phase by phase.
    timeout: float | Timeouts = _DEFAULT_TIMEOUTS  # immutable: one serves every session
    #: Speak LMTP (RFC 2033): LHLO, and a reply per recipient after the data.
    lmtp: bool = False
    #: Bounds on what the server may make the client buffer.
    limits: Limits = DEFAULT_LIMITS  # immutable: one serves every session
    #: Transactions in flight at once in ``send_messages`` (CHUNKING and PIPELINING).
    window: TransactionWindow = _DEFAULT_WINDOW  # immutable: one serves every session

    def __post_init__(self) -> None:
        if not isinstance(self.timeout, Timeouts):
            object.__setattr__(self, "timeout", Timeouts.uniform(self.timeout))

    def updated(
        self, *, timeout: float | Timeouts | None = None, local_hostname: str | None = None
    ) -> SessionOptions:
        """These options, with ``timeout`` and ``local_hostname`` instead where given (the
        clients' ``connect()`` takes both, as smtplib does)."""
        changes: dict[str, object] = {"timeout": timeout, "local_hostname": local_hostname}
        given = {name: value for name, value in changes.items() if value is not None}
        return dataclasses.replace(self, **given) if given else self  # type: ignore[arg-type]

    @property
    def timeouts(self) -> Timeouts:
        """:attr:`timeout`, always as :class:`Timeouts`."""
        assert isinstance(self.timeout, Timeouts)  # made so by __post_init__
        return self.timeout


@dataclass(frozen=True, kw_only=True)
class SendOptions:
    """What to ask of the server for one message: DSN (RFC 3461), REQUIRETLS (RFC 8689),
    MT-PRIORITY (RFC 6710); and how to sign it (DKIM).  Parameters the server does not offer
    are left out, except ``requiretls``, which refuses the message instead."""

    #: DSN: return the full message or only its headers in a bounce.
    ret: RetType | None = None
    #: DSN: the envelope id the bounces quote.
    envid: str | None = None
    #: DSN: when to notify, for every recipient.
    notify: tuple[NotifyCondition, ...] | None = None
    #: The message must travel only over TLS, end to end (RFC 8689).
    requiretls: bool = False
    #: The message's priority, -9 to 9 (RFC 6710).
    mt_priority: int | None = None
    #: Sign the message with each of these, in order (DKIM, RFC 6376; see docs/signing.rst).
    dkim: tuple[DKIMSigner, ...] = ()

    def __post_init__(self) -> None:
        if self.notify is not None:
            object.__setattr__(self, "notify", tuple(self.notify))
        if isinstance(self.dkim, DKIMSigner):
            raise TypeError("dkim takes a sequence of signers: dkim=(signer,)")
        object.__setattr__(self, "dkim", tuple(self.dkim))
        if not all(isinstance(signer, DKIMSigner) for signer in self.dkim):
            raise TypeError("dkim takes DKIMSigner objects")
        # Bad values are a ValueError now, before any operation has started (S1).
        check_dsn_options(self.ret, self.envid, self.notify, self.mt_priority)
