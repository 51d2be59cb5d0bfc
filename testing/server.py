"""A scripted SMTP server on a local socket, for testing SMTP clients.

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

Pipelined commands are read as they come and their replies written in one go, in order, once no
complete command is left in the buffer (RFC 2920 §3.2).  A fault closes only the server's
sending side (after a 421 too): the server then keeps reading, so it can tell whether the client
closed its socket (``ConnectionRecord.eof``), and the kernel never turns unread data into a
reset that would race the client's read of the 421.

Everything is recorded per connection in a :class:`~smtpproto.testing.ConnectionRecord`.

The server runs on threads, so it serves blocking code and event loops alike: use it in a
``with`` block, or ``async with`` under asyncio or trio (stopping it then waits in a worker
thread, never on the event loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import TracebackType

from .peer import DialogueEnded, Peer
from .records import Action, Answer, Chunked, ConnectionRecord, Delayed, Fault

__all__ = ["DEFAULT_REPLIES", "SERVICE_CLOSING_REPLY", "ScriptedServer"]

#: The replies of an ordinary dialogue, by step.  EHLO's is built from the server's options.
DEFAULT_REPLIES: Mapping[str, bytes] = {
    "GREETING": b"220 scripted.test ESMTP ready\r\n",
    "HELO": b"250 scripted.test\r\n",
    "STARTTLS": b"220 2.0.0 ready to start TLS\r\n",
    "AUTH": b"235 2.7.0 authenticated\r\n",
    "MAIL": b"250 2.1.0 sender ok\r\n",
    "RCPT": b"250 2.1.5 recipient ok\r\n",
    "DATA": b"354 end with <CRLF>.<CRLF>\r\n",
    "BDAT": b"250 2.0.0 chunk received\r\n",
    "DOT": b"250 2.0.0 queued as 1234\r\n",
    "RSET": b"250 2.0.0 reset\r\n",
    "NOOP": b"250 2.0.0 ok\r\n",
    "VRFY": b"252 2.1.5 cannot verify, will try\r\n",
    "QUIT": b"221 2.0.0 bye\r\n",
    "UNKNOWN": b"500 5.5.2 command not recognised\r\n",
}
SERVICE_CLOSING_REPLY = b"421 4.3.2 scripted.test closing the connection\r\n"
#: How often the accepting thread checks whether the server is finishing.
ACCEPT_POLL = 0.05


class ScriptedServer:
    """An SMTP server that plays the ordinary dialogue with ``rules`` applied.

    ``rules`` maps a step to an :data:`~smtpproto.testing.Action`.  ``tls_context`` (a server
    context, e.g. :meth:`TLSMaterial.server_context`) enables STARTTLS, or with
    ``implicit_tls=True`` a TLS handshake before the greeting (port 465 style).

    :attr:`address` is where it listens; :attr:`connections` holds one
    :class:`~smtpproto.testing.ConnectionRecord` per connection, in order.  :meth:`finish`
    releases any stall and waits until every connection's thread is done; leaving the ``with``
    (or ``async with``) block calls it.
    """

    def __init__(
        self,
        rules: Mapping[str, Action] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls_context: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
        auth: Sequence[str] = ("PLAIN", "LOGIN"),
        pipelining: bool = True,
        chunking: bool = False,
        extensions: Sequence[str] = ("8BITMIME", "SIZE 52428800"),
        body_fault_after: int = 4096,
        starttls_grace: float = 0.0,
        stall_limit: float = 10.0,
        io_timeout: float = 5.0,
    ) -> None:
        if implicit_tls and tls_context is None:
            raise ValueError("implicit_tls needs a tls_context")
        self.rules: dict[str, Action] = dict(rules or {})
        self.tls_context = tls_context
        self.implicit_tls = implicit_tls
        self.auth = tuple(auth)
        self.pipelining = pipelining
        self.chunking = chunking
        self.extensions = tuple(extensions)
        self.body_fault_after = body_fault_after
        self.starttls_grace = starttls_grace
        self.stall_limit = stall_limit
        self.io_timeout = io_timeout
        self.connections: list[ConnectionRecord] = []
        self._released = threading.Event()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._handshake_record = threading.local()
        if tls_context is not None:
            tls_context.sni_callback = self._sni
        self._listener = socket.create_server((host, port))
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
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
        self._released.set()

    def finish(self, timeout: float = 10.0) -> list[ConnectionRecord]:
        """Stop accepting, release stalls, wait for every connection's thread; the records.

        Raises :class:`RuntimeError` if a connection is still being served after ``timeout``.
        """
        self.release()
        self._stopping.set()
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

    @property
    def record(self) -> ConnectionRecord:
        """The only connection's record (:class:`LookupError` unless there was exactly one)."""
        if len(self.connections) != 1:
            raise LookupError(f"{len(self.connections)} connections, not one")
        return self.connections[0]

    def _accept(self) -> None:
        # Polled: closing a listening socket does not wake a thread blocked in accept().
        self._listener.settimeout(ACCEPT_POLL)
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:  # the listener was closed: finish()
                return
            sock.settimeout(None)  # accepted sockets inherit the listener's timeout
            record = ConnectionRecord()
            self.connections.append(record)
            thread = threading.Thread(
                target=self._serve,
                args=(sock, record),
                name=f"scripted-conn-{len(self.connections)}",
                daemon=True,
            )
            self._threads.append(thread)
            thread.start()

    # -- TLS bookkeeping -----------------------------------------------------------------------

    @contextlib.contextmanager
    def handshaking(self, record: ConnectionRecord) -> Iterator[None]:
        """Point the SNI callback (run in this thread, mid-handshake) at ``record``."""
        self._handshake_record.value = record
        try:
            yield
        finally:
            self._handshake_record.value = None

    def _sni(self, sock: ssl.SSLObject, name: str | None, context: ssl.SSLContext) -> None:
        record: ConnectionRecord | None = getattr(self._handshake_record, "value", None)
        if record is not None:
            record.sni = name

    # -- the dialogue ----------------------------------------------------------------------------

    def _serve(self, sock: socket.socket, record: ConnectionRecord) -> None:
        peer = Peer(sock, record, self)
        try:
            if self.implicit_tls and not peer.start_tls():
                peer.drain()
                return
            self._dialogue(peer)
        except DialogueEnded as ended:
            record.errors.append(str(ended))
        except (OSError, ssl.SSLError) as exc:  # kept for the test to read, never raised there
            record.errors.append(f"server: {exc!r}")
        finally:
            peer.close()

    def _step(self, peer: Peer, name: str, default: bytes) -> bytes:
        """Reach step ``name``: send its reply (or the rule's), or apply the rule and end.

        Returns the reply sent, so the dialogue knows whether a 354 or a 220 opened a phase.
        """
        peer.record.steps.append(name)
        action = self.rules.get(name)
        if action is None and name[:4] == "RCPT" and name != "RCPT":
            action = self.rules.get("RCPT")
        if action is None:
            peer.queue(default)
            return default
        return self._act(peer, name, action)

    def _act(self, peer: Peer, name: str, action: Action) -> bytes:
        if isinstance(action, bytes):
            peer.queue(action)
            return action
        if isinstance(action, Chunked):
            peer.flush()
            for piece in action.pieces():
                if action.pause:
                    self._stopping.wait(action.pause)
                peer.send(piece)
            return action.data
        if isinstance(action, Answer):
            commands = peer.record.commands
            line = commands[-1] if commands and name != "GREETING" else b""
            return self._act(peer, name, action.function(line))
        if isinstance(action, Delayed):
            peer.flush()
            self._stopping.wait(action.seconds)  # cut short when the test finishes
            return self._act(peer, name, action.then)
        if isinstance(action, Fault):
            peer.record.fault = (name, action)
            self._apply(peer, action)
        else:
            peer.flush()
            action(peer)
            peer.drain()
        raise DialogueEnded(f"action at {name}")

    def _apply(self, peer: Peer, fault: Fault) -> None:
        peer.flush()  # the replies to the commands pipelined before this one go out first
        if fault is Fault.RESET:
            peer.reset()
            return
        if fault is Fault.SERVICE_CLOSING:
            peer.queue(SERVICE_CLOSING_REPLY)
        if fault is Fault.STALL:
            self._released.wait(self.stall_limit)
        else:
            peer.half_close()
        peer.drain()

    def ehlo_reply(self, tls: bool) -> bytes:
        """The default reply to EHLO, before (``tls=False``) or after the TLS handshake."""
        keywords = ["PIPELINING"] if self.pipelining else []
        if self.chunking:
            keywords.append("CHUNKING")
        keywords += self.extensions
        if self.tls_context is not None and not tls and not self.implicit_tls:
            keywords.append("STARTTLS")
        if self.auth:
            keywords.append("AUTH " + " ".join(self.auth))
        lines = ["scripted.test greets you", *keywords]
        return b"".join(
            f"250{' ' if i == len(lines) - 1 else '-'}{text}\r\n".encode()
            for i, text in enumerate(lines)
        )

    def _dialogue(self, peer: Peer) -> None:
        record = peer.record
        self._step(peer, "GREETING", DEFAULT_REPLIES["GREETING"])
        rcpts = 0
        while True:
            line = peer.readline()
            if line is None:
                return
            command = line[:-2]
            record.commands.append(command)
            verb = command.split(b" ", 1)[0].upper().decode("ascii", "replace")
            if verb in ("EHLO", "HELO"):
                after_starttls = verb == "EHLO" and record.tls and not self.implicit_tls
                name = "EHLO-TLS" if after_starttls else verb
                default = DEFAULT_REPLIES["HELO"] if verb == "HELO" else self.ehlo_reply(record.tls)
                self._step(peer, name, default)
            elif verb == "STARTTLS":
                self._starttls(peer)
            elif verb == "AUTH":
                self._auth(peer, command)
            elif verb == "MAIL":
                rcpts = 0
                self._step(peer, "MAIL", DEFAULT_REPLIES["MAIL"])
            elif verb == "RCPT":
                rcpts += 1
                self._step(peer, f"RCPT{rcpts}", DEFAULT_REPLIES["RCPT"])
            elif verb == "DATA":
                if self._step(peer, "DATA", DEFAULT_REPLIES["DATA"])[:3] == b"354":
                    self._data(peer)
            elif verb == "BDAT":
                self._bdat(peer, command)
            elif verb == "QUIT":
                self._step(peer, "QUIT", DEFAULT_REPLIES["QUIT"])
                peer.half_close()
                peer.drain()
                return
            else:
                self._step(peer, verb, DEFAULT_REPLIES.get(verb, DEFAULT_REPLIES["UNKNOWN"]))

    def _starttls(self, peer: Peer) -> None:
        if self.tls_context is None or peer.record.tls:
            self._step(peer, "STARTTLS", b"502 5.5.1 STARTTLS not offered\r\n")
            return
        # Checked before the 220 goes out: after it, the client's TLS ClientHello is due.
        peer.record.behind_starttls = peer.take_buffered(self.starttls_grace)
        if self._step(peer, "STARTTLS", DEFAULT_REPLIES["STARTTLS"])[:3] != b"220":
            return
        peer.flush()
        action = self.rules.get("HANDSHAKE")
        if action is not None and not isinstance(action, bytes):
            self._step(peer, "HANDSHAKE", b"")  # applies the action and ends the dialogue
        if not peer.start_tls():
            peer.drain()
            raise DialogueEnded("TLS handshake failed")

    def _auth(self, peer: Peer, command: bytes) -> None:
        parts = command.split(b" ")
        mechanism = parts[1].upper() if len(parts) > 1 else b""
        if mechanism == b"LOGIN":
            challenges = [b"334 VXNlcm5hbWU6\r\n", b"334 UGFzc3dvcmQ6\r\n"]
        elif mechanism == b"PLAIN" and len(parts) == 2:
            challenges = [b"334 \r\n"]  # no initial response: ask for it
        else:
            challenges = []
        for index, challenge in enumerate(challenges):
            self._step(peer, "AUTH-CHALLENGE" if index else "AUTH", challenge)
            response = peer.readline()
            if response is None:
                raise DialogueEnded("EOF during AUTH")
            peer.record.auth_responses.append(response[:-2])
            if response == b"*\r\n":
                self._step(peer, "AUTH-RESPONSE", b"501 5.7.0 authentication cancelled\r\n")
                return
        self._step(peer, "AUTH-RESPONSE" if challenges else "AUTH", DEFAULT_REPLIES["AUTH"])

    def _data(self, peer: Peer) -> None:
        wire = bytearray()
        body_fault = "BODY" in self.rules
        while True:
            line = peer.readline()
            if line is None:
                raise DialogueEnded("EOF during DATA")
            wire += line
            if line == b".\r\n":
                break
            if body_fault and len(wire) >= self.body_fault_after:
                body_fault = False
                self._step(peer, "BODY", b"")
        peer.record.data_wire.append(bytes(wire))
        peer.record.messages.append(bytes(wire[:-3]))
        answer = self._step(peer, "DOT", DEFAULT_REPLIES["DOT"])
        peer.record.end_of_data_replies.append(answer)

    def _bdat(self, peer: Peer, command: bytes) -> None:
        parts = command.split(b" ")
        try:
            size = int(parts[1])
        except (IndexError, ValueError):
            self._step(peer, "BDAT", b"501 5.5.4 bad BDAT size\r\n")
            return
        last = len(parts) > 2 and parts[2].upper() == b"LAST"
        chunk = peer.read_exactly(size)
        if chunk is None:
            raise DialogueEnded("EOF during a BDAT chunk")
        chunks = peer.record.bdat_chunks
        chunks.append(chunk)
        if not last:
            self._step(peer, "BDAT", DEFAULT_REPLIES["BDAT"])
            return
        peer.record.messages.append(b"".join(chunks))
        chunks.clear()
        answer = self._step(peer, "DOT", DEFAULT_REPLIES["DOT"])
        peer.record.end_of_data_replies.append(answer)


async def _off_the_loop(function: Callable[[], object]) -> None:
    """Run a blocking ``function`` in a worker thread of whichever event loop is running."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # not asyncio: trio (the only other loop the adapters support)
        import trio  # noqa: PLC0415 -- trio is optional

        await trio.to_thread.run_sync(function)
    else:
        await asyncio.to_thread(function)
