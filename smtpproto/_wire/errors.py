"""One hierarchy of exceptions for the machine, the operations and every adapter.

``SMTPError`` is the root.  Each error says whether trying again later may help (``temporary``),
which is what a delivery report needs.  ``LocalProtocolError`` means *we* tried something the
protocol (or the server's advertised capabilities) does not allow; ``RemoteProtocolError`` means
the server sent something we cannot accept.  Both leave the machine in its ``ERROR`` state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .events import Command, Reply
    from .results import SendResult

__all__ = [
    "AuthNotSupported",
    "AuthenticationError",
    "BodyReadError",
    "CleartextAuthRefused",
    "ConnectError",
    "ConnectionLostError",
    "DataRefused",
    "GreetingRefused",
    "LocalProtocolError",
    "MessageEncodingError",
    "MessageTooLarge",
    "ProtocolError",
    "RecipientsRefused",
    "RemoteProtocolError",
    "ReplyError",
    "SMTPError",
    "SMTPTimeoutError",
    "SenderRefused",
    "ServiceClosing",
    "TLSError",
    "TLSRequiredError",
    "UnexpectedReplyCode",
]

# How much of an offending line an exception keeps: enough to diagnose, never unbounded memory.
_MAX_KEPT_LINE = 200


class SMTPError(Exception):
    """Anything that went wrong talking SMTP.  ``temporary``: a later retry may succeed."""

    temporary = False


class ProtocolError(SMTPError):
    """The SMTP dialogue broke a rule.  ``line`` is the offending data, truncated."""

    def __init__(self, message: str, *, line: bytes | None = None) -> None:
        super().__init__(message)
        self.line = None if line is None else bytes(line[:_MAX_KEPT_LINE])


class LocalProtocolError(ProtocolError):
    """We (the client) attempted something illegal; nothing was written."""


class RemoteProtocolError(ProtocolError):
    """The server sent something that breaks the protocol."""

    temporary = True  # another server, or the same one later, may behave


class ReplyError(SMTPError):
    """The server answered a command with a failure.  ``reply`` holds its code and text."""

    def __init__(self, message: str, reply: Reply) -> None:
        super().__init__(f"{message}: {reply.code} {reply.text}")
        self.reply = reply
        self.temporary = reply.is_transient

    @property
    def code(self) -> int:
        return self.reply.code


class GreetingRefused(ReplyError):
    """The server refused the session in its greeting (554) or is unavailable (421)."""


class ServiceClosing(ReplyError):
    """The server said 421: it is closing the session; whatever was outstanding failed, for now."""


class AuthenticationError(ReplyError):
    """AUTH failed: bad credentials (535), mechanism too weak (534), encryption required (538)…"""


class SenderRefused(ReplyError):
    """MAIL FROM was refused; no recipient was tried (or all were refused with it)."""


class DataRefused(ReplyError):
    """DATA, a BDAT chunk or the end of data was refused: the message was not accepted.

    ``result`` is the transaction's :class:`~smtpproto.SendResult`, as a success would have
    given it: each recipient's RCPT reply and, for those accepted, the refusal.
    """

    def __init__(self, message: str, reply: Reply, result: SendResult) -> None:
        super().__init__(message, reply)
        self.result = result


class AuthNotSupported(SMTPError):
    """The server offers no AUTH, or no mechanism that fits the credentials given."""


class RecipientsRefused(SMTPError):
    """No recipient was accepted, so no message was sent.

    ``result`` is the transaction's :class:`~smtpproto.SendResult`, as a success would have
    given it: each recipient with the reply that refused its RCPT.
    """

    def __init__(self, result: SendResult) -> None:
        summary = "; ".join(
            f"{r.recipient}: {r.rcpt_reply.code} {r.rcpt_reply.text}" for r in result
        )
        super().__init__(f"every recipient was refused ({summary})")
        self.result = result
        self.temporary = any(r.temporary for r in result)


class MessageTooLarge(SMTPError):
    """The message is larger than the server's advertised SIZE; nothing was sent (RFC 1870 §7)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"the message is {size} octets; the server accepts at most {limit}")
        self.size = size
        self.limit = limit


class MessageEncodingError(SMTPError):
    """The message needs an extension (8BITMIME, BINARYMIME, SMTPUTF8) the server lacks."""


class BodyReadError(SMTPError):
    """The message body could not be read (a missing file, a failing stream).  Raised before
    MAIL when the body cannot be opened; mid-data, the connection is dropped so that no part of
    the message can be delivered."""


class CleartextAuthRefused(SMTPError):
    """Credentials would have crossed the network unencrypted; nothing was sent (S8)."""


class TLSRequiredError(SMTPError):
    """TLS was required and could not be had: not offered, refused (454) or failed."""

    temporary = True


class TLSError(SMTPError):
    """The TLS handshake failed (certificate, host name, protocol)."""

    temporary = True


class ConnectError(SMTPError):
    """No connection could be made (the name did not resolve, refused, unreachable, timed out).

    ``resolving``: the host name could not be resolved to an address.
    """

    temporary = True

    def __init__(
        self, host: str, port: int, reason: str, *, timed_out: bool = False, resolving: bool = False
    ) -> None:
        where = f"resolve {host}" if resolving else f"connect to {host} port {port}"
        super().__init__(f"cannot {where}: {reason}")
        self.host = host
        self.port = port
        self.reason = reason
        self.timed_out = timed_out
        self.resolving = resolving


class SMTPTimeoutError(SMTPError):
    """The server did not answer in time.  ``phase`` names what we were waiting for."""

    temporary = True

    def __init__(self, phase: str, timeout: float | None) -> None:
        super().__init__(f"timed out after {timeout} s waiting for the reply to {phase}")
        self.phase = phase
        self.timeout = timeout


class ConnectionLostError(SMTPError):
    """The connection broke; treat it as a 451 for whatever was outstanding (C16)."""

    temporary = True

    def __init__(self, phase: str, detail: str = "") -> None:
        super().__init__(f"connection lost during {phase}" + (f": {detail}" if detail else ""))
        self.phase = phase


# How much of a reply's text an UnexpectedReplyCode message quotes.
_MAX_QUOTED_TEXT = 200


class UnexpectedReplyCode(RemoteProtocolError):
    """A well-framed reply whose code does not start with 2-5 (RFC 5321 §4.2), such as 651.

    The reply answered its command, so the dialogue is still in step and the connection is *not*
    in ``ERROR``: it moved as the tables say for a refusal of that command, and keeps reading the
    replies still due.  RFC 5321 §4.2 asks the client to treat the code as fatal and end the mail
    transaction: read those replies, then RSET (or just QUIT).  ``code`` and ``lines`` are the
    reply as received (it cannot be a :class:`Reply`, whose code is 200-599); ``command`` is the
    command it answered, ``None`` for the greeting.
    """

    def __init__(self, code: int, lines: tuple[str, ...], command: Command | None) -> None:
        text = lines[0][:_MAX_QUOTED_TEXT]
        super().__init__(f"reply code {code:03d} is outside 2xx-5xx (RFC 5321 §4.2): {text!r}")
        self.code = code
        self.lines = lines
        self.command = command
