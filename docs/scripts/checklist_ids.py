"""The conformance checklist ids (G4, C14, S8, ...): what each one means, and which tests cite it.

Tests, comments and docs name the checklist item they are about by its id.  :data:`CHECKLIST` is
the one table of those ids: for each, a one-line rule in our own words and the RFC sections it
rests on.  Everything else is derived by scanning the tree:

* :func:`citations` finds every id cited in the project's sources: in Python comments,
  docstrings and function names, and anywhere in ``.rst`` / ``.md`` prose;
* :func:`covering_tests` keeps the citations inside ``tests/test_*.py`` and names the test function
  around each (or the file, for a module docstring or a section comment);
* :func:`render` writes ``docs/checklist-table.inc``, which ``docs/checklist.rst`` includes.

``tests/test_checklist_ids.py`` fails when an id is cited that the table does not know, or when
the generated page no longer matches the tests.  Regenerate the page with::

    python docs/scripts/checklist_ids.py --write

and without ``--write`` the script only checks (exit status 1 when the page is stale).
"""

from __future__ import annotations

import ast
import io
import re
import sys
import tokenize
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

__all__ = [
    "CHECKLIST",
    "GENERATED",
    "GROUPS",
    "Citation",
    "Rule",
    "citations",
    "covering_tests",
    "ids_in_name",
    "ids_in_text",
    "render",
]

REPO = Path(__file__).resolve().parents[2]
#: The generated part of the docs page (``docs/checklist.rst`` includes it).
GENERATED = REPO / "docs" / "checklist-table.inc"


class Rule(NamedTuple):
    """One checklist id: a one-line summary of the rule, and where the RFCs state it."""

    rule: str
    sections: str


#: id letter -> the checklist section that uses it.
GROUPS: dict[str, str] = {
    "G": "Greeting and EHLO (RFC 5321)",
    "R": "Replies (RFC 5321)",
    "C": "Commands and data (RFC 5321)",
    "X": "Finding the target host (RFC 5321 §5)",
    "S": "Security pitfalls",
}

# The rules are our own one-line summaries; the checklist has the full text.  Section numbers are
# RFC 5321 unless another RFC is named.  "†" marks a section number the checklist took from a
# secondary source and asks to be checked against the RFC before it is quoted.
CHECKLIST: dict[str, Rule] = {
    "G1": Rule(
        "Send nothing before the server's greeting; the greeting may span several lines and end "
        "with a bare 220.",
        "§4.3.1, §4.2",
    ),
    "G2": Rule(
        "A 554 greeting refuses the session: send QUIT, and no EHLO.",
        "§3.1, §4.1.4",
    ),
    "G3": Rule(
        "A 4yz greeting (421) is a temporary failure of the host: close the connection.",
        "§3.8",
    ),
    "G4": Rule(
        "Open with EHLO, fall back to HELO when EHLO is not recognised; one of them comes before "
        "MAIL.",
        "§4.1.1.1, §2.2.1, §3.2, §4.3.2",
    ),
    "G5": Rule(
        "The EHLO argument is a fully qualified domain name or an address literal.",
        "§4.1.4, §2.3.5",
    ),
    "G6": Rule(
        "EHLO keywords compare case-insensitively; line one names the server, each later line is "
        "a keyword and its parameters.",
        "§4.1.1.1",
    ),
    "G7": Rule(
        "Send a parameter only for an extension the EHLO reply advertised, and none after HELO; "
        "555 and 455 refuse parameters.",
        "§4.1.1.3, §4.1.1.2, §4.1.1.11",
    ),
    "R1": Rule(
        "Each command gets one reply, and replies are paired with commands by counting.",
        "§4.2",
    ),
    "R2": Rule(
        "Multi-line replies: xyz- continues, the last line is xyz SP text or a bare xyz; text is "
        "optional; any command may get one.",
        "§4.2, §4.2.1",
    ),
    "R3": Rule(
        "All lines of a reply carry the same code; a line with another code is a protocol error.",
        "§4.2.1 (the error is practice)",
    ),
    "R4": Rule(
        "Decide on the reply code, not the text (251/551, and 220/221/421 when needed, aside).",
        "§4.2",
    ),
    "R5": Rule(
        "Read an unknown code by its first digit; a first digit outside 2-5 ends the transaction.",
        "§4.2, §4.3.2",
    ),
    "R6": Rule(
        "Accept reply lines of 512 octets or more; longer ones meet a configurable cap (see S6).",
        "§4.5.3.1, §4.5.3.1.5",
    ),
    "R7": Rule(
        "A line ends only at CRLF; a lone CR or LF is part of the line.",
        "§2.3.8",
    ),
    "C1": Rule(
        "MAIL FROM:<path> with no space at the colon; <> is allowed; the local part keeps its "
        "case and is quoted only when it must be.",
        "§3.3, §4.1.2, §2.4",
    ),
    "C2": Rule(
        "RCPT TO:<Postmaster> without a domain is valid, in any letter case.",
        "§4.1.1.3, §4.5.1",
    ),
    "C3": Rule(
        "A transaction is MAIL, one or more RCPT, then DATA; no MAIL while one is open; RSET "
        "abandons it.",
        "§3.3, §4.1.4",
    ),
    "C4": Rule(
        "Message content goes out only after 354, never after 503, 554 or another 5yz to DATA.",
        "§3.3",
    ),
    "C5": Rule(
        "Data ends with CRLF.CRLF: add the final CRLF if the body lacks it, never a second one.",
        "§4.1.1.4",
    ),
    "C6": Rule(
        "A content line that starts with a dot gets one more dot (dot-stuffing).",
        "§4.5.2",
    ),
    "C7": Rule(
        "Never send a bare CR or a bare LF: turn them into CRLF or refuse the message.",
        "§2.3.8",
    ),
    "C8": Rule(
        "Octets above 127 need 8BITMIME, BINARYMIME or SMTPUTF8; MAIL and RCPT carry no control "
        "characters and, without SMTPUTF8, no non-ASCII.",
        "§2.4, §4.1.2",
    ),
    "C9": Rule(
        "Octet limits: local part 64, domain 255, path 256, command and reply line 512, text "
        "line 1000; extensions raise the MAIL line limit.",
        "§4.5.3.1.1-§4.5.3.1.6; RFC 1870 §3, RFC 3030 §3, RFC 4954 §3, RFC 6531 §3.1, RFC 8689 §2",
    ),
    "C10": Rule(
        "On 452 'too many recipients' send the rest in another transaction; tell that 552 from a "
        "size 552 by the enhanced code.",
        "§4.5.3.1.8, §4.5.3.1.10; RFC 1870 §6.4",
    ),
    "C11": Rule(
        "Some recipients refused: send DATA if one was accepted and report each recipient; none "
        "accepted: no DATA.",
        "§3.3",
    ),
    "C12": Rule(
        "A 2xx after the end of data hands the message over: never send it again; a 4yz leaves "
        "it with the client.",
        "§4.2.5, §6.1",
    ),
    "C13": Rule(
        "RSET expects 250, NOOP may go at any time, VRFY takes one string and 252 means "
        "'cannot verify'.",
        "§4.1.1.5, §4.1.1.9, §4.1.1.6, §3.5, §4.3.2",
    ),
    "C14": Rule(
        "QUIT is the last command: send it before closing the connection, then wait for 221.",
        "§4.1.4, §4.1.1.10",
    ),
    "C15": Rule(
        "A 421, solicited or not, means the server is closing: everything pending fails as 4yz.",
        "§3.8",
    ),
    "C16": Rule(
        "A lost connection counts as a 451 for whatever was outstanding.",
        "§3.8",
    ),
    "C17": Rule(
        "Every command has a timeout, configurable, no shorter than the RFC's minimum for its "
        "phase.",
        "§4.5.3.2",
    ),
    "C18": Rule(
        "Don't cache a 5yz reply to MAIL; send a message to each server once.",
        "§4.5.4.1",
    ),
    "C19": Rule(
        "The null reverse-path <> is for notifications only.",
        "§4.5.5",
    ),
    "C20": Rule(
        "Never create source routes; one received is reduced to its final mailbox or refused.",
        "§3.6.1, §4.1.1.3, Appendix C",
    ),
    "C21": Rule(
        "Address literals: [d.d.d.d] with each part 0-255, [IPv6:...] in any valid form, other "
        "tags; never looked up in DNS.",
        "§4.1.3",
    ),
    "X1": Rule(
        "Look up the MX records, starting over at a CNAME's target; IDN domains as A-labels.",
        "§5.1; RFC 6531 §3.2",
    ),
    "X2": Rule(
        "NXDOMAIN is a permanent error; a temporary DNS error is retried later, never replaced "
        "by an A/AAAA lookup.",
        "§5.1",
    ),
    "X3": Rule(
        "Only a domain without any MX record is its own mail host (implicit MX).",
        "§5.1",
    ),
    "X4": Rule(
        "Try MX hosts lowest preference first, in random order among equal preferences.",
        "§5.1",
    ),
    "X5": Rule(
        "Try a host's addresses in resolver order, at least two addresses in all, up to a limit "
        "(Postfix: 5 addresses, 2 sessions).",
        "§5.1 (the limits are Postfix practice)",
    ),
    "X6": Rule(
        "MX records of which none is usable are an error; an MX naming a CNAME is tolerated.",
        "§5.1; RFC 2181 §10.3",
    ),
    "X7": Rule(
        "If this host is an MX, drop its record and every one of equal or higher preference; "
        "none left is an error.",
        "§5.1",
    ),
    "X8": Rule(
        "Null MX (a lone MX 0 .): fail at once and permanently, without connecting (556, 5.1.10).",
        "RFC 7505 §3†; RFC 7504†",
    ),
    "X9": Rule(
        "IPv4 or IPv6 first is configurable local policy; exhaust one host's addresses before the "
        "next MX.",
        "§5.2",
    ),
    "X10": Rule(
        "Soft errors (connection, TLS, 4yz, 421, a 5yz greeting) move on to the next MX, a 5yz to "
        "a transaction command is final; the last host defers.",
        "none: Postfix practice (smtp_trouble.c)",
    ),
    "S1": Rule(
        "CR, LF, NUL or any control character in an address, EHLO name, parameter or VRFY "
        "argument is refused before a byte is sent.",
        "§4.1.2",
    ),
    "S2": Rule(
        "SMTP smuggling: only CRLF.CRLF ends the data, bare CR/LF are normalised before "
        "dot-stuffing, and BDAT text is CRLF too.",
        "§2.3.8; RFC 3030 §2; CVE-2023-51764/5/6",
    ),
    "S3": Rule(
        "STARTTLS stripping: with TLS required, a missing STARTTLS, a 454 or a failed handshake "
        "ends in QUIT, with no AUTH or MAIL.",
        "RFC 3207 §6; RFC 8314",
    ),
    "S4": Rule(
        "Response injection: bytes that arrive behind the 220 to STARTTLS are never parsed; EHLO "
        "again over TLS.",
        "RFC 3207 §4.2",
    ),
    "S5": Rule(
        "Command injection: nothing is pipelined behind STARTTLS.",
        "RFC 3207 §4",
    ),
    "S6": Rule(
        "Bound the length of a reply line (no less than 512 octets, 12288 during AUTH).",
        "none: practice (the floors are R6's and AUTH's line lengths)",
    ),
    "S7": Rule(
        "Bound the lines and octets of one reply (e.g. 1000 lines, 64 KiB); overflowing is a "
        "protocol error, with bounded buffering.",
        "none: practice",
    ),
    "S8": Rule(
        "PLAIN, LOGIN, XOAUTH2 and OAUTHBEARER are refused without TLS unless explicitly allowed.",
        "RFC 4954 §4, §14; RFC 7628 §3; RFC 8314",
    ),
}

_LETTERS = "".join(sorted({key[0] for key in CHECKLIST}))

# An id in prose, comments and docstrings: a checklist letter and one or two digits, optionally
# a range to another id of the same letter ("C15-C17", "G1–G3").  Not preceded by a word
# character or by the "+", "%", "=" or "\" of an escaped octet ("+C3+A9", "%C3", "=C3", "\xC3"),
# and not followed by a word character.
_ID_IN_TEXT = re.compile(
    rf"(?<![\w+%=\\])([{_LETTERS}])(\d{{1,2}})(?:\s?[-–]\s?\1(\d{{1,2}}))?(?!\w)"
)
# Phrases where a letter and a digit are something else: Unicode's C0 and C1 control sets.
_NOT_IDS = re.compile(r"\bC[01](?= control)|\bC0 and C1\b")
# An id in a function name is one "_"-separated word, in either case: test_x5_..., test_C14_...
_ID_IN_NAME = re.compile(rf"([{_LETTERS}{_LETTERS.lower()}])(\d{{1,2}})")

# Where ids are cited.  This module and the generated page define them, and the test that checks
# them quotes look-alikes on purpose; none of those cites anything.
_SCAN_DIRS = ("smtpproto", "adapters", "tests", "docs", "fuzz", "bench", "scripts")
_SCAN_FILES = ("README.md",)
_SUFFIXES = frozenset({".py", ".rst", ".md"})
_SKIP_PARTS = frozenset({"_build", "__pycache__"})
_NOT_CITING = frozenset(
    {
        Path("docs/scripts/checklist_ids.py"),
        Path("tests/test_checklist_ids.py"),
    }
)


class Citation(NamedTuple):
    """One id cited at ``path:line`` (relative to the repository).  In a ``tests/test_*.py``
    file, ``test`` names the function around it: a test, or a scenario or check a test runs;
    ``None`` elsewhere and at module level (a module docstring, a section comment)."""

    id: str
    path: Path
    line: int
    test: str | None


def ids_in_text(text: str) -> list[str]:
    """The ids cited in a piece of prose, comment or docstring, ranges expanded, in order."""
    found: list[str] = []
    for match in _ID_IN_TEXT.finditer(_NOT_IDS.sub(lambda m: "#" * len(m.group()), text)):
        letter, first, last = match.group(1), int(match.group(2)), match.group(3)
        if last is None or int(last) <= first:
            found.append(f"{letter}{first}")
            if last is not None:
                found.append(f"{letter}{int(last)}")
        else:
            found += [f"{letter}{n}" for n in range(first, int(last) + 1)]
    return found


def ids_in_name(name: str) -> list[str]:
    """The ids in a function name: words like ``C14`` or ``x5`` between underscores."""
    found: list[str] = []
    words = name.split("_")
    for index, word in enumerate(words):
        match = _ID_IN_NAME.fullmatch(word)
        if match is None:
            continue
        # "c1_controls": Unicode's C1 control set, as in the prose (see _NOT_IDS)
        following = words[index + 1] if index + 1 < len(words) else ""
        if word.upper() in {"C0", "C1"} and following.startswith("control"):
            continue
        found.append(f"{match.group(1).upper()}{int(match.group(2))}")
    return found


def _function_spans(tree: ast.Module) -> list[tuple[int, int, str]]:
    """(first line, last line, name) of each module-level function and each method (as
    ``Class.name``), decorators included.  In a test file that is a test, or a scenario or check
    that tests run."""
    spans: list[tuple[int, int, str]] = []

    def visit(body: Iterable[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef):
                visit(node.body, f"{prefix}{node.name}.")
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                # Its decorators belong to it: a parametrize list may cite ids too.
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                spans.append((first, node.end_lineno or node.lineno, prefix + node.name))

    visit(tree.body, "")
    return spans


def _python_pieces(source: str) -> Iterator[tuple[int, str, bool]]:
    """(line, text, is_a_name) for each comment, docstring and function or class name."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield node.lineno, node.name, True
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            first = node.body[0] if node.body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                # One piece per docstring line, so each citation gets its own line number.
                for offset, text in enumerate(first.value.value.splitlines()):
                    yield first.lineno + offset, text, False
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            yield token.start[0], token.string, False


def _scanned_files(root: Path) -> Iterator[Path]:
    for name in _SCAN_FILES:
        if (root / name).is_file():
            yield root / name
    for directory in _SCAN_DIRS:
        for path in sorted((root / directory).rglob("*")):
            relative = path.relative_to(root)
            if (
                path.suffix in _SUFFIXES
                and path.is_file()
                and not _SKIP_PARTS.intersection(relative.parts)
                and relative not in _NOT_CITING
            ):
                yield path


def _file_citations(path: Path, relative: Path) -> Iterator[Citation]:
    text = path.read_text(encoding="utf-8")
    if path.suffix != ".py":
        for number, line in enumerate(text.splitlines(), start=1):
            for cited in ids_in_text(line):
                yield Citation(cited, relative, number, None)
        return
    is_test_file = relative.parts[0] == "tests" and relative.name.startswith("test_")
    spans = _function_spans(ast.parse(text)) if is_test_file else []
    for number, piece, is_name in sorted(_python_pieces(text)):
        # The function around the line (nested ones belong to it); None at module level.
        test = next((name for first, last, name in spans if first <= number <= last), None)
        for cited in ids_in_name(piece) if is_name else ids_in_text(piece):
            yield Citation(cited, relative, number, test)


def citations(root: Path = REPO) -> list[Citation]:
    """Every id cited in the project's sources, tests and docs, with where it is cited."""
    found: list[Citation] = []
    for path in _scanned_files(root):
        found += _file_citations(path, path.relative_to(root))
    return found


def covering_tests(found: Iterable[Citation]) -> dict[str, dict[str, list[str | None]]]:
    """id -> test file name -> the test functions citing it, in order; ``None`` stands for a
    citation outside any test function (a module docstring or a section comment)."""
    result: dict[str, dict[str, list[str | None]]] = {}
    for citation in found:
        path = citation.path
        if path.parts[0] != "tests" or not path.name.startswith("test_"):
            continue
        name = path.relative_to("tests").as_posix()
        tests = result.setdefault(citation.id, {}).setdefault(name, [])
        if citation.test not in tests:
            tests.append(citation.test)
    return result


def _tests_field(files: dict[str, list[str | None]]) -> list[str]:
    if not files:
        return [":Tests: none yet"]
    lines = [":Tests:"]
    for name in sorted(files):
        named = ", ".join(f"``{test}``" for test in files[name] if test is not None)
        if None in files[name]:
            named = f"{named}; and at file level" if named else "at file level"
        lines.append(f"   * ``{name}``: {named}")
    return lines


def render(found: Iterable[Citation] | None = None) -> str:
    """The reStructuredText of ``docs/checklist-table.inc``."""
    covered = covering_tests(citations() if found is None else found)
    uncovered = [key for key in CHECKLIST if key not in covered]
    lines = [
        ".. This file is generated by docs/scripts/checklist_ids.py from its CHECKLIST table and",
        "   the tests; do not edit it.  Regenerate: python docs/scripts/checklist_ids.py --write",
        "",
        f"{len(CHECKLIST)} ids; {len(CHECKLIST) - len(uncovered)} are named by at least one test.",
    ]
    if uncovered:
        lines[-1] += " No test names " + ", ".join(f":term:`{key}`" for key in uncovered) + " yet."
    for letter, title in GROUPS.items():
        lines += ["", title, "-" * len(title), "", ".. glossary::"]
        for key, (rule, sections) in CHECKLIST.items():
            if key[0] != letter:
                continue
            lines += ["", f"   {key}", f"      {rule}", ""]
            lines += [f"      :RFC: {sections}"]
            lines += [f"      {line}" for line in _tests_field(covered.get(key, {}))]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    write = argv == ["--write"]
    if argv and not write:
        print(f"usage: {Path(__file__).name} [--write]", file=sys.stderr)
        return 2
    text = render()
    if write:
        GENERATED.write_text(text, encoding="utf-8")
        return 0
    current = GENERATED.read_text(encoding="utf-8") if GENERATED.exists() else ""
    if current != text:
        print(f"{GENERATED.relative_to(REPO)} is stale: run {__file__} --write", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
