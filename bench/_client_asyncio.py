"""smtpproto's asyncio adapter, sessions run concurrently with ``asyncio.gather``.

``asyncio`` sends one message at a time (``send_message``); ``asyncio-pipelined`` hands all the
messages of a session to ``send_messages``, which keeps whole transactions in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from _scenarios import (
    LOCAL_HOSTNAME,
    SENDER,
    AsyncSendAll,
    Message,
    Work,
    async_one_at_a_time,
    big_body,
    run_async,
    signing_options,
)

from smtpproto import SendOptions, SendResult, SMTPError, prepare_message

if TYPE_CHECKING:  # mypy knows adapters/ as "adapters" (the package-dir mapping)
    from adapters.asyncio import SMTPClient, TLSMode
else:
    from smtpproto.adapters.asyncio import SMTPClient, TLSMode


def _check(outcome: SendResult | SMTPError) -> None:
    if isinstance(outcome, SMTPError):
        raise outcome  # what stopped this message: the run is void
    if not outcome.all_delivered:
        raise RuntimeError(f"smtpproto: not delivered to {outcome.failed}")


@contextlib.asynccontextmanager
async def session(
    host: str, port: int, options: SendOptions | None = None
) -> AsyncIterator[AsyncSendAll]:
    async with SMTPClient.connect(
        host, port, tls=TLSMode.NONE, local_hostname=LOCAL_HOSTNAME
    ) as client:

        async def send(body: Any, recipients: list[str]) -> None:
            _check(await client.send_message(body, SENDER, recipients, options=options))

        yield async_one_at_a_time(send)


@contextlib.asynccontextmanager
async def pipelined_session(host: str, port: int) -> AsyncIterator[AsyncSendAll]:
    async with SMTPClient.connect(
        host, port, tls=TLSMode.NONE, local_hostname=LOCAL_HOSTNAME
    ) as client:

        async def send_all(messages: list[Message]) -> None:
            # QUIT rides with the last message (quit=True): that round trip is saved too.
            outgoing = (prepare_message(body, SENDER, rcpts) for body, rcpts in messages)
            async for outcome in client.send_messages(outgoing, quit=True):
                _check(outcome)

        yield send_all


async def gather(sessions: list[Callable[[], Awaitable[None]]]) -> None:
    await asyncio.gather(*(s() for s in sessions))


def run(scenario: str, w: Work) -> float:
    opener = functools.partial(session, options=signing_options(w))
    return asyncio.run(run_async(opener, big_body(w), gather, scenario, w))


def run_pipelined(scenario: str, w: Work) -> float:
    return asyncio.run(run_async(pipelined_session, big_body(w), gather, scenario, w))
