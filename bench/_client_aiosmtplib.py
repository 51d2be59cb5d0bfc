"""The asyncio peer: ``aiosmtplib``, sessions run concurrently with ``asyncio.gather``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiosmtplib
from _scenarios import (
    LOCAL_HOSTNAME,
    SENDER,
    AsyncSendAll,
    Work,
    async_one_at_a_time,
    read_whole_file,
    run_async,
)


@contextlib.asynccontextmanager
async def session(host: str, port: int) -> AsyncIterator[AsyncSendAll]:
    client = aiosmtplib.SMTP(
        hostname=host, port=port, local_hostname=LOCAL_HOSTNAME, use_tls=False, start_tls=False
    )
    async with client:
        await client.ehlo()  # sendmail() would do it with the first message: open the session

        async def send(body: Any, recipients: list[str]) -> None:
            refused, _ = await client.sendmail(SENDER, recipients, body)
            if refused:
                raise RuntimeError(f"aiosmtplib: refused {refused}")

        yield async_one_at_a_time(send)


async def gather(sessions: list[Callable[[], Awaitable[None]]]) -> None:
    await asyncio.gather(*(s() for s in sessions))


def run(scenario: str, w: Work) -> float:
    return asyncio.run(run_async(session, read_whole_file, gather, scenario, w))
