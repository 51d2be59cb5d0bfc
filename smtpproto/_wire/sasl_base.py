"""The base of every SASL mechanism: the errors, SASLprep and the mechanism protocol."""

from __future__ import annotations

import stringprep
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

__all__ = ["Mechanism", "SASLError", "ServerNotAuthenticated", "saslprep"]


class SASLError(Exception):
    """A server challenge we refuse or cannot parse.

    The exchange is over: the caller cancels it by answering ``*`` (RFC 4954 §4).
    """


class ServerNotAuthenticated(SASLError):
    """The server failed to prove that it knows the credentials (SCRAM's ``v=``): it may be an
    impostor, so the connection must not be trusted any further."""


# ---------------------------------------------------------------------------------------------
# SASLprep (RFC 4013), built on the stdlib's RFC 3454 tables.

# RFC 4013 §2.3: everything that must not survive preparation, with a description for the error
# message.  The message never quotes the character itself: it may be part of a password.
_PROHIBITED: tuple[tuple[Callable[[str], bool], str], ...] = (
    (stringprep.in_table_c12, "non-ASCII space"),
    (stringprep.in_table_c21, "ASCII control character"),
    (stringprep.in_table_c22, "non-ASCII control character"),
    (stringprep.in_table_c3, "private-use character"),
    (stringprep.in_table_c4, "non-character code point"),
    (stringprep.in_table_c5, "surrogate code point"),
    (stringprep.in_table_c6, "character inappropriate for plain text"),
    (stringprep.in_table_c7, "character inappropriate for canonical representation"),
    (stringprep.in_table_c8, "display-changing or deprecated character"),
    (stringprep.in_table_c9, "tagging character"),
)


def saslprep(text: str, *, allow_unassigned: bool = True) -> str:
    """Prepare a user name or password with SASLprep (RFC 4013).

    ``allow_unassigned=True`` treats ``text`` as a *query* string, ``False`` as a *stored* string
    (RFC 3454 §7): code points unassigned in Unicode 3.2 are then refused.  Raises ``ValueError``
    for prohibited output or a bidirectional-text violation.
    """
    # §2.1 mapping: non-ASCII spaces become SPACE, "commonly mapped to nothing" characters vanish.
    mapped = "".join(
        " " if stringprep.in_table_c12(char) else char
        for char in text
        if not stringprep.in_table_b1(char)
    )
    # §2.2: NFKC with the Unicode version stringprep is defined on.
    prepared = unicodedata.ucd_3_2_0.normalize("NFKC", mapped)
    for char in prepared:
        for in_table, description in _PROHIBITED:
            if in_table(char):
                raise ValueError(f"SASLprep: prohibited {description}")
        if not allow_unassigned and stringprep.in_table_a1(char):
            raise ValueError("SASLprep: code point unassigned in Unicode 3.2")
    _check_bidi(prepared)
    return prepared


def _check_bidi(text: str) -> None:
    """RFC 3454 §6: right-to-left text must be purely right-to-left and start and end that way."""
    if not any(stringprep.in_table_d1(char) for char in text):
        return
    if any(stringprep.in_table_d2(char) for char in text):
        raise ValueError("SASLprep: mixes right-to-left and left-to-right characters")
    if not (stringprep.in_table_d1(text[0]) and stringprep.in_table_d1(text[-1])):
        raise ValueError("SASLprep: right-to-left text must start and end with such a character")


# ---------------------------------------------------------------------------------------------
# The mechanism contract.


class Mechanism(ABC):
    """One SASL client exchange.  Single use: create a fresh object for every ``AUTH``."""

    #: The SASL mechanism name as sent in ``AUTH``.
    name: ClassVar[str]
    #: True when a passive eavesdropper learns a reusable secret: allowed only under TLS (S8).
    sends_secret_in_clear: ClassVar[bool]

    def __init__(self, username: str) -> None:
        self.username = username
        self._failed = False

    def __repr__(self) -> str:
        # Written by hand so that no secret attribute can ever leak into logs.
        return f"<{type(self).__name__} {self.name} username={self.username!r}>"

    @abstractmethod
    def initial_response(self) -> bytes | None:
        """The response to send with ``AUTH``; ``None`` when the server must speak first."""

    def respond(self, challenge: bytes) -> bytes:
        """Answer one decoded ``334`` challenge.

        Raises :class:`SASLError` for a challenge that is malformed, unexpected at this point, or
        fails a check; the exchange is then dead and every later call raises too.
        """
        if self._failed:
            raise SASLError(f"{self.name}: the exchange has already failed")
        try:
            return self._respond(challenge)
        except SASLError:
            self._failed = True
            raise

    def verify_success(self, additional: bytes | None = None) -> None:
        """Check a ``235`` before trusting it; ``additional`` is any data that came with it.

        Raises :class:`SASLError` when the mechanism cannot accept the success.
        """
        if self._failed:
            raise SASLError(f"{self.name}: success reported for a failed exchange")
        if additional:
            raise SASLError(f"{self.name}: unexpected additional data with success")

    @abstractmethod
    def _respond(self, challenge: bytes) -> bytes:
        """The mechanism-specific step behind :meth:`respond`."""


class _ClientFirstMechanism(Mechanism):
    """A mechanism whose first message is the client's.

    :meth:`initial_response` only *reads* that message, so the caller may still leave it out (for
    instance when the ``AUTH`` line would exceed 512 octets).  The server then asks for it with an
    empty challenge (RFC 4422 §5).  No server message of these mechanisms is empty in the first
    round, so an empty first challenge always means "send your initial response" — once.
    """

    def __init__(self, username: str) -> None:
        super().__init__(username)
        self._first_requested = False
        self._rounds = 0  # server challenges answered after the client's first message

    def initial_response(self) -> bytes:
        return self._client_first()

    def _respond(self, challenge: bytes) -> bytes:
        if not challenge and self._rounds == 0 and not self._first_requested:
            self._first_requested = True
            return self._client_first()
        self._rounds += 1
        return self._answer(challenge)

    @abstractmethod
    def _client_first(self) -> bytes:
        """The client's first message, the same bytes on every call."""

    @abstractmethod
    def _answer(self, challenge: bytes) -> bytes:
        """Answer server challenge number ``self._rounds`` (1-based)."""


def _reject_challenge(name: str) -> SASLError:
    return SASLError(f"{name}: the server sent a challenge the mechanism does not have")


# ---------------------------------------------------------------------------------------------
# PLAIN, EXTERNAL, LOGIN, CRAM-MD5.


def _gs2_escape(name: str) -> str:
    """``saslname`` (RFC 5801 §4, RFC 5802 §5.1): ``=`` and ``,`` would break the attribute list."""
    return name.replace("=", "=3D").replace(",", "=2C")
