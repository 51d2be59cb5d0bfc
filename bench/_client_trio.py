"""smtpproto's trio adapter, sessions run concurrently in a nursery."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio
from _scenarios import LOCAL_HOSTNAME, SENDER, AsyncSendAll, Work, async_one_at_a_time, run_async

if TYPE_CHECKING:  # mypy knows adapters/ as "adapters" (the package-dir mapping)
    from adapters.trio import SMTPClient, TLSMode
else:
    from smtpproto.adapters.trio import SMTPClient, TLSMode


@contextlib.asynccontextmanager
async def session(host: str, port: int) -> AsyncIterator[AsyncSendAll]:
    async with SMTPClient.connect(
        host, port, tls=TLSMode.NONE, local_hostname=LOCAL_HOSTNAME
    ) as client:

        async def send(body: Any, recipients: list[str]) -> None:
            result = await client.send_message(body, SENDER, recipients)
            if not result.all_delivered:
                raise RuntimeError(f"smtpproto: not delivered to {result.failed}")

        yield async_one_at_a_time(send)


async def gather(sessions: list[Callable[[], Awaitable[None]]]) -> None:
    async with trio.open_nursery() as nursery:
        for s in sessions:
            nursery.start_soon(s)


def run(scenario: str, w: Work) -> float:
    return trio.run(run_async, session, Path, gather, scenario, w)
