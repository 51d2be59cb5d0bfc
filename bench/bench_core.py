"""Throughput and memory of the sans-I/O hot paths, each next to a naive baseline in the same run.

Run: ``python bench/bench_core.py`` (``--help`` for a smaller, quicker run).  Not a test: it
prints a table and checks only that the fast path and the baseline agree on their output.

1. DATA encoding (``DataEncoder``, 64 KiB chunks) against the whole-message regex approach of
   ``smtplib`` (``smtplib.quotedata`` on ``str``; the same two ``re.sub`` calls on ``bytes``).
2. Peak traced memory (tracemalloc) of both, for two message sizes: the encoder's must not grow.
3. Reply parsing (``ReceiveBuffer`` + ``ReplyAssembler``) against ``smtplib.getreply``'s per-line
   approach (readline, ``line[:3]``, ``line[3:4]``, ``strip``, ``int``).

Figures are medians of several rounds timed with ``time.perf_counter``; MB means 10**6 octets.
"""

from __future__ import annotations

import argparse
import base64
import functools
import gc
import io
import random
import re
import smtplib
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

# Run from a checkout without installing: make the repository root importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from smtpproto._wire.encoder import BodyInspector, DataEncoder
from smtpproto._wire.receivebuffer import ReceiveBuffer
from smtpproto._wire.replies import ReplyAssembler

CHUNK = 64 * 1024
MIB = 1024 * 1024
# The message body repeats one block of random mail text; 4 MiB divides both message sizes.
BLOCK = 4 * MIB
MB = 1_000_000

# --- a realistic message ----------------------------------------------------------------------

_TEXT = (
    "the of and to in is that for it as was with be by on not he this are or his from at which "
    "but have an they you were her she there been one all we their has would when if so no "
    "delivery message server relay queue mailbox recipient envelope attachment invoice report"
)
_WORDS = _TEXT.split()


def _prose_line(rng: random.Random) -> str:
    words: list[str] = []
    length = 0
    target = rng.randint(60, 74)
    while length < target:
        word = rng.choice(_WORDS)
        if rng.random() < 0.08:
            word += "."  # sentences end mid-line: dots that must not be stuffed
        words.append(word)
        length += len(word) + 1
    line = " ".join(words)
    if rng.random() < 0.02:
        line = "." + line  # must be stuffed
    return line


def make_header(line_end: bytes) -> bytes:
    lines = [
        "Received: from mail.example.org (mail.example.org [192.0.2.10])",
        "\tby mx.example.net (Postfix) with ESMTPS id 4Bx7Lq0Zz9z9sRK",
        "\tfor <bob@example.net>; Sat, 29 Nov 2025 04:48:00 +0000 (UTC)",
        "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=s1;",
        "\th=from:to:subject:date:message-id; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;",
        "\tb=dGhpcyBpcyBub3QgYSByZWFsIHNpZ25hdHVyZSBidXQgaXQgbG9va3MgbGlrZSBvbmUgYW55d2F5",
        "From: Alice <alice@example.org>",
        "To: Bob <bob@example.net>",
        "Subject: Quarterly report and attachments",
        "Date: Sat, 29 Nov 2025 04:48:00 +0000",
        "Message-ID: <20251129044800.12345@mail.example.org>",
        "MIME-Version: 1.0",
        'Content-Type: multipart/mixed; boundary="b1"',
        "",
        "--b1",
        "Content-Type: text/plain; charset=us-ascii",
        "",
    ]
    return line_end.join(line.encode() for line in lines) + line_end


def make_block(line_end: bytes, seed: int = 2025) -> bytes:
    """Exactly ``BLOCK`` octets of alternating prose and base64 attachment lines."""
    rng = random.Random(seed)
    parts: list[bytes] = []
    size = 0
    while size < BLOCK:
        for _ in range(40):
            parts.append(_prose_line(rng).encode() + line_end)
        for _ in range(40):
            parts.append(base64.b64encode(rng.randbytes(57)) + line_end)  # 76 characters
        size += sum(len(p) for p in parts[-80:])
    return b"".join(parts)[:BLOCK]


class Message:
    """A header then ``size_mib // 4`` copies of the block, as 64 KiB chunks or as one object."""

    def __init__(self, size_mib: int, line_end: bytes) -> None:
        self.header = make_header(line_end)
        block = make_block(line_end)
        self.chunks = [block[i : i + CHUNK] for i in range(0, BLOCK, CHUNK)]
        self.repeats = size_mib * MIB // BLOCK
        self.size = len(self.header) + self.repeats * BLOCK

    def stream(self) -> Iterator[bytes]:
        yield self.header
        for _ in range(self.repeats):
            yield from self.chunks

    def whole(self) -> bytes:
        return self.header + b"".join(self.chunks) * self.repeats


# --- the paths under test and their baselines -------------------------------------------------


def encode_streaming(message: Message) -> int:
    encoder = DataEncoder()
    sent = 0
    for chunk in message.stream():
        sent += len(encoder.encode(chunk))
    return sent + len(encoder.end())


def encode_streaming_collect(message: Message) -> bytes:
    encoder = DataEncoder()
    return b"".join([*map(encoder.encode, message.stream()), encoder.end()])


_BARE_EOL = re.compile(rb"(?:\r\n|\n|\r(?!\n))")
_LEADING_DOT = re.compile(rb"(?m)^\.")


def encode_regex_bytes(data: bytes) -> bytes:
    """smtplib's two regexes, applied to bytes (its ``_fix_eols`` only accepts str)."""
    quoted = _LEADING_DOT.sub(b"..", _BARE_EOL.sub(b"\r\n", data))
    if quoted[-2:] != b"\r\n":
        quoted += b"\r\n"
    return quoted + b".\r\n"


def encode_smtplib_str(text: str) -> bytes:
    """What ``smtplib.SMTP.data`` does with a str message (``quotedata``, encode, terminate)."""
    quoted = smtplib.quotedata(text).encode("ascii")
    if quoted[-2:] != b"\r\n":
        quoted += b"\r\n"
    return quoted + b".\r\n"


def inspect_streaming(message: Message) -> str:
    inspector = BodyInspector()
    for chunk in message.stream():
        inspector.feed(chunk)
    return inspector.needs_body


# --- replies ----------------------------------------------------------------------------------

_EHLO_REPLY = (
    b"250-mx.example.net Hello client.example.org [192.0.2.10]\r\n"
    b"250-PIPELINING\r\n250-SIZE 52428800\r\n250-VRFY\r\n250-ETRN\r\n250-STARTTLS\r\n"
    b"250-AUTH PLAIN LOGIN SCRAM-SHA-256\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n"
    b"250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n"
)
_SIMPLE_REPLIES = [
    b"250 2.1.0 Ok\r\n",
    b"250 2.1.5 Ok\r\n",
    b"354 End data with <CR><LF>.<CR><LF>\r\n",
    b"250 2.0.0 Ok: queued as 4Bx7Lq0Zz9z9sRK\r\n",
    b"221 2.0.0 Bye\r\n",
]


def make_reply_stream(count: int) -> list[bytes]:
    """``count`` replies; every 20th is a 12-line EHLO reply, the rest typical one-liners."""
    return [
        _EHLO_REPLY if i % 20 == 0 else _SIMPLE_REPLIES[i % len(_SIMPLE_REPLIES)]
        for i in range(count)
    ]


def parse_replies_smtpproto(reads: list[bytes]) -> int:
    buffer = ReceiveBuffer()
    assembler = ReplyAssembler(max_lines=1000, max_bytes=65536)
    replies = 0
    for data in reads:
        buffer.feed(data)
        while (line := buffer.next_line(512)) is not None:
            if assembler.feed_line(line) is not None:
                replies += 1
    return replies


def parse_replies_smtplib(stream: bytes) -> int:
    """``smtplib.SMTP.getreply``'s loop over a buffered file, minus the socket."""
    file = io.BytesIO(stream)
    replies = 0
    while True:
        lines: list[bytes] = []
        while True:
            line = file.readline(8193)
            if not line:
                return replies
            lines.append(line[4:].strip(b" \t\r\n"))
            code = line[:3]
            int(code)
            if line[3:4] != b"-":
                break
        b"\n".join(lines)
        replies += 1


def split_reads(stream: bytes, size: int) -> list[bytes]:
    return [stream[i : i + size] for i in range(0, len(stream), size)]


# --- measuring --------------------------------------------------------------------------------


def median_seconds(run: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        gc.collect()
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def traced_peak(run: Callable[[], object]) -> int:
    """Peak bytes allocated while ``run`` executes (inputs made before are not counted)."""
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def print_table(title: str, header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}")
    rule = "  ".join("-" * w for w in widths)
    print(rule)
    for row in [header, None, *rows]:
        if row is None:
            print(rule)
            continue
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        print("  ".join(cells))
    print(rule)


def bench_encoder(size_mib: int, rounds: int) -> None:
    rows: list[tuple[str, ...]] = []
    for name, line_end in (("LF", b"\n"), ("CRLF", b"\r\n")):
        message = Message(size_mib, line_end)
        data = message.whole()
        text = data.decode("ascii")
        expected = encode_regex_bytes(data)
        if encode_streaming_collect(message) != expected or encode_smtplib_str(text) != expected:
            raise SystemExit(f"{name}: the encoder and the baselines disagree")
        del expected
        mb = message.size / MB
        ours = median_seconds(functools.partial(encode_streaming, message), rounds)
        regex = median_seconds(functools.partial(encode_regex_bytes, data), rounds)
        stdlib = median_seconds(functools.partial(encode_smtplib_str, text), rounds)
        inspect = median_seconds(functools.partial(inspect_streaming, message), rounds)
        for label, seconds, ratio in (
            (f"DataEncoder, 64 KiB chunks ({name})", ours, ""),
            (f"re.sub x2 on bytes, whole msg ({name})", regex, f"{regex / ours:.1f}x"),
            (f"smtplib.quotedata on str ({name})", stdlib, f"{stdlib / ours:.1f}x"),
            (f"BodyInspector, 64 KiB chunks ({name})", inspect, ""),
        ):
            rows.append((label, f"{seconds * 1000:.0f}", f"{mb / seconds:.0f}", ratio))
        del data, text
    print_table(
        f"(a) DATA encoding of a {size_mib} MiB message, median of {rounds} rounds",
        ("path", "ms", "MB/s", "encoder speed-up"),
        rows,
    )


def bench_memory(sizes_mib: list[int]) -> None:
    rows: list[tuple[str, ...]] = []
    for size_mib in sizes_mib:
        message = Message(size_mib, b"\n")
        ours = traced_peak(functools.partial(encode_streaming, message))
        data = message.whole()
        regex = traced_peak(functools.partial(encode_regex_bytes, data))
        del data
        rows.append((f"{size_mib} MiB, LF", f"{ours / 1024:.0f} KiB", f"{regex / MIB:.0f} MiB"))
    print_table(
        "(b) peak traced memory while encoding (message source excluded for both)",
        ("message", "DataEncoder", "re.sub baseline"),
        rows,
    )


def bench_replies(count: int, rounds: int) -> None:
    replies = make_reply_stream(count)
    stream = b"".join(replies)
    reads_4k = split_reads(stream, 4096)
    for reads in (replies, reads_4k):
        if parse_replies_smtpproto(reads) != count or parse_replies_smtplib(stream) != count:
            raise SystemExit("reply parsers miscounted")
    baseline = median_seconds(lambda: parse_replies_smtplib(stream), rounds)
    rows: list[tuple[str, ...]] = []
    for label, reads in (("one read per reply", replies), ("4 KiB reads", reads_4k)):
        seconds = median_seconds(functools.partial(parse_replies_smtpproto, reads), rounds)
        rows.append(
            (
                f"ReceiveBuffer+ReplyAssembler, {label}",
                f"{count / seconds:,.0f}",
                f"{baseline / seconds:.2f}x",
            )
        )
    rows.append(("smtplib getreply loop (BytesIO readline)", f"{count / baseline:,.0f}", "1.00x"))
    print_table(
        f"(c) reply parsing: {count:,} replies ({len(stream) / MB:.1f} MB, every 20th a 12-line "
        f"EHLO reply), median of {rounds} rounds",
        ("path", "replies/s", "vs baseline"),
        rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size-mib", type=int, default=200, help="message size (multiple of 4)")
    parser.add_argument("--small-mib", type=int, default=20, help="second size for (b)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--replies", type=int, default=200_000)
    args = parser.parse_args()
    if args.size_mib % 4 or args.small_mib % 4:
        parser.error("sizes must be multiples of 4 MiB")
    print(f"Python {sys.version.split()[0]} on {sys.platform}")
    bench_encoder(args.size_mib, args.rounds)
    bench_memory([args.small_mib, args.size_mib])
    bench_replies(args.replies, args.rounds)


if __name__ == "__main__":
    main()
