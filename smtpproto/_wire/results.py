"""What happened to each recipient of a message."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from .events import Reply
from .frozen import fast_init

__all__ = ["RecipientResult", "SendResult"]


@fast_init
@dataclass(frozen=True, slots=True)
class RecipientResult:
    """One recipient's fate, with the server's two words on it kept apart.

    ``rcpt_reply`` answered ``RCPT TO``; ``data_reply`` is what the server said of the message
    for this recipient: the answer to the end of the data (in LMTP, this recipient's own), or
    the refusal of DATA itself; ``None`` when the recipient was refused, or the transaction
    never reached the data.
    """

    recipient: str
    rcpt_reply: Reply
    data_reply: Reply | None = None

    @property
    def accepted(self) -> bool:
        """The server accepted the RCPT."""
        return self.rcpt_reply.is_positive

    @property
    def delivered(self) -> bool:
        """The server answered 2xx to the end of the data for this recipient: the only case in
        which it took responsibility for the message (RFC 5321 §6.1)."""
        return self.data_reply is not None and self.data_reply.is_positive

    @property
    def temporary(self) -> bool:
        """Not delivered, and a later try may succeed: the reply that refused it was a 4xx."""
        return not self.delivered and self._refusal.is_transient

    @property
    def permanent(self) -> bool:
        """Not delivered, and retrying will not help: the reply that refused it was a 5xx."""
        return not self.delivered and self._refusal.is_permanent

    @property
    def _refusal(self) -> Reply:
        return self.rcpt_reply if self.data_reply is None else self.data_reply


@fast_init
@dataclass(frozen=True, slots=True)
class SendResult:
    """The outcome of one message: a result per recipient, in the order given, and the replies
    of the transaction as a whole.

    ``mail_reply`` answered ``MAIL FROM``; ``data_reply`` the end of the data (in LMTP, the first
    recipient's answer; each recipient has its own), or refused DATA itself; ``None`` when the
    transaction never reached the data (every recipient refused).
    """

    recipients: tuple[RecipientResult, ...]
    mail_reply: Reply | None = None
    data_reply: Reply | None = None

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
