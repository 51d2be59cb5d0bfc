"""The benchmark's latency proxy and CHUNKING sink move the right bytes (no timing here).

Benchmarks are never timed in tests: these only check that ``bench/_latency_proxy.py`` is a
faithful pipe (every octet, in order, the half-close passed on) and that ``bench/_sink.py
--chunking`` speaks BDAT, so a benchmark run cannot measure a broken path.
"""

from __future__ import annotations

import contextlib
import smtplib
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from smtpproto import Bdat, EndOfMessage

if TYPE_CHECKING:
    from adapters.blocking import SMTPClient, TLSMode
else:
    from smtpproto.adapters.blocking import SMTPClient, TLSMode

BENCH = Path(__file__).resolve().parent.parent / "bench"
HOST = "127.0.0.1"
MESSAGE = b"From: <a@example.org>\r\nSubject: bench smoke\r\n\r\n.a leading dot\r\nbody\r\n"


@contextlib.contextmanager
def bench_server(script: str, *args: str) -> Iterator[int]:
    """Run ``bench/<script>`` (it prints ``PORT <n>`` once it listens); yields the port."""
    process = subprocess.Popen(
        [sys.executable, str(BENCH / script), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        assert line.startswith("PORT "), line
        yield int(line.split()[1])
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextlib.contextmanager
def echo_server() -> Iterator[int]:
    """Echoes one connection, then closes it when the client has half-closed."""
    with socket.create_server((HOST, 0)) as listener:

        def serve() -> None:
            conn, _ = listener.accept()
            with conn:
                while data := conn.recv(65536):
                    conn.sendall(data)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        yield listener.getsockname()[1]
        thread.join(timeout=10)


def test_proxy_delivers_every_octet_in_order_and_passes_the_half_close() -> None:
    # Chunks of many sizes, each different, so a lost, repeated or reordered chunk shows.
    chunks = [bytes([i % 251]) * (1 + (i * 7919) % 70000) for i in range(120)]
    sent = b"".join(chunks)
    with (
        echo_server() as echo_port,
        bench_server(
            "_latency_proxy.py", "--upstream", f"{HOST}:{echo_port}", "--rtt-ms", "2"
        ) as proxy_port,
        socket.create_connection((HOST, proxy_port), timeout=30) as sock,
    ):

        def send() -> None:
            for chunk in chunks:
                sock.sendall(chunk)
            sock.shutdown(socket.SHUT_WR)

        sender = threading.Thread(target=send)
        sender.start()
        received = bytearray()
        while data := sock.recv(1 << 20):  # ends at the echo server's close, passed on
            received += data
        sender.join()
    assert bytes(received) == sent


def test_proxy_refuses_an_address_outside_loopback() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / "_latency_proxy.py"), "--upstream", "192.0.2.1:25"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode != 0
    assert "not a 127.0.0.0/8 address" in done.stderr


@pytest.mark.parametrize(("chunking", "command"), [(False, EndOfMessage), (True, Bdat)])
def test_sink_behind_the_proxy_takes_messages(chunking: bool, command: type[object]) -> None:
    with (
        bench_server("_sink.py", *(["--chunking"] if chunking else [])) as sink_port,
        bench_server(
            "_latency_proxy.py", "--upstream", f"{HOST}:{sink_port}", "--rtt-ms", "2"
        ) as proxy_port,
    ):
        with SMTPClient.connect(HOST, proxy_port, tls=TLSMode.NONE) as client:
            assert client.extensions.chunking is chunking
            for _ in range(3):
                result = client.send_message(MESSAGE, "a@example.org", ["b@example.net"])
                assert result.all_delivered
                assert result.data_reply is not None
                assert isinstance(result.data_reply.command, command)
        # smtplib uses DATA whatever the sink offers: the sink's DATA path stays right.
        with smtplib.SMTP(HOST, proxy_port, timeout=30) as peer:
            assert peer.sendmail("a@example.org", ["b@example.net"], MESSAGE) == {}
