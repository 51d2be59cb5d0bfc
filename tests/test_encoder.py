"""Tests for smtpproto._wire.encoder: CRLF normalisation, DATA dot-stuffing, body inspection.

Exact-bytes unit tests pin the wire format; hypothesis properties check that the output does not
depend on chunking and matches a deliberately naive reference written here.
"""

from __future__ import annotations

import itertools
import re
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpproto._wire.encoder import MAX_TEXT_LINE, BodyInspector, CRLFNormalizer, DataEncoder

if TYPE_CHECKING:  # mypy knows testing/ as "testing" (package-dir mapping)
    from testing import strategies as kit
    from testing.lookalikes import END_OF_DATA_LOOKALIKES
else:
    from smtpproto.testing import strategies as kit
    from smtpproto.testing.lookalikes import END_OF_DATA_LOOKALIKES

# --- naive references -------------------------------------------------------------------------


def ref_normalize(body: bytes) -> bytes:
    return re.sub(rb"\r\n|\r|\n", b"\r\n", body)


def ref_encode(body: bytes) -> bytes:
    text = ref_normalize(body)
    if text and not text.endswith(b"\r\n"):
        text += b"\r\n"
    return re.sub(rb"(?m)^\.", b"..", text) + b".\r\n"


def ref_longest_line(body: bytes) -> int:
    return max(len(line) for line in re.split(rb"\r\n|\r|\n", body))


def ref_binary(body: bytes) -> bool:
    return b"\0" in body or re.search(rb"\r(?!\n)|(?<!\r)\n", body) is not None


# --- helpers ----------------------------------------------------------------------------------


def encode_chunks(chunks: list[bytes]) -> bytes:
    encoder = DataEncoder()
    out = b"".join(encoder.encode(chunk) for chunk in chunks)
    return out + encoder.end()


def normalize_chunks(chunks: list[bytes]) -> bytes:
    normalizer = CRLFNormalizer()
    out = b"".join(normalizer.feed(chunk) for chunk in chunks)
    return out + normalizer.flush()


def one_byte_chunks(body: bytes) -> list[bytes]:
    return [body[i : i + 1] for i in range(len(body))]


def split_at(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(cut, len(body)) for cut in cuts})
    bounds = [0, *points, len(body)]
    return [body[a:b] for a, b in itertools.pairwise(bounds)]  # may include empty chunks


def has_bare_cr_or_lf(data: bytes) -> bool:
    without_crlf = data.replace(b"\r\n", b"")
    return b"\r" in without_crlf or b"\n" in without_crlf


# Bodies made mostly of the interesting octets, so smuggling shapes come up constantly.
bodies = kit.bodies()
# A few long runs, so lines cross chunks and the 998-octet limit (C9) both ways.
long_line_bodies = kit.long_line_bodies()
cut_lists = st.lists(st.integers(0, 200) | st.integers(0, 20_000), max_size=12)

SMUGGLING_PAYLOADS = list(END_OF_DATA_LOOKALIKES.values())


# --- DataEncoder: exact bytes -----------------------------------------------------------------


def test_S2_C6_C7_checklist_example() -> None:
    assert encode_chunks([b"a\n.\r\nMAIL FROM:<x>\r\n"]) == b"a\r\n..\r\nMAIL FROM:<x>\r\n.\r\n"


@pytest.mark.parametrize("payload", SMUGGLING_PAYLOADS)
def test_S2_smuggling_payload_is_neutralised(payload: bytes) -> None:
    body = b"a" + payload + b"MAIL FROM:<x>\r\n"
    expected = b"a\r\n..\r\nMAIL FROM:<x>\r\n.\r\n"
    assert encode_chunks([body]) == expected
    assert encode_chunks(one_byte_chunks(body)) == expected


def test_S2_bare_lf_dot_lf_cannot_terminate() -> None:
    assert encode_chunks([b"x\n.\n"]) == b"x\r\n..\r\n.\r\n"


def test_S2_bare_cr_dot_cr_cannot_terminate() -> None:
    assert encode_chunks([b"x\r.\r"]) == b"x\r\n..\r\n.\r\n"


def test_S2_payload_split_across_chunks_cannot_terminate() -> None:
    # The CR is held back at the first boundary; the dot arrives alone in the second chunk.
    assert encode_chunks([b"x\r", b".", b"\r", b"\nrest"]) == b"x\r\n..\r\nrest\r\n.\r\n"
    assert encode_chunks([b"x\r", b"\n", b".\n"]) == b"x\r\n..\r\n.\r\n"


def test_C7_bare_cr_and_bare_lf_become_crlf() -> None:
    assert encode_chunks([b"a\nb\rc\r\nd\n"]) == b"a\r\nb\r\nc\r\nd\r\n.\r\n"


def test_C7_unix_line_ends() -> None:
    assert encode_chunks([b"Subject: hi\n\nbody\n"]) == b"Subject: hi\r\n\r\nbody\r\n.\r\n"


def test_C7_classic_mac_line_ends() -> None:
    assert encode_chunks([b"a\rb\r"]) == b"a\r\nb\r\n.\r\n"


def test_C7_crlf_content_passes_unchanged() -> None:
    body = b"Subject: hi\r\n\r\nline one\r\nline two\r\n"
    assert encode_chunks([body]) == body + b".\r\n"


def test_C7_double_cr_is_two_line_breaks() -> None:
    assert encode_chunks([b"a\r\r\nb"]) == b"a\r\n\r\nb\r\n.\r\n"


def test_C6_leading_dots_are_doubled() -> None:
    body = b".first\r\nmid.dle\r\n.\r\n..two\r\n"
    assert encode_chunks([body]) == b"..first\r\nmid.dle\r\n..\r\n...two\r\n.\r\n"


def test_C6_dot_at_chunk_start_after_line_end() -> None:
    assert encode_chunks([b"a\r\n", b".b\r\n"]) == b"a\r\n..b\r\n.\r\n"


def test_C6_dot_at_chunk_start_mid_line_is_kept() -> None:
    assert encode_chunks([b"a", b".b\r\n"]) == b"a.b\r\n.\r\n"


def test_C6_dot_first_octet_of_message() -> None:
    assert encode_chunks([b".", b"hidden"]) == b"..hidden\r\n.\r\n"


def test_C5_missing_final_crlf_is_added_once() -> None:
    assert encode_chunks([b"no newline"]) == b"no newline\r\n.\r\n"


def test_C5_present_final_crlf_is_not_doubled() -> None:
    assert encode_chunks([b"line\r\n"]) == b"line\r\n.\r\n"


def test_C5_final_bare_lf_becomes_the_only_crlf() -> None:
    assert encode_chunks([b"line\n"]) == b"line\r\n.\r\n"


def test_C5_final_cr_held_back_becomes_the_only_crlf() -> None:
    encoder = DataEncoder()
    assert encoder.encode(b"line\r") == b"line"
    assert encoder.end() == b"\r\n.\r\n"


def test_C5_final_crlf_split_across_chunks() -> None:
    assert encode_chunks([b"line\r", b"\n"]) == b"line\r\n.\r\n"


def test_C5_empty_message_is_just_the_terminator() -> None:
    assert encode_chunks([]) == b".\r\n"
    assert encode_chunks([b"", b""]) == b".\r\n"


def test_C5_body_of_one_empty_line() -> None:
    assert encode_chunks([b"\r\n"]) == b"\r\n.\r\n"


def test_encode_returns_nothing_for_empty_chunk() -> None:
    encoder = DataEncoder()
    assert encoder.encode(b"") == b""


def test_octets_in_counts_input_not_output() -> None:
    encoder = DataEncoder()
    encoder.encode(b".a\n")
    encoder.encode(b"b\r")
    assert encoder.octets_in == 5
    encoder.end()
    assert encoder.octets_in == 5


def test_encode_after_end_raises_value_error() -> None:
    encoder = DataEncoder()
    encoder.end()
    with pytest.raises(ValueError, match="after end"):
        encoder.encode(b"x")


def test_end_twice_raises_value_error() -> None:
    encoder = DataEncoder()
    encoder.end()
    with pytest.raises(ValueError, match="twice"):
        encoder.end()


# --- DataEncoder: properties ------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(body=bodies, cuts=cut_lists)
def test_S2_C5_C6_C7_encoding_is_independent_of_chunking(body: bytes, cuts: list[int]) -> None:
    whole = encode_chunks([body])
    assert encode_chunks(split_at(body, cuts)) == whole
    assert encode_chunks(one_byte_chunks(body)) == whole
    assert whole == ref_encode(body)


@settings(max_examples=200, deadline=None)
@given(body=bodies, cuts=cut_lists)
def test_S2_terminator_appears_exactly_once_at_the_end(body: bytes, cuts: list[int]) -> None:
    out = encode_chunks(split_at(body, cuts))
    # The client is at a line start after the 354 reply, so prefix the CRLF that ended it.
    on_wire = b"\r\n" + out
    assert on_wire.endswith(b"\r\n.\r\n")
    assert on_wire.count(b"\r\n.\r\n") == 1
    if not body:
        assert out == b".\r\n"


@settings(max_examples=200, deadline=None)
@given(body=bodies, cuts=cut_lists)
def test_C5_C6_unstuffing_gives_the_normalised_body(body: bytes, cuts: list[int]) -> None:
    out = encode_chunks(split_at(body, cuts))
    assert out.endswith(b".\r\n")
    content = out[: -len(b".\r\n")]
    content = content.replace(b"\r\n..", b"\r\n.")
    if content.startswith(b".."):
        content = content[1:]
    expected = ref_normalize(body)
    if expected and not expected.endswith(b"\r\n"):
        expected += b"\r\n"
    assert content == expected


@settings(max_examples=200, deadline=None)
@given(body=bodies, cuts=cut_lists)
def test_C7_output_has_no_bare_cr_or_lf(body: bytes, cuts: list[int]) -> None:
    assert not has_bare_cr_or_lf(encode_chunks(split_at(body, cuts)))


# --- CRLFNormalizer ---------------------------------------------------------------------------


def test_C7_normalizer_holds_back_a_trailing_cr() -> None:
    normalizer = CRLFNormalizer()
    assert normalizer.feed(b"a\r") == b"a"
    assert normalizer.feed(b"\nb") == b"\r\nb"


def test_C7_normalizer_held_cr_followed_by_other_byte_is_bare() -> None:
    normalizer = CRLFNormalizer()
    assert normalizer.feed(b"a\r") == b"a"
    assert normalizer.feed(b"b") == b"\r\nb"


def test_C7_normalizer_lone_cr_chunks() -> None:
    normalizer = CRLFNormalizer()
    assert normalizer.feed(b"\r") == b""
    assert normalizer.feed(b"\r") == b"\r\n"
    assert normalizer.feed(b"") == b""
    assert normalizer.flush() == b"\r\n"


def test_normalizer_flush_without_held_cr_is_empty() -> None:
    normalizer = CRLFNormalizer()
    assert normalizer.feed(b"a\n") == b"a\r\n"
    assert normalizer.flush() == b""


def test_normalizer_at_line_start_tracks_emitted_output() -> None:
    normalizer = CRLFNormalizer()
    assert normalizer.at_line_start  # nothing emitted
    normalizer.feed(b"abc")
    assert not normalizer.at_line_start
    normalizer.feed(b"\n")
    assert normalizer.at_line_start
    normalizer.feed(b"x\r")  # emits b"x"; the CR is held back
    assert not normalizer.at_line_start
    normalizer.feed(b"")  # emits nothing: unchanged
    assert not normalizer.at_line_start
    assert normalizer.flush() == b"\r\n"
    assert normalizer.at_line_start


def test_normalizer_feed_after_flush_continues_with_committed_cr() -> None:
    normalizer = CRLFNormalizer()
    assert normalizer.feed(b"a\r") == b"a"
    assert normalizer.flush() == b"\r\n"
    # The flushed CR was a line break on its own; this LF is a second one.
    assert normalizer.feed(b"\nb") == b"\r\nb"
    assert not normalizer.at_line_start


@settings(max_examples=200, deadline=None)
@given(body=bodies, cuts=cut_lists)
def test_C7_normalizer_matches_reference_for_any_chunking(body: bytes, cuts: list[int]) -> None:
    expected = ref_normalize(body)
    assert normalize_chunks([body]) == expected
    assert normalize_chunks(split_at(body, cuts)) == expected
    assert normalize_chunks(one_byte_chunks(body)) == expected
    assert not has_bare_cr_or_lf(expected)


@settings(deadline=None)
@given(body=bodies, cuts=cut_lists)
def test_normalizer_at_line_start_matches_output(body: bytes, cuts: list[int]) -> None:
    normalizer = CRLFNormalizer()
    emitted = b""
    for chunk in split_at(body, cuts):
        emitted += normalizer.feed(chunk)
        assert normalizer.at_line_start == (emitted == b"" or emitted.endswith(b"\r\n"))


# --- BodyInspector ----------------------------------------------------------------------------


def inspect_chunks(chunks: list[bytes]) -> BodyInspector:
    inspector = BodyInspector()
    for chunk in chunks:
        inspector.feed(chunk)
    return inspector


def test_inspector_empty_body_is_7bit() -> None:
    inspector = inspect_chunks([])
    assert (inspector.size, inspector.longest_line) == (0, 0)
    assert not inspector.eight_bit
    assert not inspector.binary
    assert inspector.needs_body == "7BIT"


def test_C8_inspector_crlf_ascii_text_is_7bit() -> None:
    inspector = inspect_chunks([b"Subject: x\r\n\r\nhello\r\n"])
    assert inspector.needs_body == "7BIT"
    assert inspector.longest_line == 10
    assert inspector.size == 21


def test_C8_inspector_high_bit_octet_needs_8bitmime() -> None:
    inspector = inspect_chunks([b"caf", b"\xc3\xa9\r\n"])
    assert inspector.eight_bit
    assert not inspector.binary
    assert inspector.needs_body == "8BITMIME"


def test_inspector_nul_octet_needs_binarymime() -> None:
    inspector = inspect_chunks([b"a\0b\r\n"])
    assert inspector.binary
    assert inspector.needs_body == "BINARYMIME"


@pytest.mark.parametrize("body", [b"a\nb", b"a\rb", b"a\r\r\nb", b"a\r\n\nb", b"\n"])
def test_inspector_bare_line_end_is_binary(body: bytes) -> None:
    assert inspect_chunks([body]).binary
    assert inspect_chunks(one_byte_chunks(body)).binary


def test_inspector_crlf_split_across_chunks_is_not_binary() -> None:
    inspector = BodyInspector()
    inspector.feed(b"a\r")
    assert inspector.binary  # the body so far ends in a bare CR
    inspector.feed(b"")
    assert inspector.binary  # an empty chunk decides nothing
    inspector.feed(b"\nb\r\n")
    assert not inspector.binary
    assert inspector.longest_line == 1


def test_inspector_pending_cr_then_other_octet_is_binary() -> None:
    inspector = inspect_chunks([b"a\r", b"b"])
    assert inspector.binary


def test_C9_inspector_line_of_998_octets_is_still_text() -> None:
    inspector = inspect_chunks([b"x" * MAX_TEXT_LINE + b"\r\n"])
    assert inspector.longest_line == 998
    assert inspector.needs_body == "7BIT"


def test_C9_inspector_line_over_998_octets_needs_binarymime() -> None:
    inspector = inspect_chunks([b"x" * 500, b"x" * 499, b"\r\n"])
    assert inspector.longest_line == 999
    assert not inspector.binary
    assert inspector.needs_body == "BINARYMIME"


def test_inspector_longest_line_counts_unterminated_last_line() -> None:
    inspector = inspect_chunks([b"ab\r\n", b"cdef"])
    assert inspector.longest_line == 4


def test_inspector_short_lines_after_a_long_one() -> None:
    inspector = inspect_chunks([b"x" * 50 + b"\r\n", b"a\r\nbb\r\n", b"ccc"])
    assert inspector.longest_line == 50


@settings(max_examples=200, deadline=None)
@given(body=bodies | long_line_bodies, cuts=cut_lists)
def test_inspector_matches_reference_for_any_chunking(body: bytes, cuts: list[int]) -> None:
    for chunks in ([body], split_at(body, cuts), one_byte_chunks(body)):
        inspector = inspect_chunks(chunks)
        assert inspector.size == len(body)
        assert inspector.eight_bit == any(octet >= 0x80 for octet in body)
        assert inspector.binary == ref_binary(body)
        assert inspector.longest_line == ref_longest_line(body)


@settings(deadline=None)
@given(body=bodies | long_line_bodies)
def test_inspector_needs_body_of_normalised_text(body: bytes) -> None:
    inspector = BodyInspector()
    normalizer = CRLFNormalizer()
    inspector.feed(normalizer.feed(body))
    inspector.feed(normalizer.flush())
    expected = (
        "BINARYMIME"
        if b"\0" in body or ref_longest_line(body) > MAX_TEXT_LINE
        else "8BITMIME"
        if not body.isascii()
        else "7BIT"
    )
    assert inspector.needs_body == expected
