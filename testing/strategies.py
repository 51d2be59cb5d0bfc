"""Hypothesis strategies for SMTP tests: server replies, how TCP cuts them, addresses, bodies.

Replies come in three kinds, for three questions:

- :func:`replies` — well-formed replies (RFC 5321 §4.2): does the client read every valid one?
- :func:`edge_replies` — valid but unusual (a bare code, empty texts, 512-octet lines, unknown
  codes of a known class, UTF-8 text): does it read those too?
- :func:`hostile_replies` — anything a broken or malicious server may send (mismatched codes,
  bare LF or CR, NUL, codes outside 200-599, no line end, endless lines): does it fail cleanly,
  with a protocol error and bounded memory, never a crash?

Needs hypothesis (the ``testing`` extra).
"""

from __future__ import annotations

import itertools

from hypothesis import strategies as st

from .lookalikes import END_OF_DATA_LOOKALIKES

__all__ = [
    "addresses",
    "bodies",
    "cuts",
    "domains",
    "edge_replies",
    "hostile_addresses",
    "hostile_replies",
    "long_line_bodies",
    "replies",
    "reply_lines",
    "reply_sequences",
    "reply_texts",
]


def reply_texts(max_size: int = 30) -> st.SearchStrategy[str]:
    """The text of one reply line: any characters but CR, LF and surrogates."""
    return st.text(
        alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\r\n"),
        max_size=max_size,
    )


def _wire(code: int, texts: list[str]) -> bytes:
    last = len(texts) - 1
    return b"".join(
        b"%d%s%s\r\n" % (code, b" " if i == last else b"-", text.encode())
        for i, text in enumerate(texts)
    )


def replies(
    codes: st.SearchStrategy[int] | None = None, max_lines: int = 8
) -> st.SearchStrategy[bytes]:
    """One well-formed reply, single- or multi-line, with a code from ``codes`` (200-599)."""
    return st.builds(
        _wire,
        codes if codes is not None else st.integers(200, 599),
        st.lists(reply_texts(), min_size=1, max_size=max_lines),
    )


def edge_replies(codes: st.SearchStrategy[int] | None = None) -> st.SearchStrategy[bytes]:
    """Valid replies that stress a parser: each shape a server may legally send, with a code
    from ``codes`` (200-599)."""
    code = codes if codes is not None else st.integers(200, 599)
    return st.one_of(
        code.map(lambda c: b"%d\r\n" % c),  # bare code, no text (RFC 5321 §4.2)
        code.map(lambda c: b"%d-\r\n%d \r\n" % (c, c)),  # empty texts
        code.map(lambda c: b"%d " % c + b"x" * 507 + b"\r\n"),  # a 512-octet line (§4.5.3.1.5)
        st.builds(
            lambda c, n: _wire(c, [f"line {i}" for i in range(n)]), code, st.integers(2, 100)
        ),
        st.builds(  # an enhanced status code (RFC 3463), of the reply's class or not
            lambda c, k, s, d, t: b"%d %d.%d.%d %s\r\n" % (c, k, s, d, t.encode()),
            code,
            st.integers(2, 5),
            st.integers(0, 999),
            st.integers(0, 999),
            reply_texts(),
        ),
        st.builds(lambda c, t: _wire(c, [t]), code, st.sampled_from(["é ü 中文 ✉", "\t tab"])),
        st.builds(
            lambda c, last: b"%d-a\r\n%d%s\r\n" % (c, c, last), code, st.sampled_from([b"", b" "])
        ),
    )


def reply_lines() -> st.SearchStrategy[bytes]:
    """One reply-shaped line, valid or not: any code 100-699, any separator, any octets."""
    return st.builds(
        lambda code, sep, text: b"%d%s%s\r\n" % (code, sep, text),
        st.integers(100, 699),
        st.sampled_from([b" ", b"-", b""]),
        st.binary(max_size=20).filter(lambda b: b"\r\n" not in b),
    )


def hostile_replies() -> st.SearchStrategy[bytes]:
    """Bytes a broken or malicious server may send instead of a reply."""
    fragments = st.sampled_from(
        [b"250", b"250-", b"250 ", b"550 ", b"x", b"\r\n", b"\r", b"\n", b"\0", b"2", b"-"]
    )
    return st.one_of(
        st.lists(reply_lines(), min_size=1, max_size=6).map(b"".join),
        st.lists(fragments, max_size=16).map(b"".join),  # reaches deeper parser states
        st.builds(  # codes that disagree
            lambda a, b: b"%d-x\r\n%d x\r\n" % (a, b), st.integers(200, 599), st.integers(200, 599)
        ),
        st.sampled_from([b"250 ok\n", b"250 ok\r", b"250 o\0k\r\n", b"25 ok\r\n", b"2500 ok\r\n"]),
        st.integers(1, 5000).map(lambda n: b"250-" + b"y" * n),  # no line end, maybe endless
        st.integers(2, 3000).map(lambda n: b"250-x\r\n" * n + b"250 x\r\n"),  # too many lines
        st.binary(max_size=200),
    )


def reply_sequences(
    reply: st.SearchStrategy[bytes] | None = None, max_size: int = 10
) -> st.SearchStrategy[list[bytes]]:
    """Several replies in a row (answers to pipelined commands), well-formed by default."""
    return st.lists(reply if reply is not None else replies(), min_size=1, max_size=max_size)


def cuts(data: bytes, max_pieces: int = 12) -> st.SearchStrategy[list[bytes]]:
    """``data`` cut into pieces at random places, as TCP may deliver it (no empty piece)."""
    if not data:
        return st.just([])
    points = st.lists(st.integers(1, len(data) - 1), max_size=max_pieces - 1, unique=True)

    def cut(at: list[int]) -> list[bytes]:
        bounds = [0, *sorted(at), len(data)]
        return [data[a:b] for a, b in itertools.pairwise(bounds)]

    return points.map(cut) if len(data) > 1 else st.just([data])


_label = st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9-]{0,8}[A-Za-z0-9])?", fullmatch=True)


def domains(internationalized: bool = True) -> st.SearchStrategy[str]:
    """Domains a client must accept: host names (with or without the root dot), address
    literals (RFC 5321 §4.1.3), and, when ``internationalized``, U-labels."""
    host_names = st.builds(
        lambda parts, tld, dot: ".".join([*parts, tld]) + dot,
        st.lists(_label, max_size=3),
        st.from_regex(r"[A-Za-z]{2,6}", fullmatch=True),
        st.sampled_from(["", "."]),
    )
    literals = st.sampled_from(
        ["[192.0.2.1]", "[IPv6:2001:db8::1]", "[IPv6:::ffff:192.0.2.1]", "[x-tag:a.b]"]
    )
    idn = st.sampled_from(["bücher.example", "例子.广告"])
    return st.one_of(host_names, literals, idn) if internationalized else host_names | literals


def addresses(smtputf8: bool = False) -> st.SearchStrategy[str]:
    """Valid mailboxes ``local@domain``: dot-atom local parts, and with ``smtputf8`` UTF-8 ones
    (RFC 6531) and internationalized domains."""
    atom = st.from_regex(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]{1,12}", fullmatch=True)
    if smtputf8:
        atom = atom | st.sampled_from(["üser", "用户", "δοκιμή"])
    local = st.lists(atom, min_size=1, max_size=3).map(".".join)
    return st.builds(lambda lp, d: f"{lp}@{d.removesuffix('.')}", local, domains(smtputf8))


def hostile_addresses() -> st.SearchStrategy[str]:
    """Addresses that try to break out of their command: CR, LF, NUL, angle brackets, a
    second command after a line end.  A client must refuse every one before sending."""
    inject = st.sampled_from(["\r\n", "\n", "\r", "\0", ">\r\nRCPT TO:<x@evil.test", "\x85"])
    return st.builds(
        lambda addr, at, bad: addr[:at] + bad + addr[at:],
        addresses(),
        st.integers(0, 40),
        inject,
    )


def bodies() -> st.SearchStrategy[bytes]:
    """Message bodies made mostly of the octets that matter (CR, LF, dots, 8-bit, NUL) and of
    end-of-data look-alikes, so smuggling shapes come up constantly; some plain binary too."""
    shaped = st.lists(
        st.sampled_from(
            [
                *(b"\r", b"\n", b".", b"\r\n", b"a", b" ", b"\x80", b"\0", b"xyz"),
                *END_OF_DATA_LOOKALIKES.values(),
            ]
        ),
        max_size=60,
    ).map(b"".join)
    return st.binary(max_size=0) | shaped | st.binary(max_size=200)


def long_line_bodies() -> st.SearchStrategy[bytes]:
    """Bodies with long runs, so lines cross the 998-octet limit (RFC 5321 §4.5.3.1.6)."""
    return st.lists(
        st.sampled_from([b"y" * 400, b"y" * 99, b"\r\n", b"\n", b"\r", b"\xff", b"\0"]),
        max_size=8,
    ).map(b"".join)
