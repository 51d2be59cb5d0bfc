"""ReceiveBuffer: CRLF framing (R7), bounded memory (S6/S7), chunking independence."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpproto._wire.errors import RemoteProtocolError
from smtpproto._wire.receivebuffer import ReceiveBuffer

TRANSCRIPT = (
    b"220-mx.example.net ESMTP\r\n"
    b"220 ready\r\n"
    b"250-mx.example.net\r\n"
    b"250-PIPELINING\r\n"
    b"250-SIZE 10240000\r\n"
    b"250 8BITMIME\r\n"
    b"\r\n"
    b"354 bare\nLF and bare\rCR stay in the line\r\n"
    b"250\r\n"
    b"250 CR before CRLF\r\r\n"
    b"221 bye"
)
TRANSCRIPT_LINES = [
    b"220-mx.example.net ESMTP",
    b"220 ready",
    b"250-mx.example.net",
    b"250-PIPELINING",
    b"250-SIZE 10240000",
    b"250 8BITMIME",
    b"",
    b"354 bare\nLF and bare\rCR stay in the line",
    b"250",
    b"250 CR before CRLF\r",
]
TRANSCRIPT_REST = b"221 bye"


def drain(buffer: ReceiveBuffer, max_length: int = 512) -> list[bytes]:
    lines = []
    while (line := buffer.next_line(max_length)) is not None:
        lines.append(line)
    return lines


def read_in_chunks(data: bytes, cuts: list[int], max_length: int = 512) -> list[bytes]:
    """Feed ``data`` cut at the given offsets, draining lines after every chunk."""
    buffer = ReceiveBuffer()
    lines: list[bytes] = []
    previous = 0
    for cut in [*sorted(cuts), len(data)]:
        buffer.feed(data[previous:cut])
        previous = cut
        lines += drain(buffer, max_length)
    return lines


def test_empty_buffer_has_no_line() -> None:
    buffer = ReceiveBuffer()
    assert buffer.next_line(512) is None
    assert len(buffer) == 0
    assert buffer.take_all() == b""


def test_R7_only_crlf_ends_a_line() -> None:
    buffer = ReceiveBuffer()
    buffer.feed(b"250 a\nb\rc\n\r")
    assert buffer.next_line(512) is None
    buffer.feed(b"\r\n")
    assert buffer.next_line(512) == b"250 a\nb\rc\n\r"
    assert buffer.next_line(512) is None


def test_R7_cr_at_end_of_chunk_pairs_with_lf_of_next_chunk() -> None:
    buffer = ReceiveBuffer()
    buffer.feed(b"250 ok\r")
    assert buffer.next_line(512) is None
    buffer.feed(b"\n")
    assert buffer.next_line(512) == b"250 ok"
    assert len(buffer) == 0


def test_whole_transcript() -> None:
    buffer = ReceiveBuffer()
    buffer.feed(TRANSCRIPT)
    assert drain(buffer) == TRANSCRIPT_LINES
    assert len(buffer) == len(TRANSCRIPT_REST)
    assert buffer.take_all() == TRANSCRIPT_REST
    assert len(buffer) == 0


def test_R7_one_byte_at_a_time_equals_whole() -> None:
    assert read_in_chunks(TRANSCRIPT, list(range(1, len(TRANSCRIPT)))) == TRANSCRIPT_LINES


@pytest.mark.parametrize("cut", range(1, len(TRANSCRIPT)))
def test_R7_split_at_every_byte_equals_whole(cut: int) -> None:
    assert read_in_chunks(TRANSCRIPT, [cut]) == TRANSCRIPT_LINES


def test_len_counts_only_unreturned_bytes() -> None:
    buffer = ReceiveBuffer()
    buffer.feed(b"250 a\r\n250 b\r\n250 c")
    assert len(buffer) == 19
    assert buffer.next_line(512) == b"250 a"
    assert len(buffer) == 12
    # Feeding after a partial read keeps the unreturned bytes in order.
    buffer.feed(b"\r\n")
    assert drain(buffer) == [b"250 b", b"250 c"]
    assert len(buffer) == 0


def test_take_all_returns_unparsed_bytes_and_empties() -> None:
    """The STARTTLS injection check (S4) relies on seeing exactly what is left."""
    buffer = ReceiveBuffer()
    buffer.feed(b"220 go ahead\r\n250 injected\r\n250 partial")
    assert buffer.next_line(512) == b"220 go ahead"
    assert buffer.take_all() == b"250 injected\r\n250 partial"
    assert len(buffer) == 0
    assert buffer.next_line(512) is None
    buffer.feed(b"250 fresh\r\n")
    assert buffer.next_line(512) == b"250 fresh"


def test_R6_line_of_exactly_max_length_is_accepted() -> None:
    line = b"250 " + b"x" * 506
    buffer = ReceiveBuffer()
    buffer.feed(line + b"\r\n")
    assert buffer.next_line(512) == line


def test_S6_complete_line_over_max_length_raises_with_excerpt() -> None:
    buffer = ReceiveBuffer()
    buffer.feed(b"250 " + b"x" * 507 + b"\r\n")
    with pytest.raises(RemoteProtocolError, match="512") as info:
        buffer.next_line(512)
    assert info.value.line is not None
    assert info.value.line.startswith(b"250 xxx")


def test_S6_incomplete_line_raises_once_it_cannot_fit() -> None:
    buffer = ReceiveBuffer()
    buffer.feed(b"250 " + b"x" * 507)  # 511 octets: one more octet (a CR) may still end it
    assert buffer.next_line(512) is None
    buffer.feed(b"x")
    with pytest.raises(RemoteProtocolError) as info:
        buffer.next_line(512)
    assert info.value.line is not None
    assert info.value.line.startswith(b"250 xxx")


def test_S6_trailing_cr_may_complete_a_line_at_the_limit() -> None:
    buffer = ReceiveBuffer()
    buffer.feed(b"abc\r")
    assert buffer.next_line(5) is None
    buffer.feed(b"\n")
    assert buffer.next_line(5) == b"abc"


def test_S6_memory_stays_bounded_without_crlf() -> None:
    buffer = ReceiveBuffer()
    chunk = b"y" * 100
    max_length = 1000
    for _ in range(9):  # 900 octets: still below the limit
        buffer.feed(chunk)
        assert buffer.next_line(max_length) is None
    buffer.feed(chunk)
    assert len(buffer) == max_length
    with pytest.raises(RemoteProtocolError):
        buffer.next_line(max_length)


def test_limit_may_change_between_lines() -> None:
    """The machine allows longer lines during AUTH (S6: >=12288)."""
    long_line = b"334 " + b"A" * 12000
    buffer = ReceiveBuffer()
    buffer.feed(b"250 ok\r\n" + long_line + b"\r\n")
    assert buffer.next_line(512) == b"250 ok"
    assert buffer.next_line(12288) == long_line


@pytest.mark.parametrize("max_length", [-1, 0, 1])
def test_max_length_below_crlf_is_a_value_error(max_length: int) -> None:
    with pytest.raises(ValueError, match="max_length"):
        ReceiveBuffer().next_line(max_length)


def test_many_lines_fed_in_one_chunk_then_one_by_one() -> None:
    """Exercises compaction: the consumed prefix grows, then is dropped while lines remain."""
    lines = [b"250-line %d" % i for i in range(200)]
    data = b"".join(line + b"\r\n" for line in lines)
    buffer = ReceiveBuffer()
    buffer.feed(data[:1000])
    got = drain(buffer)
    for i in range(1000, len(data), 7):
        buffer.feed(data[i : i + 7])
        got += drain(buffer)
    assert got == lines
    assert len(buffer) == 0


# Lines may themselves hold CR, LF or even CRLF: the expected split is computed from the wire.
lines_strategy = st.lists(st.binary(max_size=40), max_size=20)


@given(lines=lines_strategy, tail=st.binary(max_size=10), data=st.data())
def test_R7_any_chunking_yields_the_same_lines(
    lines: list[bytes], tail: bytes, data: st.DataObject
) -> None:
    wire = b"".join(line + b"\r\n" for line in lines) + tail
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=30))
    expected = wire.split(b"\r\n")
    complete, rest = expected[:-1], expected[-1]
    assert read_in_chunks(wire, cuts, max_length=len(wire) + 2) == complete
    buffer = ReceiveBuffer()
    buffer.feed(wire)
    drain(buffer, len(wire) + 2)
    assert buffer.take_all() == rest


@given(
    chunks=st.lists(st.binary(max_size=50), max_size=30),
    max_length=st.integers(2, 60),
)
def test_S6_random_bytes_respect_the_line_limit(chunks: list[bytes], max_length: int) -> None:
    buffer = ReceiveBuffer()
    with contextlib.suppress(RemoteProtocolError):
        for chunk in chunks:
            buffer.feed(chunk)
            while (line := buffer.next_line(max_length)) is not None:
                assert len(line) + 2 <= max_length
                assert b"\r\n" not in line
            assert len(buffer) < max_length
