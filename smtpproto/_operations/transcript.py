"""The ``C:``/``S:`` transcript of a session, logged with credentials and content left out.

Logged to the ``smtpproto.transcript`` logger at DEBUG.  AUTH lines show the mechanism only;
SASL responses and message content never reach the log (checklist S8).
"""

from __future__ import annotations

import logging

from smtpproto._wire.events import (
    Auth,
    AuthResponse,
    Bdat,
    Command,
    EndOfMessage,
    MessageData,
    Reply,
)

__all__ = ["TRANSCRIPT_LOGGER", "redacted_line"]

TRANSCRIPT_LOGGER = logging.getLogger("smtpproto.transcript")


def redacted_line(event: Command, wire: bytes) -> str:
    """What the transcript shows for ``event`` (sent as ``wire``)."""
    if isinstance(event, Auth):
        return f"AUTH {event.mechanism.upper()}" + (
            "" if event.initial_response is None else " <credentials hidden>"
        )
    if isinstance(event, AuthResponse):
        return "*" if event.cancel else "<credentials hidden>"
    if isinstance(event, MessageData):
        return f"<{len(event.data)} octets of message content>"
    if isinstance(event, EndOfMessage):
        return "."
    if isinstance(event, Bdat):
        return f"BDAT {len(event.chunk)}" + (" LAST" if event.last else "")
    return wire.decode("utf-8", "replace").rstrip("\r\n")


def transcript_enabled() -> bool:
    return TRANSCRIPT_LOGGER.isEnabledFor(logging.DEBUG)


def log_sent(event: Command, wire: bytes) -> None:
    """Log a command about to be written (callers check :func:`transcript_enabled` first)."""
    TRANSCRIPT_LOGGER.debug("C: %s", redacted_line(event, wire))


def log_reply(reply: Reply) -> None:
    if TRANSCRIPT_LOGGER.isEnabledFor(logging.DEBUG):
        last = len(reply.lines) - 1
        for i, text in enumerate(reply.lines):
            sep = " " if i == last else "-"
            TRANSCRIPT_LOGGER.debug("S: %d%s%s", reply.code, sep, text)
