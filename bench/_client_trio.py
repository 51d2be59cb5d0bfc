"""smtpproto's trio adapter, sessions run concurrently in a nursery."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import trio
from _scenarios import (
    LOCAL_HOSTNAME,
    SENDER,
    AsyncSendAll,
    Work,
    async_one_at_a_time,
    big_body,
    run_async,
    signing_options,
)

from smtpproto import SendOptions

if TYPE_CHECKING:  # mypy knows adapters/ as "adapters" (the package-dir mapping)
    from adapters.trio import SMTPClient, TLSMode
else:
    from smtpproto.adapters.trio import SMTPClient, TLSMode


@contextlib.asynccontextmanager
async def session(
    host: str, port: int, options: SendOptions | None = None
) -> AsyncIterator[AsyncSendAll]:
    async with SMTPClient.connect(
        host, port, tls=TLSMode.NONE, local_hostname=LOCAL_HOSTNAME
    ) as client:

        async def send(body: Any, recipients: list[str]) -> None:
            result = await client.send_message(body, SENDER, recipients, options=options)
            if not result.all_delivered:
                raise RuntimeError(f"smtpproto: not delivered to {result.failed}")

        yield async_one_at_a_time(send)


async def gather(sessions: list[Callable[[], Awaitable[None]]]) -> None:
    async with trio.open_nursery() as nursery:
        for s in sessions:
            nursery.start_soon(s)


def run(scenario: str, w: Work) -> float:
    opener = functools.partial(session, options=signing_options(w))
    return trio.run(run_async, opener, big_body(w), gather, scenario, w)
