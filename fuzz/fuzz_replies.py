"""Fuzz target ``replies``: arbitrary server bytes after a valid greeting and EHLO.

Input layout (all read from the front with ``FuzzedDataProvider.ConsumeBytes``)::

    flags (1 byte) | script length n (1 byte) | n menu indices | server bytes ...

``flags`` picks the extensions the EHLO reply advertises (PIPELINING always) and LMTP mode.
The connection has the smallest limits allowed, so short inputs reach the size checks.  The
script is a list of commands from ``MENU``; the driver sends them in order whenever the machine
may send one (pipelining what it can), skipping those its state does not allow, and reacts to
replies the same way in both feedings.  The server bytes go to one connection whole and to a
second one byte at a time, then the stream ends.

Checks: only events, ``RemoteProtocolError`` or ``LocalProtocolError`` come out (anything else is
a crash); both feedings give the same events, the same bytes sent and the same error; every reply
has a code 200-599 and an enhanced status of its own class; a parsed EHLO has upper-case keywords.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import atheris

with atheris.instrument_imports(include=["smtpproto"]):
    from smtpproto import (
        NEED_DATA,
        PAUSED,
        Auth,
        AuthResponse,
        Bdat,
        ClientConnection,
        Command,
        ConnectionClosed,
        Data,
        Ehlo,
        EndOfMessage,
        Helo,
        Lhlo,
        Limits,
        LocalProtocolError,
        MailFrom,
        MessageData,
        Noop,
        Quit,
        RcptTo,
        RemoteProtocolError,
        Reply,
        Rset,
        StartTLS,
        Vrfy,
    )
    from smtpproto._machine.state import GROUP_CONTINUABLE, SEND_TRANSITIONS, kind_of

GREETING = b"220 mx.example.net ESMTP\r\n"
# Optional EHLO keywords, one per bit of the flags byte (bit 7 selects LMTP).
OPTIONAL_KEYWORDS = (
    b"CHUNKING",
    b"BINARYMIME",
    b"8BITMIME",
    b"SMTPUTF8",
    b"DSN",
    b"STARTTLS",
    b"AUTH PLAIN LOGIN",
)
LMTP_FLAG = 0x80
# The smallest limits allowed, so that short inputs reach the size checks (checklist S6/S7).
LIMITS = Limits(max_line_length=512, max_reply_lines=16, max_reply_bytes=1024)
HELLO = "HELLO"  # stands for EHLO or LHLO, whichever the mode needs

MENU: tuple[Command | str, ...] = (
    MailFrom("alice@example.org"),
    MailFrom("alice@example.org", body="8BITMIME", smtputf8=True),
    MailFrom("", body="BINARYMIME"),
    RcptTo("bob@example.net"),
    RcptTo("carol@example.net", notify=("SUCCESS", "FAILURE"), orcpt="carol@example.net"),
    Data(),
    MessageData(b"Subject: hi\r\n\r\n.leading dot\r\nbody\r\n"),
    EndOfMessage(),
    Bdat(b"Subject: hi\r\n\r\nchunk\r\n"),
    Bdat(b"last chunk\r\n", last=True),
    Rset(),
    Noop(),
    Vrfy("postmaster"),
    Quit(),
    HELLO,
    Helo("client.example.org"),
    StartTLS(),
    Auth("PLAIN", b"\0user\0secret"),
    Auth("LOGIN"),
    AuthResponse(b"user"),
    AuthResponse(cancel=True),
)


def ehlo_reply(flags: int) -> bytes:
    keywords = [b"PIPELINING", b"SIZE 1000000"]
    keywords += [kw for bit, kw in enumerate(OPTIONAL_KEYWORDS) if flags & (1 << bit)]
    lines = [b"mx.example.net", *keywords]
    return b"".join(b"250-" + line + b"\r\n" for line in lines[:-1]) + b"250 " + lines[-1] + b"\r\n"


def check_reply(reply: Reply) -> None:
    assert 200 <= reply.code <= 599, reply
    assert reply.lines, reply
    status = reply.enhanced_status
    assert status is None or status.klass == reply.code // 100, reply


@dataclass
class Run:
    """One connection driven through the script; records everything that came out."""

    conn: ClientConnection
    script: list[Command | str]
    lmtp: bool
    events: list[Reply | ConnectionClosed] = field(default_factory=list)
    sent: list[bytes] = field(default_factory=list)
    error: tuple[type[Exception], str] | None = None
    closed: bool = False

    def command(self, item: Command | str) -> Command:
        if item == HELLO:
            return Lhlo("client.example.org") if self.lmtp else Ehlo("client.example.org")
        assert not isinstance(item, str)
        return item

    def may_send(self) -> bool:
        pending = self.conn.pending
        if not pending:
            return True
        return self.conn.extensions.pipelining and all(
            kind_of(p) in GROUP_CONTINUABLE for p in pending
        )

    def pump(self) -> None:
        """Send the next script commands the machine allows now."""
        while self.script and self.may_send():
            command = self.command(self.script.pop(0))
            if (self.conn.state, kind_of(command)) in SEND_TRANSITIONS:
                self.sent.append(self.conn.send(command))

    def drain(self) -> None:
        """Read events until the machine needs data, pauses or reports the close."""
        while not self.closed:
            event = self.conn.next_event()
            if event is NEED_DATA or event is PAUSED:
                return
            assert isinstance(event, (Reply, ConnectionClosed)), event
            self.events.append(event)
            if isinstance(event, ConnectionClosed):
                self.closed = True
                return
            check_reply(event)
            timeout = self.conn.recommended_timeout  # a KeyError here would be a crash
            assert timeout is None or timeout > 0, timeout
            if isinstance(event.command, (Ehlo, Lhlo)) and event.is_positive:
                for keyword, _ in self.conn.extensions.keywords:
                    assert keyword.isascii() and keyword == keyword.upper(), keyword
            self.pump()

    def feed(self, server: bytes, *, bytewise: bool) -> None:
        try:
            self.pump()
            if bytewise:
                pieces = [server[i : i + 1] for i in range(len(server))]
            else:
                pieces = [server] if server else []
            for piece in [*pieces, b""]:  # b"": the server closes the connection
                self.conn.receive_data(piece)
                self.drain()
                if self.closed:
                    return
        except (RemoteProtocolError, LocalProtocolError) as exc:
            self.error = (type(exc), str(exc))


def opened(flags: int) -> ClientConnection:
    """A connection that has had its greeting and a positive EHLO (or LHLO)."""
    lmtp = bool(flags & LMTP_FLAG)
    conn = ClientConnection("client.example.org", lmtp=lmtp, limits=LIMITS)
    conn.receive_data(GREETING)
    assert isinstance(conn.next_event(), Reply)
    conn.send(Lhlo() if lmtp else Ehlo())
    conn.receive_data(ehlo_reply(flags))
    assert isinstance(conn.next_event(), Reply)
    assert conn.next_event() is NEED_DATA
    return conn


def TestOneInput(data: bytes) -> None:  # the name atheris looks for
    fdp = atheris.FuzzedDataProvider(data)
    header = fdp.ConsumeBytes(2).ljust(2, b"\0")
    flags, length = header[0], header[1] % 16
    script = [MENU[index % len(MENU)] for index in fdp.ConsumeBytes(length)]
    server = fdp.ConsumeBytes(fdp.remaining_bytes())
    lmtp = bool(flags & LMTP_FLAG)

    whole = Run(opened(flags), list(script), lmtp)
    whole.feed(server, bytewise=False)
    bytewise = Run(opened(flags), list(script), lmtp)
    bytewise.feed(server, bytewise=True)

    assert whole.events == bytewise.events, (whole.events, bytewise.events)
    assert whole.sent == bytewise.sent, (whole.sent, bytewise.sent)
    assert whole.error == bytewise.error, (whole.error, bytewise.error)


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
