"""The layers point one way: wire → machine → operations → delivery → the package's API, then
the adapters, then the testing kit, then the command line.  A module may import its own layer
and the ones below it, never one above: the core never imports an adapter, the kit or the
command line (``python -m`` included).

Imports are read with ``ast`` (those under ``if TYPE_CHECKING:`` too), so a forbidden import
anywhere in a file fails here, before it can fail a user.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Where each installed package lives in the tree (setuptools' package-dir mapping).
TREES = {"smtpproto": ROOT / "smtpproto", "smtpproto.adapters": ROOT / "adapters",
         "smtpproto.testing": ROOT / "testing", "smtpproto.cli": ROOT / "cli"}  # fmt: skip
# DANE and MTA-STS decisions are pure values over DNS answers and certificates, like mx.
TLS_POLICY = ("smtpproto.certificates", "smtpproto.dane", "smtpproto.mta_sts",
              "smtpproto.tls_report", "smtpproto.tls_requirements")  # fmt: skip
# Lowest first.  A module belongs to the first entry its dotted name starts with.
LAYERS = (
    ("wire", ("smtpproto._wire", "smtpproto.mx", "smtpproto.sasl", *TLS_POLICY)),
    ("machine", ("smtpproto._machine",)),
    ("operations", ("smtpproto._operations", "smtpproto.driver")),
    ("delivery", ("smtpproto._delivery",)),
    ("api", ("smtpproto",)),
    ("adapters", ("smtpproto.adapters",)),
    # The kit does I/O (sockets, threads) like the adapters, and the probe builds on it.
    ("testing kit", ("smtpproto.testing",)),
    ("command line", ("smtpproto.cli",)),
)


def layer_of(module: str) -> int:
    """The rank of ``module``'s layer; more specific prefixes are tried first."""
    matches = [
        (len(prefix), rank)
        for rank, (_, prefixes) in enumerate(LAYERS)
        for prefix in prefixes
        if module == prefix or module.startswith(prefix + ".")
    ]
    assert matches, f"{module} belongs to no layer"
    return max(matches)[1]


def modules() -> dict[str, Path]:
    """Every module of the distribution, by its installed dotted name."""
    found: dict[str, Path] = {}
    for package, tree in TREES.items():
        for path in tree.rglob("*.py"):
            parts = list(path.relative_to(tree).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


def imported(module: str, path: Path) -> set[str]:
    """The smtpproto modules ``module`` imports, relative imports resolved."""
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # ``from pkg import sub`` may name a submodule: count it as the submodule.
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                names.add(candidate if candidate in MODULES else target)
    return {name for name in names if name == "smtpproto" or name.startswith("smtpproto.")}


MODULES = modules()


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_a_higher_layer(module: str) -> None:
    rank = layer_of(module)
    above = {name for name in imported(module, MODULES[module]) if layer_of(name) > rank}
    assert not above, f"{module} ({LAYERS[rank][0]}) imports a higher layer: " + ", ".join(
        f"{n} ({LAYERS[layer_of(n)][0]})" for n in sorted(above)
    )


def test_the_core_has_no_main_that_runs_the_command_line() -> None:
    """``python -m smtpproto`` would make the core import the command line."""
    assert "smtpproto.__main__" not in MODULES
    assert "smtpproto.cli.__main__" in MODULES


def test_the_check_catches_an_upward_import(tmp_path: Path) -> None:
    core = tmp_path / "bad.py"
    core.write_text("from ..adapters.blocking import SMTPClient\nfrom .. import driver\n")
    found = imported("smtpproto._wire.bad", core)
    assert found == {"smtpproto.adapters.blocking", "smtpproto.driver"}
    assert max(layer_of(n) for n in found) > layer_of("smtpproto._wire.bad")
