"""Inputs found or kept by the fuzz targets in ``fuzz/`` (issue 7), replayed as ordinary tests.

Every seed of every target's corpus goes through that target's checks, so the harnesses cannot
rot and the real-transcript seeds (Postfix, aiosmtpd, Exchange and Gmail EHLO lists, pipelined
transactions, STARTTLS response injection, SMTP smuggling bodies, RFC 5802/7677 SCRAM exchanges)
stay valid properties of the core.  The targets use atheris' ``FuzzedDataProvider``, so these
tests are skipped where atheris is not installed.

A crasher found by fuzzing is added below as its own test written against the public API (no
atheris needed); one that shows a bug not fixed yet is marked
``xfail(strict=True, reason="bug: ...")``.  None has been found so far.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

# Imported first, so that loading a fuzz target does not import (and so instrument) the core
# itself for the rest of the test session.
import smtpproto.sasl  # noqa: F401

FUZZ_DIR = Path(__file__).resolve().parent.parent / "fuzz"
TARGETS = ("replies", "ehlo", "addresses", "encoder", "sasl")


def _seeds() -> list[tuple[str, Path]]:
    return [
        (target, seed)
        for target in TARGETS
        for seed in sorted((FUZZ_DIR / "corpus" / target).iterdir())
    ]


@functools.cache
def _target(name: str) -> Callable[[bytes], None]:
    pytest.importorskip("atheris")
    spec = importlib.util.spec_from_file_location(f"fuzz_{name}", FUZZ_DIR / f"fuzz_{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    test_one_input: Callable[[bytes], None] = module.TestOneInput
    return test_one_input


def test_every_target_has_seeds() -> None:
    """S1, S2, S4, S6: the corpora the CI fuzz run starts from exist and are not empty."""
    for target in TARGETS:
        assert any((FUZZ_DIR / "corpus" / target).iterdir()), target


@pytest.mark.parametrize(
    ("target", "seed"), _seeds(), ids=lambda value: getattr(value, "name", value)
)
def test_seed_passes_its_target(target: str, seed: Path) -> None:
    """S1, S2, S4, S6/S7, R7, G6, C5-C7: each seed satisfies its fuzz target's checks."""
    _target(target)(seed.read_bytes())
