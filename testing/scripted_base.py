"""What the three scripted servers share: their options, rules and records.

:class:`~smtpproto.testing.ScriptedServer` (threads),
:class:`~smtpproto.testing.AsyncioScriptedServer` and
:class:`~smtpproto.testing.TrioScriptedServer` differ only in how they accept connections
and perform the dialogue's I/O (:mod:`smtpproto.testing.dialogue`); everything the dialogue
reads lives here.
"""

from __future__ import annotations

import contextlib
import contextvars
import socket
import ssl
import weakref
from collections.abc import Iterator, Mapping, Sequence

from .records import Action, ConnectionRecord

__all__ = ["ScriptedServerBase"]

#: The record of the connection whose handshake runs in this thread or trio task.
_HANDSHAKING: contextvars.ContextVar[ConnectionRecord | None] = contextvars.ContextVar(
    "smtpproto_testing_handshaking", default=None
)


class ScriptedServerBase:
    """Options, rules and records of a scripted server (see :class:`ScriptedServer`)."""

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
        # The SNI callback runs mid-handshake.  In a thread or a trio task it runs in the
        # handshaking code's context (see handshaking()); asyncio runs it in a transport
        # callback, so there it files the name under the TLS object for sni_of().
        self._sni_names: weakref.WeakKeyDictionary[object, str | None] = weakref.WeakKeyDictionary()
        if tls_context is not None:
            tls_context.sni_callback = self._sni
        # Bound at once, so that :attr:`address` is known before the server serves.
        self._listener = socket.create_server((host, port))
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        self._start()

    def _start(self) -> None:
        """The end of construction: the threaded server starts accepting here."""

    @property
    def record(self) -> ConnectionRecord:
        """The only connection's record (:class:`LookupError` unless there was exactly one)."""
        if len(self.connections) != 1:
            raise LookupError(f"{len(self.connections)} connections, not one")
        return self.connections[0]

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

    def new_record(self) -> ConnectionRecord:
        """A record for a connection just accepted, kept in :attr:`connections`."""
        record = ConnectionRecord()
        self.connections.append(record)
        return record

    @contextlib.contextmanager
    def handshaking(self, record: ConnectionRecord) -> Iterator[None]:
        """Around a handshake run in this thread or task: the SNI goes to ``record``, even
        when the handshake then fails."""
        token = _HANDSHAKING.set(record)
        try:
            yield
        finally:
            _HANDSHAKING.reset(token)

    def sni_of(self, tls_object: object) -> str | None:
        """The SNI sent in the handshake of ``tls_object`` (asyncio's SSL object)."""
        return self._sni_names.pop(tls_object, None)

    def _sni(self, tls_object: object, name: str | None, context: ssl.SSLContext) -> None:
        record = _HANDSHAKING.get()
        if record is not None:
            record.sni = name
        else:
            self._sni_names[tls_object] = name
