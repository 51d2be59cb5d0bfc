"""Tests for smtpproto._wire.addresses: mailbox, domain and free-text validation (C1, C2, C8, C9,
C20, C21, G5, S1)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpproto._wire.addresses import (
    MAX_DOMAIN_OCTETS,
    MAX_LOCAL_PART_OCTETS,
    MAX_PATH_OCTETS,
    check_text_argument,
    ehlo_domain,
    format_domain,
    format_mailbox,
    is_postmaster,
    needs_smtputf8,
)

if TYPE_CHECKING:  # mypy knows testing/ as "testing" (package-dir mapping)
    from testing import strategies as kit
else:
    from smtpproto.testing import strategies as kit

CONTROL_CHARACTERS = [chr(code) for code in [*range(0x20), 0x7F]]
CONTROL_IDS = [f"U+{ord(char):04X}" for char in CONTROL_CHARACTERS]


def domain_of_octets(size: int) -> str:
    """An ASCII domain of exactly ``size`` octets, made of labels of at most 63 letters."""
    labels = []
    while size > 63:
        labels.append("a" * 63)
        size -= 64  # the label and the dot after it
    if size == 0:  # no room left for a last label: take one octet from the previous one
        labels[-1] = "a" * 62
        size = 1
    labels.append("b" * size)
    return ".".join(labels)


def unquote_local(local: str) -> str:
    """The content of a local part as emitted (test-side inverse of the quoting)."""
    if local.startswith('"'):
        return re.sub(r"\\(.)", r"\1", local[1:-1])
    return local


def split_emitted(mailbox: str) -> tuple[str, str]:
    """Split an emitted mailbox at the "@" that follows the local part."""
    if mailbox.startswith('"'):
        end = re.match(r'"(?:[^"\\]|\\.)*"', mailbox)
        assert end is not None
        return mailbox[: end.end()], mailbox[end.end() + 1 :]
    local, _, domain = mailbox.partition("@")
    return local, domain


# --- format_mailbox: valid addresses -------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        # dot-strings go out as they are, case kept (C1)
        ("user@example.org", "user@example.org"),
        ("John.Smith@Example.ORG", "John.Smith@Example.ORG"),
        ("a.b.c@x.example", "a.b.c@x.example"),
        ("!#$%&'*+-/=?^_`{|}~@example.org", "!#$%&'*+-/=?^_`{|}~@example.org"),
        ("user+tag@example.org", "user+tag@example.org"),
        ("user@localhost", "user@localhost"),
        ("user@example.org.", "user@example.org"),  # trailing dot of an FQDN dropped
        ("u@a-b.c-d.example", "u@a-b.c-d.example"),
        ("u@3com.example", "u@3com.example"),
        # quoted strings that need their quotes keep them
        ('"john smith"@example.org', '"john smith"@example.org'),
        ('"a..b"@example.org', '"a..b"@example.org'),
        ('".a"@example.org', '".a"@example.org'),
        ('"a."@example.org', '"a."@example.org'),
        ('"a@b"@example.org', '"a@b"@example.org'),
        ('"<a>"@example.org', '"<a>"@example.org'),
        ('"a,b"@example.org', '"a,b"@example.org'),
        ('" "@example.org', '" "@example.org'),
        # escapes: only " and \ stay escaped
        ('"a\\"b"@example.org', '"a\\"b"@example.org'),
        ('"a\\\\b"@example.org', '"a\\\\b"@example.org'),
        ('"a\\ b"@example.org', '"a b"@example.org'),
        # quoted strings that do not need quotes lose them: least quoting (C1)
        ('"user"@example.org', "user@example.org"),
        ('"First.Last"@example.org', "First.Last@example.org"),
        ('"a\\b"@example.org', "ab@example.org"),
        # address literals (C21)
        ("u@[192.0.2.1]", "u@[192.0.2.1]"),
        ("u@[0.0.0.0]", "u@[0.0.0.0]"),
        ("u@[255.255.255.255]", "u@[255.255.255.255]"),
        ("u@[IPv6:2001:db8:0:0:0:0:0:1]", "u@[IPv6:2001:db8:0:0:0:0:0:1]"),
        ("u@[IPv6:2001:db8::1]", "u@[IPv6:2001:db8::1]"),
        ("u@[IPv6:::1]", "u@[IPv6:::1]"),
        ("u@[IPv6:::]", "u@[IPv6:::]"),
        ("u@[IPv6:::ffff:192.0.2.1]", "u@[IPv6:::ffff:192.0.2.1]"),
        ("u@[IPv6:0:0:0:0:0:ffff:192.0.2.1]", "u@[IPv6:0:0:0:0:0:ffff:192.0.2.1]"),
        ("u@[ipv6:2001:DB8::1]", "u@[ipv6:2001:DB8::1]"),
        ("u@[x-tag:some.content@here]", "u@[x-tag:some.content@here]"),
        # internationalised (allowed here; SMTPUTF8 is decided by the machine, C8)
        ("用户@例子.广告", "用户@例子.广告"),
        ("Jörg@Bücher.example", "Jörg@Bücher.example"),
        ('"ü ö"@example.org', '"ü ö"@example.org'),
        ("user@xn--bcher-kva.example", "user@xn--bcher-kva.example"),
    ],
)
def test_format_mailbox_valid_c1_c21(address: str, expected: str) -> None:
    """C1 least quoting and kept case; C21 address literals; U-labels accepted."""
    assert format_mailbox(address) == expected


# --- format_mailbox: rejections ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("", "no '@domain'"),
        ("Postmaster", "no '@domain'"),  # C2: the caller handles bare Postmaster
        ("user", "no '@domain'"),
        ("@example.org", "empty local part"),
        ('""@example.org', "empty local part"),
        ("user@", "is empty"),
        ("user@.", "is empty"),
        ("a..b@example.org", "not a dot-string"),
        (".a@example.org", "not a dot-string"),
        ("a.@example.org", "not a dot-string"),
        ("john smith@example.org", "not a dot-string"),
        ("a@b@example.org", "invalid label"),
        ('a"b@example.org', "not a dot-string"),
        ("<user@example.org>", "not a dot-string"),
        ('"unterminated@example.org', "malformed quoted local part"),
        ('"a"b@example.org', "malformed quoted local part"),
        ('"a"', "malformed quoted local part"),
        ('"a\\"@example.org', "malformed quoted local part"),
        ('"a\\ü"@example.org', "malformed quoted local part"),
        ("user@exa_mple.org", "invalid label"),
        ("user@-example.org", "invalid label"),
        ("user@example-.org", "invalid label"),
        ("user@example..org", "invalid label"),
        ("user@" + "a" * 64 + ".org", "invalid label"),
        ("user@example.org..", "invalid label"),
        ("user@192.0.2.1", "numeric label"),
        ("user@example.123", "numeric label"),
    ],
)
def test_format_mailbox_rejects(address: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        format_mailbox(address)


@pytest.mark.parametrize(
    "address",
    ["@a.example,@b.example:user@d.example", "@a.example:user@d.example", "@:u@d.example"],
)
def test_source_route_rejected_c20(address: str) -> None:
    """C20: we never generate source routes, so one given to us is refused, not passed on."""
    with pytest.raises(ValueError, match="source routes are not supported"):
        format_mailbox(address)


# --- S1: control characters ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "user@example.org>\r\nRCPT TO:<victim@example.net",
        "user\r\n@example.org",
        "user@example.org\r\n",
        "user@exa\nmple.org",
        "us\rer@example.org",
        "user\x00@example.org",
        "user@example.org\x00",
        '"a\r\nb"@example.org',
        '"a\x00b"@example.org',
        "user@[IPv6:::1\r\n]",
    ],
)
def test_s1_cr_lf_nul_in_address_rejected(address: str) -> None:
    """S1: CR, LF and NUL never reach a command line, wherever they are."""
    with pytest.raises(ValueError, match="forbidden character"):
        format_mailbox(address)


@pytest.mark.parametrize("char", CONTROL_CHARACTERS, ids=CONTROL_IDS)
@pytest.mark.parametrize(
    "template", ["a{}b@example.org", '"a{}b"@example.org', "ab@exa{}mple.org", "{}@example.org"]
)
def test_s1_every_control_character_rejected_in_mailbox(char: str, template: str) -> None:
    """S1: each of 0x00-0x1f and 0x7f, in a bare or quoted local part or the domain."""
    with pytest.raises(ValueError, match=f"forbidden character U\\+{ord(char):04X}"):
        format_mailbox(template.format(char))


@pytest.mark.parametrize("char", CONTROL_CHARACTERS, ids=CONTROL_IDS)
def test_s1_every_control_character_rejected_in_domain(char: str) -> None:
    """S1: the EHLO name and domains refuse every control character."""
    for function in (format_domain, ehlo_domain):
        with pytest.raises(ValueError, match="forbidden character"):
            function(f"mail{char}.example.org")


@pytest.mark.parametrize("char", [chr(code) for code in (0x80, 0x85, 0x9F, 0xD800, 0xDFFF)])
def test_s1_c1_controls_and_lone_surrogates_rejected(char: str) -> None:
    """S1: C1 controls (NEL among them) and unencodable surrogates are refused too."""
    with pytest.raises(ValueError, match="forbidden character"):
        format_mailbox(f"a{char}b@example.org")
    with pytest.raises(ValueError, match="forbidden character"):
        format_domain(f"a{char}b.example")


# --- C9: length limits ---------------------------------------------------------------------------


def test_limits_are_the_rfc_values_c9() -> None:
    assert (MAX_LOCAL_PART_OCTETS, MAX_DOMAIN_OCTETS, MAX_PATH_OCTETS) == (64, 255, 256)


def test_local_part_length_limit_c9() -> None:
    """C9: 64 octets pass, 65 do not."""
    assert format_mailbox("a" * 64 + "@example.org") == "a" * 64 + "@example.org"
    with pytest.raises(ValueError, match=r"local part .* is 65 octets"):
        format_mailbox("a" * 65 + "@example.org")


def test_local_part_limit_counts_utf8_octets_c9() -> None:
    """C9: the limit is in octets: 32 two-octet characters fit, one more ASCII does not."""
    assert format_mailbox("é" * 32 + "@example.org") == "é" * 32 + "@example.org"
    with pytest.raises(ValueError, match="is 65 octets"):
        format_mailbox("é" * 32 + "a@example.org")


def test_local_part_limit_counts_the_quotes_c9() -> None:
    """C9: a quoted local part is measured as sent, quotes and escapes included."""
    assert format_mailbox('"' + " " * 62 + '"@x.example') == '"' + " " * 62 + '"@x.example'
    with pytest.raises(ValueError, match="is 65 octets"):
        format_mailbox('"' + " " * 63 + '"@x.example')
    with pytest.raises(ValueError, match="is 65 octets"):
        format_mailbox('"' + " " * 61 + '\\""@x.example')


def test_domain_length_limit_c9() -> None:
    """C9: a 255-octet domain passes (with or without a trailing dot), 256 octets do not."""
    domain = domain_of_octets(255)
    assert format_domain(domain) == domain
    assert format_domain(domain + ".") == domain
    assert ehlo_domain(domain) == domain
    too_long = domain_of_octets(256)
    with pytest.raises(ValueError, match=r"domain .* is 256 octets"):
        format_domain(too_long)
    with pytest.raises(ValueError, match=r"domain .* is 256 octets"):
        ehlo_domain(too_long)


def test_domain_length_counts_utf8_octets_c9() -> None:
    """C9: U-labels are measured in UTF-8 octets, even when their A-label is shorter."""
    domain = ".".join(["😀" * 15] * 5) + ".example"
    assert len(domain.encode("idna")) <= MAX_DOMAIN_OCTETS < len(domain.encode("utf-8"))
    with pytest.raises(ValueError, match="octets"):
        format_domain(domain)


def test_domain_a_label_form_must_fit_too_c9() -> None:
    """C9: a U-label domain that fits in UTF-8 but whose A-label form is too long is refused."""
    domain = ".".join(["ü"] * 40) + ".example"
    assert len(domain.encode("utf-8")) <= MAX_DOMAIN_OCTETS < len(domain.encode("idna"))
    with pytest.raises(ValueError, match="octets"):
        format_domain(domain)


def test_path_length_limit_c9() -> None:
    """C9: the path with its angle brackets may be 256 octets, not 257."""
    local = "a" * 64
    fits = f"{local}@{domain_of_octets(MAX_PATH_OCTETS - 2 - 65)}"
    assert len(f"<{fits}>") == 256
    assert format_mailbox(fits) == fits
    over = f"{local}@{domain_of_octets(MAX_PATH_OCTETS - 2 - 64)}"
    with pytest.raises(ValueError, match=r"path .* is 257 octets"):
        format_mailbox(over)


def test_domain_of_octets_helper() -> None:
    for size in range(1, 300):
        assert len(domain_of_octets(size)) == size
        assert all(1 <= len(label) <= 63 for label in domain_of_octets(size).split("."))


# --- domains and address literals (G5, C21) ------------------------------------------------------


@pytest.mark.parametrize(
    ("domain", "formatted", "ehlo"),
    [
        ("mail.example.org", "mail.example.org", "mail.example.org"),
        ("Mail.Example.ORG", "Mail.Example.ORG", "Mail.Example.ORG"),
        ("mail.example.org.", "mail.example.org", "mail.example.org"),
        ("localhost", "localhost", "localhost"),
        ("a", "a", "a"),
        ("1a", "1a", "1a"),
        ("a" * 63 + ".example", "a" * 63 + ".example", "a" * 63 + ".example"),
        ("bücher.example", "bücher.example", "xn--bcher-kva.example"),
        ("Bücher.example", "Bücher.example", "xn--bcher-kva.example"),
        ("例子.测试", "例子.测试", "xn--fsqu00a.xn--0zwm56d"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("[192.0.2.1]", "[192.0.2.1]", "[192.0.2.1]"),
        ("[IPv6:2001:db8::1]", "[IPv6:2001:db8::1]", "[IPv6:2001:db8::1]"),
        ("[IPv6:::ffff:192.0.2.1]", "[IPv6:::ffff:192.0.2.1]", "[IPv6:::ffff:192.0.2.1]"),
        ("[IPv6:1:2:3:4:5:6:7:8]", "[IPv6:1:2:3:4:5:6:7:8]", "[IPv6:1:2:3:4:5:6:7:8]"),
        ("[IPv6:1:2:3:4:5:6::]", "[IPv6:1:2:3:4:5:6::]", "[IPv6:1:2:3:4:5:6::]"),
        ("[IPv6:1:2:3:4::1.2.3.4]", "[IPv6:1:2:3:4::1.2.3.4]", "[IPv6:1:2:3:4::1.2.3.4]"),
        ("[IPv6:1:2:3:4:5:6:1.2.3.4]", "[IPv6:1:2:3:4:5:6:1.2.3.4]", "[IPv6:1:2:3:4:5:6:1.2.3.4]"),
        ("[tag:!~]", "[tag:!~]", "[tag:!~]"),
        ("[-x:a:b]", "[-x:a:b]", "[-x:a:b]"),
    ],
)
def test_domains_and_ehlo_argument_g5_c21(domain: str, formatted: str, ehlo: str) -> None:
    """G5: the EHLO name is a domain or a literal, ASCII only (A-labels); C21 literals."""
    assert format_domain(domain) == formatted
    assert ehlo_domain(domain) == ehlo
    assert ehlo.isascii()


@pytest.mark.parametrize(
    ("domain", "message"),
    [
        ("", "is empty"),
        (".", "is empty"),
        ("..", "invalid label"),
        (".example.org", "invalid label"),
        ("a b.example", "invalid label"),
        ("under_score.example", "invalid label"),
        ("-a.example", "invalid label"),
        ("a-.example", "invalid label"),
        ("ü-.example", "invalid label"),  # hyphen rule applies to U-labels too
        ("-ü.example", "invalid label"),
        ("ü。b.example", "invalid label"),  # ideographic full stop is not our label separator
        ("a" * 64 + ".example", "invalid label"),
        ("ü" * 70 + ".example", "invalid label"),  # A-label over 63 octets
        ("\u3000.example", "maps the label"),  # nameprep turns it into a space
        ("straße.example", "maps the label"),  # IDNA 2003 vs 2008 differ: refuse
        ("ｅｘａｍｐｌｅ.org", "maps the label"),
        ("a\u0627\u0031.example", "invalid label"),  # bidi rule violation in nameprep
        ("192.0.2.1", "numeric label"),
        ("123", "numeric label"),
        ("example.org.123.", "numeric label"),
        ("[192.0.2.1", "does not end with ']'"),
        ("[]", "invalid IPv4"),
        ("[192.0.2]", "invalid IPv4"),
        ("[192.0.2.256]", "invalid IPv4"),
        ("[192.0.2.01]", "invalid IPv4"),
        ("[ 192.0.2.1]", "invalid IPv4"),
        ("[192.0.2.1.]", "invalid IPv4"),
        ("[١٩٢.0.2.1]", "invalid IPv4"),
        ("[IPv6:]", "only hex digits"),
        ("[IPv6:fe80::1%eth0]", "only hex digits"),
        ("[IPv6: ::1]", "only hex digits"),
        ("[IPv6:1::2::3]", "invalid IPv6"),
        ("[IPv6:1:2:3:4:5:6:7:8:9]", "invalid IPv6"),
        ("[IPv6:12345::]", "invalid IPv6"),
        ("[IPv6:192.0.2.1]", "invalid IPv6"),
        ("[IPv6:::ffff:192.0.2.256]", "invalid IPv6"),
        ("[IPv6:1:2:3:4:5:6:7::]", "at least two"),  # "::" for a single group
        ("[IPv6:::2:3:4:5:6:7:8]", "at least two"),
        ("[IPv6:1:2:3:4:5::1.2.3.4]", "at least two"),
        ("[tag:]", "invalid address literal"),
        ("[tag-:x]", "invalid address literal"),
        ("[:x]", "invalid address literal"),
        ("[t g:x]", "invalid address literal"),
        ("[tag:a b]", "invalid address literal"),
        ("[tag:a[b]", "invalid address literal"),
        ("[tag:a\\b]", "invalid address literal"),
        ("[tag:a>b]", "invalid address literal"),  # would end the path early
        ("[tag:<a]", "invalid address literal"),
        ("[tag:ü]", "invalid address literal"),
        ("[192.0.2.1].", "does not end with ']'"),
    ],
)
def test_invalid_domains_and_literals_g5_c21(domain: str, message: str) -> None:
    for function in (format_domain, ehlo_domain):
        with pytest.raises(ValueError, match=re.escape(message)):
            function(domain)


# --- small helpers: C2, C8, S1 -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("Postmaster", True),
        ("postmaster", True),
        ("POSTMASTER", True),
        ("PostMaster", True),
        ("postmaster@example.org", False),
        ("Postmaster ", False),
        ('"Postmaster"', False),
        ("poſtmaster", False),  # long s: not ASCII, even though it casefolds to "s"
        ("", False),
        ("post", False),
    ],
)
def test_is_postmaster_c2(address: str, expected: bool) -> None:
    """C2: RCPT TO:<Postmaster> without a domain, case-insensitively."""
    assert is_postmaster(address) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("user@example.org", False),
        ("", False),
        ("~\x7f", False),
        ("Jörg@example.org", True),
        ("user@例子.广告", True),
        ("\x80", True),
    ],
)
def test_needs_smtputf8_c8(text: str, expected: bool) -> None:
    """C8: any non-ASCII character in an address means SMTPUTF8 is needed."""
    assert needs_smtputf8(text) is expected


def test_check_text_argument_returns_value() -> None:
    assert check_text_argument("John Smith", "VRFY argument") == "John Smith"
    assert check_text_argument("Jörg", "VRFY argument") == "Jörg"


def test_check_text_argument_rejects_empty() -> None:
    with pytest.raises(ValueError, match="VRFY argument must not be empty"):
        check_text_argument("", "VRFY argument")


@pytest.mark.parametrize("char", CONTROL_CHARACTERS, ids=CONTROL_IDS)
def test_s1_check_text_argument_rejects_control_characters(char: str) -> None:
    """S1: VRFY and other free text refuse CR, LF, NUL and every other control character."""
    with pytest.raises(ValueError, match=r"VRFY argument .* forbidden character"):
        check_text_argument(f"john{char}smith", "VRFY argument")


# --- properties ----------------------------------------------------------------------------------

FORBIDDEN_OUTPUT = re.compile("[\x00-\x1f\x7f-\x9f]")
# Independent of the implementation's positive atext list: a dot-string atom is anything but the
# RFC 5322 specials and the ASCII space (control characters never get this far).
_ATOM_ORACLE = r'[^ "(),.:;<>@\[\\\]]+'
DOT_STRING_ORACLE = re.compile(rf"{_ATOM_ORACLE}(?:\.{_ATOM_ORACLE})*")

safe_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40
)
domains = kit.domains()


def quoted(content: str) -> str:
    return '"' + content.replace("\\", "\\\\").replace('"', '\\"') + '"'


def check_emitted(mailbox: str) -> None:
    """The properties every accepted mailbox has (S1, C1 idempotence, path delimiters)."""
    assert not FORBIDDEN_OUTPUT.search(mailbox)
    assert format_mailbox(mailbox) == mailbox
    local, domain = split_emitted(mailbox)
    if not local.startswith('"'):
        assert "<" not in local
        assert ">" not in local
    assert "<" not in domain
    assert ">" not in domain
    assert len(f"<{mailbox}>".encode()) <= MAX_PATH_OCTETS


@given(content=safe_text, domain=domains)
def test_property_any_local_part_round_trips_c1(content: str, domain: str) -> None:
    """C1: any text, quoted, comes back with the same content and case, quoted only if needed."""
    address = f"{quoted(content)}@{domain}"
    expected_local = content if DOT_STRING_ORACLE.fullmatch(content) else quoted(content)
    expected = f"{expected_local}@{domain.removesuffix('.')}"
    if (
        len(expected_local.encode()) > MAX_LOCAL_PART_OCTETS
        or len(f"<{expected}>".encode()) > MAX_PATH_OCTETS
    ):
        with pytest.raises(ValueError, match="octets"):
            format_mailbox(address)
        return
    mailbox = format_mailbox(address)
    assert mailbox == expected
    check_emitted(mailbox)
    local, _ = split_emitted(mailbox)
    assert unquote_local(local) == content


@given(address=st.text(max_size=60))
def test_property_arbitrary_input_s1(address: str) -> None:
    """S1: whatever the input, the result (if any) carries no control character."""
    try:
        mailbox = format_mailbox(address)
    except ValueError:
        return
    check_emitted(mailbox)


@given(
    address=st.sampled_from(["user@example.org", '"a b"@example.org', "ü@bücher.example"]),
    position=st.integers(min_value=0),
    char=st.sampled_from(CONTROL_CHARACTERS),
)
def test_property_inserted_control_character_always_rejected_s1(
    address: str, position: int, char: str
) -> None:
    """S1: a control character anywhere in a valid address makes it invalid."""
    position %= len(address) + 1
    with pytest.raises(ValueError, match="forbidden character"):
        format_mailbox(address[:position] + char + address[position:])
