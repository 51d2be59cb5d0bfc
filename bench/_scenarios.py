"""The benchmark's scenarios (A-E of issue 8), written once for blocking and once for async
clients, so that every client does exactly the same work.

A client is reduced to what every scenario needs: open a session, and send messages over it
(``send_all``: the messages in order, raising unless every one was delivered).  A client that
sends one message at a time wraps its ``send`` with :func:`one_at_a_time`; smtpproto's pipelined
variants hand the whole list to ``send_messages``.  Each client lives in its own module
``_client_<name>.py`` that imports its library; a variant ``<name>-<how>`` is the function
``run_<how>`` of that module.  The runner imports only the one it measures, so a worker process's
peak RSS belongs to one client alone.

A and C measure the messages over an open connection: the clock starts once the session is
open (greeting and EHLO done) and stops when the last message is settled, before QUIT.  B, D and
E measure whole sessions, from the connection to QUIT's reply.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when needed: smtplib's workers must not carry smtpproto's RSS
    from smtpproto import SendOptions

__all__ = [
    "CLIENTS",
    "LOCAL_HOSTNAME",
    "PIPELINED",
    "SCENARIOS",
    "SENDER",
    "AsyncSendAll",
    "Message",
    "SyncSendAll",
    "Work",
    "async_one_at_a_time",
    "available",
    "big_body",
    "load_client",
    "make_message",
    "one_at_a_time",
    "read_whole_file",
    "run_async",
    "run_client",
    "run_sync",
    "signing_options",
]

SENDER = "bench@example.org"
RECIPIENT = "rcpt@example.net"
LOCAL_HOSTNAME = "bench.localhost"

#: The clients, smtplib (the reference) first.  Each is the module ``_client_<name>``, a variant
#: ``<name>-<how>`` its function ``run_<how>``.
CLIENTS = (
    "smtplib",
    "aiosmtplib",
    "blocking",
    "blocking-pipelined",
    "asyncio",
    "asyncio-pipelined",
    "trio",
)
#: smtpproto's clients that hand all the messages of a session to ``send_messages`` at once.
PIPELINED = ("blocking-pipelined", "asyncio-pipelined")
#: Scenario letter -> the unit its rate is counted in.
SCENARIOS = {"A": "msg", "B": "msg", "C": "rcpt", "D": "MB", "E": "msg"}


@dataclass(frozen=True)
class Work:
    """The sizes of one run, and where the servers are."""

    host: str
    port: int  # smtp-sink (or the discard sink) for A, B, C, E
    big_port: int  # the discard sink, for D
    message_size: int  # A, B, C, E
    messages: int  # A
    connections: int  # B
    recipients: int  # C
    big_file: str  # D
    concurrency: int  # E: connections at once...
    per_connection: int  # ...and messages over each
    dkim_keys: str = ""  # D signed: a JSON file {"rsa": PEM, "ed": PEM} (smtpproto's clients)
    big_stream: bool = False  # D: the file as a one-pass stream of 64 KiB chunks, not a path

    def units(self, scenario: str) -> int:
        """How many messages, recipients or octets the scenario moves (for its rate)."""
        if scenario == "D":  # the file exists only when D is run
            return Path(self.big_file).stat().st_size
        return {
            "A": self.messages,
            "B": self.connections,
            "C": self.recipients,
            "E": self.concurrency * self.per_connection,
        }[scenario]


def make_message(size: int) -> bytes:
    """A plain-text message of exactly ``size`` octets with CRLF line ends."""
    header = (
        f"From: Bench <{SENDER}>\r\nTo: <{RECIPIENT}>\r\nSubject: benchmark\r\n"
        "Message-ID: <bench@example.org>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
    ).encode()
    line = b"The quick brown fox jumps over the lazy dog; a sentence. Then another one.\r\n"
    body = (line * (size // len(line) + 1))[: max(size - len(header) - 2, 0)]
    message = header + body + b"\r\n"
    if len(message) != size:
        raise ValueError(f"a message needs at least {len(header) + 2} octets")
    return message


def recipients(count: int) -> list[str]:
    return [f"rcpt{i}@example.net" for i in range(count)]


def read_whole_file(path: str) -> bytes:
    """For smtplib and aiosmtplib, which send only a message that is in memory."""
    with open(path, "rb") as file:
        return file.read()


def _chunks(path: str) -> Iterator[bytes]:
    with open(path, "rb") as file:
        while chunk := file.read(1 << 16):
            yield chunk


def big_body(w: Work) -> Callable[[str], Any]:
    """How smtpproto's clients get D's file: its path, or a one-pass stream (which the driver
    spools to a temporary file when the message is signed, since signing reads it twice)."""
    return _chunks if w.big_stream else Path


def signing_options(w: Work) -> SendOptions | None:
    """D signed with an RSA-2048 and an Ed25519 key, as ``send_message``'s options; built
    before the clock starts."""
    if not w.dkim_keys:
        return None
    # Here, not at the top: smtplib's and aiosmtplib's workers import this module too.
    from smtpproto import SendOptions  # noqa: PLC0415
    from smtpproto.dkim import DKIMSigner  # noqa: PLC0415

    keys = json.loads(Path(w.dkim_keys).read_text())
    domain = SENDER.partition("@")[2]
    return SendOptions(
        dkim=tuple(DKIMSigner(domain, name, keys[name].encode()) for name in ("rsa", "ed"))
    )


#: One message to send: its content and its recipients.
Message = tuple[Any, list[str]]

# --- blocking clients -------------------------------------------------------------------------

# Sends one message (body, recipients) over the open session; raises unless all delivered.
SyncSend = Callable[[Any, list[str]], None]
# Sends the messages over the open session, in order; raises unless every one was delivered.
SyncSendAll = Callable[[list[Message]], None]
SyncOpener = Callable[[str, int], contextlib.AbstractContextManager[SyncSendAll]]


def one_at_a_time(send: SyncSend) -> SyncSendAll:
    def send_all(messages: list[Message]) -> None:
        for body, rcpts in messages:
            send(body, rcpts)

    return send_all


def run_sync(
    open_session: SyncOpener, big_body: Callable[[str], Any], scenario: str, w: Work
) -> float:
    """Run ``scenario`` with a blocking client (threads for E); returns its seconds."""
    message = make_message(w.message_size)

    def session(count: int) -> None:
        with open_session(w.host, w.port) as send_all:
            send_all([(message, [RECIPIENT])] * count)

    def over_open_session(messages: list[Message]) -> float:
        with open_session(w.host, w.port) as send_all:
            start = time.perf_counter()
            send_all(messages)
            return time.perf_counter() - start

    if scenario == "A":
        return over_open_session([(message, [RECIPIENT])] * w.messages)
    if scenario == "C":
        return over_open_session([(message, recipients(w.recipients))])
    start = time.perf_counter()
    if scenario == "B":
        for _ in range(w.connections):
            session(1)
    elif scenario == "D":
        with open_session(w.host, w.big_port) as send_all:
            send_all([(big_body(w.big_file), [RECIPIENT])])
    else:
        with ThreadPoolExecutor(w.concurrency) as pool:
            for future in [pool.submit(session, w.per_connection) for _ in range(w.concurrency)]:
                future.result()
    return time.perf_counter() - start


# --- async clients ----------------------------------------------------------------------------

AsyncSend = Callable[[Any, list[str]], Awaitable[None]]
AsyncSendAll = Callable[[list[Message]], Awaitable[None]]
AsyncOpener = Callable[[str, int], contextlib.AbstractAsyncContextManager[AsyncSendAll]]
# Runs the sessions (coroutine factories) concurrently and waits for all of them.
Gather = Callable[[list[Callable[[], Awaitable[None]]]], Awaitable[None]]


def async_one_at_a_time(send: AsyncSend) -> AsyncSendAll:
    async def send_all(messages: list[Message]) -> None:
        for body, rcpts in messages:
            await send(body, rcpts)

    return send_all


async def run_async(
    open_session: AsyncOpener,
    big_body: Callable[[str], Any],
    gather: Gather,
    scenario: str,
    w: Work,
) -> float:
    """Run ``scenario`` with an async client, inside its event loop; returns its seconds."""
    message = make_message(w.message_size)

    async def session(count: int) -> None:
        async with open_session(w.host, w.port) as send_all:
            await send_all([(message, [RECIPIENT])] * count)

    async def over_open_session(messages: list[Message]) -> float:
        async with open_session(w.host, w.port) as send_all:
            start = time.perf_counter()
            await send_all(messages)
            return time.perf_counter() - start

    if scenario == "A":
        return await over_open_session([(message, [RECIPIENT])] * w.messages)
    if scenario == "C":
        return await over_open_session([(message, recipients(w.recipients))])
    start = time.perf_counter()
    if scenario == "B":
        for _ in range(w.connections):
            await session(1)
    elif scenario == "D":
        async with open_session(w.host, w.big_port) as send_all:
            await send_all([(big_body(w.big_file), [RECIPIENT])])
    else:
        await gather([lambda: session(w.per_connection) for _ in range(w.concurrency)])
    return time.perf_counter() - start


# --- running one ------------------------------------------------------------------------------


def available(client: str) -> bool:
    """Whether this smtpproto has what the client needs (``send_messages`` for a pipelined one)."""
    if client not in PIPELINED:
        return True
    adapter = importlib.import_module(f"smtpproto.adapters.{client.partition('-')[0]}")
    return hasattr(adapter.SMTPClient, "send_messages")


def load_client(client: str) -> Callable[[str, Work], float]:
    """Import the client's module (and so its library); returns its ``run(scenario, work)``
    (``run_<how>`` for a variant ``<name>-<how>``)."""
    if client not in CLIENTS:
        raise ValueError(f"unknown client {client!r}")
    name, _, how = client.partition("-")
    module = importlib.import_module(f"_client_{name}")
    run: Callable[[str, Work], float] | None = getattr(module, f"run_{how}" if how else "run", None)
    if run is None:
        raise RuntimeError(f"{client}: this smtpproto has no send_messages yet")
    return run


def run_client(client: str, scenario: str, w: Work) -> float:
    """Run ``scenario`` with ``client``, imported before the clock starts; returns seconds."""
    return load_client(client)(scenario, w)
