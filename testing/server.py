"""A scripted SMTP server on a local socket, for testing SMTP clients: the threaded one.

:class:`ScriptedServer` listens (on ``127.0.0.1`` and a free port unless told otherwise) and
serves each connection in its own thread.  It plays an ordinary SMTP dialogue — greeting, EHLO
(PIPELINING, STARTTLS when it has a TLS context, AUTH PLAIN and LOGIN, optionally CHUNKING),
MAIL, RCPT, DATA or BDAT, RSET, NOOP, VRFY, QUIT — unless its *rules* name a step, in which
case it does what the rule's action says there instead (see :mod:`smtpproto.testing.records`).

The steps are ``GREETING``, ``EHLO``, ``HELO``, ``STARTTLS``, ``HANDSHAKE`` (after the 220 to
STARTTLS), ``EHLO-TLS`` (the EHLO after the handshake), ``AUTH`` (its first reply),
``AUTH-CHALLENGE`` (any further 334), ``AUTH-RESPONSE`` (the outcome after the client's last
SASL response), ``MAIL``, ``RCPT`` (every RCPT) or ``RCPT1``, ``RCPT2``… (one of them),
``DATA``, ``BODY`` (after ``body_fault_after`` octets of message content), ``BDAT``, ``DOT``
(the final dot, or ``BDAT … LAST``), ``RSET``, ``NOOP``, ``VRFY``, ``QUIT``, and any other
verb by its name.

The dialogue itself is :mod:`smtpproto.testing.dialogue`, shared with the servers that run as
tasks on an event loop (:class:`~smtpproto.testing.AsyncioScriptedServer`,
:class:`~smtpproto.testing.TrioScriptedServer`).  This one serves blocking code and event loops
alike: use it in a ``with`` block, or ``async with`` under asyncio or trio (stopping it then
waits in a worker thread, never on the event loop).

Everything is recorded per connection in a :class:`~smtpproto.testing.ConnectionRecord`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType

from .dialogue import DEFAULT_REPLIES, SERVICE_CLOSING_REPLY
from .peer import Peer
from .records import ConnectionRecord
from .scripted_base import ScriptedServerBase

__all__ = ["DEFAULT_REPLIES", "SERVICE_CLOSING_REPLY", "ScriptedServer"]

#: How often the accepting thread checks whether the server is finishing.
ACCEPT_POLL = 0.05


class ScriptedServer(ScriptedServerBase):
    """An SMTP server that plays the ordinary dialogue with ``rules`` applied, on threads.

    ``rules`` maps a step to an :data:`~smtpproto.testing.Action`.  ``tls_context`` (a server
    context, e.g. :meth:`TLSMaterial.server_context`) enables STARTTLS, or with
    ``implicit_tls=True`` a TLS handshake before the greeting (port 465 style).

    It listens as soon as it is made.  :attr:`address` is where; :attr:`connections` holds one
    :class:`~smtpproto.testing.ConnectionRecord` per connection, in order.  :meth:`finish`
    releases any stall and waits until every connection's thread is done; leaving the ``with``
    (or ``async with``) block calls it.
    """

    def _start(self) -> None:
        # Serving starts with the constructor: tests connect without entering a block.
        # Set by release() (ends stalls) and by finish() (ends delays too).
        self.released = threading.Event()
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, name="scripted-accept", daemon=True)
        self._acceptor.start()

    # -- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> ScriptedServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.finish()

    async def __aenter__(self) -> ScriptedServer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await _off_the_loop(self.finish)

    def release(self) -> None:
        """End every stall: the stalled connections go on to wait for the client's EOF."""
        self.released.set()

    def finish(self, timeout: float = 10.0) -> list[ConnectionRecord]:
        """Stop accepting, release stalls, wait for every connection's thread; the records.

        Raises :class:`RuntimeError` if a connection is still being served after ``timeout``.
        """
        self.release()
        self.stopping.set()
        deadline = time.monotonic() + timeout
        self._acceptor.join(max(0.0, deadline - time.monotonic()))
        with contextlib.suppress(OSError):
            self._listener.close()
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            raise RuntimeError(f"scripted server threads still running: {alive}")
        return self.connections

    def _accept(self) -> None:
        # Polled: closing a listening socket does not wake a thread blocked in accept().
        self._listener.settimeout(ACCEPT_POLL)
        while not self.stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:  # the listener was closed: finish()
                return
            sock.settimeout(None)  # accepted sockets inherit the listener's timeout
            record = self.new_record()
            thread = threading.Thread(
                target=self._serve,
                args=(sock, record),
                name=f"scripted-conn-{len(self.connections)}",
                daemon=True,
            )
            self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket, record: ConnectionRecord) -> None:
        peer = Peer(sock, record, self)
        try:
            peer.run(peer.conversation.run())
        finally:
            peer.close()


async def _off_the_loop(function: Callable[[], object]) -> None:
    """Run a blocking ``function`` in a worker thread of whichever event loop is running."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # not asyncio: trio (the only other loop the adapters support)
        import trio  # noqa: PLC0415 -- trio is optional

        await trio.to_thread.run_sync(function)
    else:
        await asyncio.to_thread(function)
