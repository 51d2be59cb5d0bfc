"""The command line's own check of the header fields it writes (RFC 5322), the same on every
Python version: the email package's parser refuses different things on 3.12 and 3.13."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # mypy knows adapters/ as "adapters" (package-dir mapping)
    from cli.common import UsageError
    from cli.headers import Syntax, addresses, check_field_name, check_text
    from cli.message import envelope_address, parse_header
else:
    from smtpproto.cli.common import UsageError
    from smtpproto.cli.headers import Syntax, addresses, check_field_name, check_text
    from smtpproto.cli.message import envelope_address, parse_header


@pytest.mark.parametrize("name", ["X-Note", "Cc", "x_y.z!#$%&'*+-/=?^`{|}~", "In-Reply-To"])
def test_a_field_name_is_printable_ascii_without_a_colon(name: str) -> None:
    check_field_name(name)


@pytest.mark.parametrize("name", ["X Note", "X\tNote", "Ä-Note", "X:Note", "X\x7fNote", ""])
def test_other_field_names_are_refused(name: str) -> None:
    with pytest.raises(UsageError, match=r"RFC 5322 §2\.2"):
        check_field_name(name)


VALID_LISTS = {
    "a@x.test": ["a@x.test"],
    "Ann <a@x.test>, b@x.test": ["a@x.test", "b@x.test"],
    '"Ann, B." <a@x.test>': ["a@x.test"],
    "J. Smith <j@x.test>": ["j@x.test"],  # obs-phrase: accepted on purpose
    "a@x.test (Ann (the first))": ["a@x.test"],
    "a @ x.test": ["a@x.test"],  # CFWS around the dot-atoms
    '"a b"@x.test': ['"a b"@x.test'],
    "a@[192.0.2.1]": ["a@[192.0.2.1]"],
    "José <josé@exämple.test>": ["josé@exämple.test"],  # RFC 6532
    "team: a@x.test, Ann <b@x.test>;": ["a@x.test", "b@x.test"],
    "undisclosed-recipients:;": [],
}


@pytest.mark.parametrize("value", VALID_LISTS)
def test_address_lists(value: str) -> None:
    assert addresses("Cc", value, Syntax.ADDRESS_LIST) == VALID_LISTS[value]


INVALID_LISTS = {
    "a@x.test, <": "it ends too early",  # 3.11/3.12: IndexError; 3.13: accepted with a defect
    "Ann <a@x.test": "it ends too early",
    "": "it ends too early",
    "(just a comment)": "it ends too early",
    "a@": "it ends too early",
    "alice": "no '@domain' after the local part",
    "a@x.test,": "it ends too early",
    "a@x.test, , b@x.test": "an address missing at ', b@x.test'",
    "a b c": "unexpected text at 'b c'",
    "a..b@x.test": "unexpected text at '.b@x.test'",
    "a. b@x.test": "unexpected text at 'b@x.test'",
    ".a@x.test": "unexpected text at '.a@x.test'",
    "a@x.test.": "a dot at the end of a dot-atom at '.'",
    "a@x.test>": "unexpected text at '>'",
    "a@x.test \\": "unexpected text at '\\\\'",
    "<@route.test:a@x.test>": "a source route",
    '"a@x.test': "a quoted string without its end",
    "a@[192.0.2.1": "a domain literal without its end",
    "(a@x.test": "a comment without its end",
    "team: a@x.test": "it ends too early",
}


@pytest.mark.parametrize("value", INVALID_LISTS)
def test_what_the_grammar_refuses(value: str) -> None:
    with pytest.raises(UsageError) as caught:
        addresses("the Cc header", value, Syntax.ADDRESS_LIST)
    message = str(caught.value)
    assert message.startswith("the Cc header is not a list of addresses (RFC 5322 §3.4): ")
    assert INVALID_LISTS[value] in message


def test_a_mailbox_list_has_no_groups() -> None:
    assert addresses("From", "a@x.test, b@x.test", Syntax.MAILBOX_LIST) == ["a@x.test", "b@x.test"]
    with pytest.raises(UsageError, match="list of mailboxes"):
        addresses("From", "team: a@x.test;", Syntax.MAILBOX_LIST)


@pytest.mark.parametrize(
    ("text", "address"),
    [("a@x.test", "a@x.test"), ("Ann <a@x.test>", "a@x.test"), ('"a b"@x.test', '"a b"@x.test')],
)
def test_the_envelope_takes_the_one_mailbox(text: str, address: str) -> None:
    assert envelope_address("--to", text) == address


@pytest.mark.parametrize("text", ["a@x.test, c@x.test", "b@x.test <", "<a@x.test> junk", "alice"])
def test_the_envelope_refuses_anything_but_one_mailbox(text: str) -> None:
    """3.11 and 3.12's parseaddr took the first address of a list, 3.13's refuses it: both
    are now refused, so no To: recipient is left out of the envelope."""
    with pytest.raises(UsageError, match=r"^--to '.*' is not a mailbox \(RFC 5322 §3\.4\)"):
        envelope_address("--to", text)


def test_unparsable_address_header_is_refused() -> None:
    with pytest.raises(UsageError, match=r"^the Cc header is not a list of addresses"):
        parse_header("Cc: a@x.test, <")
    assert parse_header("Cc: Ann <a@x.test>") == ("Cc", "Ann <a@x.test>")
    assert parse_header("X-Note: a < b") == ("X-Note", "a < b")  # unstructured: any text


@pytest.mark.parametrize(
    ("value", "problem"),
    [("a\r\nBcc: v@x.test", "line break or NUL"), ("a\0", "line break or NUL"),
     ("a\x1b[31m", "control character U+001B"), ("a\x7f", "control character U+007F")],
)  # fmt: skip
def test_control_characters_are_refused_in_any_value(value: str, problem: str) -> None:
    with pytest.raises(UsageError, match=re.escape(problem)):
        check_text("the X-Note header", value)
    assert check_text("the X-Note header", "a\tb, ü") == "a\tb, ü"
