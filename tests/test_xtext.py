"""Tests for smtpproto._wire.xtext: xtext (RFC 3461 §4, DSN) and ESMTP parameter syntax (S1)."""

from __future__ import annotations

import contextlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpproto._wire.xtext import check_esmtp_keyword, check_esmtp_value, xtext_decode, xtext_encode


@pytest.mark.parametrize(
    ("text", "encoded"),
    [
        ("a+b=c", "a+2Bb+3Dc"),
        ("", ""),
        ("plain!~", "plain!~"),
        ("a b", "a+20b"),
        ("\r\n\x00", "+0D+0A+00"),
        ("\x7f", "+7F"),
        ("é", "+C3+A9"),
        ("<user@example.org>", "<user@example.org>"),
        ("rfc822;Jörg@example.org", "rfc822;J+C3+B6rg@example.org"),
        ("😀", "+F0+9F+98+80"),
    ],
)
def test_xtext_dsn_encode_decode_examples(text: str, encoded: str) -> None:
    """DSN xtext: 33-126 except "+" and "=" go literally, everything else as upper-case +HH."""
    assert xtext_encode(text) == encoded
    assert xtext_decode(encoded) == text


def test_xtext_encode_every_octet() -> None:
    """DSN xtext: each of the 128 ASCII octets, one by one."""
    for octet in range(128):
        literal = 33 <= octet <= 126 and chr(octet) not in "+="
        expected = chr(octet) if literal else f"+{octet:02X}"
        assert xtext_encode(chr(octet)) == expected


def test_xtext_encode_rejects_lone_surrogate() -> None:
    with pytest.raises(ValueError, match="cannot xtext-encode"):
        xtext_encode("a\ud800b")


def test_xtext_decode_accepts_over_encoding() -> None:
    """A printable character needlessly encoded is still valid xtext."""
    assert xtext_decode("+41+42c") == "ABc"


@pytest.mark.parametrize(
    "value",
    [
        "+4",
        "+",
        "a+",
        "+zz",
        "+2b",  # RFC 3461 §4: hexchar digits are upper case
        "+g0",
        "a=b",
        "a b",
        "a\r\nb",
        "a\x00",
        "\x7f",
        "é",
        "++2B",
    ],
)
def test_xtext_decode_rejects_malformed(value: str) -> None:
    with pytest.raises(ValueError, match="is not xtext"):
        xtext_decode(value)


@pytest.mark.parametrize("value", ["+C3", "+FF", "+C3+28", "+ED+A0+80"])
def test_xtext_decode_rejects_invalid_utf8(value: str) -> None:
    with pytest.raises(ValueError, match="does not decode to UTF-8"):
        xtext_decode(value)


@given(st.text())
def test_property_xtext_round_trip(text: str) -> None:
    """DSN xtext: decode(encode(s)) == s, and the encoding is a valid esmtp-value (S1)."""
    encoded = xtext_encode(text)
    assert xtext_decode(encoded) == text
    assert all(33 <= ord(char) <= 126 and char != "=" for char in encoded)
    if text:
        assert check_esmtp_value(encoded) == encoded


@given(st.binary())
def test_property_xtext_decode_never_crashes(data: bytes) -> None:
    """Arbitrary input either decodes or raises ValueError, nothing else."""
    with contextlib.suppress(ValueError):
        xtext_decode(data.decode("latin-1"))


@pytest.mark.parametrize(
    ("keyword", "expected"),
    [
        ("SIZE", "SIZE"),
        ("size", "SIZE"),
        ("Body", "BODY"),
        ("MT-PRIORITY", "MT-PRIORITY"),
        ("x-", "X-"),
        ("8bitmime", "8BITMIME"),
        ("A", "A"),
    ],
)
def test_esmtp_keyword_valid(keyword: str, expected: str) -> None:
    assert check_esmtp_keyword(keyword) == expected


@pytest.mark.parametrize(
    "keyword",
    ["", "-X", "SI ZE", "SIZE=", "SIZE\r\n", "SIZE\x00", "BÖDY", "SIZE_1", "ＳＩＺＥ", "²"],
)
def test_s1_esmtp_keyword_invalid(keyword: str) -> None:
    """S1: a keyword is ASCII letters, digits and hyphens only."""
    with pytest.raises(ValueError, match="invalid ESMTP parameter keyword"):
        check_esmtp_keyword(keyword)


@pytest.mark.parametrize(
    "value", ["8BITMIME", "1234", "rfc822;a+2Bb@example.org", "!", "~", "a<b>c", "x" * 600]
)
def test_esmtp_value_valid(value: str) -> None:
    assert check_esmtp_value(value) == value


@pytest.mark.parametrize(
    "value",
    ["", " ", "a b", "a=b", "=", "é", "\t"] + [f"a{chr(code)}b" for code in [*range(0x20), 0x7F]],
)
def test_s1_esmtp_value_invalid(value: str) -> None:
    """S1: CR, LF, NUL, every other control, space, "=" and non-ASCII never pass."""
    with pytest.raises(ValueError, match="invalid ESMTP parameter value"):
        check_esmtp_value(value)


@given(st.text())
def test_property_esmtp_value_s1(value: str) -> None:
    """S1: whatever passes is 1* of octets 33-60 / 62-126."""
    try:
        checked = check_esmtp_value(value)
    except ValueError:
        return
    assert re.fullmatch(r"[\x21-\x3c\x3e-\x7e]+", checked)
