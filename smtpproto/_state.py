"""The client's states and the tables that move between them.

These tables are the only source of truth for what may be sent when, and for how a reply moves
the state; the connection looks things up here and the docs' state diagram is drawn from them.

Sending moves the state *optimistically* (before the reply arrives), which is what lets MAIL, RCPT
and DATA share one round trip under PIPELINING.  A reply moves the state only when the table has an
entry for (current state, answered command, outcome): a failed MAIL returns to READY only if
nothing was pipelined behind it, because later replies will settle the state otherwise.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType

from ._events import (
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
    "GROUP_CONTINUABLE",
    "INTERMEDIATE_ALLOWED",
    "POSITIVE_REFUSED",
    "REPLY_TRANSITIONS",
    "SEND_TRANSITIONS",
    "TIMEOUTS",
    "Outcome",
    "State",
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

    # Members are singletons: identity hashing (in C) instead of Enum's hash of the name (in
    # Python), which the table lookups pay for every command and every reply.
    __hash__ = object.__hash__


class Outcome(enum.Enum):
    """A reply's meaning for the state tables: its first digit."""

    POSITIVE = "2xx"
    INTERMEDIATE = "3xx"
    NEGATIVE = "4xx/5xx"

    __hash__ = object.__hash__


S = State

# (state, command kind) -> state after sending.  A missing pair is a LocalProtocolError.
_SEND: dict[tuple[State, str], State] = {}


def _allow(kind: str, moves: dict[State, State]) -> None:
    for before, after in moves.items():
        _SEND[before, kind] = after


_SESSION_STATES = (S.CONNECTED, S.READY, S.MAIL, S.RCPT, S.BDAT, S.BDAT_FAILED)
for _hello in ("EHLO", "HELO", "LHLO"):
    _allow(_hello, {S.CONNECTED: S.HELLO, S.READY: S.HELLO})
_allow("STARTTLS", {S.READY: S.STARTTLS})
_allow("AUTH", {S.READY: S.AUTH})
_allow("AUTH-RESPONSE", {S.AUTH_CHALLENGE: S.AUTH})
_allow("MAIL", {S.READY: S.MAIL})
_allow("RCPT", {S.MAIL: S.RCPT, S.RCPT: S.RCPT})
_allow("DATA", {S.RCPT: S.DATA})
_allow("MESSAGE-DATA", {S.MESSAGE: S.MESSAGE})
_allow("END-OF-MESSAGE", {S.MESSAGE: S.READY})
_allow("BDAT", {S.RCPT: S.BDAT, S.BDAT: S.BDAT})
_allow("BDAT-LAST", {S.RCPT: S.READY, S.BDAT: S.READY})
_allow(
    "RSET", {state: (S.CONNECTED if state is S.CONNECTED else S.READY) for state in _SESSION_STATES}
)
_allow("NOOP", {state: state for state in _SESSION_STATES})
_allow("VRFY", {state: state for state in (S.CONNECTED, S.READY, S.MAIL, S.RCPT)})
_allow("QUIT", dict.fromkeys((S.REFUSED, *_SESSION_STATES), S.QUIT))

SEND_TRANSITIONS: Mapping[tuple[State, str], State] = MappingProxyType(_SEND)

# (state, answered command kind, outcome) -> new state.  No entry: the state stays.
# "GREETING" stands for the server's opening reply, which answers no command.
REPLY_TRANSITIONS: Mapping[tuple[State, str, Outcome], State] = MappingProxyType(
    {
        (S.GREETING, "GREETING", Outcome.POSITIVE): S.CONNECTED,
        (S.GREETING, "GREETING", Outcome.NEGATIVE): S.REFUSED,
        **{
            (S.HELLO, hello, outcome): after
            for hello in ("EHLO", "HELO", "LHLO")
            for outcome, after in ((Outcome.POSITIVE, S.READY), (Outcome.NEGATIVE, S.CONNECTED))
        },
        (S.STARTTLS, "STARTTLS", Outcome.POSITIVE): S.TLS_PAUSED,
        (S.STARTTLS, "STARTTLS", Outcome.NEGATIVE): S.READY,
        **{
            (S.AUTH, auth, outcome): after
            for auth in ("AUTH", "AUTH-RESPONSE")
            for outcome, after in (
                (Outcome.POSITIVE, S.READY),
                (Outcome.INTERMEDIATE, S.AUTH_CHALLENGE),
                (Outcome.NEGATIVE, S.READY),
            )
        },
        (S.MAIL, "MAIL", Outcome.NEGATIVE): S.READY,
        (S.DATA, "DATA", Outcome.INTERMEDIATE): S.MESSAGE,
        # DATA refused: the transaction (if MAIL succeeded) is still open; RSET or more RCPT.
        (S.DATA, "DATA", Outcome.NEGATIVE): S.RCPT,
        (S.BDAT, "BDAT", Outcome.NEGATIVE): S.BDAT_FAILED,
        (S.READY, "BDAT", Outcome.NEGATIVE): S.BDAT_FAILED,
        (S.READY, "BDAT-LAST", Outcome.NEGATIVE): S.BDAT_FAILED,
        (S.QUIT, "QUIT", Outcome.POSITIVE): S.CLOSED,
    }
)

# Commands that may be followed by more commands before their reply arrives (RFC 2920 §3.1):
# everything else ends a pipelined group.  The end of message content may start a new group.
GROUP_CONTINUABLE = frozenset({"RSET", "MAIL", "RCPT", "BDAT", "BDAT-LAST", "END-OF-MESSAGE"})

# The commands for which a 3xx reply is legal: 354 to DATA, 334 during AUTH.
INTERMEDIATE_ALLOWED = frozenset({"DATA", "AUTH", "AUTH-RESPONSE"})
# And for which a 2xx would make no sense: DATA's positive answer is 354.
POSITIVE_REFUSED = frozenset({"DATA"})

# Seconds to wait for the reply to each kind of command (RFC 5321 §4.5.3.2, checklist C17;
# RSET and QUIT from Postfix's defaults).  "DATA-BLOCK" bounds each write of message content.
TIMEOUTS: Mapping[str, float] = MappingProxyType(
    {
        "GREETING": 300.0,
        "EHLO": 300.0,
        "HELO": 300.0,
        "LHLO": 300.0,
        "STARTTLS": 300.0,
        "AUTH": 300.0,
        "AUTH-RESPONSE": 300.0,
        "MAIL": 300.0,
        "RCPT": 300.0,
        "DATA": 120.0,
        "DATA-BLOCK": 180.0,
        "END-OF-MESSAGE": 600.0,
        "BDAT": 180.0,
        "BDAT-LAST": 600.0,
        "RSET": 20.0,
        "NOOP": 300.0,
        "VRFY": 300.0,
        "QUIT": 300.0,
    }
)

# The names the tables use for the commands.
_KINDS: Mapping[type, str] = {
    Ehlo: "EHLO",
    Helo: "HELO",
    Lhlo: "LHLO",
    StartTLS: "STARTTLS",
    Auth: "AUTH",
    AuthResponse: "AUTH-RESPONSE",
    MailFrom: "MAIL",
    RcptTo: "RCPT",
    Data: "DATA",
    MessageData: "MESSAGE-DATA",
    EndOfMessage: "END-OF-MESSAGE",
    Rset: "RSET",
    Noop: "NOOP",
    Vrfy: "VRFY",
    Quit: "QUIT",
}


def kind_of(event: Command) -> str:
    """The name the state tables use for a command."""
    if type(event) is Bdat:
        return "BDAT-LAST" if event.last else "BDAT"
    return _KINDS[type(event)]
