"""Many SMTP sessions at once on one thread: a tiny ``selectors`` event loop drives smtpproto.

This is what a custom I/O framework does with smtpproto: it shares no code with the built-in
adapters and uses only public names.  Each session is one operation (open with STARTTLS, send,
quit), run by :func:`smtpproto.driver.drive_async` as a coroutine of this loop; ``perform`` waits
for socket readiness through the loop instead of blocking.  Bodies given as files would be read
inline (``perform_body_request``): a real framework would hand that to a worker thread.

Run: python docs/examples/selectors_driver.py [SESSIONS]
"""

from __future__ import annotations

import errno
import selectors
import socket
import ssl
import sys
import time
from collections import deque
from collections.abc import Coroutine, Generator
from typing import Any

from local_server import local_server
from smtpproto.adapters.bodies import perform_body_request

import smtpproto
from smtpproto.driver import (
    Close,
    CloseBody,
    Connect,
    OpenBody,
    Operation,
    ReadBody,
    Receive,
    ReplyClock,
    Request,
    Send,
    StartTLSHandshake,
    drive_async,
)

Task = Coroutine["Wait", None, Any]


class Wait:
    """What a task awaits: ``sock`` ready for ``events`` before ``deadline`` (monotonic)."""

    def __init__(self, sock: socket.socket, events: int, timeout: float | None) -> None:
        self.sock, self.events = sock, events
        self.deadline = None if timeout is None else time.monotonic() + timeout

    def __await__(self) -> Generator[Wait, None, None]:
        yield self  # to the loop, which resumes the task when the socket is ready


class Loop:
    """Runs tasks until all are done; a task's result (or exception) lands in ``results``."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.runnable: deque[tuple[Task, BaseException | None]] = deque()
        self.waiting: dict[Task, Wait] = {}
        self.results: dict[Task, Any] = {}

    def run(self, tasks: list[Task]) -> list[Any]:
        self.runnable.extend((task, None) for task in tasks)
        while self.runnable or self.waiting:
            while self.runnable:
                self.step(*self.runnable.popleft())
            if not self.waiting:
                break
            deadlines = [w.deadline for w in self.waiting.values() if w.deadline is not None]
            timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            for key, _ in self.selector.select(timeout):
                self.resume(key.data, None)
            for task, wait in list(self.waiting.items()):  # what is still waiting, timed out
                if wait.deadline is not None and wait.deadline <= time.monotonic():
                    self.resume(task, TimeoutError())
        return [self.results[task] for task in tasks]

    def step(self, task: Task, error: BaseException | None) -> None:
        try:
            wait = task.send(None) if error is None else task.throw(error)
        except StopIteration as stop:
            self.results[task] = stop.value
        except Exception as exc:  # the operation's own error (a refusal...): its result
            self.results[task] = exc
        else:
            self.waiting[task] = wait
            self.selector.register(wait.sock, wait.events, task)

    def resume(self, task: Task, error: BaseException | None) -> None:
        self.selector.unregister(self.waiting.pop(task).sock)
        self.runnable.append((task, error))


class SelectorDriver:
    """One connection; ``perform`` is the driver contract, awaiting readiness, never blocking."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.sock: socket.socket | None = None
        self.clock = ReplyClock(time.monotonic)

    async def perform(self, request: Request) -> Any:
        if isinstance(request, OpenBody | ReadBody | CloseBody):
            return perform_body_request(request)
        phase = getattr(request, "phase", "TLS handshake")
        try:
            return await self.do(request)
        except ssl.SSLError as exc:  # an OSError too: test it first
            raise smtpproto.TLSError(f"TLS handshake failed: {exc}") from None
        except TimeoutError:
            if isinstance(request, Connect):
                raise smtpproto.ConnectError(request.host, request.port, "timed out") from None
            raise smtpproto.SMTPTimeoutError(phase, getattr(request, "timeout", None)) from None
        except OSError as exc:
            if isinstance(request, Connect):
                raise smtpproto.ConnectError(request.host, request.port, str(exc)) from None
            raise smtpproto.ConnectionLostError(phase, str(exc)) from None

    async def do(self, request: Request) -> bytes | None:
        if isinstance(request, Connect):
            self.close()
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setblocking(False)
            if self.sock.connect_ex((request.host, request.port)) not in (0, errno.EINPROGRESS):
                raise ConnectionRefusedError("connection refused")
            await Wait(self.sock, selectors.EVENT_WRITE, request.timeout)
            if code := self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                raise OSError(code, "cannot connect")
            if request.implicit_tls:
                await self.handshake(request.server_hostname, request.verify, request.timeout)
        elif isinstance(request, StartTLSHandshake):
            await self.handshake(request.server_hostname, request.verify, request.timeout)
        elif isinstance(request, Send):
            data = memoryview(request.data)
            while data:
                try:
                    data = data[self.connected().send(data) :]
                except (BlockingIOError, ssl.SSLWantWriteError):
                    await Wait(self.connected(), selectors.EVENT_WRITE, request.timeout)
        elif isinstance(request, Receive):
            timeout = self.clock.remaining(request)
            while True:
                try:
                    return self.connected().recv(65536)
                except (BlockingIOError, ssl.SSLWantReadError):
                    await Wait(self.connected(), selectors.EVENT_READ, timeout)
        elif isinstance(request, Close):
            self.close()
        else:  # ResolveMX, ResolveAddresses: only delivery asks for DNS
            raise TypeError(f"this driver cannot perform {request!r}")
        return None

    async def handshake(self, name: str | None, verify: bool, timeout: float | None) -> None:
        if not verify:
            raise ssl.SSLError("this driver always verifies certificates")
        self.sock = self.context.wrap_socket(
            self.connected(), server_hostname=name, do_handshake_on_connect=False
        )
        while True:
            try:
                return self.sock.do_handshake()
            except ssl.SSLWantReadError:
                await Wait(self.sock, selectors.EVENT_READ, timeout)
            except ssl.SSLWantWriteError:
                await Wait(self.sock, selectors.EVENT_WRITE, timeout)

    def connected(self) -> socket.socket:
        if self.sock is None:
            raise ConnectionResetError("not connected")
        return self.sock

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()


def conversation(
    session: smtpproto.Session, host: str, port: int, name: str | None, envelope: tuple[str, str]
) -> Operation[Any]:
    """One session's whole life, as one operation: operations compose with ``yield from``."""
    sender, rcpt = envelope
    yield from session.open(host, port, tls=smtpproto.TLSMode.STARTTLS, server_hostname=name)
    body = f"Subject: to {rcpt}\r\n\r\nHello, {rcpt}.\r\n".encode()
    result = yield from session.send_message(body, sender, [rcpt])
    yield from session.quit()
    return result


def send_all(
    host: str,
    port: int,
    context: ssl.SSLContext,
    recipients: list[str],
    *,
    sender: str = "alice@example.org",
    server_hostname: str | None = None,
) -> list[Any]:
    """One session per recipient, all at once; each one's SendResult, or its error."""
    tasks: list[Task] = []
    for rcpt in recipients:
        driver = SelectorDriver(context)
        session = smtpproto.Session(smtpproto.SessionOptions(local_hostname="client.example.org"))
        operation = conversation(session, host, port, server_hostname, (sender, rcpt))
        tasks.append(drive_async(operation, driver.perform))
    return Loop().run(tasks)


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    recipients = [f"user{number}@example.net" for number in range(count)]
    with local_server() as server:
        for result in send_all(server.host, server.port, server.client_context, recipients):
            print("delivered to", result.delivered)
        print("the server stored", len(server.messages), "messages")
