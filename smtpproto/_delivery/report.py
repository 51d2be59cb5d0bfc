"""The delivery report: what happened to each recipient, for a person and for a program."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from smtpproto._wire.errors import (
    ConnectError,
    MessageEncodingError,
    ReplyError,
    SMTPError,
    TLSError,
    TLSRequiredError,
)
from smtpproto._wire.events import Reply
from smtpproto.mx import DEFAULT_MX_PORT
from smtpproto.tls_report import PolicyOutcome

__all__ = ["AttemptRecord", "DeliveryReport", "RecipientOutcome", "Status", "failure_detail"]

Status = Literal["delivered", "temporary", "permanent"]

PORT_25_ADVICE = (
    "No mail server could be reached on port {port}: every connection was refused or timed out. "
    "Many Internet providers block outgoing connections to port 25. Send through your provider's "
    "relay (submission) server instead: deliver(message, relay=Relay(host, 587, username=..., "
    "password=...))."
)
#: Fewer distinct addresses than this refusing port 25 say nothing about the local network: one
#: dead or filtered mail exchanger is common, several at once are what a blocked port looks like.
PORT_25_EVIDENCE = 2


def failure_detail(exc: SMTPError) -> str:
    """What went wrong, in words, without repeating the reply code that the report shows next
    to it: ``authentication failed: 5.7.8 bad password`` for a 535, ``str(exc)`` otherwise."""
    if isinstance(exc, ReplyError):
        reply = exc.reply
        return str(exc).removesuffix(f": {reply.code} {reply.text}") + f": {reply.text}"
    return str(exc)


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One host tried: where, whether TLS was up, and what went wrong (``error``) if anything."""

    host: str
    address: str
    port: int
    tls: bool = False
    tls_verified: bool = False
    error: str | None = None
    connect_failed: bool = False  # refused or timed out before any SMTP was spoken
    encoding_error: bool = False  # the message needs an extension this host lacks
    tls_failed: bool = False  # the handshake failed, or STARTTLS was required and not had
    #: The TLS policy the attempt ran under and whether it was met (None: no session reached
    #: the point where the policy is judged, e.g. the connection was refused).
    policy: PolicyOutcome | None = None

    def connected(self, tls: bool, tls_verified: bool) -> AttemptRecord:
        return dataclasses.replace(self, tls=tls, tls_verified=tls_verified)

    def failed(self, exc: SMTPError) -> AttemptRecord:
        return dataclasses.replace(
            self,
            error=str(exc),
            connect_failed=isinstance(exc, ConnectError),
            encoding_error=isinstance(exc, MessageEncodingError),
            tls_failed=isinstance(exc, (TLSError, TLSRequiredError)),
        )

    def to_dict(self) -> dict[str, Any]:
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        fields["policy"] = None if self.policy is None else policy_dict(self.policy)
        return fields


def policy_dict(outcome: PolicyOutcome) -> dict[str, Any]:
    """A policy outcome as JSON-ready values; ``failure`` in RFC 8460 §4.4 words."""
    failure = outcome.failure
    return {
        "kind": outcome.kind.value,
        "policy_type": outcome.kind.report_policy_type.value,
        "policy_domain": outcome.policy_domain,
        "policy_strings": list(outcome.policy_strings),
        "met": outcome.met,
        "failure": None
        if failure is None
        else {
            "result_type": failure.result_type.value,
            "receiving_mx_hostname": failure.receiving_mx_hostname,
            "receiving_ip": failure.receiving_ip,
            "additional_information": failure.additional_information,
        },
    }


def policy_words(attempt: AttemptRecord) -> str:
    """``"; TLS policy dane: met"``, or what failed, for the report's text (unless the
    attempt's error already says it)."""
    outcome = attempt.policy
    if outcome is None or (attempt.error and not outcome.met):
        return ""
    failure = outcome.failure
    said = "met" if failure is None else f"not met ({failure.result_type.value})"
    return f"; TLS policy {outcome.kind.value}: {said}"


@dataclass(frozen=True, slots=True)
class RecipientOutcome:
    """The fate of one recipient.

    ``delivered`` means a server answered 2xx to the end of the data for it; ``temporary`` that
    trying later may work; ``permanent`` that it will not.  ``reply`` is the reply that decided
    (if a server gave one), ``server_host``/``server_address`` the server that gave it.
    """

    recipient: str
    status: Status
    reply: Reply | None
    detail: str
    server_host: str | None = None
    server_address: str | None = None
    tls: bool = False
    tls_verified: bool = False
    attempts: tuple[AttemptRecord, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        reply = self.reply
        return {
            "recipient": self.recipient,
            "status": self.status,
            "reply": None
            if reply is None
            else {
                "code": reply.code,
                "enhanced_status": None
                if reply.enhanced_status is None
                else str(reply.enhanced_status),
                "text": reply.text,
            },
            "detail": self.detail,
            "server_host": self.server_host,
            "server_address": self.server_address,
            "tls": self.tls,
            "tls_verified": self.tls_verified,
            "attempts": [a.to_dict() for a in self.attempts],
        }


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """One outcome per recipient, in the order given."""

    outcomes: tuple[RecipientOutcome, ...]
    relay: bool = False
    port: int = DEFAULT_MX_PORT

    def __getitem__(self, recipient: str) -> RecipientOutcome:
        for outcome in self.outcomes:
            if outcome.recipient == recipient:
                return outcome
        raise KeyError(recipient)

    def with_status(self, status: Status) -> list[str]:
        return [o.recipient for o in self.outcomes if o.status == status]

    def still_open(self) -> list[str]:
        """The recipients worth another attempt (temporary failures), for the next one:
        ``send(message, sender, report.still_open())``."""
        return self.with_status("temporary")

    @property
    def all_delivered(self) -> bool:
        return all(o.status == "delivered" for o in self.outcomes)

    @property
    def port_25_blocked(self) -> bool:
        """Direct delivery reached no server at all, on several addresses: every attempt
        failed at connect, at two or more addresses (one dead host proves nothing)."""
        if self.relay or any(o.status == "delivered" for o in self.outcomes):
            return False
        attempts = [a for o in self.outcomes for a in o.attempts]
        addresses = {a.address for a in attempts}
        return len(addresses) >= PORT_25_EVIDENCE and all(a.connect_failed for a in attempts)

    @property
    def diagnosis(self) -> str | None:
        """Advice in plain words when the situation calls for it."""
        return PORT_25_ADVICE.format(port=self.port) if self.port_25_blocked else None

    @property
    def summary(self) -> str:
        counts = {s: len(self.with_status(s)) for s in ("delivered", "temporary", "permanent")}
        return (
            f"{counts['delivered']} delivered, {counts['temporary']} temporary failure(s), "
            f"{counts['permanent']} permanent failure(s)"
        )

    def __str__(self) -> str:
        lines = [self.summary]
        for o in self.outcomes:
            where = f" via {o.server_host} [{o.server_address}]" if o.server_host else ""
            tls = (" TLS" + ("" if o.tls_verified else " (unverified)")) if o.tls else ""
            code = f"{o.reply.code} " if o.reply is not None else ""
            # A multi-line reply (Exim's to BDAT) stays under its recipient, indented.
            detail = o.detail.replace("\n", "\n      ")
            lines.append(f"  {o.recipient}: {o.status}{where}{tls}: {code}{detail}")
            lines += [
                f"    tried {a.host} [{a.address}]:{a.port}: {a.error or 'ok'}" + policy_words(a)
                for a in o.attempts
            ]
        if self.diagnosis:
            lines.append(self.diagnosis)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "summary": self.summary,
            "relay": self.relay,
            "port_25_blocked": self.port_25_blocked,
            "diagnosis": self.diagnosis,
            "recipients": [o.to_dict() for o in self.outcomes],
        }
