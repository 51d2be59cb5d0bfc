"""Signing in the operations, byte for byte: the kit's scripted server answers, the clock is
fixed, so every write is known in advance — the signature fields first, then exactly the bytes
that were hashed; ``SIZE=`` counts both.  (tests/test_dkim_sending.py has real servers and
verifiers; these pin down the writes.)"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from smtpproto import OutgoingMessage, SendOptions, SendResult, prepare_message
from smtpproto.dkim import DKIMSigner
from smtpproto.driver import Now, Operation
from tests.dkim_harness import DOMAIN, NOW, hashed_and_signed, make_keys

from .scripted import Expect, Reply, open_session, run_both

if TYPE_CHECKING:
    pass
else:
    pass

T = TypeVar("T")
SENDER, BOB = "alice@dkim.test", "bob@example.net"
OK = b"250 2.1.0 ok\r\n"
GO = b"354 go ahead\r\n"
QUEUED = b"250 2.0.0 queued\r\n"
# Bare LF, a dot-led line, no final line end: what is hashed is what is sent, all the same.
BODY = b"From: alice@dkim.test\nSubject: hi\n\n.dot\nno final line end"
WIRE = BODY.replace(b"\n", b"\r\n") + b"\r\n"


@pytest.fixture(scope="module")
def signer() -> DKIMSigner:
    return DKIMSigner(DOMAIN, "ed25519", make_keys()["ed25519"])  # Ed25519 is deterministic


def mail(size: int, *params: str) -> bytes:
    return f"MAIL FROM:<{SENDER}> SIZE={size}{''.join(' ' + p for p in params)}\r\n".encode()


def test_one_flight_bdat_carries_the_fields_and_the_hashed_bytes(signer: DKIMSigner) -> None:
    signed = hashed_and_signed(BODY, [signer]) + WIRE
    script = [
        Expect.send(
            mail(len(signed)) + b"RCPT TO:<%s>\r\n" % BOB.encode()
            + b"BDAT %d LAST\r\n" % len(signed) + signed
        ),
        Reply(OK * 2 + QUEUED),
    ]  # fmt: skip
    options = SendOptions(dkim=(signer,))

    def make() -> Operation[SendResult]:
        session = open_session("PIPELINING", "CHUNKING", "SIZE 1000000")
        return session.send_message(BODY, SENDER, [BOB], options=options)

    assert run_both(make, script, now=NOW).all_delivered


def test_data_from_a_stream_is_spooled_dot_stuffed_and_sized(
    signer: DKIMSigner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile  # noqa: PLC0415

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    fields = hashed_and_signed(BODY, [signer])
    stuffed = re.sub(rb"(?m)^\.", b"..", WIRE)
    size = len(fields) + len(WIRE)
    script = [
        Expect.send(mail(size, "BODY=8BITMIME") + b"RCPT TO:<%s>\r\nDATA\r\n" % BOB.encode()),
        Reply(OK * 2 + GO),
        Expect.send(fields),  # a chunk of its own, as each chunk of a stream is
        Expect.send(stuffed + b".\r\n"),
        Reply(QUEUED),
    ]

    def chunks() -> Iterator[bytes]:
        yield from (BODY[:5], BODY[5:40], BODY[40:])

    def make() -> Operation[SendResult]:
        session = open_session("PIPELINING", "8BITMIME", "SIZE 1000000")
        message = prepare_message(chunks(), SENDER, [BOB], options=SendOptions(dkim=(signer,)))
        return session.send_message(message)

    assert run_both(make, script, now=NOW).all_delivered
    assert list(tmp_path.iterdir()) == []


def test_send_messages_signs_each_message_once(signer: DKIMSigner) -> None:
    """Two signed messages and an unsigned one, pipelined with CHUNKING: one write."""
    first = b"From: alice@dkim.test\r\n\r\none\r\n"
    second = b"From: alice@dkim.test\r\n\r\ntwo\r\n"
    signed = [hashed_and_signed(m, [signer]) + m for m in (first, second)]
    options = SendOptions(dkim=(signer,))
    messages = [
        prepare_message(first, SENDER, [BOB], options=options),
        prepare_message(second, SENDER, [BOB], options=options),
        prepare_message(b"Subject: unsigned\r\n\r\nx\r\n", SENDER, [BOB]),
    ]
    bodies = [*signed, b"Subject: unsigned\r\n\r\nx\r\n"]
    envelope = b"MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\n" % (SENDER.encode(), BOB.encode())
    write = b"".join(envelope + b"BDAT %d LAST\r\n" % len(b) + b for b in bodies)
    script = [Expect.send(write), Reply((OK * 2 + QUEUED) * 3)]

    def make() -> Operation[list[Any]]:
        session = open_session("PIPELINING", "CHUNKING")
        return _outcomes(session.send_messages(messages))

    outcomes = run_both(make, script, now=NOW)
    assert all(isinstance(o, SendResult) and o.all_delivered for o in outcomes)


def _outcomes(batch: Any) -> Operation[list[Any]]:
    outcomes = []
    while (outcome := (yield from batch.next_outcome())) is not None:
        outcomes.append(outcome)
    return outcomes


def test_signed_messages_are_not_signed_again(signer: DKIMSigner) -> None:
    """The signed message no longer carries signers (a follow-up transaction, or deliver()'s
    copies for each host, send the same signed bytes)."""
    message: OutgoingMessage = prepare_message(
        BODY, SENDER, [BOB], options=SendOptions(dkim=(signer,))
    )
    from smtpproto._operations.signing import signed  # noqa: PLC0415

    operation = signed(message)
    assert isinstance(next(operation), Now)
    with pytest.raises(StopIteration) as stop:
        operation.send(NOW)
    result: OutgoingMessage = stop.value.value
    assert result.options.dkim == ()
    assert result.body.data == hashed_and_signed(BODY, [signer]) + WIRE
    assert result.size == len(result.body.data)
