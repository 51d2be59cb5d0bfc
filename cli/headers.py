"""The syntax of the header fields ``smtpproto send`` writes, checked against RFC 5322 itself.

The email package is lenient, and differently so from one Python version to the next: for
``Cc: a@x.test, <`` 3.12 raises ``IndexError`` and 3.13 records a defect and writes the field as
given.  The command line refuses what the grammar refuses, the same on every version:

- A field name is printable US-ASCII (33-126) except the colon (§2.2).
- The address fields (``ADDRESS_FIELDS``) hold a mailbox, a mailbox list or an address list
  (§3.4), with quoted strings, comments and domain literals (§3.2); UTF-8 is allowed where
  RFC 6532 §3.2 allows it.
- Obsolete syntax (§4), which a generator must not produce, is refused: empty list elements,
  source routes, space inside a dot-atom.  Except one: a dot in a display name (``J. Smith``,
  obs-phrase) is accepted, because people write it and every reader takes it.
- Any other field is checked as unstructured text (§3.2.5): no control character but HTAB.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from .common import UsageError

__all__ = ["ADDRESS_FIELDS", "Syntax", "addresses", "check_field_name", "check_text"]


class Syntax(Enum):
    """What an address field holds (RFC 5322 §3.4)."""

    MAILBOX = "a mailbox"
    MAILBOX_LIST = "a list of mailboxes"
    ADDRESS_LIST = "a list of addresses"


#: The address fields by lower-case name, and what each holds: §3.6.2 (originator), §3.6.3
#: (destination), §3.6.6 (resent).
ADDRESS_FIELDS = {
    "from": Syntax.MAILBOX_LIST,
    "sender": Syntax.MAILBOX,
    "reply-to": Syntax.ADDRESS_LIST,
    "to": Syntax.ADDRESS_LIST,
    "cc": Syntax.ADDRESS_LIST,
    "bcc": Syntax.ADDRESS_LIST,
    "resent-from": Syntax.MAILBOX_LIST,
    "resent-sender": Syntax.MAILBOX,
    "resent-to": Syntax.ADDRESS_LIST,
    "resent-cc": Syntax.ADDRESS_LIST,
    "resent-bcc": Syntax.ADDRESS_LIST,
}

# §2.2: ftext.
_FIELD_NAME = re.compile(r"[!-9;-~]+")
# §3.2.5 unstructured text (and S1): no control character but HTAB.  DEL and C1 controls too.
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")
# UTF8-non-ascii (RFC 6532 §3.1), minus C1 controls and lone surrogates (no UTF-8 form).
_UTF8 = "\u00a0-\ud7ff\ue000-\U0010ffff"
# §3.2.3 atext; §3.2.4 quoted-string (qtext, quoted-pair, FWS); §3.4.1 domain-literal (dtext, FWS).
_ATOM = re.compile(rf"[A-Za-z0-9!#$%&'*+/=?^_`{{|}}~\-{_UTF8}]+")
_QUOTED = re.compile(rf'"(?:[\t !#-\[\]-~{_UTF8}]|\\[\t -~{_UTF8}])*"')
_LITERAL = re.compile(rf"\[[\t !-Z^-~{_UTF8}]*\]")
# §3.2.2 ctext and quoted-pair: what a comment holds besides nested comments.
_COMMENT_TEXT = re.compile(rf"(?:[\t !-'*-\[\]-~{_UTF8}]|\\[\t -~{_UTF8}])+")


class _Kind(Enum):
    """The tokens of an address field (§3.2): words, and the specials between them."""

    ATOM = "atom"
    QUOTED = "quoted string"
    LITERAL = "domain literal"
    LT, GT, COLON, SEMICOLON, AT, COMMA, DOT = "<", ">", ":", ";", "@", ",", "."
    END = "the end"


_SPECIALS = {kind.value: kind for kind in _Kind if len(kind.value) == 1}
_WORDS = ((_Kind.ATOM, _ATOM), (_Kind.QUOTED, _QUOTED), (_Kind.LITERAL, _LITERAL))


def check_field_name(name: str) -> None:
    """Refuse a field name that is not printable US-ASCII without a colon (§2.2)."""
    if not _FIELD_NAME.fullmatch(name):
        raise UsageError(
            f"the header name {name!r} is not printable ASCII without a colon (RFC 5322 §2.2)"
        )


def check_text(what: str, value: str) -> str:
    """Refuse control characters in a field's value; a CR, LF or NUL could inject headers (S1)."""
    if any(c in value for c in "\r\n\0"):
        raise UsageError(f"{what} contains a line break or NUL, which could inject headers")
    control = _CONTROL.search(value)
    if control:
        raise UsageError(f"{what} contains the control character U+{ord(control[0]):04X}")
    return value


def addresses(what: str, value: str, syntax: Syntax) -> list[str]:
    """The addr-specs (``local@domain``, a quoted local part kept quoted) in ``value``, checked
    to be ``syntax``.  A group contributes its members, possibly none."""
    check_text(what, value)
    try:
        return _Parser(value).read(syntax)
    except _SyntaxError as exc:
        rest = value[exc.offset :]
        problem = f"{exc.problem} at {rest!r}" if rest else exc.problem
        raise UsageError(f"{what} is not {syntax.value} (RFC 5322 §3.4): {problem}") from None


@dataclass(frozen=True)
class _Token:
    kind: _Kind
    text: str
    offset: int
    spaced: bool  # white space or a comment came before it


class _SyntaxError(Exception):
    """``problem`` at ``offset`` in the value."""

    def __init__(self, problem: str, offset: int) -> None:
        super().__init__(problem)
        self.problem = problem
        self.offset = offset


def _unexpected(token: _Token) -> _SyntaxError:
    return _SyntaxError(
        "it ends too early" if token.kind is _Kind.END else "unexpected text", token.offset
    )


def _tokens(text: str) -> list[_Token]:
    """``text`` as atoms, quoted strings, domain literals and specials; comments and white
    space (CFWS, §3.2.2) only mark the token after them as ``spaced``."""
    tokens: list[_Token] = []
    at, spaced = 0, False
    while at < len(text):
        char = text[at]
        if char in " \t":
            at, spaced = at + 1, True
            continue
        if char == "(":
            at, spaced = _skip_comment(text, at), True
            continue
        if char in _SPECIALS:
            kind, end = _SPECIALS[char], at + 1
        else:
            kind, end = _word_at(text, at)
        tokens.append(_Token(kind, text[at:end], at, spaced))
        at, spaced = end, False
    tokens.append(_Token(_Kind.END, "", len(text), spaced))
    return tokens


def _word_at(text: str, at: int) -> tuple[_Kind, int]:
    """The kind and end of the atom, quoted string or domain literal at ``at``."""
    for kind, pattern in _WORDS:
        match = pattern.match(text, at)
        if match:
            return kind, match.end()
    opened = {'"': "a quoted string", "[": "a domain literal"}.get(text[at])
    raise _SyntaxError(f"{opened} without its end" if opened else "unexpected text", at)


def _skip_comment(text: str, start: int) -> int:
    """The offset just after the (possibly nested) comment opened at ``start``."""
    depth, at = 0, start
    while at < len(text):
        if text[at] == "(":
            depth, at = depth + 1, at + 1
        elif text[at] == ")":
            depth, at = depth - 1, at + 1
            if depth == 0:
                return at
        elif match := _COMMENT_TEXT.match(text, at):
            at = match.end()
        else:
            raise _SyntaxError("unexpected text in a comment", at)
    raise _SyntaxError("a comment without its end", start)


class _Parser:
    """Recursive descent over the tokens of one field value (§3.4)."""

    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.at = 0

    def read(self, syntax: Syntax) -> list[str]:
        if syntax is Syntax.MAILBOX:
            found = self.address(groups=False)
        else:
            found = self.address(groups=syntax is Syntax.ADDRESS_LIST)
            while self.peek().kind is _Kind.COMMA:
                self.take(_Kind.COMMA)
                found += self.address(groups=syntax is Syntax.ADDRESS_LIST)
        self.take(_Kind.END)
        return found

    def peek(self) -> _Token:
        return self.tokens[self.at]

    def take(self, kind: _Kind) -> _Token:
        token = self.peek()
        if token.kind is not kind:
            raise _unexpected(token)
        self.at += 1
        return token

    def address(self, *, groups: bool) -> list[str]:
        """A mailbox (name-addr or addr-spec) or, if ``groups``, a group of mailboxes."""
        words = self.words()
        token = self.peek()
        if token.kind is _Kind.LT:  # [display-name] angle-addr
            if words:
                self.phrase(words)
            return [self.angle_addr()]
        if token.kind is _Kind.COLON and groups and words:  # display-name ":" [mailbox-list] ";"
            self.phrase(words)
            self.take(_Kind.COLON)
            members = [] if self.peek().kind is _Kind.SEMICOLON else self.mailbox_list()
            self.take(_Kind.SEMICOLON)
            return members
        return [self.addr_spec(words)]

    def mailbox_list(self) -> list[str]:
        found = self.address(groups=False)
        while self.peek().kind is _Kind.COMMA:
            self.take(_Kind.COMMA)
            found += self.address(groups=False)
        return found

    def angle_addr(self) -> str:
        self.take(_Kind.LT)
        if self.peek().kind is _Kind.AT:
            raise _SyntaxError("a source route (obsolete, RFC 5322 §4.4)", self.peek().offset)
        address = self.addr_spec(self.words())
        self.take(_Kind.GT)
        return address

    def words(self) -> list[_Token]:
        """The atoms, quoted strings and dots from here: a phrase or a local part."""
        start = self.at
        while self.peek().kind in (_Kind.ATOM, _Kind.QUOTED, _Kind.DOT):
            self.at += 1
        return self.tokens[start : self.at]

    def phrase(self, words: list[_Token]) -> None:
        """A display name: words, and dots after the first (obs-phrase, §4.1)."""
        if words[0].kind is _Kind.DOT:
            raise _unexpected(words[0])

    def addr_spec(self, local: list[_Token]) -> str:
        """``local`` as the local part (a dot-atom or one quoted string), "@", the domain."""
        if not local:
            token = self.peek()
            if token.kind in (_Kind.COMMA, _Kind.SEMICOLON, _Kind.GT):
                raise _SyntaxError("an address missing", token.offset)
            raise _unexpected(token)
        if not (len(local) == 1 and local[0].kind is _Kind.QUOTED):
            _dot_atom(local)
        if self.peek().kind is not _Kind.AT:
            raise _SyntaxError("no '@domain' after the local part", self.peek().offset)
        self.take(_Kind.AT)
        if self.peek().kind is _Kind.LITERAL:
            domain = self.take(_Kind.LITERAL).text
        else:
            start = self.at
            while self.peek().kind in (_Kind.ATOM, _Kind.DOT):
                self.at += 1
            parts = self.tokens[start : self.at]
            if not parts:
                raise _unexpected(self.peek())
            domain = _dot_atom(parts)
        return "".join(token.text for token in local) + "@" + domain


def _dot_atom(tokens: list[_Token]) -> str:
    """Atoms joined by single dots, with nothing between them (dot-atom-text, §3.2.3)."""
    for index, token in enumerate(tokens):
        wanted = _Kind.ATOM if index % 2 == 0 else _Kind.DOT
        if token.kind is not wanted or (index and token.spaced):
            raise _unexpected(token)
    if tokens[-1].kind is not _Kind.ATOM:
        raise _SyntaxError("a dot at the end of a dot-atom", tokens[-1].offset)
    return "".join(token.text for token in tokens)
