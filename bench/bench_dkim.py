"""Throughput of DKIM body hashing (``smtpproto.dkim.MessageHasher``), next to the DATA encoder.

Run: ``python bench/bench_dkim.py [--megabytes N]``.  Not a test: it prints a table.  Two kinds
of text, fed in chunks of about 64 KiB: plain prose, and lines full of runs of spaces and tabs
(the worst case for relaxed canonicalization, which rewrites every run).  Signing a message
hashes it once before sending it, so this is the extra CPU a signed message costs.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from smtpproto import DataEncoder
from smtpproto.dkim import Canonicalization, MessageHasher

TEXTS = {
    "plain text": b"".join(
        b"Lorem ipsum dolor sit amet, consectetur adipiscing elit %06d\r\n" % n for n in range(1000)
    ),
    "whitespace runs": b"".join(b"line %06d  with\t some   spaces \r\n" % n for n in range(1900)),
}


def megabytes_per_second(feed: Callable[[bytes], object], block: bytes, count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        feed(block)
    return count * len(block) / 1e6 / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--megabytes", type=int, default=200)
    size = parser.parse_args().megabytes * 10**6
    print(f"{'text':16} {'relaxed':>12} {'simple':>12} {'DataEncoder':>12}  (MB/s)")
    for name, block in TEXTS.items():
        count = size // len(block)
        row = []
        for canonicalization in Canonicalization.RELAXED, Canonicalization.SIMPLE:
            hasher = MessageHasher({canonicalization})
            hasher.update(b"From: a@example.org\r\n\r\n")
            row.append(megabytes_per_second(hasher.update, block, count))
            hasher.finish()
        row.append(megabytes_per_second(DataEncoder().encode, block, count))
        print(f"{name:16} " + " ".join(f"{figure:12.0f}" for figure in row))


if __name__ == "__main__":
    main()
