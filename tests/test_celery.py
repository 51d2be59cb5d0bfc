"""The Celery task on real parts: a private Redis (Debian's redis-server) as broker and result
backend, four Celery worker processes, and a scripted relay that refuses some recipients once
(451) and one for good (550).  1,000 messages: every one counted at the server, none lost;
duplicates only for the message whose worker was killed (SIGKILL) after the server's 250 and
before the acknowledgement — at least once, as documented.
"""

from __future__ import annotations

import collections
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from smtpproto.testing import Answer, ScriptedServer, reply

from tests.servers.net import pick_free_port

pytest.importorskip("celery")

from tests import celery_app

if TYPE_CHECKING:
    from adapters.celery import enqueue
else:
    from smtpproto.adapters.celery import enqueue

REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_HOST = "127.0.0.81"
ROOT = Path(__file__).resolve().parent.parent
WORKERS = 4
MESSAGES = int(os.environ.get("SMTPPROTO_TEST_CELERY_MESSAGES", "1000"))
VICTIM_INDEX = MESSAGES // 2 + 1  # not one of the "soft-" messages


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A private redis-server on loopback (no persistence), stopped after the test."""
    if not os.access(REDIS, os.X_OK):
        pytest.skip("redis-server is not installed (.ci/install-servers)")
    port = pick_free_port(REDIS_HOST)
    process = subprocess.Popen(
        [REDIS, "--bind", REDIS_HOST, "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection((REDIS_HOST, port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise AssertionError("redis-server did not start") from None
                time.sleep(0.05)
        yield f"redis://{REDIS_HOST}:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


class Relay:
    """The scripted relay: counts each recipient it accepted; "soft-" ones get a 451 the first
    time, "nobody" a 550 always."""

    def __init__(self) -> None:
        self.accepted: collections.Counter[str] = collections.Counter()
        self.refused_once: set[str] = set()
        self._lock = threading.Lock()
        self.server = ScriptedServer({"RCPT": Answer(self.rcpt)}, io_timeout=30.0)

    def rcpt(self, line: bytes) -> bytes:
        address = line.split(b"<", 1)[1].split(b">", 1)[0].decode()
        with self._lock:
            if address.startswith("nobody"):
                return bytes(reply(550, "5.1.1 no such user"))
            if address.startswith("soft-") and address not in self.refused_once:
                self.refused_once.add(address)
                return bytes(reply(451, "4.3.0 try again later"))
            self.accepted[address] += 1
        return bytes(reply(250, "ok"))


def start_workers(env: dict[str, str], log: Path) -> list[subprocess.Popen[bytes]]:
    workers = []
    for number in range(WORKERS):
        command = [
            sys.executable, "-m", "celery", "-A", "tests.celery_app", "worker",
            "--pool=prefork", "--concurrency=1", "--loglevel=WARNING", f"-n=w{number}@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
            "-Q", "smtpproto-tests",
        ]  # fmt: skip
        with (log / f"worker{number}.log").open("wb") as out:
            workers.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out))
    return workers


def stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        worker.send_signal(signal.SIGTERM)  # warm shutdown: each sender QUITs
    for worker in workers:
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(5)


def message(index: int) -> tuple[bytes, list[str]]:
    rcpts = [f"r{index}@example.net"]
    if index % 10 == 0:
        rcpts.append(f"soft-{index}@example.net")
    if index % 100 == 7:
        rcpts.append(f"nobody-{index}@example.net")
    if index == VICTIM_INDEX:
        rcpts.append("victim@example.net")
    body = f"Message-ID: <m{index}@client.test>\r\nSubject: {index}\r\n\r\nbody {index}\r\n"
    return body.encode(), rcpts


def test_a_thousand_messages_through_four_workers(redis_url: str, tmp_path: Path) -> None:
    relay = Relay()
    host, port = relay.server.address
    env = dict(os.environ, SMTPPROTO_TEST_BROKER=redis_url, SMTPPROTO_TEST_RELAY=f"{host}:{port}")
    env["SMTPPROTO_TEST_KILL_DIR"] = str(tmp_path)
    env["PYTHONPATH"] = str(ROOT)
    celery_app.app.conf.broker_url = celery_app.app.conf.result_backend = redis_url
    workers = start_workers(env, tmp_path)
    killed: list[int] = []

    def kill_the_victim() -> None:
        flag = tmp_path / "victim"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if flag.exists() and flag.read_text():
                pid = int(flag.read_text())
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_the_victim, daemon=True)
    try:
        killer.start()
        started = time.monotonic()
        results = []
        for index in range(MESSAGES):
            body, rcpts = message(index)
            results.append(enqueue(celery_app.deliver, body, "me@client.test", rcpts))
        outcomes = [result.get(timeout=90) for result in results]
        elapsed = time.monotonic() - started
    finally:
        stop_workers(workers)
        relay.server.finish()
    killer.join(1)
    assert killed, "the victim's worker was never killed"
    expected = collections.Counter(r for i in range(MESSAGES) for r in message(i)[1])
    for address in list(expected):
        if address.startswith("nobody"):
            del expected[address]
    # The victim's message went out twice (killed after the 250, before the acknowledgement),
    # both of its recipients; every other recipient exactly once.
    expected[f"r{VICTIM_INDEX}@example.net"] += 1
    expected["victim@example.net"] += 1
    assert relay.accepted == expected
    assert relay.refused_once == {f"soft-{i}@example.net" for i in range(0, MESSAGES, 10)}
    failed = [pair for outcome in outcomes for pair in outcome["failed"]]
    assert sorted(address for address, _ in failed) == sorted(
        f"nobody-{i}@example.net" for i in range(7, MESSAGES, 100)
    )
    retried = [o for o in outcomes if o["attempts"] == 2]
    assert len(retried) == MESSAGES // 10
    print(f"{MESSAGES} messages through {WORKERS} workers in {elapsed:.1f} s")


def test_a_message_without_message_id_is_refused_before_it_is_queued() -> None:
    """Without a Message-ID a receiver could not tell a duplicate (at least once) from a new
    message: refused before anything reaches the broker (none runs here)."""
    with pytest.raises(ValueError, match="Message-ID"):
        enqueue(
            celery_app.deliver, b"Subject: x\n\nMessage-ID: <in@body>\n", "a@b.test", ["c@d.test"]
        )
