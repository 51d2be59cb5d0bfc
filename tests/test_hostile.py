"""Hostile servers, through each adapter: bounded time and bounded memory (issue 7, part 3).

Each case is a :class:`~smtpproto.testing.ScriptedServer` action that misbehaves at one step:
a 1 GiB reply line (streamed from one 64 KiB buffer, never built), an endless multi-line reply,
a giant EHLO list (10^5 lines), binary garbage, replies sent before the greeting or pipelined
junk, 334 challenges that never end, and a reply trickled byte by byte (slowloris).

For each, the client must end with the right :class:`~smtpproto.SMTPError` within
:data:`TIME_BOUND` seconds, close its socket, and its peak memory — measured with
:mod:`tracemalloc` over the whole process while the session runs — must stay under
:data:`MEMORY_BOUND` above the baseline (checklist S6/S7).  The peak of each case is printed
(``pytest -s`` shows it).
"""

from __future__ import annotations

import dataclasses
import random
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from smtpproto import (
    AuthenticationError,
    RemoteProtocolError,
    SMTPError,
    SMTPTimeoutError,
    Timeouts,
    TLSMode,
)

if TYPE_CHECKING:  # mypy knows testing/ as "testing" (package-dir mapping)
    from testing import Action, Peer, ScriptedServer
else:
    from smtpproto.testing import Action, Peer, ScriptedServer


if TYPE_CHECKING:  # imported for real by pytest_plugins, which rewrites its asserts
    from tests.adapters_harness import Adapter

PHASE_TIMEOUT = 0.5
PHASE_TIMEOUTS = dataclasses.replace(Timeouts.uniform(PHASE_TIMEOUT), connect=2.0)
#: The longest any hostile case may keep the client busy.
TIME_BOUND = 3.0
#: Peak memory above the baseline that a hostile case may cost the client.
MEMORY_BOUND = 2 << 20
MESSAGE = b"Subject: hostile\r\n\r\nbody\r\n"
GIB = 1 << 30

# Everything a server sends is built once, here, so that the server thread allocates nothing
# while the client's memory is measured.
CHUNK = b"x" * (1 << 16)
MULTILINE_BLOCK = (b"250-" + b"y" * 60 + b"\r\n") * 1000
GIANT_EHLO = b"".join(b"250-X-EXTENSION-%d\r\n" % i for i in range(100_000)) + b"250 SIZE\r\n"
_garbage = random.Random(20231218).randbytes(1 << 20)
#: Random octets with a CRLF every 100, so that the reply parser (not the line limit) sees them.
GARBAGE_LINES = b"".join(_garbage[i : i + 100] + b"\r\n" for i in range(0, len(_garbage), 100))
#: Random octets without any CRLF to end a line.
GARBAGE = _garbage.replace(b"\r\n", b"\n\n")


def stream(prefix: bytes, block: bytes, total: int = GIB) -> Callable[[Peer], None]:
    """An action that sends ``prefix``, then ``block`` again and again up to ``total`` octets
    (or until the client hangs up)."""

    def act(peer: Peer) -> None:
        peer.send(prefix)
        for _ in range(total // len(block)):
            peer.send(block)

    return act


def endless_334(peer: Peer) -> None:
    """Answer AUTH and every SASL response with yet another challenge, until the client leaves."""
    while True:
        peer.send(b"334 VXNlcm5hbWU6\r\n")
        line = peer.readline()
        if line is None:
            return
        peer.record.auth_responses.append(line[:-2])


def trickle(interval: float, duration: float) -> Callable[[Peer], None]:
    """An action that answers EHLO one octet every ``interval`` seconds for ``duration``
    seconds (an endless first line), then falls silent."""

    def act(peer: Peer) -> None:
        started = time.monotonic()
        peer.send(b"250-")
        while time.monotonic() - started < duration:
            time.sleep(interval)
            peer.send(b"z")

    return act


@dataclass(frozen=True)
class Case:
    """One hostile server: where it misbehaves, and the error the client must end with."""

    name: str
    actions: dict[str, Action]
    error: type[SMTPError]
    says: str
    mechanism: str | None = None
    server: dict[str, Any] = field(default_factory=dict)


CASES = [
    Case(
        "1GiB-greeting-line",
        {"GREETING": stream(b"220 ", CHUNK)},
        RemoteProtocolError,
        "longer than 4096 octets",
    ),
    Case(
        "1GiB-line-during-AUTH",
        {"AUTH": stream(b"334 ", CHUNK)},
        RemoteProtocolError,
        "longer than 16384 octets",
        mechanism="LOGIN",
    ),
    Case(
        "endless-multiline-EHLO",
        {"EHLO": stream(b"", MULTILINE_BLOCK)},
        RemoteProtocolError,
        "reply exceeds 65536 octets",
    ),
    Case(
        "endless-multiline-334",
        {"AUTH": stream(b"", MULTILINE_BLOCK.replace(b"250-", b"334-"))},
        RemoteProtocolError,
        "reply exceeds 65536 octets",
        mechanism="LOGIN",
    ),
    Case(
        "giant-EHLO-100000-lines",
        {"EHLO": stream(b"", GIANT_EHLO, len(GIANT_EHLO))},
        RemoteProtocolError,
        "more than 1000 lines",
    ),
    Case(
        "binary-garbage-greeting",
        {"GREETING": stream(b"", GARBAGE, len(GARBAGE))},
        RemoteProtocolError,
        "longer than 4096 octets",
    ),
    Case(
        "binary-garbage-lines-after-EHLO",
        {"EHLO": stream(b"", GARBAGE_LINES, len(GARBAGE_LINES))},
        RemoteProtocolError,
        "reply",
    ),
    Case(
        "reply-before-the-greeting",
        {"GREETING": b"250 2.0.0 too early\r\n220 scripted.test ready\r\n"},
        RemoteProtocolError,
        "DATA got 250",
    ),
    Case(
        "junk-pipelined-after-the-greeting",
        {"GREETING": b"220 scripted.test ready\r\n250 2.0.0 junk\r\n"},
        RemoteProtocolError,
        "DATA got 250",
    ),
    Case(
        "junk-pipelined-after-EHLO",
        {"EHLO": b"250-scripted.test\r\n250 PIPELINING\r\n250 2.0.0 junk\r\n"},
        RemoteProtocolError,
        "DATA got 250",
    ),
    *(
        Case(
            f"endless-334-{mechanism}",
            {"AUTH": endless_334},
            AuthenticationError,
            "authentication cancelled",
            mechanism=mechanism,
            server={"auth": [mechanism]},
        )
        for mechanism in ("LOGIN", "PLAIN", "CRAM-MD5", "SCRAM-SHA-256", "XOAUTH2")
    ),
    Case(
        "trickle-slower-than-the-timeout",
        {"EHLO": trickle(1.0, 2 * PHASE_TIMEOUT)},
        SMTPTimeoutError,
        "timed out after 0.5 s waiting for the reply to EHLO",
    ),
]


@dataclass
class Usage:
    elapsed: float = 0.0
    peak: int = 0


@contextmanager
def measured() -> Iterator[Usage]:
    """Time and peak traced memory (above the baseline at the start) of the block."""
    usage = Usage()
    tracemalloc.start()
    baseline = tracemalloc.get_traced_memory()[0]
    started = time.monotonic()
    try:
        yield usage
    finally:
        usage.elapsed = time.monotonic() - started
        usage.peak = tracemalloc.get_traced_memory()[1] - baseline
        tracemalloc.stop()


def run_session(
    adapter: Adapter, server: ScriptedServer, mechanism: str | None
) -> SMTPError | None:
    """Connect, authenticate with ``mechanism`` (if any), send a message; the error raised."""
    try:
        with adapter.connect(
            *server.address,
            tls=TLSMode.NONE,
            timeout=PHASE_TIMEOUTS,
            local_hostname="client.test",
        ) as client:
            if mechanism is not None:
                token = "bearer-token" if mechanism == "XOAUTH2" else None
                password = None if token else "hostile-secret"
                client.authenticate(
                    "user", password, token=token, mechanism=mechanism, allow_cleartext=True
                )
            client.send_message(MESSAGE, "sender@client.test", ["rcpt@example.org"])
    except SMTPError as exc:
        return exc
    return None


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_hostile_server_is_bounded_S6_S7(adapter: Adapter, case: Case) -> None:
    """S6/S7: the client ends with the right error, in bounded time and memory, and closes."""
    with ScriptedServer(case.actions, **case.server) as server, measured() as usage:
        error = run_session(adapter, server, case.mechanism)
    print(
        f"\nhostile {case.name} [{adapter.name}]: {usage.elapsed:.3f} s, "
        f"peak {usage.peak / 1024:.0f} KiB above baseline: {error!r}"
    )
    assert isinstance(error, case.error), repr(error)
    assert case.says in str(error)
    assert usage.elapsed < TIME_BOUND
    assert usage.peak < MEMORY_BOUND
    assert server.record.eof, server.record.errors  # the client closed its socket


def test_endless_334_is_cancelled_after_the_mechanism_s_own_steps_S7(adapter: Adapter) -> None:
    """AUTH LOGIN against endless 334s: username, password, then ``*`` — three responses and
    not one more, whatever the server keeps asking."""
    with ScriptedServer({"AUTH": endless_334}, auth=["LOGIN"]) as server:
        error = run_session(adapter, server, "LOGIN")
    assert isinstance(error, AuthenticationError)
    assert server.record.auth_responses == [b"dXNlcg==", b"aG9zdGlsZS1zZWNyZXQ=", b"*"]
    assert server.record.verbs == ["EHLO", "AUTH"]  # nothing after the cancelled exchange


#: How long the slowloris below trickles, one octet per :data:`TRICKLE_INTERVAL`.
TRICKLE_FOR = 2.0
TRICKLE_INTERVAL = 0.1


def test_slowloris_reply_is_bounded_by_its_phase_timeout_S7(adapter: Adapter) -> None:
    """S7: an EHLO reply trickled one octet per 0.1 s, with a 0.5 s EHLO timeout: the client
    gives up about 0.5 s after sending EHLO (the deadline covers the whole reply)."""
    with (
        ScriptedServer({"EHLO": trickle(TRICKLE_INTERVAL, TRICKLE_FOR)}) as server,
        measured() as usage,
    ):
        error = run_session(adapter, server, None)
    print(
        f"\nhostile slowloris [{adapter.name}]: {usage.elapsed:.3f} s "
        f"(trickle {TRICKLE_FOR} s), peak {usage.peak / 1024:.0f} KiB: {error!r}"
    )
    assert isinstance(error, SMTPTimeoutError)
    assert usage.peak < MEMORY_BOUND
    assert usage.elapsed < 2 * PHASE_TIMEOUT + 0.2


def test_early_reply_mid_body_is_not_a_delivery_C12(adapter: Adapter) -> None:
    """C12: only a 2xx that *follows* the end of data means delivered.  Here the message and
    its end go in one write, so the early 250 comes first and the 554 behind it: a reply too
    many, which the client finds after the end of data."""
    actions: dict[str, Action] = {
        "BODY": b"250 2.0.0 too early\r\n",
        "DOT": b"554 5.7.1 message refused\r\n",
    }
    with ScriptedServer(actions, body_fault_after=1) as server:
        error = run_session(adapter, server, None)
    assert not server.record.delivered
    assert error is not None, "the client reported the refused message as delivered"
