"""Fuzz target ``ehlo``: ``parse_ehlo`` on arbitrary reply lines (checklist G6).

The input is split at CRLF into lines; a line that starts with a reply code and separator has
them removed, as the reply assembler would.  The first byte picks how the lines are decoded: as
the connection does (UTF-8 with replacement) or as any Unicode text, surrogates included, for
callers that build the texts themselves.

Checks: ``parse_ehlo`` raises nothing but ``ValueError``, and that only for an empty list; the
result's keywords are distinct, ASCII, upper-case and valid ``ehlo-keyword``\\ s; ``size`` is
``None`` exactly when SIZE was not advertised, else >= 0; each flag matches its keyword; AUTH
mechanisms are upper-case and non-empty; lookups are case-insensitive.
"""

from __future__ import annotations

import re
import sys

import atheris

with atheris.instrument_imports(include=["smtpproto"]):
    from smtpproto import Extensions, parse_ehlo

KEYWORD = re.compile(r"[A-Z0-9][A-Z0-9-]*")
FLAG_FIELDS = {
    "PIPELINING": "pipelining",
    "8BITMIME": "eightbitmime",
    "SMTPUTF8": "smtputf8",
    "CHUNKING": "chunking",
    "BINARYMIME": "binarymime",
    "DSN": "dsn",
    "STARTTLS": "starttls",
    "ENHANCEDSTATUSCODES": "enhancedstatuscodes",
    "REQUIRETLS": "requiretls",
    "MT-PRIORITY": "mt_priority",
}


def texts_of(fdp: atheris.FuzzedDataProvider) -> list[str]:
    mode = fdp.ConsumeBytes(1)
    if mode and mode[0] & 1:
        # Arbitrary text: a str may hold anything, including lone surrogates and CR/LF.
        text: str = fdp.ConsumeUnicode(fdp.remaining_bytes())
        return text.split("\r\n")
    raw: bytes = fdp.ConsumeBytes(fdp.remaining_bytes())
    texts = []
    for line in raw.split(b"\r\n"):
        has_code = len(line) >= 4 and line[:3].isdigit() and line[3:4] in b" -"
        texts.append(line[4 if has_code else 0 :].decode("utf-8", "replace"))
    return texts


def check(texts: list[str], ext: Extensions) -> None:
    assert ext.esmtp
    names = [name for name, _ in ext.keywords]
    assert len(names) == len(set(names)), names
    for name, params in ext.keywords:
        assert name.isascii() and KEYWORD.fullmatch(name), name
        assert all(isinstance(param, str) and param for param in params), params
        assert ext.params(name.lower()) == params and name.lower() in ext
    assert (ext.size is None) == ("SIZE" not in names), (ext.size, names)
    assert ext.size is None or ext.size >= 0, ext.size
    for keyword, attribute in FLAG_FIELDS.items():
        assert getattr(ext, attribute) == (keyword in names), keyword
    for mechanism in ext.auth:
        assert mechanism and mechanism == mechanism.upper(), mechanism
    assert ext.server_name == (texts[0].split() or [""])[0]


def TestOneInput(data: bytes) -> None:  # the name atheris looks for
    fdp = atheris.FuzzedDataProvider(data)
    # The empty input stands for the empty reply: the one case that must be refused.
    texts = texts_of(fdp) if data else []
    try:
        ext = parse_ehlo(texts)
    except ValueError:
        assert not texts, texts
        return
    check(texts, ext)


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
