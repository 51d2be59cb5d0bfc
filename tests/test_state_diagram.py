"""The docs' state diagram draws every entry of every state table, and nothing else."""

from __future__ import annotations

import sys
from pathlib import Path

from smtpproto._machine.state import (
    LMTP_REPLY_TRANSITIONS,
    REPLY_TRANSITIONS,
    SEND_TRANSITIONS,
    TRIGGER_TRANSITIONS,
    State,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "docs" / "scripts"))
import state_diagram  # found as docs/conf.py finds it
from state_diagram import ANY_STATE, Edge


def _edges(kind: str) -> dict[tuple[str, str], tuple[str, ...]]:
    drawn = [edge for edge in state_diagram.edges() if edge.kind == kind]
    by_pair = {(edge.source, edge.target): edge.labels for edge in drawn}
    assert len(by_pair) == len(drawn), "one arrow per pair of nodes"
    return by_pair


def test_every_send_is_drawn_and_nothing_else() -> None:
    drawn = {
        (source, kind, target)
        for (source, target), labels in _edges("send").items()
        for kind in labels
    }
    expected = {(b.name, kind.value, a.name) for (b, kind), a in SEND_TRANSITIONS.items()}
    assert drawn == expected


def test_every_reply_entry_is_drawn_and_nothing_else() -> None:
    drawn: set[tuple[str, str, str, str, str]] = set()
    for (source, target), labels in _edges("reply").items():
        for label in labels:
            kind, _, rest = label.partition(" ")
            outcomes, _, mark = rest.partition(" (")
            for drawn_outcome in outcomes.split(", "):
                drawn.add((source, kind, drawn_outcome, target, mark.rstrip(")")))
    expected = set()
    for mark, table, other in (
        ("SMTP", REPLY_TRANSITIONS, LMTP_REPLY_TRANSITIONS),
        ("LMTP", LMTP_REPLY_TRANSITIONS, REPLY_TRANSITIONS),
    ):
        for (before, kind, outcome), after in table.items():
            shared = other.get((before, kind, outcome)) is after
            row = (before.name, kind.value, outcome.value, after.name, "" if shared else mark)
            expected.add(row)
    assert drawn == expected


def test_every_trigger_entry_is_drawn_and_nothing_else() -> None:
    drawn: set[tuple[str, str, str]] = set()
    for (source, target), labels in _edges("trigger").items():
        for label in labels:
            if source != ANY_STATE:
                drawn.add((source, label, target))
                continue
            trigger, _, missing = label.partition(" (not in ")
            excluded = set(missing.rstrip(")").split(", "))
            drawn |= {(s.name, trigger, target) for s in State if s.name not in excluded}
    expected = {(b.name, t.value, a.name) for (b, t), a in TRIGGER_TRANSITIONS.items()}
    assert drawn == expected


def test_the_dot_source_has_every_edge() -> None:
    source = state_diagram.dot_source()
    for edge in state_diagram.edges():
        assert isinstance(edge, Edge)
        assert f"  {edge.source} -> {edge.target} [label=" in source
    assert source.startswith("digraph smtp_client {") and source.endswith("}\n")


def test_the_send_table_rows_follow_the_table() -> None:
    rows = state_diagram.send_table_rows()
    assert len(rows) == len(SEND_TRANSITIONS)
    assert rows[0][0] == State.REFUSED.name  # in state order: nothing is sent while GREETING
