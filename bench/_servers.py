"""The benchmark's servers, each in its own process on loopback: Postfix's smtp-sink, our
discard sink (with or without CHUNKING), and the latency proxy that goes in front of a sink.

Each runs in a separate process so that it never shares the client's interpreter (or its GIL);
on a two-core machine the client and the sink then get a core each (the proxy's work is small:
it forwards a few small chunks per message).
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

__all__ = ["HOST", "discard_sink", "latency_proxy", "smtp_sink", "smtp_sink_path"]

HOST = "127.0.0.1"
SMTP_SINK = "/usr/sbin/smtp-sink"
SINK_SCRIPT = Path(__file__).resolve().parent / "_sink.py"
PROXY_SCRIPT = Path(__file__).resolve().parent / "_latency_proxy.py"
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


def _wait_for_greeting(port: int, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
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
def _python_server(script: Path, *args: str) -> Iterator[int]:
    """Run one of our servers, which prints ``PORT <n>`` once it listens; yields the port."""
    process = subprocess.Popen(
        [sys.executable, str(script), *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        if not line.startswith("PORT "):
            raise RuntimeError(f"{script.name} did not start: {line!r}")
        yield int(line.split()[1])
    finally:
        _stop(process)


@contextlib.contextmanager
def discard_sink(chunking: bool = False) -> Iterator[int]:
    """Run ``bench/_sink.py`` (PIPELINING, 8BITMIME, discards everything; CHUNKING if asked);
    yields its port."""
    with _python_server(SINK_SCRIPT, *(["--chunking"] if chunking else [])) as port:
        _wait_for_greeting(port)
        yield port


@contextlib.contextmanager
def latency_proxy(upstream_port: int, rtt_ms: float) -> Iterator[int]:
    """Run ``bench/_latency_proxy.py`` in front of ``HOST:upstream_port``, adding ``rtt_ms`` to
    every round trip; yields its port."""
    with _python_server(
        PROXY_SCRIPT, "--upstream", f"{HOST}:{upstream_port}", "--rtt-ms", str(rtt_ms)
    ) as port:
        yield port
