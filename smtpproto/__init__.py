"""smtpproto: a sans-I/O SMTP client.

The protocol machine (:class:`ClientConnection`) turns server bytes into events and commands into
bytes; it never touches a socket, clock or resolver.  The core is in layers that import only
downwards: ``_wire`` (bytes and values), ``_machine`` (the state tables and the connection),
``_operations`` (the policy, as operations; the public :mod:`smtpproto.driver` runs them) and
``_delivery`` (MX walking and reports).  Adapters in :mod:`smtpproto.adapters` drive it over
blocking sockets, asyncio or trio; :mod:`smtpproto.cli` is the command line on top.
"""

from ._delivery.policy import DeliveryOptions, Relay, TLSPolicy, delivery
from ._delivery.report import AttemptRecord, DeliveryReport, RecipientOutcome
from ._machine.connection import NEED_DATA, PAUSED, ClientConnection, Sentinel
from ._machine.state import State
from ._operations.batch import Batch, MessageOutcome
from ._operations.message import Body, OutgoingMessage, prepare_message
from ._operations.options import (
    SendOptions,
    SessionOptions,
    Timeouts,
    TLSMode,
    TransactionWindow,
)
from ._operations.session import Session
from ._wire.dkim_hash import SigningError
from ._wire.encoder import BodyInspector, CRLFNormalizer, DataEncoder
from ._wire.errors import (
    AuthenticationError,
    AuthNotSupported,
    BodyReadError,
    CleartextAuthRefused,
    ConnectError,
    ConnectionLostError,
    DataRefused,
    GreetingRefused,
    LocalProtocolError,
    MessageEncodingError,
    MessageTooLarge,
    ProtocolError,
    RecipientsRefused,
    RemoteProtocolError,
    ReplyError,
    SenderRefused,
    ServiceClosing,
    SMTPError,
    SMTPTimeoutError,
    TLSError,
    TLSRequiredError,
    UnexpectedReplyCode,
)
from ._wire.events import (
    Auth,
    AuthResponse,
    Bdat,
    BodyType,
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
    NotifyCondition,
    Quit,
    RcptTo,
    Reply,
    Rset,
    StartTLS,
    Vrfy,
)
from ._wire.extensions import Extensions, parse_ehlo
from ._wire.limits import Limits
from ._wire.replies import EnhancedStatus
from ._wire.results import RecipientResult, SendResult
from ._wire.xtext import xtext_decode, xtext_encode

__all__ = [
    "NEED_DATA",
    "PAUSED",
    "AttemptRecord",
    "Auth",
    "AuthNotSupported",
    "AuthResponse",
    "AuthenticationError",
    "Batch",
    "Bdat",
    "Body",
    "BodyInspector",
    "BodyReadError",
    "BodyType",
    "CRLFNormalizer",
    "CleartextAuthRefused",
    "ClientConnection",
    "Command",
    "ConnectError",
    "ConnectionClosed",
    "ConnectionLostError",
    "Data",
    "DataEncoder",
    "DataRefused",
    "DeliveryOptions",
    "DeliveryReport",
    "Ehlo",
    "EndOfMessage",
    "EnhancedStatus",
    "Extensions",
    "GreetingRefused",
    "Helo",
    "Lhlo",
    "Limits",
    "LocalProtocolError",
    "MailFrom",
    "MessageData",
    "MessageEncodingError",
    "MessageOutcome",
    "MessageTooLarge",
    "Noop",
    "NotifyCondition",
    "OutgoingMessage",
    "ProtocolError",
    "Quit",
    "RcptTo",
    "RecipientOutcome",
    "RecipientResult",
    "RecipientsRefused",
    "Relay",
    "RemoteProtocolError",
    "Reply",
    "ReplyError",
    "Rset",
    "SMTPError",
    "SMTPTimeoutError",
    "SendOptions",
    "SendResult",
    "SenderRefused",
    "Sentinel",
    "ServiceClosing",
    "Session",
    "SessionOptions",
    "SigningError",
    "StartTLS",
    "State",
    "TLSError",
    "TLSMode",
    "TLSPolicy",
    "TLSRequiredError",
    "Timeouts",
    "TransactionWindow",
    "UnexpectedReplyCode",
    "Vrfy",
    "delivery",
    "parse_ehlo",
    "prepare_message",
    "xtext_decode",
    "xtext_encode",
]

__version__ = "0.1.0"
