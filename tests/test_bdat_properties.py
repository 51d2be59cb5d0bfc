"""BDAT framing (RFC 3030 §2) under random bodies and random chunkings."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from smtpproto import Bdat, ClientConnection, CRLFNormalizer, Ehlo, MailFrom, RcptTo

from .test_connection import EHLO_ALL, GREETING

BODY = st.lists(
    st.sampled_from([b"a", b"b", b".", b"\r", b"\n", b"\r\n", b"\xc3\xa9"]), max_size=60
)
HEADER = re.compile(rb"BDAT (\d+)( LAST)?\r\n")


def _session() -> ClientConnection:
    conn = ClientConnection(local_hostname="client.example.org")
    conn.receive_data(GREETING)
    conn.next_event()
    conn.send(Ehlo())
    conn.receive_data(EHLO_ALL)
    conn.next_event()
    conn.send(MailFrom("a@example.org", body="8BITMIME"))
    conn.send(RcptTo("b@example.net"))
    return conn


def _unframe(wire: bytes) -> tuple[bytes, int]:
    """The octets carried by a run of BDAT commands, and how many said LAST."""
    octets, lasts, pos = b"", 0, 0
    while pos < len(wire):
        match = HEADER.match(wire, pos)
        assert match is not None, wire[pos:]
        size = int(match.group(1))
        start = match.end()
        octets += wire[start : start + size]
        lasts += bool(match.group(2))
        pos = start + size
    return octets, lasts


@settings(max_examples=300)
@given(pieces=BODY, cuts=st.lists(st.integers(0, 200), max_size=8))
def test_S2_bdat_frames_exactly_the_normalised_text(pieces: list[bytes], cuts: list[int]) -> None:
    """Any body, cut anywhere: the BDAT octets are its CRLF-normalised text, with one LAST."""
    body = b"".join(pieces)
    normalizer = CRLFNormalizer()
    text = normalizer.feed(body) + normalizer.flush()
    bounds = sorted({c % (len(text) + 1) for c in cuts})
    chunks = [text[a:b] for a, b in zip([0, *bounds], [*bounds, len(text)], strict=True)]
    conn = _session()
    wire = b"".join(conn.send(Bdat(chunk)) for chunk in chunks[:-1])
    wire += conn.send(Bdat(chunks[-1], last=True))
    octets, lasts = _unframe(wire)
    assert octets == text
    assert lasts == 1
