"""The client's states and the tables that move between them.

These tables are the only source of truth for what may be sent when, and for how the state moves:
the connection looks things up here and the docs' state diagram is drawn from them.  Every state
change is an entry: a command sent (``SEND_TRANSITIONS``), a reply to one (``REPLY_TRANSITIONS``,
``LMTP_REPLY_TRANSITIONS``), or something else that happens to the connection
(``TRIGGER_TRANSITIONS``: a 421, the end of input, the TLS handshake, a protocol error).

Sending moves the state *optimistically* (before the reply arrives), which is what lets MAIL, RCPT
and DATA share one round trip under PIPELINING.  A reply moves the state only when the table has an
entry for (current state, answered command, outcome): a failed MAIL returns to READY only if
nothing was pipelined behind it, because later replies will settle the state otherwise.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType

from smtpproto._wire.events import (
    Auth,
    AuthResponse,
    Bdat,
    Command,
    Data,
    Ehlo,
    EndOfMessage,
    Helo,
    Lhlo,
    MailFrom,
    MessageData,
    Noop,
    Quit,
    RcptTo,
    Rset,
    StartTLS,
    Vrfy,
)

__all__ = [
    "DATA_BLOCK",
    "GROUP_CONTINUABLE",
    "INTERMEDIATE_ALLOWED",
    "LMTP_REPLY_TRANSITIONS",
    "OUTCOME_BY_DIGIT",
    "POSITIVE_REFUSED",
    "REPLY_TRANSITIONS",
    "SEND_TRANSITIONS",
    "TIMEOUTS",
    "TRIGGER_TRANSITIONS",
    "CommandKind",
    "Outcome",
    "State",
    "Trigger",
    "kind_of",
]


class State(enum.Enum):
    """Where the client stands in the SMTP dialogue."""

    #: waiting for the server's greeting
    GREETING = "GREETING"
    #: the greeting was 4xx/5xx: only QUIT (checklist G2, G3)
    REFUSED = "REFUSED"
    #: greeted (or TLS just started): say EHLO, HELO or LHLO
    CONNECTED = "CONNECTED"
    #: EHLO/HELO/LHLO sent, waiting for its reply
    HELLO = "HELLO"
    #: session open, no mail transaction
    READY = "READY"
    #: STARTTLS sent, waiting for its reply
    STARTTLS = "STARTTLS"
    #: 220 to STARTTLS: the adapter does the handshake now
    TLS_PAUSED = "TLS_PAUSED"
    #: AUTH or a SASL response sent, waiting for the reply
    AUTH = "AUTH"
    #: 334 received: the client must respond (or cancel)
    AUTH_CHALLENGE = "AUTH_CHALLENGE"
    #: MAIL sent: RCPT comes next
    MAIL = "MAIL"
    #: at least one RCPT sent: more RCPT, DATA or BDAT
    RCPT = "RCPT"
    #: DATA sent, waiting for 354
    DATA = "DATA"
    #: 354 received: message content, then the end of data
    MESSAGE = "MESSAGE"
    #: chunks sent, the LAST one not yet
    BDAT = "BDAT"
    #: a chunk was refused: no more BDAT until RSET (RFC 3030 §2)
    BDAT_FAILED = "BDAT_FAILED"
    #: QUIT sent
    QUIT = "QUIT"
    #: the server closed the connection or announced it (421)
    CLOSED = "CLOSED"
    #: a protocol error happened; the connection is unusable
    ERROR = "ERROR"

    # Enum hashes a member by hashing its name in Python; the tables hash a state for every
    # command and reply.  Members are singletons, so identity serves: with Outcome's, worth 3.1 %
    # of the client's own CPU per message in bench_session A, 2.6 % per session in B and 3.2 %
    # per recipient in C (instructions, 2026-12-03).
    __hash__ = object.__hash__


class CommandKind(enum.StrEnum):
    """The name the state tables give each command; a ``str``, so it serves as a phase name.

    The values are the phase names used in error messages, I/O requests and the timeouts
    (``TIMEOUTS["MAIL"]``); the tables are keyed by the members, so a typo fails the type check.
    """

    #: the server's opening reply, which answers no command
    GREETING = "GREETING"
    EHLO = "EHLO"
    HELO = "HELO"
    LHLO = "LHLO"
    STARTTLS = "STARTTLS"
    AUTH = "AUTH"
    #: the answer to a 334 challenge
    AUTH_RESPONSE = "AUTH-RESPONSE"
    MAIL = "MAIL"
    RCPT = "RCPT"
    DATA = "DATA"
    #: message content after the 354; it gets no reply of its own
    MESSAGE_DATA = "MESSAGE-DATA"
    #: the final ``.`` after the content
    END_OF_MESSAGE = "END-OF-MESSAGE"
    BDAT = "BDAT"
    #: ``BDAT ... LAST``
    BDAT_LAST = "BDAT-LAST"
    RSET = "RSET"
    NOOP = "NOOP"
    VRFY = "VRFY"
    QUIT = "QUIT"


class Outcome(enum.Enum):
    """A reply's meaning for the state tables: its first digit."""

    POSITIVE = "2xx"
    INTERMEDIATE = "3xx"
    NEGATIVE = "4xx/5xx"
    #: a first digit outside 2-5 (RFC 5321 §4.2): the reply is well framed but means nothing
    UNEXPECTED = "other"

    __hash__ = object.__hash__  # as State's (the reply table's key holds both)


class Trigger(enum.Enum):
    """What moves the state besides sending a command or a reply to one."""

    #: a 421 reply, answering a command or not: the server is closing (RFC 5321 §3.8)
    SERVICE_CLOSING = "421"
    #: the server closed the connection (``receive_data(b"")``, then every reply read)
    END_OF_INPUT = "end of input"
    #: the adapter reports the TLS handshake after a 220 to STARTTLS (``tls_established()``)
    TLS_ESTABLISHED = "tls_established()"
    #: a ``LocalProtocolError`` or ``RemoteProtocolError``: the dialogue cannot go on
    PROTOCOL_ERROR = "protocol error"


S = State
K = CommandKind

# (state, command kind) -> state after sending.  A missing pair is a LocalProtocolError.
_SEND: dict[tuple[State, CommandKind], State] = {}


def _allow(kind: CommandKind, moves: dict[State, State]) -> None:
    for before, after in moves.items():
        _SEND[before, kind] = after


_HELLOS = (K.EHLO, K.HELO, K.LHLO)
_SESSION_STATES = (S.CONNECTED, S.READY, S.MAIL, S.RCPT, S.BDAT, S.BDAT_FAILED)
for _hello in _HELLOS:
    _allow(_hello, {S.CONNECTED: S.HELLO, S.READY: S.HELLO})
_allow(K.STARTTLS, {S.READY: S.STARTTLS})
_allow(K.AUTH, {S.READY: S.AUTH})
_allow(K.AUTH_RESPONSE, {S.AUTH_CHALLENGE: S.AUTH})
_allow(K.MAIL, {S.READY: S.MAIL})
_allow(K.RCPT, {S.MAIL: S.RCPT, S.RCPT: S.RCPT})
_allow(K.DATA, {S.RCPT: S.DATA})
_allow(K.MESSAGE_DATA, {S.MESSAGE: S.MESSAGE})
_allow(K.END_OF_MESSAGE, {S.MESSAGE: S.READY})
_allow(K.BDAT, {S.RCPT: S.BDAT, S.BDAT: S.BDAT})
_allow(K.BDAT_LAST, {S.RCPT: S.READY, S.BDAT: S.READY})
_allow(
    K.RSET, {state: (S.CONNECTED if state is S.CONNECTED else S.READY) for state in _SESSION_STATES}
)
_allow(K.NOOP, {state: state for state in _SESSION_STATES})
_allow(K.VRFY, {state: state for state in (S.CONNECTED, S.READY, S.MAIL, S.RCPT)})
_allow(K.QUIT, dict.fromkeys((S.REFUSED, *_SESSION_STATES), S.QUIT))

SEND_TRANSITIONS: Mapping[tuple[State, CommandKind], State] = MappingProxyType(_SEND)

# (state, answered command kind, outcome) -> new state.  No entry: the state stays.
_REPLY: dict[tuple[State, CommandKind, Outcome], State] = {
    (S.GREETING, K.GREETING, Outcome.POSITIVE): S.CONNECTED,
    (S.GREETING, K.GREETING, Outcome.NEGATIVE): S.REFUSED,
    **{
        (S.HELLO, hello, outcome): after
        for hello in _HELLOS
        for outcome, after in ((Outcome.POSITIVE, S.READY), (Outcome.NEGATIVE, S.CONNECTED))
    },
    (S.STARTTLS, K.STARTTLS, Outcome.POSITIVE): S.TLS_PAUSED,
    (S.STARTTLS, K.STARTTLS, Outcome.NEGATIVE): S.READY,
    **{
        (S.AUTH, auth, outcome): after
        for auth in (K.AUTH, K.AUTH_RESPONSE)
        for outcome, after in (
            (Outcome.POSITIVE, S.READY),
            (Outcome.INTERMEDIATE, S.AUTH_CHALLENGE),
            (Outcome.NEGATIVE, S.READY),
        )
    },
    (S.MAIL, K.MAIL, Outcome.NEGATIVE): S.READY,
    (S.DATA, K.DATA, Outcome.INTERMEDIATE): S.MESSAGE,
    # DATA refused: the transaction (if MAIL succeeded) is still open; RSET or more RCPT.
    (S.DATA, K.DATA, Outcome.NEGATIVE): S.RCPT,
    (S.BDAT, K.BDAT, Outcome.NEGATIVE): S.BDAT_FAILED,
    (S.READY, K.BDAT, Outcome.NEGATIVE): S.BDAT_FAILED,
    (S.READY, K.BDAT_LAST, Outcome.NEGATIVE): S.BDAT_FAILED,
    (S.QUIT, K.QUIT, Outcome.POSITIVE): S.CLOSED,
}
# A code whose first digit is outside 2-5 still answers its command, so the count of replies
# stays right, but RFC 5321 §4.2 asks the client to treat it as fatal and end the transaction.
# The state moves as for a refusal: the dialogue stays in step (a DATA pipelined behind a RCPT
# may still get its 354), and RSET and QUIT remain possible once the replies due have come.
_REPLY.update(
    {
        (state, kind, Outcome.UNEXPECTED): after
        for (state, kind, outcome), after in _REPLY.items()
        if outcome is Outcome.NEGATIVE
    }
)
REPLY_TRANSITIONS: Mapping[tuple[State, CommandKind, Outcome], State] = MappingProxyType(_REPLY)

# LMTP answers the end of data once per accepted recipient (RFC 2033 §4.2): a refusal there is
# one recipient's, not a refused chunk, and the transaction is over either way.
LMTP_REPLY_TRANSITIONS: Mapping[tuple[State, CommandKind, Outcome], State] = MappingProxyType(
    {
        **_REPLY,
        (S.READY, K.BDAT_LAST, Outcome.NEGATIVE): S.READY,
        (S.READY, K.BDAT_LAST, Outcome.UNEXPECTED): S.READY,
    }
)

# A reply's outcome by the first digit of its code (RFC 5321 §4.2.1): index it with code // 100.
_U = Outcome.UNEXPECTED
OUTCOME_BY_DIGIT: tuple[Outcome, ...] = (
    *(_U, _U, Outcome.POSITIVE, Outcome.INTERMEDIATE, Outcome.NEGATIVE, Outcome.NEGATIVE),
    *(_U, _U, _U, _U),
)

# (state, trigger) -> new state.  No entry for TLS_ESTABLISHED: a LocalProtocolError.
_EVERY_STATE = tuple(State)
TRIGGER_TRANSITIONS: Mapping[tuple[State, Trigger], State] = MappingProxyType(
    {
        # Any reply can be a 421 (checklist C15), except where none is parsed: data after the
        # 220 to STARTTLS is refused unread (S4).
        **{
            (state, Trigger.SERVICE_CLOSING): S.CLOSED
            for state in _EVERY_STATE
            if state not in (S.TLS_PAUSED, S.ERROR)
        },
        **{
            (state, Trigger.END_OF_INPUT): S.CLOSED
            for state in _EVERY_STATE
            if state is not S.ERROR
        },
        # Everything learnt before the handshake is forgotten (RFC 3207 §4.2): EHLO again.
        (S.TLS_PAUSED, Trigger.TLS_ESTABLISHED): S.CONNECTED,
        **{
            (state, Trigger.PROTOCOL_ERROR): S.ERROR
            for state in _EVERY_STATE
            if state is not S.ERROR
        },
    }
)

# Commands that may be followed by more commands before their reply arrives (RFC 2920 §3.1):
# everything else ends a pipelined group.  The end of message content may start a new group.
GROUP_CONTINUABLE = frozenset({K.RSET, K.MAIL, K.RCPT, K.BDAT, K.BDAT_LAST, K.END_OF_MESSAGE})

# The commands for which a 3xx reply is legal: 354 to DATA, 334 during AUTH.
INTERMEDIATE_ALLOWED = frozenset({K.DATA, K.AUTH, K.AUTH_RESPONSE})
# And for which a 2xx would make no sense: DATA's positive answer is 354.
POSITIVE_REFUSED = frozenset({K.DATA})

#: The phase of writing message content (after the 354, or BDAT chunks): a timeout, no reply.
DATA_BLOCK = "DATA-BLOCK"

# Seconds to wait for the reply to each kind of command (RFC 5321 §4.5.3.2, checklist C17;
# RSET and QUIT from Postfix's defaults).  DATA_BLOCK bounds each write of message content.
# The keys are plain strings, the public phase names: a CommandKind finds its entry all the same.
TIMEOUTS: Mapping[str, float] = MappingProxyType(
    {
        str(phase): seconds
        for phase, seconds in (
            (K.GREETING, 300.0),
            (K.EHLO, 300.0),
            (K.HELO, 300.0),
            (K.LHLO, 300.0),
            (K.STARTTLS, 300.0),
            (K.AUTH, 300.0),
            (K.AUTH_RESPONSE, 300.0),
            (K.MAIL, 300.0),
            (K.RCPT, 300.0),
            (K.DATA, 120.0),
            (DATA_BLOCK, 180.0),
            (K.END_OF_MESSAGE, 600.0),
            (K.BDAT, 180.0),
            (K.BDAT_LAST, 600.0),
            (K.RSET, 20.0),
            (K.NOOP, 300.0),
            (K.VRFY, 300.0),
            (K.QUIT, 300.0),
        )
    }
)

# The kind of each command class (Bdat has two: see kind_of).
_KINDS: Mapping[type, CommandKind] = {
    Ehlo: K.EHLO,
    Helo: K.HELO,
    Lhlo: K.LHLO,
    StartTLS: K.STARTTLS,
    Auth: K.AUTH,
    AuthResponse: K.AUTH_RESPONSE,
    MailFrom: K.MAIL,
    RcptTo: K.RCPT,
    Data: K.DATA,
    MessageData: K.MESSAGE_DATA,
    EndOfMessage: K.END_OF_MESSAGE,
    Rset: K.RSET,
    Noop: K.NOOP,
    Vrfy: K.VRFY,
    Quit: K.QUIT,
}


def kind_of(event: Command) -> CommandKind:
    """The kind the state tables use for a command (a ``str``: ``"MAIL"``, ``"BDAT-LAST"``...)."""
    if type(event) is Bdat:
        return K.BDAT_LAST if event.last else K.BDAT
    return _KINDS[type(event)]
