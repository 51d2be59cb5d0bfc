"""The protocol machine's exceptions.

``LocalProtocolError`` means *we* tried something the protocol (or the server's advertised
capabilities) does not allow; ``RemoteProtocolError`` means the server sent something we cannot
accept.  Both leave the machine in its ``ERROR`` state.
"""

from __future__ import annotations

__all__ = ["LocalProtocolError", "ProtocolError", "RemoteProtocolError"]

# How much of an offending line an exception keeps: enough to diagnose, never unbounded memory.
_MAX_KEPT_LINE = 200


class ProtocolError(Exception):
    """The SMTP dialogue broke a rule.  ``line`` is the offending data, truncated."""

    def __init__(self, message: str, *, line: bytes | None = None) -> None:
        super().__init__(message)
        self.line = None if line is None else bytes(line[:_MAX_KEPT_LINE])


class LocalProtocolError(ProtocolError):
    """We (the client) attempted something illegal; nothing was written."""


class RemoteProtocolError(ProtocolError):
    """The server sent something that breaks the protocol."""
