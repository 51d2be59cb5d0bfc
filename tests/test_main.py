"""``python -m smtpproto`` runs the command line (which lives in the adapters, not the core)."""

from __future__ import annotations

import runpy
import sys

import pytest


def test_python_dash_m_smtpproto_runs_the_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["smtpproto", "--help"])
    with pytest.raises(SystemExit) as caught:
        runpy.run_module("smtpproto", run_name="__main__")
    assert caught.value.code == 0
    assert "demo" in capsys.readouterr().out
