"""Fuzz target ``encoder``: ``DataEncoder`` and ``BodyInspector`` over arbitrary chunked bytes.

Input layout::

    cut count n (1 byte) | n cut bytes | body ...

Each cut byte is the length of the next chunk (0 allowed, so empty chunks are fed too); what is
left after the cuts is the last chunk.  The same body is also encoded in one piece.

Checks (checklist C5, C6, C7, S2): the wire output is the same however the body is cut; it holds
no bare CR or LF; preceded by the CRLF that ended the 354 reply it holds ``CRLF . CRLF`` exactly
once, at its end; un-stuffed (a leading dot removed from each line) it equals the body with every
CRLF, bare CR and bare LF turned into CRLF, plus a CRLF if the body did not end with a line
break; ``octets_in`` counts the input.  The inspector's ``size``, ``eight_bit``, ``binary`` and
``longest_line`` match a direct computation over the whole body, however it is cut.
"""

from __future__ import annotations

import re
import sys

import atheris

with atheris.instrument_imports(include=["smtpproto"]):
    from smtpproto import BodyInspector, DataEncoder

LINE_BREAK = re.compile(rb"\r\n|\r|\n")
TERMINATOR = b"\r\n.\r\n"


def split(body: bytes, cuts: bytes) -> list[bytes]:
    chunks, start = [], 0
    for cut in cuts:
        chunks.append(body[start : start + cut])
        start += cut
    chunks.append(body[start:])
    return chunks


def encode(chunks: list[bytes]) -> bytes:
    encoder = DataEncoder()
    out = b"".join(encoder.encode(chunk) for chunk in chunks)
    assert encoder.octets_in == sum(map(len, chunks))
    return out + encoder.end()


def occurrences(haystack: bytes, needle: bytes) -> list[int]:
    """Every index where ``needle`` starts, overlapping ones included."""
    found, index = [], haystack.find(needle)
    while index >= 0:
        found.append(index)
        index = haystack.find(needle, index + 1)
    return found


def has_bare_line_end(data: bytes) -> bool:
    # CRLF pairs cannot overlap, so removing them leaves exactly the bare CRs and LFs.
    rest = data.replace(b"\r\n", b"")
    return b"\r" in rest or b"\n" in rest


def expected_content(body: bytes) -> bytes:
    normalised = LINE_BREAK.sub(b"\r\n", body)
    if normalised and not normalised.endswith(b"\r\n"):
        normalised += b"\r\n"
    return normalised


def unstuff(content: bytes) -> bytes:
    lines = content.split(b"\r\n")
    return b"\r\n".join(line[1:] if line.startswith(b".") else line for line in lines)


def check_wire(body: bytes, wire: bytes) -> None:
    assert not has_bare_line_end(wire), wire
    after_354 = b"\r\n" + wire
    assert occurrences(after_354, TERMINATOR) == [len(after_354) - len(TERMINATOR)], wire
    content = wire[: -len(b".\r\n")]
    assert unstuff(content) == expected_content(body), (body, wire)


def check_inspector(body: bytes, chunks: list[bytes]) -> None:
    inspector = BodyInspector()
    for chunk in chunks:
        inspector.feed(chunk)
    assert inspector.size == len(body)
    assert inspector.eight_bit == (not body.isascii())
    assert inspector.binary == (b"\0" in body or has_bare_line_end(body)), (body, chunks)
    longest = max(map(len, body.splitlines()), default=0)
    assert inspector.longest_line == longest, (body, chunks, inspector.longest_line)


def TestOneInput(data: bytes) -> None:  # the name atheris looks for
    fdp = atheris.FuzzedDataProvider(data)
    count = fdp.ConsumeBytes(1)
    cuts = fdp.ConsumeBytes(count[0] % 32 if count else 0)
    body = fdp.ConsumeBytes(fdp.remaining_bytes())
    chunks = split(body, cuts)

    wire = encode(chunks)
    assert wire == encode([body]), (chunks, wire)
    check_wire(body, wire)
    check_inspector(body, chunks)


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
