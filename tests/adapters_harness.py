"""One synchronous face for the three adapters, so each integration scenario is written once.

The ``adapter`` fixture is parametrized over ``blocking``, ``asyncio`` and ``trio``.  It yields an
:class:`Adapter` whose :meth:`Adapter.connect` returns a client with the blocking adapter's API:

- blocking: the client itself;
- asyncio: an event loop runs in a background thread and every call is
  ``asyncio.run_coroutine_threadsafe(...).result(timeout)``;
- trio: ``trio.run`` runs in a background thread and every call is ``trio.from_thread.run``.

Every call is bounded by :data:`CALL_TIMEOUT`, so a hung adapter fails the test with
:class:`HarnessTimeout` instead of hanging the suite.  At teardown every client still open is
disconnected and the loop threads are stopped.

Test modules load the fixture with ``pytest_plugins = ["tests.adapters_harness"]``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import importlib
import inspect
import ssl
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any, Protocol, TypeVar

import pytest
import trio

from smtpproto import (
    Body,
    Extensions,
    MessageOutcome,
    OutgoingMessage,
    RecipientResult,
    Reply,
    SendResult,
    TLSMode,
)

__all__ = [
    "ADAPTER_NAMES",
    "CALL_TIMEOUT",
    "Adapter",
    "AsyncClientFacade",
    "AsyncioRunner",
    "Client",
    "HarnessTimeout",
    "LoopRunner",
    "TrioRunner",
    "adapter",
]

T = TypeVar("T")

ADAPTER_NAMES = ("blocking", "asyncio", "trio")
#: Longest any single facade call may take (the 5 MB and 150-recipient Postfix sends included).
CALL_TIMEOUT = 30.0
#: How long teardown waits for a loop thread to finish.
STOP_TIMEOUT = 10.0


class HarnessTimeout(AssertionError):
    """A facade call did not finish within its bound: the adapter hung."""


class Client(Protocol):
    """The blocking adapter's API, which every facade offers."""

    def authenticate(
        self,
        username: str,
        password: str | None = None,
        *,
        token: str | None = None,
        mechanism: str | None = None,
        allow_cleartext: bool = False,
    ) -> Reply: ...

    def send_message(
        self,
        message: Body,
        sender: str | None = None,
        recipients: Iterable[str] | None = None,
        **options: Any,
    ) -> SendResult: ...

    def create_message(self, sender: str, **options: Any) -> Reply: ...

    def add_recipient(
        self, recipient: str, *, notify: Sequence[Any] | None = None, orcpt: str | None = None
    ) -> RecipientResult: ...

    def append_message(self, content: Body) -> None: ...

    def close_message(self) -> SendResult: ...

    def send_messages(
        self, messages: Iterable[OutgoingMessage], *, quit: bool = False
    ) -> Iterator[MessageOutcome]: ...

    def reset(self) -> Reply: ...

    def noop(self) -> Reply: ...

    def verify(self, address: str) -> Reply: ...

    def disconnect(self) -> None: ...

    @property
    def extensions(self) -> Extensions: ...

    @property
    def tls_active(self) -> bool: ...

    @property
    def tls_verified(self) -> bool: ...

    def __enter__(self) -> Client: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


# -- running coroutines from the test's thread --------------------------------------------------


class LoopRunner(Protocol):
    """Runs async callables on an event loop living in another thread."""

    def call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T: ...

    def stop(self) -> None: ...


class AsyncioRunner:
    """An asyncio event loop in a daemon thread."""

    def __init__(self, timeout: float = CALL_TIMEOUT) -> None:
        self.timeout = timeout
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="adapters-asyncio", daemon=True
        )
        self._thread.start()

    def call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        async def run() -> T:
            return await fn(*args, **kwargs)

        future = asyncio.run_coroutine_threadsafe(run(), self.loop)
        try:
            return future.result(self.timeout)
        except concurrent.futures.TimeoutError:
            if future.done():  # the call itself raised TimeoutError: not ours to rename
                raise
            future.cancel()
            raise HarnessTimeout(
                f"asyncio adapter: {fn.__qualname__} did not finish in {self.timeout} s"
            ) from None

    def stop(self) -> None:
        async def cancel_the_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if not self.loop.is_closed():
            asyncio.run_coroutine_threadsafe(cancel_the_rest(), self.loop).result(STOP_TIMEOUT)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(STOP_TIMEOUT)
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()


class TrioRunner:
    """``trio.run`` in a daemon thread, sleeping until :meth:`stop` cancels it."""

    def __init__(self, timeout: float = CALL_TIMEOUT) -> None:
        self.timeout = timeout
        self._ready = threading.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._scope: trio.CancelScope | None = None
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="adapters-trio", daemon=True)
        self._thread.start()
        if not self._ready.wait(STOP_TIMEOUT) or self._token is None:
            raise RuntimeError(f"trio did not start: {self._failure!r}")

    def _main(self) -> None:
        async def sleep_until_stopped() -> None:
            async with trio.open_nursery() as nursery:
                self._scope = nursery.cancel_scope
                self._token = trio.lowlevel.current_trio_token()
                self._ready.set()
                await trio.sleep_forever()

        try:
            trio.run(sleep_until_stopped)
        except BaseException as exc:  # reported by stop(), in the test's thread
            self._failure = exc
            self._ready.set()

    def call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        async def run() -> T:
            with trio.move_on_after(self.timeout):
                return await fn(*args, **kwargs)
            raise HarnessTimeout(
                f"trio adapter: {fn.__qualname__} did not finish in {self.timeout} s"
            )

        return trio.from_thread.run(run, trio_token=self._token)

    def stop(self) -> None:
        if self._thread.is_alive() and self._scope is not None:
            trio.from_thread.run_sync(self._scope.cancel, trio_token=self._token)
            self._thread.join(STOP_TIMEOUT)
        if self._failure is not None:
            raise self._failure


# -- the facade over an async client ------------------------------------------------------------


class AsyncClientFacade:
    """The blocking API over an asyncio or trio ``SMTPClient``, one loop call per method."""

    def __init__(self, client: Any, runner: LoopRunner) -> None:
        self.raw = client
        self._runner = runner

    def authenticate(
        self,
        username: str,
        password: str | None = None,
        *,
        token: str | None = None,
        mechanism: str | None = None,
        allow_cleartext: bool = False,
    ) -> Reply:
        reply: Reply = self._runner.call(
            self.raw.authenticate,
            username,
            password,
            token=token,
            mechanism=mechanism,
            allow_cleartext=allow_cleartext,
        )
        return reply

    def send_message(
        self,
        message: Body,
        sender: str | None = None,
        recipients: Iterable[str] | None = None,
        **options: Any,
    ) -> SendResult:
        result: SendResult = self._runner.call(
            self.raw.send_message, message, sender, recipients, **options
        )
        return result

    def create_message(self, sender: str, **options: Any) -> Reply:
        reply: Reply = self._runner.call(self.raw.create_message, sender, **options)
        return reply

    def add_recipient(
        self, recipient: str, *, notify: Sequence[Any] | None = None, orcpt: str | None = None
    ) -> RecipientResult:
        result: RecipientResult = self._runner.call(
            self.raw.add_recipient, recipient, notify=notify, orcpt=orcpt
        )
        return result

    def append_message(self, content: Body) -> None:
        self._runner.call(self.raw.append_message, content)

    def close_message(self) -> SendResult:
        result: SendResult = self._runner.call(self.raw.close_message)
        return result

    def send_messages(
        self, messages: Iterable[OutgoingMessage], *, quit: bool = False
    ) -> Iterator[MessageOutcome]:
        """The async iterator run to its end on the loop: its outcomes, in order."""
        outcomes: list[MessageOutcome] = self._runner.call(
            _every_outcome, self.raw.send_messages(messages, quit=quit)
        )
        return iter(outcomes)

    def reset(self) -> Reply:
        reply: Reply = self._runner.call(self.raw.reset)
        return reply

    def noop(self) -> Reply:
        reply: Reply = self._runner.call(self.raw.noop)
        return reply

    def verify(self, address: str) -> Reply:
        reply: Reply = self._runner.call(self.raw.verify, address)
        return reply

    def disconnect(self) -> None:
        self._runner.call(self.raw.disconnect)

    @property
    def extensions(self) -> Extensions:
        extensions: Extensions = self.raw.extensions
        return extensions

    @property
    def tls_active(self) -> bool:
        return bool(self.raw.tls_active)

    @property
    def tls_verified(self) -> bool:
        return bool(self.raw.tls_verified)

    def __enter__(self) -> AsyncClientFacade:
        self._runner.call(self.raw.__aenter__)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._runner.call(self.raw.__aexit__, exc_type, exc, tb)


async def _every_outcome(outcomes: Any) -> list[MessageOutcome]:
    return [outcome async for outcome in outcomes]


async def _connect_async(client_class: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    # ``connect`` may be a coroutine function or return an awaitable async context manager.
    result = client_class.connect(*args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


class Adapter:
    """One adapter under test: :meth:`connect` gives a :class:`Client`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.module = importlib.import_module(f"smtpproto.adapters.{name}")
        # The blocking adapter needs no loop; the others get one thread each.
        self._runner: LoopRunner | None = None
        if name == "asyncio":
            self._runner = AsyncioRunner()
        elif name == "trio":
            self._runner = TrioRunner()
        self._clients: list[Client] = []

    def connect(
        self,
        host: str,
        port: int | None = None,
        *,
        tls: TLSMode = TLSMode.STARTTLS,
        server_hostname: str | None = None,
        verify: bool = True,
        ssl_context: ssl.SSLContext | None = None,
        **options: Any,
    ) -> Client:
        """``SMTPClient.connect`` of this adapter, with the same arguments as the blocking one."""
        kwargs: dict[str, Any] = {
            "tls": tls,
            "server_hostname": server_hostname,
            "verify": verify,
            "ssl_context": ssl_context,
            **options,
        }
        client_class = self.module.SMTPClient
        client: Client
        if self._runner is None:
            client = client_class.connect(host, port, **kwargs)
        else:
            raw = self._runner.call(_connect_async, client_class, (host, port), kwargs)
            client = AsyncClientFacade(raw, self._runner)
        self._clients.append(client)
        return client

    def close(self) -> None:
        """Disconnect what the test left open, then stop the loop thread."""
        try:
            for client in self._clients:
                with contextlib.suppress(Exception):  # a client the test already broke
                    client.disconnect()
        finally:
            if self._runner is not None:
                self._runner.stop()

    def __repr__(self) -> str:
        return f"<Adapter {self.name}>"


def _load(name: str) -> Adapter:
    try:
        return Adapter(name)
    except ImportError as exc:
        pytest.fail(f"the {name} adapter cannot be imported: {exc}", pytrace=False)


@pytest.fixture(params=ADAPTER_NAMES)
def adapter(request: pytest.FixtureRequest) -> Iterator[Adapter]:
    """Each of the three adapters in turn, behind the blocking API."""
    loaded = _load(request.param)
    try:
        yield loaded
    finally:
        loaded.close()
