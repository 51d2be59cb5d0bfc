"""parse_ehlo and Extensions (G6 and the EHLO keywords of checklist section 3)."""

from __future__ import annotations

import dataclasses
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpproto._wire.extensions import Extensions, parse_ehlo

POSTFIX_EHLO = [
    "mx.example.net",
    "PIPELINING",
    "SIZE 10240000",
    "VRFY",
    "ETRN",
    "STARTTLS",
    "AUTH PLAIN LOGIN",
    "AUTH=PLAIN LOGIN",
    "ENHANCEDSTATUSCODES",
    "8BITMIME",
    "DSN",
    "SMTPUTF8",
    "CHUNKING",
]


def test_typical_postfix_reply() -> None:
    ext = parse_ehlo(POSTFIX_EHLO)
    assert ext.esmtp
    assert ext.server_name == "mx.example.net"
    assert ext.pipelining
    assert ext.size == 10240000
    assert ext.starttls
    assert ext.enhancedstatuscodes
    assert ext.eightbitmime
    assert ext.dsn
    assert ext.smtputf8
    assert ext.chunking
    assert not ext.binarymime
    assert not ext.requiretls
    assert not ext.mt_priority
    assert ext.auth == frozenset({"PLAIN", "LOGIN"})
    assert [name for name, _ in ext.keywords] == [
        "PIPELINING",
        "SIZE",
        "VRFY",
        "ETRN",
        "STARTTLS",
        "AUTH",
        "ENHANCEDSTATUSCODES",
        "8BITMIME",
        "DSN",
        "SMTPUTF8",
        "CHUNKING",
    ]


@pytest.mark.parametrize(
    ("keyword", "field"),
    [
        ("PIPELINING", "pipelining"),
        ("8BITMIME", "eightbitmime"),
        ("SMTPUTF8", "smtputf8"),
        ("CHUNKING", "chunking"),
        ("BINARYMIME", "binarymime"),
        ("DSN", "dsn"),
        ("STARTTLS", "starttls"),
        ("ENHANCEDSTATUSCODES", "enhancedstatuscodes"),
        ("REQUIRETLS", "requiretls"),
        ("MT-PRIORITY", "mt_priority"),
    ],
)
def test_each_flag_keyword_sets_only_its_field(keyword: str, field: str) -> None:
    ext = parse_ehlo(["mx", keyword])
    flags = {f.name for f in dataclasses.fields(Extensions) if f.type == "bool"} - {"esmtp"}
    assert {name for name in flags if getattr(ext, name)} == {field}
    assert ext.size is None
    assert ext.auth == frozenset()


def test_G6_keywords_are_case_insensitive() -> None:
    ext = parse_ehlo(["mx", "pipelining", "Size 1000", "auth plain Login", "x-Custom Param"])
    assert ext.pipelining
    assert ext.size == 1000
    assert ext.auth == frozenset({"PLAIN", "LOGIN"})
    assert "PiPeLiNiNg" in ext
    assert "size" in ext
    assert ext.params("x-custom") == ("Param",)  # parameters keep their case
    assert ext.params("AUTH") == ("plain", "Login")
    assert [name for name, _ in ext.keywords] == ["PIPELINING", "SIZE", "AUTH", "X-CUSTOM"]


def test_G6_first_line_is_the_server_domain() -> None:
    assert parse_ehlo(["mx.example.net Hello client [192.0.2.1]"]).server_name == "mx.example.net"
    assert parse_ehlo([""]).server_name == ""
    ext = parse_ehlo(["PIPELINING"])  # the first line is never a keyword
    assert ext.server_name == "PIPELINING"
    assert not ext.pipelining
    assert ext.keywords == ()
    assert ext.esmtp


def test_G6_unknown_keywords_are_kept_raw() -> None:
    ext = parse_ehlo(["mx", "XCLIENT NAME ADDR", "X-EXPS GSSAPI NTLM", "ETRN", "DELIVERBY 600"])
    assert ext.keywords == (
        ("XCLIENT", ("NAME", "ADDR")),
        ("X-EXPS", ("GSSAPI", "NTLM")),
        ("ETRN", ()),
        ("DELIVERBY", ("600",)),
    )
    assert ext.params("deliverby") == ("600",)
    assert ext.params("ETRN") == ()


@pytest.mark.parametrize(
    "junk",
    [
        "",
        "   ",
        "-LEADING-HYPHEN",
        "UNDER_SCORE",
        "DOT.TED",
        "ÜMLAUT",
        "ﬁ",  # upper-cases to the ASCII "FI"
        "ǆ",  # upper-cases to the ASCII-looking "Ǆ"
        "KEY\x00WORD",
        "SIZE=100",
        "\x1b[31mRED",
    ],
)
def test_G6_invalid_keyword_lines_are_skipped(junk: str) -> None:
    ext = parse_ehlo(["mx", junk, "PIPELINING"])
    assert ext.keywords == (("PIPELINING", ()),)
    assert ext.pipelining


def test_G6_extra_spaces_between_words_are_tolerated() -> None:
    ext = parse_ehlo(["mx", "  AUTH   PLAIN  LOGIN ", "SIZE\t2000"])
    assert ext.params("AUTH") == ("PLAIN", "LOGIN")
    assert ext.size == 2000


def test_G6_duplicate_keyword_first_wins() -> None:
    ext = parse_ehlo(["mx", "SIZE 100", "PIPELINING", "size 200", "Pipelining", "AUTH X", "AUTH Y"])
    assert ext.keywords == (("SIZE", ("100",)), ("PIPELINING", ()), ("AUTH", ("X",)))
    assert ext.size == 100
    assert ext.auth == frozenset({"X"})


@pytest.mark.parametrize(
    ("line", "size"),
    [
        ("SIZE 1000", 1000),
        ("SIZE 0", 0),
        ("SIZE", 0),
        ("SIZE abc", 0),
        ("SIZE -5", 0),
        ("SIZE 1e6", 0),
        ("SIZE ²³", 0),
        ("SIZE 99999999999999999999", 99999999999999999999),
        ("SIZE 999999999999999999999", 0),
        ("SIZE " + "9" * 5000, 0),  # int() would refuse this many digits
        ("SIZE 1000 extra", 1000),
    ],
)
def test_size_limit(line: str, size: int) -> None:
    ext = parse_ehlo(["mx", line])
    assert ext.size == size
    assert "SIZE" in ext


def test_size_absent_is_none() -> None:
    assert parse_ehlo(["mx", "PIPELINING"]).size is None


def test_auth_old_form_is_merged() -> None:
    ext = parse_ehlo(["mx", "AUTH PLAIN", "auth=login cram-md5", "AUTH=XOAUTH2"])
    assert ext.auth == frozenset({"PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2"})
    assert ext.keywords == (("AUTH", ("PLAIN",)),)


def test_auth_old_form_alone_gives_mechanisms_but_no_keyword() -> None:
    """``AUTH=`` is not a keyword by the grammar; use ``ext.auth`` to see if AUTH is offered."""
    ext = parse_ehlo(["mx", "AUTH=LOGIN PLAIN"])
    assert ext.auth == frozenset({"LOGIN", "PLAIN"})
    assert "AUTH" not in ext
    assert ext.keywords == ()


def test_auth_without_mechanisms() -> None:
    ext = parse_ehlo(["mx", "AUTH", "AUTH="])
    assert ext.auth == frozenset()
    assert "AUTH" in ext


def test_smtputf8_parameters_are_ignored() -> None:
    ext = parse_ehlo(["mx", "SMTPUTF8 whatever params"])
    assert ext.smtputf8
    assert ext.params("SMTPUTF8") == ()


def test_helo_session_has_no_extensions() -> None:
    ext = Extensions()
    assert not ext.esmtp
    assert ext.keywords == ()
    assert ext.size is None
    assert ext.auth == frozenset()
    assert "PIPELINING" not in ext
    assert ext.params("PIPELINING") is None


def test_ehlo_with_only_a_domain() -> None:
    ext = parse_ehlo(["mx.example.net"])
    assert ext == Extensions(esmtp=True, server_name="mx.example.net")


def test_contains_rejects_non_strings() -> None:
    ext = parse_ehlo(POSTFIX_EHLO)
    assert 8 not in ext
    assert b"PIPELINING" not in ext
    assert None not in ext


def test_params_of_missing_keyword_is_none() -> None:
    assert parse_ehlo(POSTFIX_EHLO).params("REQUIRETLS") is None


def test_extensions_are_immutable_and_hashable() -> None:
    ext = parse_ehlo(POSTFIX_EHLO)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ext.pipelining = False  # type: ignore[misc]
    assert hash(ext) == hash(parse_ehlo(list(POSTFIX_EHLO)))
    assert ext == parse_ehlo(list(POSTFIX_EHLO))


def test_negative_size_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="size"):
        Extensions(size=-1)


def test_empty_reply_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="at least one line"):
        parse_ehlo([])


def test_giant_ehlo_list_is_parsed_in_one_pass() -> None:
    """A hostile server may send thousands of lines; each is handled once (dict, no rescans)."""
    names = [f"X-K{i}" for i in range(20000)]
    texts = ["mx", *names, *(name.lower() + " dup" for name in names), "PIPELINING"]
    ext = parse_ehlo(texts)
    assert len(ext.keywords) == 20001
    assert ext.keywords[0] == ("X-K0", ())
    assert ext.keywords[-1] == ("PIPELINING", ())
    assert ext.pipelining


keyword_chars = string.ascii_letters + string.digits + "-"


@given(texts=st.lists(st.text(max_size=30), min_size=1, max_size=15))
def test_G6_arbitrary_lines_never_raise(texts: list[str]) -> None:
    ext = parse_ehlo(texts)
    names = [name for name, _ in ext.keywords]
    assert len(names) == len(set(names))
    for name in names:
        assert name == name.upper()
        assert name[0].isascii()
        assert name[0].isalnum()
        assert all(c in keyword_chars for c in name)
    assert "" not in ext.auth


@given(
    keywords=st.lists(
        st.tuples(
            st.text(alphabet=keyword_chars, min_size=1, max_size=12).filter(
                lambda k: k[0] != "-" and not k.upper().startswith("AUTH")
            ),
            st.lists(st.text(alphabet=string.ascii_letters, min_size=1, max_size=5), max_size=3),
        ),
        max_size=10,
    )
)
def test_G6_valid_keywords_round_trip(keywords: list[tuple[str, list[str]]]) -> None:
    texts = ["mx.example.net", *(" ".join([k, *params]) for k, params in keywords)]
    ext = parse_ehlo(texts)
    expected: dict[str, tuple[str, ...]] = {}
    for k, params in keywords:
        upper = k.upper()
        expected.setdefault(upper, () if upper == "SMTPUTF8" else tuple(params))
    assert ext.keywords == tuple(expected.items())
    for k, _ in keywords:
        assert k in ext
        assert k.lower() in ext
