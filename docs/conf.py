"""Sphinx configuration for the smtpproto documentation.

Build (warnings are errors): ``python -m sphinx -W --keep-going -b html docs docs/_build/html``;
the examples are checked with ``-b doctest``.  ``.ci/build-docs`` runs both.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective

_DOCS = Path(__file__).resolve().parent
# Document the working tree, not whatever version happens to be installed.
sys.path[:0] = [str(_DOCS.parent), str(_DOCS / "scripts")]

from state_diagram import dot_source, send_table_rows  # noqa: E402

import smtpproto  # noqa: E402

project = "smtpproto"
author = "smtpproto developers"
copyright = "smtpproto developers"
release = smtpproto.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.doctest",
    "sphinx.ext.graphviz",
]

exclude_patterns = ["_build", "scripts", "requirements.txt"]
html_theme = "furo"
html_title = f"smtpproto {release}"

# The public API is what smtpproto/__init__.py exports; show it under that name.
add_module_names = False
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
# No autodoc_type_aliases for Command: Sphinx 9 renders an alias nested in a union or tuple as
# "TypeAliasForwardRef('Command')" (sphinx-doc/sphinx#14003), so the union is spelt out instead.
autodoc_default_options = {"members": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False

graphviz_output_format = "svg"


def _indented(text: str) -> list[str]:
    return ["   " + line if line else "" for line in text.splitlines()]


class _GeneratedDirective(SphinxDirective):
    """Expands to reStructuredText produced from the state tables at build time."""

    has_content = False

    def generate(self) -> list[str]:
        raise NotImplementedError

    def run(self) -> list[Any]:
        # parse_text_to_nodes (Sphinx 7.4+) keeps docutils' untyped API out of this file.
        return self.parse_text_to_nodes("\n".join(self.generate()))


class StateDiagramDirective(_GeneratedDirective):
    """``.. smtpproto-state-diagram::`` — the Graphviz drawing of SEND/REPLY_TRANSITIONS."""

    def generate(self) -> list[str]:
        return [
            ".. graphviz::",
            "   :caption: The client state machine, drawn from its tables at build time.",
            "   :alt: State diagram of the SMTP client protocol machine",
            "",
            *_indented(dot_source()),
        ]


class SendTableDirective(_GeneratedDirective):
    """``.. smtpproto-send-transitions::`` — SEND_TRANSITIONS as a table."""

    def generate(self) -> list[str]:
        lines = [
            ".. list-table:: SEND_TRANSITIONS: what may be sent in each state",
            "   :header-rows: 1",
            "   :widths: 30 30 40",
            "",
            "   * - State",
            "     - Command kind",
            "     - State after sending",
        ]
        for before, kind, after in send_table_rows():
            lines += [f"   * - ``{before}``", f"     - ``{kind}``", f"     - ``{after}``"]
        return lines


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("smtpproto-state-diagram", StateDiagramDirective)
    app.add_directive("smtpproto-send-transitions", SendTableDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
