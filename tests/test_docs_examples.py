"""Every example under docs/examples/ runs as its own process and prints what the docs claim.

The documentation pages include these files (``literalinclude``); running them here keeps the
pages honest.  Each example starts its own loopback server (docs/examples/local_server.py, or a
bare listening socket), so the tests need no fixture.
"""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"
# Helpers the examples import; not examples themselves.
HELPERS = {"local_server.py"}
ADAPTERS = ("blocking", "asyncio", "trio")


def run_example(name: str) -> str:
    """Run ``docs/examples/<name>``; return its stdout, failing on a non-zero exit or stderr."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == "", done.stderr
    return done.stdout


def test_every_example_is_run_here() -> None:
    """A new example file without a test here would let its page drift."""
    tested = {
        "raw_socket_driver.py",
        "own_adapter.py",
        "selectors_driver.py",
        "errors_and_logging.py",
        *(f"seed_{adapter}.py" for adapter in ADAPTERS),
        *(f"cancel_{adapter}.py" for adapter in ADAPTERS if adapter != "blocking"),
    }
    present = {path.name for path in EXAMPLES.glob("*.py")} - HELPERS
    assert present == tested


def test_raw_socket_driver_reports_each_recipient() -> None:
    """C11: one recipient refused, the other delivered; R1: replies matched by count."""
    out = run_example("raw_socket_driver.py")
    assert "C: MAIL FROM:<me@example.org>" in out
    assert "alice@example.net      delivered" in out
    assert "nobody@example.net     failed             550 5.1.1 no such user here" in out
    assert "The server stored 1 message(s) for ['alice@example.net']" in out


def test_own_adapter_sends_over_starttls() -> None:
    """The hand-written driver of docs/own-adapter.rst delivers a message over STARTTLS."""
    out = run_example("own_adapter.py")
    assert out == "delivered: ['bob@example.net'] stored: [['bob@example.net']]\n"


def test_selectors_driver_runs_sessions_at_once() -> None:
    """A driver that shares nothing with the built-in adapters, on public names only, runs
    several STARTTLS sessions on one thread."""
    out = run_example("selectors_driver.py")
    expected = [f"delivered to ['user{n}@example.net']" for n in range(5)]
    assert out.splitlines() == [*expected, "the server stored 5 messages"]


def test_own_adapter_driver_is_under_60_lines() -> None:
    """docs/own-adapter.rst promises a complete driver in under 60 lines (the demo follows)."""
    lines = (EXAMPLES / "own_adapter.py").read_text().splitlines()
    driver = "\n".join(lines[: lines.index('if __name__ == "__main__":')]).rstrip()
    assert len(driver.splitlines()) < 60


SEED_OUTPUT = """\
connected; TLS: True verified: True
authenticated: 235
SendMessage: bob@example.net True 250
SendMessage: nobody@example.net False 550
AddRecipient: carol@example.net True 250
AddRecipient: nobody@example.net False 550
CloseMessage: delivered to ['carol@example.net'] failed: ['nobody@example.net']
stored: [('alice@example.org', ['bob@example.net']), ('alice@example.org', ['carol@example.net'])]
"""


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_seed_methods_example(adapter: str) -> None:
    """Each seed method in each adapter (docs/seed-mapping.rst): STARTTLS verified, AUTH, a
    per-recipient result for SendMessage and for the staged message (C11), QUIT on leaving."""
    assert run_example(f"seed_{adapter}.py") == SEED_OUTPUT


def test_transcript_hides_credentials_and_content() -> None:
    """S8: the smtpproto.transcript log shows the AUTH mechanism, never the credentials."""
    out = run_example("errors_and_logging.py")
    transcript = [line for line in out.splitlines() if line.startswith("smtpproto.transcript: ")]
    said = [line.removeprefix("smtpproto.transcript: ") for line in transcript]
    assert said[0].startswith("S: 220 mx.example.net")
    assert said[1] == "C: EHLO me.test"
    assert "C: STARTTLS" in said
    assert "C: AUTH PLAIN <credentials hidden>" in said
    assert "C: <23 octets of message content>" in said
    assert said[-2:] == ["C: QUIT", "S: 221 Bye"]
    plain = base64.b64encode(b"\0alice\0correct horse").decode()
    assert "alice" not in out
    assert "correct horse" not in out
    assert plain not in out
    assert "Hello." not in out


def test_errors_example_maps_each_failure() -> None:
    """C11 (every recipient refused: RecipientsRefused, the session stays usable), C17 (a
    per-phase timeout), a failed certificate check and a refused connection, each with its
    ``temporary`` flag."""
    out = run_example("errors_and_logging.py").splitlines()
    tail = [line for line in out if not line.startswith("smtpproto.transcript: ")]
    assert tail == [
        "refused: nobody@example.net 550 5.1.1 False",
        "the session is still usable: 250",
        "TLSError: True True",
        "SMTPTimeoutError: GREETING 0.2 True",
        "ConnectError: True False True",
    ]


@pytest.mark.parametrize("adapter", ["asyncio", "trio"])
def test_cancellation_closes_without_quit(adapter: str) -> None:
    """Cancelling the task mid-operation closes the connection at once."""
    assert run_example(f"cancel_{adapter}.py").splitlines() == [
        "cancelled while waiting for the greeting" + (": True" if adapter == "trio" else ""),
        "the server saw the connection closed: True",
    ]
