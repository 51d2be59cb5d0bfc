"""smtpproto's blocking adapter; a large message is streamed from its path.

``blocking`` sends one message at a time (``send_message``); ``blocking-pipelined`` hands all the
messages of a session to ``send_messages``, which keeps whole transactions in flight.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from _scenarios import (
    LOCAL_HOSTNAME,
    SENDER,
    Message,
    SyncSendAll,
    Work,
    big_body,
    one_at_a_time,
    run_sync,
    signing_options,
)

from smtpproto import SendOptions, SendResult, SMTPError, prepare_message

if TYPE_CHECKING:  # mypy knows adapters/ as "adapters" (the package-dir mapping)
    from adapters.blocking import SMTPClient, TLSMode
else:
    from smtpproto.adapters.blocking import SMTPClient, TLSMode


def _connect(host: str, port: int) -> SMTPClient:
    return SMTPClient.connect(host, port, tls=TLSMode.NONE, local_hostname=LOCAL_HOSTNAME)


def _check(outcome: SendResult | SMTPError) -> None:
    if isinstance(outcome, SMTPError):
        raise outcome  # what stopped this message: the run is void
    if not outcome.all_delivered:
        raise RuntimeError(f"smtpproto: not delivered to {outcome.failed}")


@contextlib.contextmanager
def session(host: str, port: int, options: SendOptions | None = None) -> Iterator[SyncSendAll]:
    with _connect(host, port) as client:

        def send(body: Any, recipients: list[str]) -> None:
            _check(client.send_message(body, SENDER, recipients, options=options))

        yield one_at_a_time(send)


@contextlib.contextmanager
def pipelined_session(host: str, port: int) -> Iterator[SyncSendAll]:
    with _connect(host, port) as client:

        def send_all(messages: list[Message]) -> None:
            # QUIT rides with the last message (quit=True): that round trip is saved too.
            outgoing = (prepare_message(body, SENDER, rcpts) for body, rcpts in messages)
            for outcome in client.send_messages(outgoing, quit=True):
                _check(outcome)

        yield send_all


def run(scenario: str, w: Work) -> float:
    opener = functools.partial(session, options=signing_options(w))
    return run_sync(opener, big_body(w), scenario, w)


def run_pipelined(scenario: str, w: Work) -> float:
    return run_sync(pipelined_session, big_body(w), scenario, w)
