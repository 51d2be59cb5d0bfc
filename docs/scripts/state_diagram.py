"""Draw the client's state machine from the tables in ``smtpproto._state``.

The docs build calls :func:`dot_source` and :func:`send_table_rows` (see ``docs/conf.py``), so the
published diagram is regenerated from ``SEND_TRANSITIONS`` and ``REPLY_TRANSITIONS`` on every build
and cannot drift from the code.  Run it by hand to get a ``.dot`` file::

    python docs/scripts/state_diagram.py state-machine.dot
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

from smtpproto._state import REPLY_TRANSITIONS, SEND_TRANSITIONS, Outcome, State

__all__ = ["dot_source", "send_table_rows", "write_dot"]

# The one move that no table holds: the adapter reports the TLS handshake with
# ``ClientConnection.tls_established()``.  Drawn dotted so a reader sees where it comes from.
_TLS_EDGE = (State.TLS_PAUSED, State.CONNECTED, "tls_established()")

# (source, target) -> labels; one edge per pair keeps parallel arrows (RSET, QUIT, NOOP from
# every session state) from burying the diagram.
_EdgeLabels = Mapping[tuple[State, State], list[str]]


def _send_edges() -> _EdgeLabels:
    edges: defaultdict[tuple[State, State], list[str]] = defaultdict(list)
    for (before, kind), after in SEND_TRANSITIONS.items():
        edges[before, after].append(kind)
    return edges


def _reply_edges() -> _EdgeLabels:
    # (source, target) -> kind -> outcomes, so "AUTH 2xx" and "AUTH 4xx/5xx" share a line.
    grouped: defaultdict[tuple[State, State], dict[str, list[Outcome]]] = defaultdict(dict)
    for (before, kind, outcome), after in REPLY_TRANSITIONS.items():
        grouped[before, after].setdefault(kind, []).append(outcome)
    return {
        pair: [f"{kind} {', '.join(o.value for o in outcomes)}" for kind, outcomes in kinds.items()]
        for pair, kinds in grouped.items()
    }


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _edge_lines(edges: _EdgeLabels, style: str) -> Iterable[str]:
    # A self-loop gets the same treatment: one loop per state, its labels under each other.
    for (before, after), labels in edges.items():
        label = _quote("\n".join(labels))
        # QUIT is allowed from almost every state: grey keeps those edges from dominating.
        colour = ', color="gray55", fontcolor="gray40"' if after is State.QUIT else ""
        yield f"  {before.name} -> {after.name} [label={label}, style={style}{colour}];"


def dot_source() -> str:
    """The Graphviz source of the state machine: solid send edges, dashed reply edges."""
    send = _send_edges()
    reply = _reply_edges()
    used = {state for pair in (*send, *reply) for state in pair}
    used.update(_TLS_EDGE[:2])
    lines = [
        "digraph smtp_client {",
        '  graph [rankdir=TB, nodesep=0.5, ranksep=0.6, fontname="sans-serif"];',
        '  node [shape=box, style=rounded, fontname="sans-serif", fontsize=11];',
        '  edge [fontname="sans-serif", fontsize=9];',
        # Enum order is dialogue order; listing nodes that way gives a stable layout.
        *(f"  {state.name};" for state in State if state in used),
        *_edge_lines(send, "solid"),
        *_edge_lines(reply, "dashed"),
        f"  {_TLS_EDGE[0].name} -> {_TLS_EDGE[1].name} "
        f"[label={_quote(_TLS_EDGE[2])}, style=dotted];",
        "}",
    ]
    return "\n".join(lines) + "\n"


def send_table_rows() -> list[tuple[str, str, str]]:
    """``(state, command kind, state after sending)`` for every allowed send, in state order."""
    order = {state: index for index, state in enumerate(State)}
    rows = sorted(SEND_TRANSITIONS.items(), key=lambda item: (order[item[0][0]], item[0][1]))
    return [(before.name, kind, after.name) for (before, kind), after in rows]


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
