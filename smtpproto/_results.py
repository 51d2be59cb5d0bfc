"""What happened to each recipient of a message."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ._events import Reply
from ._frozen import fast_init

__all__ = ["RecipientResult", "SendResult"]


@fast_init
@dataclass(frozen=True, slots=True)
class RecipientResult:
    """One recipient's fate.

    ``accepted``: the server accepted the RCPT.  ``delivered``: it also answered 2xx to the end
    of the data for this recipient — the only case in which the server took responsibility
    (RFC 5321 §6.1).  ``reply`` is the reply that decided: the RCPT refusal, or the answer to the
    end of data (in LMTP, this recipient's own answer).
    """

    recipient: str
    reply: Reply
    accepted: bool
    delivered: bool = False

    @property
    def temporary(self) -> bool:
        """Not delivered, and a later try may succeed (a 4xx)."""
        return not self.delivered and self.reply.is_transient

    @property
    def permanent(self) -> bool:
        """Not delivered, and retrying will not help (a 5xx)."""
        return not self.delivered and self.reply.is_permanent


@fast_init
@dataclass(frozen=True, slots=True)
class SendResult:
    """The outcome of one message: a result per recipient, in the order given."""

    recipients: tuple[RecipientResult, ...]

    def __getitem__(self, recipient: str) -> RecipientResult:
        for result in self.recipients:
            if result.recipient == recipient:
                return result
        raise KeyError(recipient)

    def __iter__(self) -> Iterator[RecipientResult]:
        return iter(self.recipients)

    @property
    def delivered(self) -> list[str]:
        return [r.recipient for r in self.recipients if r.delivered]

    @property
    def failed(self) -> list[str]:
        return [r.recipient for r in self.recipients if not r.delivered]

    @property
    def all_delivered(self) -> bool:
        return all(r.delivered for r in self.recipients)
