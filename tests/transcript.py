"""Run scripted SMTP transcripts against ``ClientConnection``.

A transcript is a list of steps: ``C(event, wire)`` sends ``event`` and expects exactly ``wire``;
``S(data, *events)`` feeds the server's bytes and expects exactly those events (``NEED_DATA``
left out: every feeding is drained until the machine needs data, pauses or sees the close).  An
``UnexpectedReplyCode`` raised on the way is recorded as an ``Unexpected`` event, and reading
goes on: the machine consumed that reply.
Every transcript can be replayed with the server's bytes split at every position: the events and
the bytes written must not change (the machine may not depend on how TCP cut the stream).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import smtpproto
from smtpproto import NEED_DATA, ClientConnection, ConnectionClosed, UnexpectedReplyCode

Event = object


@dataclass(frozen=True)
class C:
    """The client sends ``event``; the machine must produce ``wire``."""

    event: smtpproto.Command
    wire: bytes


@dataclass(frozen=True)
class S:
    """The server sends ``data``; the machine must produce ``events`` (then NEED_DATA)."""

    data: bytes
    events: tuple[Event, ...]

    def __init__(self, data: bytes, *events: Event) -> None:
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "events", events)


@dataclass(frozen=True)
class Unexpected:
    """``next_event()`` raised ``UnexpectedReplyCode`` for this reply (R5)."""

    code: int
    lines: tuple[str, ...]
    command: smtpproto.Command | None = None


Step = C | S


def _drain(conn: ClientConnection) -> list[Event]:
    events: list[Event] = []
    while True:
        try:
            event = conn.next_event()
        except UnexpectedReplyCode as exc:
            events.append(Unexpected(exc.code, exc.lines, exc.command))
            continue
        events.append(event)
        if event is NEED_DATA or event is smtpproto.PAUSED or isinstance(event, ConnectionClosed):
            return events


def _splits(data: bytes, at: int | None) -> Iterator[bytes]:
    if at is None:
        yield data
    elif at == -1:  # one byte at a time
        for i in range(len(data)):
            yield data[i : i + 1]
    else:
        yield data[:at]
        yield data[at:]


def run(
    steps: Sequence[Step], conn: ClientConnection | None = None, split: int | None = None
) -> ClientConnection:
    """Play ``steps``; ``split`` cuts every server chunk at that offset (-1: byte by byte)."""
    conn = conn or ClientConnection(local_hostname="client.example.org")
    for step in steps:
        if isinstance(step, C):
            assert conn.send(step.event) == step.wire, step
            continue
        got: list[Event] = []
        pieces = [p for p in _splits(step.data, split) if p] if step.data else [b""]
        for piece in pieces:
            conn.receive_data(piece)
            got += [e for e in _drain(conn) if e is not NEED_DATA]
        assert tuple(_dedupe_paused(got)) == step.events, (step, got)
    return conn


def _dedupe_paused(events: list[Event]) -> list[Event]:
    # Feeding in pieces may show PAUSED more than once; it is a state, not news.
    out: list[Event] = []
    for event in events:
        if out and event is smtpproto.PAUSED and out[-1] is smtpproto.PAUSED:
            continue
        out.append(event)
    return out


def run_all_splits(steps: Sequence[Step], **conn_kwargs: object) -> None:
    """Play ``steps`` whole, byte by byte, and cut at every offset of every server chunk."""

    def fresh() -> ClientConnection:
        return ClientConnection(local_hostname="client.example.org", **conn_kwargs)  # type: ignore[arg-type]

    run(steps, fresh())
    run(steps, fresh(), split=-1)
    longest = max((len(s.data) for s in steps if isinstance(s, S)), default=0)
    for at in range(1, longest):
        run(steps, fresh(), split=at)
