"""Draw the client's state machine from the tables in ``smtpproto._machine.state``.

The docs build calls :func:`dot_source` and :func:`send_table_rows` (see ``docs/conf.py``), so the
published diagram is regenerated from ``SEND_TRANSITIONS``, ``REPLY_TRANSITIONS`` (with
``LMTP_REPLY_TRANSITIONS``) and ``TRIGGER_TRANSITIONS`` on every build and cannot drift from the
code; ``tests/test_state_diagram.py`` checks that every entry is drawn.  Run it by hand to get a
``.dot`` file::

    python docs/scripts/state_diagram.py state-machine.dot
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from smtpproto._machine.state import (
    LMTP_REPLY_TRANSITIONS,
    REPLY_TRANSITIONS,
    SEND_TRANSITIONS,
    TRIGGER_TRANSITIONS,
    State,
    Trigger,
)

__all__ = ["ANY_STATE", "Edge", "dot_source", "edges", "send_table_rows", "write_dot"]

#: The node that stands for "any state": a trigger that applies in most states is drawn once,
#: from here, with the states it does not apply in named on its label.
ANY_STATE = "ANY_STATE"

_STYLES = {"send": "solid", "reply": "dashed", "trigger": "dotted"}


@dataclass(frozen=True)
class Edge:
    """One arrow: ``source`` is a state name or :data:`ANY_STATE`; one label per line."""

    source: str
    target: str
    labels: tuple[str, ...]
    kind: str  # "send", "reply" or "trigger"


def _send_edges() -> list[Edge]:
    # (source, target) -> labels; one edge per pair keeps parallel arrows (RSET, QUIT, NOOP from
    # every session state) from burying the diagram.
    labels: defaultdict[tuple[State, State], list[str]] = defaultdict(list)
    for (before, kind), after in SEND_TRANSITIONS.items():
        labels[before, after].append(kind.value)
    return [Edge(b.name, a.name, tuple(texts), "send") for (b, a), texts in labels.items()]


def _reply_edges() -> list[Edge]:
    # The SMTP and LMTP tables differ in a few entries: those are marked with their protocol.
    marked = [
        (key, after, "" if LMTP_REPLY_TRANSITIONS.get(key) is after else " (SMTP)")
        for key, after in REPLY_TRANSITIONS.items()
    ]
    marked += [
        (key, after, " (LMTP)")
        for key, after in LMTP_REPLY_TRANSITIONS.items()
        if REPLY_TRANSITIONS.get(key) is not after
    ]
    # (source, target) -> (kind, mark) -> outcomes, so "AUTH 2xx, 4xx/5xx" share a line.
    grouped: defaultdict[tuple[State, State], dict[tuple[str, str], list[str]]] = defaultdict(dict)
    for (before, kind, outcome), after, mark in marked:
        grouped[before, after].setdefault((kind.value, mark), []).append(outcome.value)
    return [
        Edge(
            before.name,
            after.name,
            tuple(f"{kind} {', '.join(outs)}{mark}" for (kind, mark), outs in kinds.items()),
            "reply",
        )
        for (before, after), kinds in grouped.items()
    ]


def _trigger_edges() -> list[Edge]:
    moves: defaultdict[tuple[Trigger, State], list[State]] = defaultdict(list)
    for (before, trigger), after in TRIGGER_TRANSITIONS.items():
        moves[trigger, after].append(before)
    # (source, target) -> labels: "421" and "end of input" share the arrow into CLOSED.
    labels: defaultdict[tuple[str, str], list[str]] = defaultdict(list)
    for (trigger, after), sources in moves.items():
        if len(sources) * 2 > len(State):
            missing = [state.name for state in State if state not in sources]
            label = trigger.value + (f" (not in {', '.join(missing)})" if missing else "")
            labels[ANY_STATE, after.name].append(label)
        else:
            for source in sources:
                labels[source.name, after.name].append(trigger.value)
    return [Edge(b, a, tuple(texts), "trigger") for (b, a), texts in labels.items()]


def edges() -> list[Edge]:
    """Every arrow of the diagram: sends, then replies, then triggers."""
    return [*_send_edges(), *_reply_edges(), *_trigger_edges()]


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _edge_lines(drawn: Iterable[Edge]) -> Iterable[str]:
    for edge in drawn:
        # A self-loop gets the same treatment: one loop per state, its labels under each other.
        label = _quote("\n".join(edge.labels))
        # QUIT is allowed from almost every state: grey keeps those edges from dominating.
        colour = ', color="gray55", fontcolor="gray40"' if edge.target == State.QUIT.name else ""
        style = _STYLES[edge.kind]
        yield f"  {edge.source} -> {edge.target} [label={label}, style={style}{colour}];"


def dot_source() -> str:
    """The Graphviz source: solid send edges, dashed reply edges, dotted trigger edges."""
    drawn = edges()
    used = {name for edge in drawn for name in (edge.source, edge.target)}
    lines = [
        "digraph smtp_client {",
        '  graph [rankdir=TB, nodesep=0.5, ranksep=0.6, fontname="sans-serif"];',
        '  node [shape=box, style=rounded, fontname="sans-serif", fontsize=11];',
        '  edge [fontname="sans-serif", fontsize=9];',
        # Enum order is dialogue order; listing nodes that way gives a stable layout.
        *(f"  {state.name};" for state in State if state.name in used),
        f'  {ANY_STATE} [label="any state", shape=plaintext];',
        *_edge_lines(drawn),
        "}",
    ]
    return "\n".join(lines) + "\n"


def send_table_rows() -> list[tuple[str, str, str]]:
    """``(state, command kind, state after sending)`` for every allowed send, in state order."""
    order = {state: index for index, state in enumerate(State)}
    rows = sorted(SEND_TRANSITIONS.items(), key=lambda item: (order[item[0][0]], item[0][1]))
    return [(before.name, kind.value, after.name) for (before, kind), after in rows]


def write_dot(path: Path) -> None:
    """Write :func:`dot_source` to ``path``."""
    path.write_text(dot_source(), encoding="utf-8")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: state_diagram.py OUTPUT.dot", file=sys.stderr)
        return 2
    write_dot(Path(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
