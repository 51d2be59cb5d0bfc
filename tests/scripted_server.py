"""A scripted SMTP server on loopback for fault-injection, hostile-server and security tests.

:class:`ScriptedServer` listens on ``127.0.0.1`` (a free port) and serves each connection in its
own thread.  It plays an ordinary SMTP dialogue — greeting, EHLO (PIPELINING, STARTTLS with the
given server context, AUTH PLAIN and LOGIN, optionally CHUNKING), MAIL, RCPT, DATA or BDAT, RSET,
NOOP, VRFY, QUIT — unless ``actions`` names a *step*, in which case it does what the action says
there instead:

- a :class:`Fault`: ``CLOSE`` the connection, ``STALL`` (read nothing, answer nothing, until
  :meth:`ScriptedServer.release` or ``stall_limit``), or answer ``SERVICE_CLOSING`` (421) and close;
- ``bytes``: send these bytes as the reply and go on (a 354 to DATA starts the data, a 220 to
  STARTTLS the handshake, as with the default replies);
- a callable taking the :class:`Peer`: it takes over the connection (hostile servers); when it
  returns, the server reads until the client closes.

The steps are ``GREETING``, ``EHLO``, ``HELO``, ``STARTTLS``, ``HANDSHAKE`` (after the 220 to
STARTTLS), ``EHLO-TLS`` (the EHLO after the handshake), ``AUTH`` (its first reply),
``AUTH-CHALLENGE`` (any further 334), ``AUTH-RESPONSE`` (the outcome after the client's last
SASL response), ``MAIL``, ``RCPT`` (every RCPT)
or ``RCPT1``, ``RCPT2``… (one of them), ``DATA``, ``BODY`` (after ``body_fault_after`` octets of
message content), ``BDAT``, ``DOT`` (the final dot, or ``BDAT … LAST``), ``RSET``, ``NOOP``,
``VRFY``, ``QUIT``.

Pipelined commands are read as they come and their replies written in one go, in order, once no
complete command is left in the buffer.  A fault closes only the server's sending side (after a
421 too): the server then keeps reading, so it can tell whether the client closed its socket
(``ConnectionRecord.eof``), and the kernel never turns unread data into a reset that would race
the client's read of the 421.

Everything the server received is recorded per connection in a :class:`ConnectionRecord`.
"""

from __future__ import annotations

import contextlib
import enum
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType

__all__ = [
    "DEFAULT_REPLIES",
    "Action",
    "ConnectionRecord",
    "Fault",
    "Peer",
    "ScriptedServer",
]

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
#: Longest command line the server accepts before it gives up on the client.
MAX_COMMAND_LINE = 1 << 20
RECEIVE_SIZE = 1 << 16
#: How often the accepting thread checks whether the server is finishing.
ACCEPT_POLL = 0.05


class Fault(enum.Enum):
    """What the server does instead of answering a step."""

    CLOSE = "close"
    STALL = "stall"
    SERVICE_CLOSING = "421"


Action = Fault | bytes | Callable[["Peer"], None]


@dataclass
class ConnectionRecord:
    """What happened on one connection, from the server's side."""

    #: Every octet received (after decryption once TLS is up), commands and content alike.
    received: bytearray = field(default_factory=bytearray)
    #: The command lines, without CRLF (message content and SASL responses excluded).
    commands: list[bytes] = field(default_factory=list)
    #: SASL responses received during AUTH, without CRLF.
    auth_responses: list[bytes] = field(default_factory=list)
    #: The steps reached, in order (``RCPT1``, ``RCPT2``… numbered).
    steps: list[str] = field(default_factory=list)
    #: Each message's content exactly as on the wire: dot-stuffed DATA content up to (not
    #: including) the terminating ``.<CRLF>``, or the BDAT chunks joined.
    messages: list[bytes] = field(default_factory=list)
    #: The exact bytes of each DATA phase after the 354, the terminator included.
    data_wire: list[bytes] = field(default_factory=list)
    #: The replies sent to the end of data (final dot or ``BDAT LAST``), in order.
    end_of_data_replies: list[bytes] = field(default_factory=list)
    #: The chunks of the BDAT transaction in progress.
    bdat_chunks: list[bytes] = field(default_factory=list)
    #: Octets already buffered behind STARTTLS, or arriving within ``starttls_grace`` while the
    #: 220 is held back (a client must send nothing there: checklist S5).  They are not parsed.
    behind_starttls: bytes | None = None
    #: Whether the TLS handshake completed, the SNI the client sent, or why the handshake failed.
    tls: bool = False
    sni: str | None = None
    handshake_error: str | None = None
    #: The fault applied, if any, and at which step.
    fault: tuple[str, Fault] | None = None
    #: The client closed its socket: the server read EOF, or a send failed with a reset.
    eof: bool = False
    #: Something the server did not expect (a client error, or the server's own), for debugging.
    errors: list[str] = field(default_factory=list)

    @property
    def verbs(self) -> list[str]:
        return [line.split(b" ", 1)[0].upper().decode("ascii", "replace") for line in self.commands]

    @property
    def delivered(self) -> bool:
        """Whether the server answered an end of data with 2xx: only then is a message taken."""
        return any(reply[:1] == b"2" for reply in self.end_of_data_replies)


class _Ended(Exception):
    """The dialogue is over (the client closed, or an action took the connection)."""


class Peer:
    """The server's side of one connection, for the dialogue and for custom actions."""

    def __init__(self, sock: socket.socket, record: ConnectionRecord, server: ScriptedServer):
        self.sock = sock
        self.record = record
        self.server = server
        self._buffer = bytearray()
        self._out = bytearray()
        self._write_closed = False
        sock.settimeout(server.io_timeout)
        # Replies are small and the client waits for each: no Nagle delay behind a delayed ACK.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # -- receiving ---------------------------------------------------------------------------

    def receive(self) -> bytes:
        """Whatever arrives next (recorded), after sending what is queued; ``b""`` at EOF."""
        self.flush()  # answer everything read so far before waiting for more (pipelining)
        try:
            data = self.sock.recv(RECEIVE_SIZE)
        except (ConnectionError, ssl.SSLError) as exc:
            self.record.errors.append(f"receive: {exc!r}")
            data = b""
        self.record.received += data
        if not data:
            self.record.eof = True
        return data

    def readline(self) -> bytes | None:
        """The next CRLF-terminated line, CRLF included; ``None`` at EOF."""
        while True:
            end = self._buffer.find(b"\r\n")
            if end >= 0:
                line = bytes(self._buffer[: end + 2])
                del self._buffer[: end + 2]
                return line
            if len(self._buffer) > MAX_COMMAND_LINE:
                raise _Ended("line too long")
            data = self.receive()
            if not data:
                return None
            self._buffer += data

    def read_exactly(self, size: int) -> bytes | None:
        """``size`` octets (a BDAT chunk); ``None`` if EOF comes first."""
        while len(self._buffer) < size:
            data = self.receive()
            if not data:
                return None
            self._buffer += data
        chunk = bytes(self._buffer[:size])
        del self._buffer[:size]
        return chunk

    def take_buffered(self, wait: float = 0.0) -> bytes:
        """Everything buffered, plus whatever arrives within ``wait`` seconds (not blocking)."""
        deadline = time.monotonic() + wait
        while True:
            remaining = deadline - time.monotonic()
            readable, _, _ = select.select([self.sock], [], [], max(0.0, remaining))
            if not readable:
                break
            data = self.sock.recv(RECEIVE_SIZE)
            self.record.received += data
            self._buffer += data
            if not data:
                break
        taken = bytes(self._buffer)
        self._buffer.clear()
        return taken

    def drain(self) -> None:
        """Read and record until the client closes (``record.eof``) or ``io_timeout`` passes."""
        self.flush()
        self.record.received += self._buffer
        self._buffer.clear()
        self.sock.settimeout(self.server.io_timeout)
        while True:
            try:
                data = self.sock.recv(RECEIVE_SIZE)
            except TimeoutError:
                self.record.errors.append("drain: the client did not close its side")
                return
            except (ConnectionError, ssl.SSLError):
                data = b""  # a reset (or a TLS alert) ends it too: the client closed
            if not data:
                self.record.eof = True
                return
            self.record.received += data

    # -- sending -----------------------------------------------------------------------------

    def queue(self, data: bytes) -> None:
        """Send ``data`` with the next flush (replies to pipelined commands go together)."""
        self._out += data

    def flush(self) -> None:
        if self._out and not self._write_closed:
            data, self._out = bytes(self._out), bytearray()
            self.send(data)

    def send(self, data: bytes) -> None:
        """Write ``data`` now.  A client that went away ends the dialogue."""
        try:
            self.sock.sendall(data)
        except OSError as exc:
            # A reset or a broken pipe means the client closed its socket (with data unread).
            self.record.eof = isinstance(exc, (BrokenPipeError, ConnectionResetError))
            raise _Ended(f"send: {exc!r}") from None

    def half_close(self) -> None:
        """Close the sending side only (FIN), and keep reading."""
        self.flush()
        self._write_closed = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)

    # -- TLS -----------------------------------------------------------------------------------

    def start_tls(self) -> bool:
        """The server's side of the handshake after a 220 to STARTTLS; False if it failed."""
        self.flush()
        assert self.server.tls_context is not None
        # A failed handshake closes the wrapped socket; a duplicate keeps the connection, so
        # that what the client does next (close, or talk in plaintext) is still observed.
        plain = self.sock.dup()
        try:
            with self.server.handshaking(self.record):
                self.sock = self.server.tls_context.wrap_socket(self.sock, server_side=True)
        except (OSError, ssl.SSLError) as exc:
            self.record.handshake_error = repr(exc)
            self.sock = plain
            return False
        plain.close()
        self.record.tls = True
        return True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class ScriptedServer:
    """An SMTP server on ``127.0.0.1`` that plays the dialogue with ``actions`` injected.

    Use it in a ``with`` block; :attr:`address` is where it listens and :attr:`connections`
    holds one :class:`ConnectionRecord` per connection, in order.  :meth:`finish` releases any
    stall and waits until every connection's thread is done.
    """

    def __init__(
        self,
        actions: Mapping[str, Action] | None = None,
        *,
        tls_context: ssl.SSLContext | None = None,
        auth: Sequence[str] = ("PLAIN", "LOGIN"),
        pipelining: bool = True,
        chunking: bool = False,
        extensions: Sequence[str] = ("8BITMIME", "SIZE 52428800"),
        body_fault_after: int = 4096,
        starttls_grace: float = 0.0,
        stall_limit: float = 10.0,
        io_timeout: float = 5.0,
    ) -> None:
        self.actions: dict[str, Action] = dict(actions or {})
        self.tls_context = tls_context
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
        self._listener = socket.create_server(("127.0.0.1", 0))
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

    def release(self) -> None:
        """End every stall: the stalled connections go on to wait for the client's EOF."""
        self._released.set()

    def finish(self, timeout: float = 10.0) -> list[ConnectionRecord]:
        """Stop accepting, release stalls, wait for every connection's thread; the records."""
        self.release()
        self._stopping.set()
        deadline = time.monotonic() + timeout
        self._acceptor.join(max(0.0, deadline - time.monotonic()))
        with contextlib.suppress(OSError):
            self._listener.close()
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        assert not alive, f"scripted server threads still running: {alive}"
        return self.connections

    @property
    def record(self) -> ConnectionRecord:
        """The only connection's record (fails unless exactly one connection was made)."""
        assert len(self.connections) == 1, f"{len(self.connections)} connections"
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
            self._dialogue(peer)
        except _Ended as ended:
            record.errors.append(str(ended))
        except (OSError, ssl.SSLError) as exc:  # kept for the test to read, never raised there
            record.errors.append(f"server: {exc!r}")
        finally:
            peer.close()

    def _step(self, peer: Peer, name: str, reply: bytes) -> bytes:
        """Reach step ``name``: queue its reply (or the action's), or apply the action and end."""
        peer.record.steps.append(name)
        action = self.actions.get(name)
        if action is None and name[:4] == "RCPT" and name != "RCPT":
            action = self.actions.get("RCPT")
        if action is None:
            peer.queue(reply)
            return reply
        if isinstance(action, bytes):
            peer.queue(action)
            return action
        if isinstance(action, Fault):
            peer.record.fault = (name, action)
            self._apply(peer, action)
        else:
            peer.flush()
            action(peer)
            peer.drain()
        raise _Ended(f"action at {name}")

    def _apply(self, peer: Peer, fault: Fault) -> None:
        peer.flush()  # the replies to the commands pipelined before this one go out first
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
        if self.tls_context is not None and not tls:
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
                name = "EHLO-TLS" if verb == "EHLO" and record.tls else verb
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
        if self.tls_context is None:
            self._step(peer, "STARTTLS", b"502 5.5.1 STARTTLS not offered\r\n")
            return
        # Checked before the 220 goes out: after it, the client's TLS ClientHello is due.
        peer.record.behind_starttls = peer.take_buffered(self.starttls_grace)
        if self._step(peer, "STARTTLS", DEFAULT_REPLIES["STARTTLS"])[:3] != b"220":
            return
        peer.flush()
        action = self.actions.get("HANDSHAKE")
        if action is not None and not isinstance(action, bytes):
            self._step(peer, "HANDSHAKE", b"")  # applies the action and ends the dialogue
        if not peer.start_tls():
            peer.drain()
            raise _Ended("TLS handshake failed")

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
                raise _Ended("EOF during AUTH")
            peer.record.auth_responses.append(response[:-2])
            if response == b"*\r\n":
                self._step(peer, "AUTH-RESPONSE", b"501 5.7.0 authentication cancelled\r\n")
                return
        self._step(peer, "AUTH-RESPONSE" if challenges else "AUTH", DEFAULT_REPLIES["AUTH"])

    def _data(self, peer: Peer) -> None:
        wire = bytearray()
        body_fault = "BODY" in self.actions
        while True:
            line = peer.readline()
            if line is None:
                raise _Ended("EOF during DATA")
            wire += line
            if line == b".\r\n":
                break
            if body_fault and len(wire) >= self.body_fault_after:
                body_fault = False
                self._step(peer, "BODY", b"")
        peer.record.data_wire.append(bytes(wire))
        peer.record.messages.append(bytes(wire[:-3]))
        reply = self._step(peer, "DOT", DEFAULT_REPLIES["DOT"])
        peer.record.end_of_data_replies.append(reply)

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
            raise _Ended("EOF during a BDAT chunk")
        chunks = peer.record.bdat_chunks
        chunks.append(chunk)
        if not last:
            self._step(peer, "BDAT", DEFAULT_REPLIES["BDAT"])
            return
        peer.record.messages.append(b"".join(chunks))
        chunks.clear()
        reply = self._step(peer, "DOT", DEFAULT_REPLIES["DOT"])
        peer.record.end_of_data_replies.append(reply)
