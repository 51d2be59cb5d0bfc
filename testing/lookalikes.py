"""End-of-data look-alikes: the byte sequences behind SMTP smuggling (CVE-2023-51764 and
its siblings in other servers).

RFC 5321 §4.1.1.4 ends the message content with ``<CRLF>.<CRLF>`` and nothing else; §2.3.8
forbids a bare CR or LF in it.  A server that also ends the data at one of these sequences can
be made to see a second message inside the first (a sender sends one, a receiver reads two).
smtpproto's encoder never puts one on the wire (each bare CR or LF becomes CRLF and a leading
dot is doubled); the probe sends them on purpose, to see how a server reads them.
"""

from __future__ import annotations

__all__ = ["END_OF_DATA_LOOKALIKES"]

#: Name → bytes, every sequence that is *not* ``\r\n.\r\n`` yet that some server has taken as
#: the end of data.
END_OF_DATA_LOOKALIKES: dict[str, bytes] = {
    "LF.LF": b"\n.\n",
    "CR.CR": b"\r.\r",
    "CRLF.LF": b"\r\n.\n",
    "LF.CRLF": b"\n.\r\n",
    "CR.CRLF": b"\r.\r\n",
    "LF.CR": b"\n.\r",
    "CRLF.CR": b"\r\n.\r",
}
