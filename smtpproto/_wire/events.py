"""Events: the commands a client sends and the replies it receives.

Every event is a frozen, slotted dataclass that validates itself on construction, so an invalid
address, domain or parameter raises ``ValueError`` before a single byte exists (checklist S1).
Rendering to bytes is the connection's job, because it depends on what the server advertised.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .addresses import check_text_argument, ehlo_domain, format_mailbox, rcpt_path
from .frozen import fast_init
from .replies import EnhancedStatus, parse_enhanced_status
from .xtext import check_esmtp_keyword, check_esmtp_value, xtext_encode

__all__ = [
    "Auth",
    "AuthResponse",
    "Bdat",
    "Command",
    "ConnectionClosed",
    "Data",
    "Ehlo",
    "EndOfMessage",
    "Helo",
    "Lhlo",
    "MailFrom",
    "MessageData",
    "Noop",
    "Quit",
    "RcptTo",
    "Reply",
    "Rset",
    "StartTLS",
    "Vrfy",
    "check_dsn_options",
]

BodyType = Literal["7BIT", "8BITMIME", "BINARYMIME"]
NotifyCondition = Literal["NEVER", "SUCCESS", "FAILURE", "DELAY"]

_BODY_TYPES = frozenset({"7BIT", "8BITMIME", "BINARYMIME"})
_RET_VALUES = frozenset({"FULL", "HDRS"})
_NOTIFY_CONDITIONS = frozenset({"SUCCESS", "FAILURE", "DELAY"})
# RFC 3461 §4.4 and §4.2: the longest ENVID and ORCPT values a server must accept.
_MAX_ENVID = 100
_MAX_ORCPT = 500
# RFC 5321 §4.2: a reply code's first digit is 2-5.
_MIN_CODE, _MAX_CODE = 200, 599


def _check_hostname(hostname: str | None) -> None:
    if hostname is not None:
        ehlo_domain(hostname)


def _check_extra(extra: tuple[tuple[str, str | None], ...]) -> None:
    for keyword, value in extra:
        check_esmtp_keyword(keyword)
        if value is not None:
            check_esmtp_value(value)


def check_dsn_options(
    ret: str | None,
    envid: str | None,
    notify: tuple[str, ...] | None,
    mt_priority: int | None,
) -> None:
    """Raise ``ValueError`` for a bad RET, ENVID, NOTIFY or MT-PRIORITY value (``None``: absent).

    Used by the events, and by ``send_message`` to refuse bad options before anything is sent.
    """
    if ret is not None and ret not in _RET_VALUES:
        raise ValueError(f"RET must be FULL or HDRS, got {ret!r}")
    if envid is not None:
        if not envid:
            raise ValueError("ENVID must not be empty")
        if len(xtext_encode(envid)) > _MAX_ENVID:
            raise ValueError(f"ENVID is longer than {_MAX_ENVID} characters once xtext-encoded")
    if notify is not None:
        conditions = set(notify)
        if not conditions or len(conditions) != len(notify):
            raise ValueError("NOTIFY needs one or more distinct conditions")
        if "NEVER" in conditions:
            if len(conditions) != 1:
                raise ValueError("NOTIFY=NEVER cannot be combined with other conditions")
        elif not conditions <= _NOTIFY_CONDITIONS:
            raise ValueError(f"NOTIFY conditions must be NEVER or {sorted(_NOTIFY_CONDITIONS)}")
    if mt_priority is not None and not -9 <= mt_priority <= 9:
        raise ValueError(f"MT-PRIORITY must be between -9 and 9, got {mt_priority}")


@fast_init
@dataclass(frozen=True, slots=True)
class Ehlo:
    """``EHLO`` with ``hostname`` or, when ``None``, the connection's ``local_hostname``."""

    hostname: str | None = None

    def __post_init__(self) -> None:
        _check_hostname(self.hostname)


@fast_init
@dataclass(frozen=True, slots=True)
class Helo:
    """``HELO``: the fallback for servers that do not understand ``EHLO`` (checklist G4)."""

    hostname: str | None = None

    def __post_init__(self) -> None:
        _check_hostname(self.hostname)


@fast_init
@dataclass(frozen=True, slots=True)
class Lhlo:
    """``LHLO``: the LMTP greeting (RFC 2033); only on an ``lmtp=True`` connection."""

    hostname: str | None = None

    def __post_init__(self) -> None:
        _check_hostname(self.hostname)


@fast_init
@dataclass(frozen=True, slots=True)
class StartTLS:
    """``STARTTLS`` (RFC 3207); after its 220 the connection pauses until TLS is up."""


@fast_init
@dataclass(frozen=True, slots=True)
class Auth:
    """``AUTH mechanism [initial-response]`` (RFC 4954).

    ``initial_response`` is the raw (not yet base64) response; ``b""`` is sent as ``=``.
    """

    mechanism: str
    initial_response: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        check_esmtp_keyword(self.mechanism)


@fast_init
@dataclass(frozen=True, slots=True)
class AuthResponse:
    """The answer to a ``334`` challenge: raw bytes (sent base64-encoded), or a cancel (``*``)."""

    data: bytes = field(default=b"", repr=False)
    cancel: bool = False


@fast_init
@dataclass(frozen=True, slots=True)
class MailFrom:
    """``MAIL FROM:<sender>`` with typed ESMTP parameters.

    ``sender=""`` is the null reverse-path ``<>``.  Each parameter may only be used when the
    server advertised its extension (checklist G7); the connection enforces that.
    """

    sender: str
    size: int | None = None
    body: BodyType | None = None
    smtputf8: bool = False
    ret: Literal["FULL", "HDRS"] | None = None
    envid: str | None = None
    auth: str | None = None
    requiretls: bool = False
    mt_priority: int | None = None
    extra: tuple[tuple[str, str | None], ...] = ()

    def __post_init__(self) -> None:
        if self.sender:
            format_mailbox(self.sender)
        if self.size is not None and self.size < 0:
            raise ValueError(f"SIZE must not be negative, got {self.size}")
        if self.body is not None and self.body not in _BODY_TYPES:
            raise ValueError(f"BODY must be one of {sorted(_BODY_TYPES)}, got {self.body!r}")
        if self.ret is not None or self.envid is not None or self.mt_priority is not None:
            check_dsn_options(self.ret, self.envid, None, self.mt_priority)
        if self.auth is not None and self.auth != "<>":
            format_mailbox(self.auth)
        if self.extra:
            _check_extra(self.extra)


@fast_init
@dataclass(frozen=True, slots=True)
class RcptTo:
    """``RCPT TO:<recipient>`` with the DSN parameters (RFC 3461).

    ``notify`` is ``("NEVER",)`` or any of ``SUCCESS``, ``FAILURE``, ``DELAY``; ``orcpt`` is the
    original recipient (sent as ``ORCPT=<orcpt_type>;<xtext>``).
    """

    recipient: str
    notify: tuple[NotifyCondition, ...] | None = None
    orcpt: str | None = None
    orcpt_type: str = "rfc822"
    extra: tuple[tuple[str, str | None], ...] = ()

    def __post_init__(self) -> None:
        rcpt_path(self.recipient)  # a ValueError for a bad address (S1)
        if self.notify is not None:
            check_dsn_options(None, None, self.notify, None)
        if self.orcpt is not None:
            check_esmtp_keyword(self.orcpt_type)
            if not self.orcpt:
                raise ValueError("ORCPT must not be empty")
            encoded = f"{self.orcpt_type};{xtext_encode(self.orcpt)}"
            if len(encoded) > _MAX_ORCPT:
                raise ValueError(f"ORCPT is longer than {_MAX_ORCPT} characters once encoded")
        if self.extra:
            _check_extra(self.extra)


@fast_init
@dataclass(frozen=True, slots=True)
class Data:
    """``DATA``: after its 354, send ``MessageData`` events and one ``EndOfMessage``."""


@fast_init
@dataclass(frozen=True, slots=True)
class MessageData:
    """A piece of message content; line endings are normalised and dots stuffed on the way out."""

    data: bytes = field(repr=False)


@fast_init
@dataclass(frozen=True, slots=True)
class EndOfMessage:
    """The end of the content: ``.`` on a line of its own (a CRLF is added first when needed)."""


@fast_init
@dataclass(frozen=True, slots=True)
class Bdat:
    """``BDAT <len> [LAST]`` followed by exactly the chunk's octets (RFC 3030)."""

    chunk: bytes = field(repr=False)
    last: bool = False


@fast_init
@dataclass(frozen=True, slots=True)
class Rset:
    """``RSET``: abort the mail transaction."""


@fast_init
@dataclass(frozen=True, slots=True)
class Noop:
    """``NOOP``."""


@fast_init
@dataclass(frozen=True, slots=True)
class Vrfy:
    """``VRFY <string>``."""

    string: str

    def __post_init__(self) -> None:
        check_text_argument(self.string, "VRFY argument")


@fast_init
@dataclass(frozen=True, slots=True)
class Quit:
    """``QUIT``: the last command of a session (checklist C14)."""


Command = (
    Ehlo
    | Helo
    | Lhlo
    | StartTLS
    | Auth
    | AuthResponse
    | MailFrom
    | RcptTo
    | Data
    | MessageData
    | EndOfMessage
    | Bdat
    | Rset
    | Noop
    | Vrfy
    | Quit
)


@dataclass(frozen=True, slots=True, init=False)
class Reply:
    """A complete server reply.

    ``lines`` holds the text of each line (without the code and separator); ``command`` is the
    command this reply answers (``None`` for the greeting and for an unsolicited 421).  A 4xx or 5xx
    reply is an ordinary event: deciding what it means is the caller's job.

    Like every event it checks itself: ``code`` is an ``int`` from 200 to 599 (RFC 5321 §4.2: the
    first digit is 2-5), ``lines`` a non-empty tuple of ``str``, ``enhanced_status`` of the code's
    class.  A reply the server sent with another first digit is not a ``Reply``: the connection
    raises ``UnexpectedReplyCode`` for it.
    """

    code: int
    lines: tuple[str, ...]
    enhanced_status: EnhancedStatus | None
    command: Command | None

    def __init__(
        self,
        code: int,
        lines: tuple[str, ...] = ("",),
        enhanced_status: EnhancedStatus | None = None,
        command: Command | None = None,
        _parsed: bool = False,
    ) -> None:
        # The connection passes _parsed=True, positionally, for what its parser has already
        # checked (h11's habit).  Worth 7 % of bench_clients C and 4 % of A (blocking adapter;
        # 8.4 % and 6.9 % of the client's own CPU in bench_session), 2026-12-02.
        object.__setattr__(self, "code", code)
        object.__setattr__(self, "lines", lines)
        object.__setattr__(self, "enhanced_status", enhanced_status)
        object.__setattr__(self, "command", command)
        if not _parsed:
            _check_reply(self)

    @classmethod
    def synthesized(cls, code: int, text: str) -> Reply:
        """A reply no server sent, made up to report a local verdict (a DNS failure, a lost
        connection counted as 451, a size check) in the same shape as a server's."""
        return cls(code, (text,), parse_enhanced_status(code, text)[0])

    @property
    def text(self) -> str:
        """All lines joined with newlines (the enhanced status code left in place)."""
        return "\n".join(self.lines)

    @property
    def is_positive(self) -> bool:
        """2xx: the command succeeded."""
        return self.code < 300

    @property
    def is_intermediate(self) -> bool:
        """3xx: the server wants more (354 for DATA, 334 for AUTH)."""
        return 300 <= self.code < 400

    @property
    def is_transient(self) -> bool:
        """4xx: a temporary failure; trying again later may work."""
        return 400 <= self.code < 500

    @property
    def is_permanent(self) -> bool:
        """5xx: a permanent failure."""
        return self.code >= 500


def _check_reply(reply: Reply) -> None:
    code, lines, status, command = reply.code, reply.lines, reply.enhanced_status, reply.command
    if type(code) is not int:  # not bool either
        raise TypeError(f"reply code must be an int, got {code!r}")
    if not _MIN_CODE <= code <= _MAX_CODE:
        raise ValueError(f"reply code must be 200-599 (RFC 5321 §4.2), got {code}")
    if not isinstance(lines, tuple) or not all(isinstance(line, str) for line in lines):
        raise TypeError(f"reply lines must be a tuple of str, got {lines!r}")
    if not lines:
        raise ValueError("a reply has at least one line")
    if status is not None:
        if not isinstance(status, EnhancedStatus):
            raise TypeError(f"enhanced_status must be an EnhancedStatus, got {status!r}")
        if status.klass != code // 100:
            raise ValueError(f"enhanced status {status} does not match reply code {code}")
    if command is not None and not isinstance(command, Command):
        raise TypeError(f"command must be a command event, got {command!r}")


@fast_init
@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The server closed the connection.  ``unanswered`` lists the commands that got no reply:
    treat each as a 451 (checklist C16)."""

    unanswered: tuple[Command, ...] = ()
