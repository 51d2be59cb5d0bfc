"""smtpproto's asyncio adapter, sessions run concurrently with ``asyncio.gather``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from _scenarios import LOCAL_HOSTNAME, SENDER, AsyncSend, Work, run_async

if TYPE_CHECKING:  # mypy knows adapters/ as "adapters" (the package-dir mapping)
    from adapters.asyncio import SMTPClient, TLSMode
else:
    from smtpproto.adapters.asyncio import SMTPClient, TLSMode


@contextlib.asynccontextmanager
async def session(host: str, port: int) -> AsyncIterator[AsyncSend]:
    async with SMTPClient.connect(
        host, port, tls=TLSMode.NONE, local_hostname=LOCAL_HOSTNAME
    ) as client:

        async def send(body: Any, recipients: list[str]) -> None:
            result = await client.send_message(body, SENDER, recipients)
            if not result.all_delivered:
                raise RuntimeError(f"smtpproto: not delivered to {result.failed}")

        yield send


async def gather(sessions: list[Callable[[], Awaitable[None]]]) -> None:
    await asyncio.gather(*(s() for s in sessions))


def run(scenario: str, w: Work) -> float:
    return asyncio.run(run_async(session, Path, gather, scenario, w))
