"""The benchmark's sinks, each in its own process on loopback: Postfix's smtp-sink, and ours.

Both run in a separate process so that the server never shares the client's interpreter (or
its GIL); on a two-core machine the client and the sink then get a core each.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["HOST", "discard_sink", "smtp_sink", "smtp_sink_path"]

HOST = "127.0.0.1"
SMTP_SINK = "/usr/sbin/smtp-sink"
SINK_SCRIPT = Path(__file__).resolve().parent / "_sink.py"
START_TIMEOUT = 10.0


def smtp_sink_path() -> str | None:
    """Where smtp-sink is (Debian installs it outside PATH), or None."""
    if os.access(SMTP_SINK, os.X_OK):
        return SMTP_SINK
    return shutil.which("smtp-sink")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for_greeting(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the sink exited with status {process.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=1.0) as sock:
                if sock.recv(512).startswith(b"220"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"no SMTP greeting on port {port} within {START_TIMEOUT} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def smtp_sink() -> Iterator[int]:
    """Run ``smtp-sink`` (PIPELINING, 8BITMIME; no SIZE, no CHUNKING); yields its port."""
    path = smtp_sink_path()
    if path is None:
        raise RuntimeError("smtp-sink not found: install Debian's postfix package")
    port = _free_port()
    command = [path]
    if os.geteuid() == 0:
        command += ["-u", "nobody"]  # smtp-sink refuses to run as root
    command += [f"{HOST}:{port}", "1024"]  # the backlog
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        _wait_for_greeting(port, process)
        yield port
    finally:
        _stop(process)


@contextlib.contextmanager
def discard_sink() -> Iterator[int]:
    """Run ``bench/_sink.py`` (PIPELINING, 8BITMIME, discards everything); yields its port."""
    process = subprocess.Popen(
        [sys.executable, str(SINK_SCRIPT)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        if not line.startswith("PORT "):
            raise RuntimeError(f"the discard sink did not start: {line!r}")
        port = int(line.split()[1])
        _wait_for_greeting(port, process)
        yield port
    finally:
        _stop(process)
