"""The suite's scripts: the kit's script player (:mod:`smtpproto.testing.script`) and the
pieces most scripts start with (a greeting, EHLO and its reply, an opened session).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from smtpproto import Session, SessionOptions, TLSMode

if TYPE_CHECKING:  # mypy knows testing/ as "testing" (package-dir mapping)
    from testing.script import ANY, EOF, Expect, Fail, Reply, Step, run, run_both
else:
    from smtpproto.testing.script import ANY, EOF, Expect, Fail, Reply, Step, run, run_both

__all__ = [
    "ANY",
    "EHLO",
    "EOF",
    "GREETING",
    "LHLO",
    "Expect",
    "Fail",
    "Reply",
    "Step",
    "ehlo_reply",
    "greeted",
    "open_session",
    "run",
    "run_both",
]

# -- common pieces of scripts ------------------------------------------------------------------

GREETING = b"220 mx.example.net ESMTP\r\n"
EHLO = b"EHLO client.example.org\r\n"
LHLO = b"LHLO client.example.org\r\n"
LOCAL_HOSTNAME = "client.example.org"


def ehlo_reply(*keywords: str, code: int = 250) -> bytes:
    """A multi-line EHLO reply naming ``mx.example.net`` and advertising ``keywords``."""
    lines = ["mx.example.net greets client.example.org", *keywords]
    return b"".join(
        b"%d%s%s\r\n" % (code, b" " if i == len(lines) - 1 else b"-", line.encode())
        for i, line in enumerate(lines)
    )


def greeted(
    *keywords: str, implicit_tls: bool = False, port: int = 25, hello: bytes = EHLO
) -> list[Step]:
    """Connect, greeting, EHLO and its reply: how most scripts start (``TLSMode.NONE``)."""
    return [
        Expect.connect("mx.example.net", port, implicit_tls=implicit_tls),
        Reply(GREETING),
        Expect.send(hello),
        Reply(ehlo_reply(*keywords)),
    ]


def open_session(*keywords: str, tls: bool = False, **kwargs: Any) -> Session:
    """A session opened on a server advertising ``keywords`` (over implicit TLS when ``tls``)."""
    session = Session(SessionOptions(local_hostname=LOCAL_HOSTNAME, **kwargs))
    mode = TLSMode.IMPLICIT if tls else TLSMode.NONE
    port = 465 if tls else 25
    hello = LHLO if kwargs.get("lmtp") else EHLO
    run(
        session.open("mx.example.net", port, tls=mode),
        greeted(*keywords, implicit_tls=tls, port=port, hello=hello),
    )
    return session
