"""The client's own CPU per message: scenarios A, B and C of ``bench_clients.py`` without sockets.

Run: ``python bench/bench_session.py`` (``--help`` for sizes and rounds).  Not a test: it prints
a table.  A ``Session`` is driven by an in-memory driver that answers as Postfix's smtp-sink
does: the replies are worked out once by a small emulation, then replayed, so the figures are
smtpproto's own work (commands, replies, state, results) with no server and no system call.

- A: ``--messages`` 1 KB messages, one recipient each, over one session (µs per message).
- B: a new ``Session`` per 1 KB message: greeting, EHLO, the message, QUIT (µs per session).
- C: one 1 KB message to ``--recipients`` recipients (µs per recipient).

Compare a figure with the time per message of the same scenario in ``bench_clients.py`` (about
240 µs for the blocking adapter in A): a speed trick that saves 7 µs here saves about 3 % there.
The median of ``--rounds`` is printed, with the minimum; both are CPU time (``thread_time``).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# Run from a checkout without installing: make the repository root importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _scenarios import LOCAL_HOSTNAME, RECIPIENT, SENDER, make_message, recipients

from smtpproto import Session, SessionOptions, TLSMode
from smtpproto.driver import Close, Connect, Receive, Request, Send, drive

MESSAGE_SIZE = 1024

# What smtp-sink says (Postfix 3.7), recorded from a real session.
_GREETING = b"220 smtp-sink ESMTP\r\n"
_EHLO = (
    b"250-smtp-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-AUTH PLAIN LOGIN\r\n"
    b"250-XCLIENT NAME HELO\r\n250-XFORWARD NAME ADDR PROTO HELO\r\n250-ENHANCEDSTATUSCODES\r\n"
    b"250-DSN\r\n250 \r\n"
)
_REPLIES = {
    b"EHLO": _EHLO,
    b"MAIL": b"250 2.1.0 Ok\r\n",
    b"RCPT": b"250 2.1.5 Ok\r\n",
    b"DATA": b"354 End data with <CR><LF>.<CR><LF>\r\n",
    b"QUIT": b"221 Bye\r\n",
}
_END_OF_DATA_REPLY = b"250 2.0.0 Ok\r\n"
_MESSAGE = make_message(MESSAGE_SIZE)


class SinkEmulation:
    """A driver that answers like smtp-sink, and records what each ``Receive`` returned."""

    def __init__(self) -> None:
        self.reads: list[bytes] = []
        self._out = b""
        self._in_data = False

    def perform(self, request: Request) -> Any:
        if type(request) is Send:
            self._take(request.data)
            return None
        if type(request) is Receive:
            out, self._out = self._out, b""
            assert out, "the client waits for a reply the server does not owe"
            self.reads.append(out)
            return out
        if isinstance(request, Connect):
            self._out, self._in_data = _GREETING, False
            return None
        assert isinstance(request, Close), request
        return None

    def _take(self, data: bytes) -> None:
        if self._in_data:
            assert data.endswith(b"\r\n.\r\n"), "a 1 KB message goes in one write with its end"
            self._in_data = False
            self._out += _END_OF_DATA_REPLY
            return
        for line in data.split(b"\r\n")[:-1]:
            self._out += _REPLIES[line[:4]]
            self._in_data = line == b"DATA"


class Replay:
    """A driver that returns recorded reads and does nothing else."""

    def __init__(self, reads: list[bytes]) -> None:
        self._reads: Iterator[bytes] = iter(reads)

    def perform(self, request: Request) -> Any:
        if type(request) is Receive:
            return next(self._reads)
        return None


# A scenario, run against a driver; ``warm`` runs it with other addresses (see :func:`measure`).
Scenario = Callable[[Callable[[Request], Any], bool], None]


def _options() -> SessionOptions:
    return SessionOptions(local_hostname=LOCAL_HOSTNAME)


def _open(session: Session, perform: Callable[[Request], Any]) -> None:
    drive(session.open("127.0.0.1", 25, tls=TLSMode.NONE), perform)


def _send(session: Session, perform: Callable[[Request], Any], to: list[str], warm: bool) -> None:
    sender = SENDER
    if warm:
        sender, to = _warm(sender), [_warm(rcpt) for rcpt in to]
    result = drive(session.send_message(_MESSAGE, sender, to), perform)
    if not result.all_delivered:
        raise SystemExit(f"not delivered to {result.failed}")


def _warm(address: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local}@warm-up.{domain}"


def scenario_a(messages: int) -> Scenario:
    def run(perform: Callable[[Request], Any], warm: bool) -> None:
        session = Session(_options())
        _open(session, perform)
        for _ in range(messages):
            _send(session, perform, [RECIPIENT], warm)
        drive(session.quit(), perform)

    return run


def scenario_b(connections: int) -> Scenario:
    def run(perform: Callable[[Request], Any], warm: bool) -> None:
        for _ in range(connections):
            session = Session(_options())
            _open(session, perform)
            _send(session, perform, [RECIPIENT], warm)
            drive(session.quit(), perform)

    return run


def scenario_c(count: int) -> Scenario:
    to = recipients(count)

    def run(perform: Callable[[Request], Any], warm: bool) -> None:
        session = Session(_options())
        _open(session, perform)
        _send(session, perform, to, warm)
        drive(session.quit(), perform)

    return run


def measure(scenario: Scenario, rounds: int) -> tuple[float, float]:
    """Median and minimum CPU seconds of ``rounds`` replays, after one emulated run.

    The emulated run uses addresses in other domains, so the first replay finds the address
    caches as cold as a fresh ``bench_clients`` worker does (the replies are the same).  CPU time
    of this thread, not the wall clock: other processes on a busy machine count less.
    """
    emulation = SinkEmulation()
    scenario(emulation.perform, True)
    if not rounds:  # the emulated run alone: a baseline for counting instructions
        return 0.0, 0.0
    times = []
    for _ in range(rounds):
        replay = Replay(emulation.reads)
        gc.collect()
        start = time.thread_time()
        scenario(replay.perform, False)
        times.append(time.thread_time() - start)
    return statistics.median(times), min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=2000, help="A: messages (default 2000)")
    parser.add_argument("--connections", type=int, default=300, help="B: sessions (default 300)")
    parser.add_argument("--recipients", type=int, default=500, help="C: recipients (default 500)")
    parser.add_argument("--rounds", type=int, default=15, help="0: the emulated run alone")
    parser.add_argument("--scenarios", default="ABC")
    args = parser.parse_args()
    plan = {
        "A": (f"A {args.messages} x 1 KB, 1 session", scenario_a(args.messages), args.messages),
        "B": (f"B {args.connections} sessions", scenario_b(args.connections), args.connections),
        "C": (f"C {args.recipients} recipients", scenario_c(args.recipients), args.recipients),
    }
    print(f"Python {sys.version.split()[0]}; median (min) of {args.rounds} rounds")
    print(f"{'scenario':<28}  {'µs per unit':>18}")
    for letter in args.scenarios:
        label, scenario, units = plan[letter]
        median, least = measure(scenario, args.rounds)
        unit = "rcpt" if letter == "C" else "msg"
        figure = f"{median / units * 1e6:.1f} ({least / units * 1e6:.1f})"
        print(f"{label:<28}  {figure:>13} /{unit}")


if __name__ == "__main__":
    main()
