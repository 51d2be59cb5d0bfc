"""The asyncio peer: ``aiosmtplib``, sessions run concurrently with ``asyncio.gather``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiosmtplib
from _scenarios import LOCAL_HOSTNAME, SENDER, AsyncSend, Work, read_whole_file, run_async


@contextlib.asynccontextmanager
async def session(host: str, port: int) -> AsyncIterator[AsyncSend]:
    client = aiosmtplib.SMTP(
        hostname=host, port=port, local_hostname=LOCAL_HOSTNAME, use_tls=False, start_tls=False
    )
    async with client:

        async def send(body: Any, recipients: list[str]) -> None:
            refused, _ = await client.sendmail(SENDER, recipients, body)
            if refused:
                raise RuntimeError(f"aiosmtplib: refused {refused}")

        yield send


async def gather(sessions: list[Callable[[], Awaitable[None]]]) -> None:
    await asyncio.gather(*(s() for s in sessions))


def run(scenario: str, w: Work) -> float:
    return asyncio.run(run_async(session, read_whole_file, gather, scenario, w))
