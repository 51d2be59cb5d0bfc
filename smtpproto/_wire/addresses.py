"""Validate and format the addresses and domains that go into SMTP commands.

Everything here is a pure function on ``str``.  The command events call these from their
constructors, so bad input raises ``ValueError`` before any byte of a command exists (checklist S1).

Grammar: RFC 5321 §4.1.2 (Mailbox, Dot-string, Quoted-string), §4.1.3 (address literals) and the
RFC 6531 §3.3 extensions (UTF-8 in atext, qtext and domain labels).  Non-ASCII is allowed here;
whether the server offers SMTPUTF8 is the protocol machine's business (see ``needs_smtputf8``).

Decisions beyond the RFC text:

- U-labels are checked with Python's built-in ``idna`` codec, which implements IDNA 2003.  A
  non-ASCII label that IDNA 2003 maps to plain ASCII (``straße`` -> ``strasse``, full-width letters)
  is refused: IDNA 2008 would name a *different* domain, so we do not guess.
- A name whose last label is all digits (``user@192.0.2.1``) is refused: it is almost certainly an
  IP address missing its brackets (no top-level domain is numeric, RFC 3696 §2).
- IPv4 literals go through ``ipaddress``, which refuses leading zeros (``[010.0.0.1]``) because
  their meaning (octal or decimal) is ambiguous.
- In a general address literal ``[tag:content]`` we refuse ``<`` and ``>`` although the ABNF allows
  them: no such tag is registered, and they would end the path early for a naive server parser.
- An empty quoted local part (``""@example.org``) is refused like an empty one.
- Length limits (C9) are counted in octets of the UTF-8 form as it is sent: the local part as
  quoted, the domain without its trailing dot (and its A-label form must fit too).
"""

from __future__ import annotations

import functools
import ipaddress
import re

__all__ = [
    "MAX_DOMAIN_OCTETS",
    "MAX_LOCAL_PART_OCTETS",
    "MAX_PATH_OCTETS",
    "check_text_argument",
    "ehlo_domain",
    "format_domain",
    "format_mailbox",
    "is_postmaster",
    "needs_smtputf8",
    "rcpt_path",
]

# RFC 5321 §4.5.3.1.1-.3 (C9).  The path limit includes the angle brackets.
MAX_LOCAL_PART_OCTETS = 64
MAX_DOMAIN_OCTETS = 255
MAX_PATH_OCTETS = 256

# C0 controls, DEL, C1 controls (CR/LF/NUL would inject commands, S1) and lone surrogates (they
# have no UTF-8 form, so they could never be sent).
_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")

# atext (RFC 5321 §4.1.2, which defers to RFC 5322) plus UTF8-non-ascii (RFC 6531 §3.3).
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010ffff]"
_DOT_STRING = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*")

# A quoted local part at the start of an address, up to and including its "@": qtextSMTP (which
# RFC 6531 extends with non-ASCII) or a quoted-pairSMTP (backslash + printable ASCII).
_QUOTED_LOCAL = re.compile(r'"((?:[ !#-\[\]-~\u0080-\U0010ffff]|\\[ -~])*)"@')
_QUOTED_PAIR = re.compile(r"\\(.)")
_NEEDS_ESCAPE = re.compile(r'(["\\])')

# sub-domain = Let-dig [Ldh-str], at most 63 octets (RFC 1035 §2.3.4).
_LDH_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_NUMERIC_LABEL = re.compile(r"[0-9]+")

# Address literals, RFC 5321 §4.1.3 (C21).  The IPv6 text is checked by ``ipaddress``; this only
# keeps out what ``ipaddress`` would accept but the RFC does not (a "%zone" suffix).
_IPV6_CHARS = re.compile(r"[0-9A-Fa-f:.]+")
# General-address-literal = Standardized-tag ":" 1*dcontent, dcontent minus "<" and ">".
_GENERAL_LITERAL = re.compile(r"[A-Za-z0-9-]*[A-Za-z0-9]:[!-;=?-Z^-~]+")
# "::" stands for at least two groups, so at most 6 others may be written (an IPv4 tail is 2).
_MAX_GROUPS_WITH_GAP = 6


def needs_smtputf8(text: str) -> bool:
    """True when ``text`` has a non-ASCII character, so sending it needs SMTPUTF8 (C8)."""
    return not text.isascii()


def is_postmaster(address: str) -> bool:
    """True for the domain-less ``Postmaster`` that RCPT TO always accepts, in any case (C2)."""
    return address.isascii() and address.lower() == "postmaster"


def rcpt_path(address: str) -> str:
    """What goes between ``<`` and ``>`` in RCPT TO: ``Postmaster`` as given, else the checked
    mailbox (:func:`format_mailbox`)."""
    return address if is_postmaster(address) else format_mailbox(address)


def check_text_argument(value: str, what: str) -> str:
    """Return ``value`` if it can go into a command as free text (VRFY and the like).

    Refuses the empty string and any control character (S1); ``what`` names the value in the error.
    """
    if not value:
        raise ValueError(f"{what} must not be empty")
    _reject_forbidden(value, what)
    return value


# A message's addresses are checked when it is made, then formatted for MAIL and RCPT: worth
# 28 % of bench_clients C and 13 % of A (blocking adapter; 36 % and 23 % of the client's own CPU
# in bench_session), 2026-12-02.
@functools.lru_cache(maxsize=4096)
def format_mailbox(address: str) -> str:
    """Return ``address`` (``local@domain``) as it goes between ``<`` and ``>`` in MAIL/RCPT.

    The local part may be a dot-string or a quoted string; it is emitted with the least quoting
    possible and its case is kept (C1).  Raises ``ValueError`` on control characters (S1), source
    routes (C20), over-long parts (C9) and anything else RFC 5321 §4.1.2 does not allow.  The
    null path ``<>`` and the domain-less ``Postmaster`` are the caller's to handle.
    """
    _reject_forbidden(address, "address")
    content, domain_text = _split_mailbox(address)
    # An unquoted local part was checked to be a dot-string; a quoted one is unquoted if it can be.
    dot_string = not address.startswith('"') or _DOT_STRING.fullmatch(content)
    local = content if dot_string else _quote(content)
    _check_octets(local, MAX_LOCAL_PART_OCTETS, "local part", address)
    mailbox = f"{local}@{format_domain(domain_text)}"
    _check_octets(f"<{mailbox}>", MAX_PATH_OCTETS, "path", address)
    return mailbox


def format_domain(domain: str) -> str:
    """Return ``domain`` (a host name or an address literal) validated, minus a trailing dot.

    U-labels are allowed and returned unchanged (see ``ehlo_domain`` for the ASCII form).
    """
    return _parse_domain(domain)[0]


def ehlo_domain(domain: str) -> str:
    """Return the EHLO/HELO argument for ``domain``: validated and ASCII, U-labels as A-labels.

    The EHLO argument is always ASCII, even with SMTPUTF8 (RFC 6531 §3.7.1; G5).
    """
    return _parse_domain(domain)[1]


def _reject_forbidden(text: str, what: str) -> None:
    match = _FORBIDDEN.search(text)
    if match:
        raise ValueError(
            f"{what} {text!r} contains the forbidden character U+{ord(match[0]):04X}: control "
            "characters could inject SMTP commands (RFC 5321 §4.1.2)"
        )


def _check_octets(text: str, limit: int, what: str, whole: str) -> None:
    size = len(text.encode("utf-8"))
    if size > limit:
        raise ValueError(
            f"{what} of {whole!r} is {size} octets; RFC 5321 §4.5.3.1 allows at most {limit}"
        )


def _split_mailbox(address: str) -> tuple[str, str]:
    """Split ``address`` into its local part (unquoted, unescaped) and its domain text."""
    if address.startswith("@") and ":" in address:
        raise ValueError(
            f"source routes are not supported: {address!r}; give just the final mailbox "
            "(RFC 5321 §4.1.1.3 and Appendix C)"
        )
    quoted = _QUOTED_LOCAL.match(address)
    if quoted:
        content = _QUOTED_PAIR.sub(r"\1", quoted[1])
        domain_text = address[quoted.end() :]
    elif address.startswith('"'):
        raise ValueError(
            f'malformed quoted local part in {address!r}: expected "..."@domain, with only '
            '\\" and \\\\ (or another backslash + printable ASCII) escaped inside'
        )
    else:
        content, at, domain_text = address.partition("@")
        if not at:
            raise ValueError(f"address {address!r} has no '@domain'")
        if content and not _DOT_STRING.fullmatch(content):
            raise ValueError(
                f"local part {content!r} of {address!r} is not a dot-string; write it as a quoted "
                'string ("...") if it really contains these characters'
            )
    if not content:
        raise ValueError(f"address {address!r} has an empty local part")
    return content, domain_text


def _quote(content: str) -> str:
    return '"' + _NEEDS_ESCAPE.sub(r"\\\1", content) + '"'


# A message's recipients mostly share a few domains: worth 22 % of bench_clients C (blocking
# adapter; 28 % of the client's own CPU per recipient in bench_session C), 2026-12-02.
@functools.lru_cache(maxsize=1024)
def _parse_domain(domain: str) -> tuple[str, str]:
    """Validate ``domain``; return it (minus a trailing dot) and its ASCII (A-label) form."""
    _reject_forbidden(domain, "domain")
    if domain.startswith("["):
        _check_address_literal(domain)
        name = ascii_name = domain  # the literal grammars are pure ASCII
    else:
        name = domain.removesuffix(".")
        if not name:
            raise ValueError(f"domain {domain!r} is empty")
        ascii_name = ".".join(_label_to_ascii(label, domain) for label in name.split("."))
        if _NUMERIC_LABEL.fullmatch(ascii_name.rpartition(".")[2]):
            raise ValueError(
                f"domain {domain!r} ends in a numeric label; write an IP address as a literal, "
                "e.g. [192.0.2.1] (RFC 5321 §4.1.3)"
            )
    # C9 counts the octets sent (UTF-8); DNS needs the A-label form to fit as well.
    for form in (name, ascii_name):
        _check_octets(form, MAX_DOMAIN_OCTETS, "domain", domain)
    return name, ascii_name


def _label_to_ascii(label: str, domain: str) -> str:
    """Return the ASCII form of one domain label, raising ``ValueError`` if it is invalid."""
    ascii_label = label
    if not label.isascii():
        try:
            ascii_label = label.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise ValueError(f"domain {domain!r} has an invalid label {label!r}: {exc}") from None
        if not ascii_label.startswith("xn--"):
            raise ValueError(
                f"domain {domain!r}: IDNA 2003 maps the label {label!r} to the ASCII "
                f"{ascii_label!r}, which IDNA 2008 may not; write the intended form"
            )
    if not _LDH_LABEL.fullmatch(ascii_label) or label.startswith("-") or label.endswith("-"):
        raise ValueError(
            f"domain {domain!r} has an invalid label {label!r}: labels are 1-63 letters, digits "
            "or hyphens and neither start nor end with a hyphen (RFC 5321 §4.1.2)"
        )
    return ascii_label


def _check_address_literal(literal: str) -> None:
    """Validate ``[d.d.d.d]``, ``[IPv6:...]`` or ``[tag:content]`` (RFC 5321 §4.1.3, C21)."""
    if not literal.endswith("]"):
        raise ValueError(f"address literal {literal!r} does not end with ']'")
    body = literal[1:-1]
    tag, colon, address = body.partition(":")
    if not colon:
        try:
            ipaddress.IPv4Address(body)
        except ValueError as exc:
            raise ValueError(f"invalid IPv4 address literal {literal!r}: {exc}") from None
    elif tag.lower() == "ipv6":  # ABNF strings are case-insensitive
        _check_ipv6(address, literal)
    elif not _GENERAL_LITERAL.fullmatch(body):
        raise ValueError(
            f"invalid address literal {literal!r}: expected [d.d.d.d], [IPv6:...] or "
            "[tag:content] with a letters/digits/hyphen tag and printable content"
        )


def _check_ipv6(address: str, literal: str) -> None:
    if not _IPV6_CHARS.fullmatch(address):
        raise ValueError(
            f"invalid IPv6 address literal {literal!r}: only hex digits, ':' and '.' may appear"
        )
    try:
        ipaddress.IPv6Address(address)
    except ValueError as exc:
        raise ValueError(f"invalid IPv6 address literal {literal!r}: {exc}") from None
    written_groups = sum(2 if "." in group else 1 for group in address.split(":") if group)
    if "::" in address and written_groups > _MAX_GROUPS_WITH_GAP:
        raise ValueError(
            f"invalid IPv6 address literal {literal!r}: '::' must stand for at least two "
            "groups of zeros (RFC 5321 §4.1.3)"
        )
