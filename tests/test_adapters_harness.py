"""The harness itself: a hung call fails the test, errors keep their type, threads stop."""

from __future__ import annotations

import asyncio
import importlib
import threading
import time
from collections.abc import Awaitable, Callable

import pytest
import trio

SLEEPS: dict[str, Callable[[float], Awaitable[None]]] = {
    "asyncio": asyncio.sleep,
    "trio": trio.sleep,
}


async def add(a: int, b: int) -> int:
    return a + b


async def time_out_by_itself() -> None:
    raise TimeoutError("the adapter's own")


def loop_threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name]


@pytest.mark.parametrize("loop", ["asyncio", "trio"])
def test_runner_calls_bounds_and_stops(loop: str) -> None:
    # Looked up now: pytest_plugins has loaded the module, with its asserts rewritten.
    harness = importlib.import_module("tests.adapters_harness")
    thread_name, sleep = f"adapters-{loop}", SLEEPS[loop]
    before = len(loop_threads(thread_name))
    runner = harness.AsyncioRunner(0.3) if loop == "asyncio" else harness.TrioRunner(0.3)
    try:
        assert len(loop_threads(thread_name)) == before + 1
        assert runner.call(add, 2, b=3) == 5
        with pytest.raises(TimeoutError, match="the adapter's own") as caught:
            runner.call(time_out_by_itself)
        assert not isinstance(caught.value, harness.HarnessTimeout)
        started = time.monotonic()
        with pytest.raises(harness.HarnessTimeout):
            runner.call(sleep, 30)
        assert time.monotonic() - started < 2
        assert runner.call(add, 1, 1) == 2  # the loop survives a timed-out call
    finally:
        runner.stop()
    assert len(loop_threads(thread_name)) == before
