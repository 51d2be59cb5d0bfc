"""The message ``smtpproto send`` builds from its options, and a body that counts what was read.

Every header is checked before the message exists, against RFC 5322's grammar (``headers``):
a CR, LF or NUL in a value would let a caller add headers of their own choosing
(``'X: a\\r\\nBcc: victim'``), so it is a usage error (S1), and so is an address field the
grammar refuses.
"""

from __future__ import annotations

import email.policy
import email.utils
import io
import mimetypes
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

from .common import UsageError
from .headers import ADDRESS_FIELDS, Syntax, addresses, check_field_name, check_text

__all__ = ["CountingBody", "MessageSpec", "build_message", "envelope_address", "parse_header"]

DEFAULT_BODY = "This is a test message sent by smtpproto.\n"
DEFAULT_SUBJECT = "smtpproto test message"
# Bodies are made 7-bit (quoted-printable or base64): every server can take them, 8BITMIME or not.
POLICY = email.policy.SMTP.clone(cte_type="7bit")
# Headers the command line sets itself; adding another copy would make the message ambiguous.
_OWN_HEADERS = frozenset({"from", "to", "subject", "date", "message-id"})


@dataclass(frozen=True)
class MessageSpec:
    sender: str
    recipients: Sequence[str]
    subject: str = DEFAULT_SUBJECT
    headers: Sequence[tuple[str, str]] = ()
    body: str | None = None  # a path, "-" for standard input, or None for the default text
    attachments: Sequence[str] = field(default_factory=tuple)


def envelope_address(option: str, text: str) -> str:
    """The address in ``text`` (``a@example.org`` or ``Name <a@example.org>``) for the envelope:
    ``text`` must be one mailbox (RFC 5322 §3.4), as it goes into the From or To field."""
    return addresses(f"{option} {text!r}", text, Syntax.MAILBOX)[0]


def parse_header(text: str) -> tuple[str, str]:
    """``'Name: value'`` from ``--header``, validated."""
    name, colon, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if not colon or not name:
        raise UsageError(f"--header {text!r} is not 'Name: value'")
    check_field_name(name)
    if name.lower() in _OWN_HEADERS:
        raise UsageError(f"--header cannot set {name}: use the option for it")
    if name.lower() == "bcc":  # it would be sent to every recipient, and none would be added
        raise UsageError("--header cannot set Bcc: give every recipient with --to")
    syntax = ADDRESS_FIELDS.get(name.lower())
    if syntax is not None:
        addresses(f"the {name} header", value, syntax)
    return name, check_text(f"the {name} header", value)


def _read_body(source: str | None) -> str:
    if source is None:
        return DEFAULT_BODY
    try:
        data = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
        return data.decode("utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read the body {source!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(
            f"the body {source!r} is not UTF-8 text; send it with --attach instead"
        ) from None


def _attach(message: EmailMessage, path: str) -> None:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read the attachment {path!r}: {exc.strerror or exc}") from None
    kind, encoding = mimetypes.guess_type(path)
    if kind is None or encoding is not None:  # a compressed file is sent as what it is: bytes
        kind = "application/octet-stream"
    maintype, _, subtype = kind.partition("/")
    message.add_attachment(data, maintype=maintype, subtype=subtype, filename=Path(path).name)


def build_message(spec: MessageSpec, *, local_hostname: str) -> EmailMessage:
    """From, To, Subject, Date, Message-ID, the extra headers, the body and the attachments."""
    message = EmailMessage(policy=POLICY)
    # From and To: each one mailbox, checked by envelope_address before the message is built.
    message["From"] = check_text("--from", spec.sender)
    message["To"] = ", ".join(check_text("--to", r) for r in spec.recipients)
    message["Subject"] = check_text("--subject", spec.subject)
    message["Date"] = email.utils.formatdate(localtime=True)
    message["Message-ID"] = email.utils.make_msgid(domain=local_hostname)
    for name, value in spec.headers:
        try:
            message[name] = value
        except Exception as exc:  # the email package's parsers fail in various ways (IndexError…)
            raise UsageError(f"the {name} header cannot be parsed: {exc!r}") from None
    message.set_content(_read_body(spec.body))
    for path in spec.attachments:
        _attach(message, path)
    return message


class CountingBody(io.BytesIO):
    """The message bytes as a seekable file that reports its position after every read.

    The sender reads a chunk just before it writes it, so the position is what has been handed
    to the connection; a progress display costs one call per chunk (112 KiB).
    """

    def __init__(self, data: bytes, on_read: Callable[[int], None]) -> None:
        super().__init__(data)
        self._on_read = on_read

    def read(self, size: int | None = -1, /) -> bytes:
        chunk = super().read(size)
        self._on_read(self.tell())
        return chunk
