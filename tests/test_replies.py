"""ReplyAssembler (R2, R3, R5, R6, S6/S7) and enhanced status codes (RFC 2034 / 3463)."""

from __future__ import annotations

import contextlib
import dataclasses
from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpproto._wire import replies as _replies
from smtpproto._wire.errors import RemoteProtocolError
from smtpproto._wire.receivebuffer import ReceiveBuffer
from smtpproto._wire.replies import EnhancedStatus, ReplyAssembler, parse_enhanced_status

if TYPE_CHECKING:  # mypy knows testing/ as "testing" (package-dir mapping)
    from testing import strategies as kit
else:
    from smtpproto.testing import strategies as kit

Reply = tuple[int, tuple[str, ...]]


def assembler(max_lines: int = 1000, max_bytes: int = 65536) -> ReplyAssembler:
    return ReplyAssembler(max_lines=max_lines, max_bytes=max_bytes)


def feed_all(target: ReplyAssembler, lines: list[bytes]) -> list[Reply | None]:
    return [target.feed_line(line) for line in lines]


# --- single and multi-line replies --------------------------------------------------------


def test_single_line_reply() -> None:
    target = assembler()
    assert target.feed_line(b"250 2.0.0 Ok") == (250, ("2.0.0 Ok",))
    assert not target.in_progress


def test_R1_repeated_and_ever_new_single_line_replies_parse_alike() -> None:
    # The assembler remembers a bounded number of single-line replies it has parsed; a repeat
    # and a reply past that bound must come out exactly as a first parse would.
    assembler = ReplyAssembler(max_lines=10, max_bytes=512)
    for number in range(200):
        for _ in range(2):
            line = b"250 2.1.5 recipient %d ok" % number
            assert assembler.feed_line(line) == (250, (f"2.1.5 recipient {number} ok",))
    assert assembler.feed_line(b"250-first") is None  # a multi-line reply is never taken whole
    assert assembler.feed_line(b"250 2.1.5 recipient 0 ok") == (
        250,
        ("first", "2.1.5 recipient 0 ok"),
    )


def test_R2_multi_line_reply_collects_every_text() -> None:
    target = assembler()
    results = feed_all(target, [b"250-mx.example.net", b"250-PIPELINING", b"250 SIZE 1000"])
    assert results == [None, None, (250, ("mx.example.net", "PIPELINING", "SIZE 1000"))]


def test_R2_bare_code_ends_reply() -> None:
    target = assembler()
    assert feed_all(target, [b"220-first", b"220-second", b"220"]) == [
        None,
        None,
        (220, ("first", "second", "")),
    ]


def test_R2_bare_code_alone_is_a_whole_reply() -> None:
    assert assembler().feed_line(b"250") == (250, ("",))


@pytest.mark.parametrize(
    ("line", "expected"),
    [(b"250 ", (250, ("",))), (b"354  two spaces", (354, (" two spaces",)))],
)
def test_R2_text_is_optional_and_kept_verbatim(line: bytes, expected: Reply) -> None:
    assert assembler().feed_line(line) == expected


def test_R2_empty_continuation_text() -> None:
    assert feed_all(assembler(), [b"250-", b"250 end"]) == [None, (250, ("", "end"))]


def test_in_progress_tracks_a_partial_multi_line_reply() -> None:
    target = assembler()
    assert not target.in_progress
    target.feed_line(b"250-a")
    assert target.in_progress
    target.feed_line(b"250-b")
    assert target.in_progress
    target.feed_line(b"250 c")
    assert not target.in_progress


def test_R1_consecutive_replies_are_assembled_separately() -> None:
    target = assembler()
    results = feed_all(target, [b"250-a", b"250 b", b"550-c", b"550 d", b"221 bye"])
    assert [r for r in results if r is not None] == [
        (250, ("a", "b")),
        (550, ("c", "d")),
        (221, ("bye",)),
    ]


def test_R3_code_mismatch_between_lines_is_a_protocol_error() -> None:
    target = assembler()
    target.feed_line(b"250-first")
    with pytest.raises(RemoteProtocolError, match="differs") as info:
        target.feed_line(b"251 second")
    assert info.value.line == b"251 second"


def test_R3_mismatch_on_a_continuation_line() -> None:
    target = assembler()
    target.feed_line(b"250-first")
    with pytest.raises(RemoteProtocolError):
        target.feed_line(b"550-second")


@pytest.mark.parametrize("line", [b"299 odd", b"420 x", b"559 y", b"200", b"599-z"])
def test_R5_unknown_codes_are_read_by_first_digit(line: bytes) -> None:
    result = assembler().feed_line(line)
    if line[3:4] == b"-":
        assert result is None
    else:
        assert result is not None
        assert result[0] == int(line[:3])


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([b"100 x"], (100, ("x",))),
        ([b"099 x"], (99, ("x",))),
        ([b"651 x"], (651, ("x",))),
        ([b"999"], (999, ("",))),
        ([b"000-x", b"000 y"], (0, ("x", "y"))),
    ],
)
def test_R5_first_digit_outside_2_to_5_still_frames_a_reply(
    lines: list[bytes], expected: Reply
) -> None:
    # The reply answers its command: the connection consumes it, then raises (R5).
    assert feed_all(assembler(), lines)[-1] == expected


@pytest.mark.parametrize(
    "line", [b"", b"2", b"25", b"2a0 x", b"25x", b"-250 x", b" 250", b"+25 x", b"\xb2\xb3\xb9 x"]
)
def test_code_must_be_three_ascii_digits(line: bytes) -> None:
    with pytest.raises(RemoteProtocolError, match="3-digit"):
        assembler().feed_line(line)


@pytest.mark.parametrize("line", [b"250x", b"2500", b"250\t", b"250_ok", b"250\rok", b"250=x"])
def test_separator_must_be_space_or_hyphen(line: bytes) -> None:
    with pytest.raises(RemoteProtocolError, match="SP or '-'"):
        assembler().feed_line(line)


def test_text_is_utf8_with_replacement() -> None:
    """SMTPUTF8 servers send UTF-8 (6531 §3.7.4.1); invalid octets never raise."""
    target = assembler()
    assert target.feed_line("250 café ✓".encode()) == (250, ("café ✓",))
    assert target.feed_line(b"550 bad \xff\xfe octets") == (550, ("bad \ufffd\ufffd octets",))


def test_R6_reply_line_of_512_octets_is_accepted() -> None:
    line = b"250 " + b"x" * 506  # 510 + CRLF = 512
    buffer = ReceiveBuffer()
    buffer.feed(line + b"\r\n")
    read = buffer.next_line(512)
    assert read == line
    assert assembler(max_bytes=512).feed_line(read) == (250, ("x" * 506,))


# --- limits (S6/S7) -----------------------------------------------------------------------


def test_S7_max_lines_is_allowed_exactly() -> None:
    target = assembler(max_lines=3)
    assert feed_all(target, [b"250-a", b"250-b", b"250 c"])[-1] == (250, ("a", "b", "c"))


def test_S7_too_many_lines_raise_before_the_reply_ends() -> None:
    target = assembler(max_lines=3)
    feed_all(target, [b"250-a", b"250-b", b"250-c"])
    with pytest.raises(RemoteProtocolError, match="more than 3 lines"):
        target.feed_line(b"250-d")


def test_S7_single_line_within_max_lines_1() -> None:
    target = assembler(max_lines=1)
    assert target.feed_line(b"250 ok") == (250, ("ok",))
    target.feed_line(b"250-a")
    with pytest.raises(RemoteProtocolError, match="lines"):
        target.feed_line(b"250 b")


def test_S7_max_bytes_counts_crlf_and_is_allowed_exactly() -> None:
    # Wire octets: "250-ab\r\n" (8) + "250 c\r\n" (7) = 15.
    assert feed_all(assembler(max_bytes=15), [b"250-ab", b"250 c"])[-1] == (250, ("ab", "c"))
    target = assembler(max_bytes=14)
    target.feed_line(b"250-ab")
    with pytest.raises(RemoteProtocolError, match="14 octets"):
        target.feed_line(b"250 c")


@pytest.mark.parametrize("line", [b"250 abcdef", b"250-abcdef"])
def test_S7_first_line_alone_over_max_bytes(line: bytes) -> None:
    with pytest.raises(RemoteProtocolError, match="octets"):
        assembler(max_bytes=11).feed_line(line)
    assembler(max_bytes=12).feed_line(line)  # exactly 12 wire octets: fine


@pytest.mark.parametrize(("max_lines", "max_bytes"), [(0, 100), (-1, 100), (10, 0), (10, -5)])
def test_limits_must_be_positive(max_lines: int, max_bytes: int) -> None:
    with pytest.raises(ValueError, match="must be at least 1"):
        ReplyAssembler(max_lines=max_lines, max_bytes=max_bytes)


# --- enhanced status codes ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "text", "status", "rest"),
    [
        (250, "2.1.0 Sender ok", EnhancedStatus(2, 1, 0), "Sender ok"),
        (550, "5.1.1 No such user", EnhancedStatus(5, 1, 1), "No such user"),
        (421, "4.4.2 Timeout", EnhancedStatus(4, 4, 2), "Timeout"),
        (554, "5.7.1", EnhancedStatus(5, 7, 1), ""),
        (556, "5.1.10 null MX", EnhancedStatus(5, 1, 10), "null MX"),
        (250, "2.999.999 max", EnhancedStatus(2, 999, 999), "max"),
        (250, "2.000.00 zeros", EnhancedStatus(2, 0, 0), "zeros"),
        (250, "2.0.0  two spaces", EnhancedStatus(2, 0, 0), " two spaces"),
        (
            299,
            "2.6.0 unknown code, known class",
            EnhancedStatus(2, 6, 0),
            "unknown code, known class",
        ),
    ],
)
def test_enhanced_status_is_split_off(
    code: int, text: str, status: EnhancedStatus, rest: str
) -> None:
    assert parse_enhanced_status(code, text) == (status, rest)


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (550, "2.1.0 class mismatch is ignored"),
        (250, "5.1.1 class mismatch is ignored"),
        (354, "3.0.0 no 3xx class"),
        (354, "2.0.0 3xx never carries one"),
        (250, "Ok"),
        (250, ""),
        (250, "2.1 too short"),
        (250, "2.1.0.1 too long"),
        (250, "2.1000.0 subject has four digits"),
        (250, "2.1.1000 detail has four digits"),
        (250, "2..0 empty subject"),
        (250, "2.1. empty detail"),
        (250, "2.1.0x glued"),
        (250, "2.1.0\ttab"),
        (250, "2.١.0 arabic-indic digit"),
        (250, "2.².0 superscript digit"),
        (250, "22.1.0 two-digit class"),
        (250, " 2.1.0 leading space"),
        (250, "2.+1.0 sign"),
    ],
)
def test_no_enhanced_status(code: int, text: str) -> None:
    assert parse_enhanced_status(code, text) == (None, text)


def test_enhanced_status_with_an_overlong_token_is_not_a_status() -> None:
    # "c.sss.ddd" is the longest a status can be; anything longer is ordinary text.
    assert parse_enhanced_status(250, "2.1.5000 ok") == (None, "2.1.5000 ok")
    assert parse_enhanced_status(250, "2.100.5000 ok") == (None, "2.100.5000 ok")
    assert parse_enhanced_status(250, "2.100.5 ok") == (EnhancedStatus(2, 100, 5), "ok")


def test_S6_statuses_a_server_invents_are_parsed_without_growing_memory() -> None:
    # Each distinct status is parsed once and remembered, up to a bound: a server sending a new
    # one in every reply still gets each parsed correctly, and memory stays bounded.
    for subject in range(40):
        for detail in range(40):
            status, rest = parse_enhanced_status(550, f"5.{subject}.{detail} no")
            assert status == EnhancedStatus(5, subject, detail)
            assert rest == "no"
    assert len(_replies._KNOWN_STATUSES) <= _replies._MAX_KNOWN_STATUSES


def test_enhanced_status_str_and_fields() -> None:
    status = EnhancedStatus(5, 1, 1)
    assert str(status) == "5.1.1"
    assert (status.klass, status.subject, status.detail) == (5, 1, 1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        status.klass = 4  # type: ignore[misc]


@pytest.mark.parametrize(
    ("klass", "subject", "detail"), [(3, 0, 0), (1, 0, 0), (2, -1, 0), (2, 0, 1000), (2, 1000, 0)]
)
def test_enhanced_status_validates(klass: int, subject: int, detail: int) -> None:
    with pytest.raises(ValueError, match="enhanced status"):
        EnhancedStatus(klass, subject, detail)


# --- properties ---------------------------------------------------------------------------

MAX_LINE = 64
MAX_LINES = 5
MAX_BYTES = 200


def run_limited(chunks: list[bytes]) -> list[Reply]:
    """Feed chunks through buffer and assembler, checking every limit on every reply."""
    buffer = ReceiveBuffer()
    target = ReplyAssembler(max_lines=MAX_LINES, max_bytes=MAX_BYTES)
    replies: list[Reply] = []
    wire_lines: list[bytes] = []  # the lines of the reply being assembled
    for chunk in chunks:
        buffer.feed(chunk)
        assert len(buffer) < MAX_LINE + len(chunk)
        while (line := buffer.next_line(MAX_LINE)) is not None:
            wire_lines.append(line)
            reply = target.feed_line(line)
            if reply is not None:
                code, texts = reply
                assert 0 <= code <= 999
                assert len(texts) == len(wire_lines) <= MAX_LINES
                assert sum(len(w) + 2 for w in wire_lines) <= MAX_BYTES
                assert all(w[:3] == b"%03d" % code for w in wire_lines)
                replies.append(reply)
                wire_lines = []
    return replies


@given(chunks=st.lists(st.binary(max_size=80), max_size=20))
def test_S6_S7_random_bytes_only_raise_remote_protocol_error(chunks: list[bytes]) -> None:
    """Random server bytes: either replies within every limit, or a RemoteProtocolError."""
    with contextlib.suppress(RemoteProtocolError):
        run_limited(chunks)


@given(chunks=st.lists(kit.hostile_replies(), max_size=20))
def test_S6_S7_reply_shaped_noise_only_raises_remote_protocol_error(
    chunks: list[bytes],
) -> None:
    """Noise built from reply fragments reaches the deeper states more often than raw bytes."""
    with contextlib.suppress(RemoteProtocolError):
        run_limited(chunks)


reply_text = kit.reply_texts()


@given(
    code=st.integers(200, 599),
    texts=st.lists(reply_text, min_size=1, max_size=8),
    bare_last=st.booleans(),
    cuts=st.lists(st.integers(0, 2000), max_size=10),
)
def test_R2_random_multi_line_reply_round_trips(
    code: int, texts: list[str], bare_last: bool, cuts: list[int]
) -> None:
    encoded = [t.encode() for t in texts]
    wire_lines = [b"%d-%s" % (code, t) for t in encoded[:-1]]
    if bare_last and not encoded[-1]:
        wire_lines.append(b"%d" % code)
    else:
        wire_lines.append(b"%d %s" % (code, encoded[-1]))
    wire = b"".join(line + b"\r\n" for line in wire_lines)
    buffer = ReceiveBuffer()
    target = assembler()
    replies = []
    previous = 0
    for cut in [*sorted(c for c in cuts if c < len(wire)), len(wire)]:
        buffer.feed(wire[previous:cut])
        previous = cut
        while (line := buffer.next_line(512)) is not None:
            replies.append(target.feed_line(line))
    assert [r for r in replies if r is not None] == [(code, tuple(texts))]
    assert replies[-1] == (code, tuple(texts))
    assert not target.in_progress


@given(
    code=st.sampled_from([250, 251, 421, 450, 550, 554]),
    subject=st.integers(0, 999),
    detail=st.integers(0, 999),
    rest=reply_text,
)
def test_enhanced_status_round_trips(code: int, subject: int, detail: int, rest: str) -> None:
    status = EnhancedStatus(code // 100, subject, detail)
    assert parse_enhanced_status(code, f"{status} {rest}") == (status, rest)


@given(code=st.integers(200, 599), text=st.text(max_size=20))
def test_enhanced_status_never_raises(code: int, text: str) -> None:
    status, rest = parse_enhanced_status(code, text)
    if status is None:
        assert rest == text
    else:
        assert status.klass == code // 100
        assert text.endswith(rest)


def test_S6_replies_a_server_invents_are_parsed_without_growing_memory() -> None:
    # Single-line replies are remembered across connections, up to a bound: a server that makes
    # every reply new still gets each one parsed, by any assembler, and memory stays bounded.
    for number in range(2 * _replies._MAX_KNOWN_LINES):
        line = f"250 2.0.0 reply {number}".encode()
        for _ in range(2):  # the second time from the cache, while there is room
            assembler = ReplyAssembler(max_lines=10, max_bytes=4096)
            assert assembler.feed_line(line) == (250, (f"2.0.0 reply {number}",))
    assert len(_replies._KNOWN_LINES) <= _replies._MAX_KNOWN_LINES
