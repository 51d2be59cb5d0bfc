"""The scripted server's side of one connection, written once and driven three ways.

:class:`Conversation` holds everything a connection does — buffering, pipelined replies, the
SMTP dialogue with the rules applied, TLS, faults, the record — as generators that yield
:mod:`~smtpproto.testing.requests` and do no I/O themselves.  The threaded server, the asyncio
server and the trio server only perform those requests, so they cannot drift apart.

Pipelined commands are read as they come and their replies written in one go, in order, once no
complete command is left in the buffer (RFC 2920 §3.2).  A fault closes only the server's
sending side (after a 421 too): the server then keeps reading, so it can tell whether the client
closed its socket (``ConnectionRecord.eof``), and the kernel never turns unread data into a
reset that would race the client's read of the 421.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from .records import Answer, Chunked, ConnectionRecord, Delayed, Fault
from .requests import (
    DialogueEnded,
    Effects,
    HalfClose,
    Handshake,
    Pause,
    Poll,
    Receive,
    Reset,
    Stall,
    TakeOver,
    Write,
)

if TYPE_CHECKING:
    from .records import Action
    from .scripted_base import ScriptedServerBase

__all__ = ["DEFAULT_REPLIES", "MAX_COMMAND_LINE", "SERVICE_CLOSING_REPLY", "Conversation"]

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


class Conversation:
    """One connection of a scripted server, as generators of I/O requests."""

    def __init__(self, server: ScriptedServerBase, record: ConnectionRecord) -> None:
        self.server = server
        self.record = record
        self._buffer = bytearray()
        self._out = bytearray()
        self._write_closed = False

    # -- receiving ---------------------------------------------------------------------------

    def receive(self) -> Effects[bytes]:
        """Whatever arrives next (recorded), after sending what is queued; ``b""`` at EOF."""
        yield from self.flush()  # answer everything read so far before waiting (pipelining)
        try:
            data: bytes = yield Receive()
        except (ConnectionError, ssl.SSLError) as exc:
            self.record.errors.append(f"receive: {exc!r}")
            data = b""
        self.record.received += data
        if not data:
            self.record.eof = True
        return data

    def readline(self) -> Effects[bytes | None]:
        """The next CRLF-terminated line, CRLF included; ``None`` at EOF."""
        while True:
            end = self._buffer.find(b"\r\n")
            if end >= 0:
                line = bytes(self._buffer[: end + 2])
                del self._buffer[: end + 2]
                return line
            if len(self._buffer) > MAX_COMMAND_LINE:
                raise DialogueEnded("line too long")
            data = yield from self.receive()
            if not data:
                return None
            self._buffer += data

    def read_exactly(self, size: int) -> Effects[bytes | None]:
        """``size`` octets (a BDAT chunk); ``None`` if EOF comes first."""
        while len(self._buffer) < size:
            data = yield from self.receive()
            if not data:
                return None
            self._buffer += data
        chunk = bytes(self._buffer[:size])
        del self._buffer[:size]
        return chunk

    def take_buffered(self, wait: float = 0.0) -> Effects[bytes]:
        """Everything buffered, plus whatever arrives within ``wait`` seconds (not blocking)."""
        deadline = time.monotonic() + wait
        while True:
            data: bytes | None = yield Poll(max(0.0, deadline - time.monotonic()))
            if data is None:
                break
            self.record.received += data
            self._buffer += data
            if not data:
                break
        taken = bytes(self._buffer)
        self._buffer.clear()
        return taken

    def drain(self) -> Effects[None]:
        """Read and record until the client closes (``record.eof``) or ``io_timeout`` passes."""
        yield from self.flush()
        self.record.received += self._buffer
        self._buffer.clear()
        while True:
            try:
                data: bytes = yield Receive()
            except TimeoutError:
                self.record.errors.append("drain: the client did not close its side")
                return
            except ConnectionAbortedError as exc:  # closed on this side: nothing more to read
                self.record.errors.append(f"drain: {exc}")
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

    def flush(self) -> Effects[None]:
        """Write what is queued."""
        if self._out and not self._write_closed:
            data, self._out = bytes(self._out), bytearray()
            yield from self.send(data)

    def send(self, data: bytes) -> Effects[None]:
        """Write ``data`` now, exactly as given.  A client that went away ends the dialogue."""
        try:
            yield Write(data)
        except OSError as exc:
            # A reset or a broken pipe means the client closed its socket (with data unread).
            self.record.eof = isinstance(exc, (BrokenPipeError, ConnectionResetError))
            raise DialogueEnded(f"send: {exc!r}") from None

    def half_close(self) -> Effects[None]:
        """Close the sending side only (FIN), and keep reading."""
        yield from self.flush()
        self._write_closed = True
        yield HalfClose()

    def reset(self) -> Effects[None]:
        """Abort the connection: the client sees RST, not FIN."""
        self._write_closed = True
        yield Reset()

    def start_tls(self) -> Effects[bool]:
        """The server's side of a TLS handshake (after a 220 to STARTTLS, or at once with
        implicit TLS); False if it failed."""
        yield from self.flush()
        if self.server.tls_context is None:
            raise RuntimeError("the server has no tls_context")
        try:
            yield Handshake()
        except OSError as exc:  # ssl.SSLError is an OSError
            self.record.handshake_error = repr(exc)
            return False
        self.record.tls = True
        return True

    # -- the dialogue --------------------------------------------------------------------------

    def run(self) -> Effects[None]:
        """The whole connection; what goes wrong is recorded, never raised."""
        try:
            if self.server.implicit_tls and not (yield from self.start_tls()):
                yield from self.drain()
                return
            yield from self._dialogue()
        except DialogueEnded as ended:
            self.record.errors.append(str(ended))
        except OSError as exc:  # kept for the test to read, never raised there
            self.record.errors.append(f"server: {exc!r}")

    def _step(self, name: str, default: bytes) -> Effects[bytes]:
        """Reach step ``name``: send its reply (or the rule's), or apply the rule and end.

        Returns the reply sent, so the dialogue knows whether a 354 or a 220 opened a phase.
        """
        self.record.steps.append(name)
        rules = self.server.rules
        action = rules.get(name)
        if action is None and name[:4] == "RCPT" and name != "RCPT":
            action = rules.get("RCPT")
        if action is None:
            self.queue(default)
            return default
        return (yield from self._act(name, action))

    def _act(self, name: str, action: Action) -> Effects[bytes]:
        if isinstance(action, bytes):
            self.queue(action)
            return action
        if isinstance(action, Chunked):
            yield from self.flush()
            for piece in action.pieces():
                if action.pause:
                    yield Pause(action.pause)
                yield from self.send(piece)
            return action.data
        if isinstance(action, Answer):
            commands = self.record.commands
            line = commands[-1] if commands and name != "GREETING" else b""
            return (yield from self._act(name, action.function(line)))
        if isinstance(action, Delayed):
            yield from self.flush()
            yield Pause(action.seconds)  # cut short when the test finishes
            return (yield from self._act(name, action.then))
        if isinstance(action, Fault):
            self.record.fault = (name, action)
            yield from self._apply(action)
        else:
            yield from self.flush()
            yield TakeOver(action)
            yield from self.drain()
        raise DialogueEnded(f"action at {name}")

    def _apply(self, fault: Fault) -> Effects[None]:
        yield from self.flush()  # the replies to the commands pipelined before this one go first
        if fault is Fault.RESET:
            yield from self.reset()
            return
        if fault is Fault.SERVICE_CLOSING:
            self.queue(SERVICE_CLOSING_REPLY)
        if fault is Fault.STALL:
            yield Stall(self.server.stall_limit)
        else:
            yield from self.half_close()
        yield from self.drain()

    def _dialogue(self) -> Effects[None]:
        record = self.record
        server = self.server
        yield from self._step("GREETING", DEFAULT_REPLIES["GREETING"])
        rcpts = 0
        while True:
            line = yield from self.readline()
            if line is None:
                return
            command = line[:-2]
            record.commands.append(command)
            verb = command.split(b" ", 1)[0].upper().decode("ascii", "replace")
            if verb in ("EHLO", "HELO"):
                after_starttls = verb == "EHLO" and record.tls and not server.implicit_tls
                name = "EHLO-TLS" if after_starttls else verb
                ehlo = server.ehlo_reply(record.tls)
                yield from self._step(name, DEFAULT_REPLIES["HELO"] if verb == "HELO" else ehlo)
            elif verb == "STARTTLS":
                yield from self._starttls()
            elif verb == "AUTH":
                yield from self._auth(command)
            elif verb == "MAIL":
                rcpts = 0
                yield from self._step("MAIL", DEFAULT_REPLIES["MAIL"])
            elif verb == "RCPT":
                rcpts += 1
                yield from self._step(f"RCPT{rcpts}", DEFAULT_REPLIES["RCPT"])
            elif verb == "DATA":
                if (yield from self._step("DATA", DEFAULT_REPLIES["DATA"]))[:3] == b"354":
                    yield from self._data()
            elif verb == "BDAT":
                yield from self._bdat(command)
            elif verb == "QUIT":
                yield from self._step("QUIT", DEFAULT_REPLIES["QUIT"])
                yield from self.half_close()
                yield from self.drain()
                return
            else:
                default = DEFAULT_REPLIES.get(verb, DEFAULT_REPLIES["UNKNOWN"])
                yield from self._step(verb, default)

    def _starttls(self) -> Effects[None]:
        if self.server.tls_context is None or self.record.tls:
            yield from self._step("STARTTLS", b"502 5.5.1 STARTTLS not offered\r\n")
            return
        # Checked before the 220 goes out: after it, the client's TLS ClientHello is due.
        self.record.behind_starttls = yield from self.take_buffered(self.server.starttls_grace)
        if (yield from self._step("STARTTLS", DEFAULT_REPLIES["STARTTLS"]))[:3] != b"220":
            return
        yield from self.flush()
        action = self.server.rules.get("HANDSHAKE")
        if action is not None and not isinstance(action, bytes):
            yield from self._step("HANDSHAKE", b"")  # applies the action and ends the dialogue
        if not (yield from self.start_tls()):
            yield from self.drain()
            raise DialogueEnded("TLS handshake failed")

    def _auth(self, command: bytes) -> Effects[None]:
        parts = command.split(b" ")
        mechanism = parts[1].upper() if len(parts) > 1 else b""
        if mechanism == b"LOGIN":
            challenges = [b"334 VXNlcm5hbWU6\r\n", b"334 UGFzc3dvcmQ6\r\n"]
        elif mechanism == b"PLAIN" and len(parts) == 2:
            challenges = [b"334 \r\n"]  # no initial response: ask for it
        else:
            challenges = []
        for index, challenge in enumerate(challenges):
            yield from self._step("AUTH-CHALLENGE" if index else "AUTH", challenge)
            response = yield from self.readline()
            if response is None:
                raise DialogueEnded("EOF during AUTH")
            self.record.auth_responses.append(response[:-2])
            if response == b"*\r\n":
                cancelled = b"501 5.7.0 authentication cancelled\r\n"
                yield from self._step("AUTH-RESPONSE", cancelled)
                return
        yield from self._step("AUTH-RESPONSE" if challenges else "AUTH", DEFAULT_REPLIES["AUTH"])

    def _data(self) -> Effects[None]:
        wire = bytearray()
        body_fault = "BODY" in self.server.rules
        while True:
            line = yield from self.readline()
            if line is None:
                raise DialogueEnded("EOF during DATA")
            wire += line
            if line == b".\r\n":
                break
            if body_fault and len(wire) >= self.server.body_fault_after:
                body_fault = False
                yield from self._step("BODY", b"")
        self.record.data_wire.append(bytes(wire))
        self.record.messages.append(bytes(wire[:-3]))
        answer = yield from self._step("DOT", DEFAULT_REPLIES["DOT"])
        self.record.end_of_data_replies.append(answer)

    def _bdat(self, command: bytes) -> Effects[None]:
        parts = command.split(b" ")
        try:
            size = int(parts[1])
        except (IndexError, ValueError):
            yield from self._step("BDAT", b"501 5.5.4 bad BDAT size\r\n")
            return
        last = len(parts) > 2 and parts[2].upper() == b"LAST"
        chunk = yield from self.read_exactly(size)
        if chunk is None:
            raise DialogueEnded("EOF during a BDAT chunk")
        chunks = self.record.bdat_chunks
        chunks.append(chunk)
        if not last:
            yield from self._step("BDAT", DEFAULT_REPLIES["BDAT"])
            return
        self.record.messages.append(b"".join(chunks))
        chunks.clear()
        answer = yield from self._step("DOT", DEFAULT_REPLIES["DOT"])
        self.record.end_of_data_replies.append(answer)
