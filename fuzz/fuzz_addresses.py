"""Fuzz target ``addresses``: command events built from arbitrary text (checklist S1, C8, G5).

Input layout::

    command (1 byte) | flags (1 byte) | number (1 byte) | field 0 0xFF field 1 0xFF ...

The fields are decoded as UTF-8 with ``surrogateescape``, so they may hold any text: CR, LF, NUL,
other controls, non-ASCII and lone surrogates.  ``command`` picks MAIL, RCPT, EHLO, HELO, VRFY,
AUTH or the connection's own ``local_hostname``; ``flags`` and ``number`` fill the other
parameters (SIZE, BODY, NOTIFY, MT-PRIORITY, ...), out-of-range values included.  The command is
sent on a connection in the right state, after an EHLO that advertises every extension (or every
one but SMTPUTF8 and DSN, per a flag).

Checks: building the event raises nothing but ``ValueError`` and sending it nothing but
``LocalProtocolError``; a line that comes out ends with its only CRLF and holds no CR, LF or NUL
before it; it is UTF-8, and ASCII unless SMTPUTF8 is in use (EHLO and HELO always ASCII).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from typing import Any

import atheris

if __name__ == "__main__":
    # Let libFuzzer see regex and str comparisons (hooks patch ``re`` globally: only when run).
    atheris.enabled_hooks.add("RegEx")
    atheris.enabled_hooks.add("str")

with atheris.instrument_imports(include=["smtpproto"]):
    from smtpproto import (
        NEED_DATA,
        Auth,
        ClientConnection,
        Command,
        Ehlo,
        Helo,
        LocalProtocolError,
        MailFrom,
        RcptTo,
        Reply,
        Vrfy,
    )

SEPARATOR = b"\xff"  # never part of UTF-8, so fields can hold any text
EHLO_ALL = (
    b"250-mx.example.net\r\n250-PIPELINING\r\n250-SIZE 10000\r\n250-8BITMIME\r\n"
    b"250-CHUNKING\r\n250-BINARYMIME\r\n250-STARTTLS\r\n250-AUTH PLAIN LOGIN XOAUTH2\r\n"
    b"250-REQUIRETLS\r\n250-MT-PRIORITY\r\n"
)
EHLO_UTF8 = b"250-SMTPUTF8\r\n250-DSN\r\n"
NOTIFY = ("NEVER", "SUCCESS", "FAILURE", "DELAY")
BODIES = (None, "7BIT", "8BITMIME", "BINARYMIME")


class Fields:
    """The input's text fields; a missing one is ``None``."""

    def __init__(self, raw: bytes) -> None:
        self._texts = [part.decode("utf-8", "surrogateescape") for part in raw.split(SEPARATOR)]

    def text(self, index: int) -> str:
        return self.optional(index) or ""

    def optional(self, index: int) -> str | None:
        return self._texts[index] if index < len(self._texts) else None

    def extra(self, index: int) -> tuple[tuple[str, str | None], ...]:
        keyword = self.optional(index)
        if keyword is None:
            return ()
        return ((keyword, self.optional(index + 1)),)


def mail(fields: Fields, flags: int, number: int) -> MailFrom:
    body: Any = BODIES[flags & 3] if number < 250 else fields.text(5)  # an invalid BODY too
    return MailFrom(
        fields.text(0),
        size=number - 1 if flags & 4 else None,
        body=body,
        smtputf8=bool(flags & 8),
        ret=("FULL" if flags & 16 else "HDRS") if flags & 32 else None,
        envid=fields.optional(1),
        auth=fields.optional(2),
        requiretls=bool(flags & 64),
        mt_priority=(number % 32) - 16 if flags & 128 else None,
        extra=fields.extra(3),
    )


def rcpt(fields: Fields, flags: int, number: int) -> RcptTo:
    notify: Any = tuple(name for bit, name in enumerate(NOTIFY) if flags & (1 << bit))
    if number & 1:
        notify += notify[:1]  # a repeated condition must be refused
    return RcptTo(
        fields.text(0),
        notify=notify if flags & 16 else None,
        orcpt=fields.optional(1),
        orcpt_type=fields.optional(2) or "rfc822",
        extra=fields.extra(3),
    )


# command byte -> how to build the event from the fields, flags and number
BUILDERS: tuple[Callable[[Fields, int, int], Command], ...] = (
    mail,
    rcpt,
    lambda fields, flags, number: Ehlo(fields.text(0)),
    lambda fields, flags, number: Helo(fields.text(0)),
    lambda fields, flags, number: Vrfy(fields.text(0)),
    lambda fields, flags, number: Auth(fields.text(0), fields.text(1).encode("utf-8", "replace")),
)
LOCAL_HOSTNAME = len(BUILDERS)  # command byte for ClientConnection(local_hostname=...)


def opened(local_hostname: str, *, utf8: bool) -> ClientConnection:
    conn = ClientConnection(local_hostname)
    conn.receive_data(b"220 mx.example.net ESMTP\r\n")
    assert isinstance(conn.next_event(), Reply)
    line = conn.send(Ehlo())
    check_line(line, ascii_only=True)
    conn.receive_data(EHLO_ALL + (EHLO_UTF8 if utf8 else b"") + b"250 HELP\r\n")
    assert isinstance(conn.next_event(), Reply)
    assert conn.next_event() is NEED_DATA
    return conn


def check_line(line: bytes, *, ascii_only: bool) -> None:
    assert line.endswith(b"\r\n"), line
    content = line[:-2]
    for forbidden in (b"\r", b"\n", b"\0"):
        assert forbidden not in content, line
    text = content.decode("utf-8")  # strict: a line must be valid UTF-8
    assert text.isascii() or not ascii_only, line


def TestOneInput(data: bytes) -> None:  # the name atheris looks for
    fdp = atheris.FuzzedDataProvider(data)
    selector, flags, number = fdp.ConsumeBytes(3).ljust(3, b"\0")
    fields = Fields(fdp.ConsumeBytes(fdp.remaining_bytes()))
    utf8 = not number & 0x80  # does the server advertise SMTPUTF8 (and DSN)?
    command = selector % (len(BUILDERS) + 1)

    if command == LOCAL_HOSTNAME:
        with contextlib.suppress(ValueError):
            opened(fields.text(0), utf8=utf8)  # sends EHLO with the local host name
        return
    try:
        event = BUILDERS[command](fields, flags, number)
    except ValueError:
        return

    conn = opened("client.example.org", utf8=utf8)
    ascii_only = not utf8
    if isinstance(event, RcptTo):
        smtputf8 = utf8 and bool(flags & 128)
        conn.send(MailFrom("alice@example.org", smtputf8=smtputf8))
        conn.receive_data(b"250 2.1.0 OK\r\n")
        assert isinstance(conn.next_event(), Reply)
        ascii_only = not smtputf8
    elif isinstance(event, MailFrom):
        ascii_only = not event.smtputf8
    elif isinstance(event, (Ehlo, Helo, Auth)):
        ascii_only = True
    try:
        line = conn.send(event)
    except LocalProtocolError:
        return
    check_line(line, ascii_only=ascii_only)


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
