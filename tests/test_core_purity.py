"""The core package stays pure: no sockets, TLS, event loops, threads, clocks or DNS.

Parsed with ``ast`` so that a forbidden import anywhere in ``smtpproto/`` (even inside a
function, or as ``from socket import ...``) fails the build.  The adapters live elsewhere.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parent.parent / "smtpproto"
FORBIDDEN = {"socket", "ssl", "asyncio", "trio", "selectors", "threading", "time", "dns"}


def _imported_modules(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted(CORE.rglob("*.py")), ids=lambda p: p.name)
def test_core_module_imports_no_io(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    bad = {name for name in _imported_modules(tree) if name.split(".")[0] in FORBIDDEN}
    assert not bad, f"{path.name} imports I/O modules: {sorted(bad)}"


def test_the_packages_that_do_io_live_outside_the_core() -> None:
    """adapters/, cli/ and testing/ are mapped into ``smtpproto`` at install time, not inside it."""
    assert not {"adapters", "cli", "testing"} & {p.name for p in CORE.iterdir() if p.is_dir()}


def test_the_check_catches_a_forbidden_import() -> None:
    tree = ast.parse("def f():\n    from socket import create_connection\nimport dns.resolver\n")
    assert {"socket", "dns.resolver"} <= _imported_modules(tree)
