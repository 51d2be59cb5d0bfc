"""smtpproto: a sans-I/O SMTP client.

The protocol machine (:class:`ClientConnection`) turns server bytes into events and commands into
bytes; it never touches a socket, clock or resolver.  Adapters in :mod:`smtpproto.adapters` drive
it over blocking sockets, asyncio or trio.
"""

from ._connection import NEED_DATA, PAUSED, ClientConnection, Limits
from ._encoder import BodyInspector, CRLFNormalizer, DataEncoder
from ._errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from ._events import (
    Auth,
    AuthResponse,
    Bdat,
    Command,
    ConnectionClosed,
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
    Reply,
    Rset,
    StartTLS,
    Vrfy,
)
from ._extensions import Extensions, parse_ehlo
from ._replies import EnhancedStatus
from ._state import State
from ._xtext import xtext_decode, xtext_encode

__all__ = [
    "NEED_DATA",
    "PAUSED",
    "Auth",
    "AuthResponse",
    "Bdat",
    "BodyInspector",
    "CRLFNormalizer",
    "ClientConnection",
    "Command",
    "ConnectionClosed",
    "Data",
    "DataEncoder",
    "Ehlo",
    "EndOfMessage",
    "EnhancedStatus",
    "Extensions",
    "Helo",
    "Lhlo",
    "Limits",
    "LocalProtocolError",
    "MailFrom",
    "MessageData",
    "Noop",
    "ProtocolError",
    "Quit",
    "RcptTo",
    "RemoteProtocolError",
    "Reply",
    "Rset",
    "StartTLS",
    "State",
    "Vrfy",
    "parse_ehlo",
    "xtext_decode",
    "xtext_encode",
]

__version__ = "0.1.0"
