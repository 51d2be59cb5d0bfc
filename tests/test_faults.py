"""Fault injection at every step of a full transaction, through each adapter (issue 7, part 2).

A :class:`~smtpproto.testing.ScriptedServer` closes the connection, stalls, or answers 421 at
one step of a dialogue with STARTTLS, AUTH PLAIN, a pipelined MAIL with two RCPTs, DATA and a
72 KB body.  Every case runs the whole session twice at once, against two servers with the same
fault: once through the client API (``connect``, ``authenticate``, ``send_message``, leaving the
``with`` block) and once through ``deliver()`` via a :class:`~smtpproto.Relay`, whose server does
not offer PIPELINING, so both the pipelined and the lock-step dialogue meet every fault.

Checked for each case (checklist C12, C15, C16, C17):

- never a hang: every wait is bounded by its phase's timeout, the whole case by
  :data:`CASE_BOUND`;
- the right typed error: ``ConnectionLostError`` or ``SMTPTimeoutError`` naming the phase,
  ``GreetingRefused`` / ``ServiceClosing`` carrying the 421 — all temporary;
- the session cleaned up: the server reads EOF (the client closed its socket), and a later
  command raises ``ConnectionLostError`` saying the connection is closed;
- nothing is reported delivered unless the server answered the end of data with 2xx.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
import trio

from smtpproto import (
    ConnectError,
    ConnectionLostError,
    DeliveryOptions,
    DeliveryReport,
    GreetingRefused,
    Relay,
    SendResult,
    ServiceClosing,
    SessionOptions,
    SMTPError,
    SMTPTimeoutError,
    Timeouts,
    TLSError,
    TLSMode,
)

if TYPE_CHECKING:  # mypy knows testing/ as "testing"; the harness comes from pytest_plugins
    from testing import ConnectionRecord, Fault, ScriptedServer
    from tests.adapters_harness import Adapter
    from tests.servers.tls import TLSMaterial
else:
    from smtpproto.testing import ConnectionRecord, Fault, ScriptedServer

#: Every phase's timeout: long enough for loopback, short enough for 114 cases.
PHASE_TIMEOUT = 0.3
CONNECT_TIMEOUT = 2.0
PHASE_TIMEOUTS = dataclasses.replace(Timeouts.uniform(PHASE_TIMEOUT), connect=CONNECT_TIMEOUT)
#: The longest one case may take: one stalled phase, then at most a stalled QUIT.
CASE_BOUND = 3.0
SENDER = "sender@client.test"
RECIPIENTS = ["one@example.org", "two@example.org"]
USERNAME = "user"
PASSWORD = "fault-matrix-secret"
#: Larger than the server's ``body_fault_after``, so that ``BODY`` faults strike mid-message.
MESSAGE = b"Subject: faults\r\n\r\n" + (b"x" * 70 + b"\r\n") * 1000


@dataclass(frozen=True)
class Expected:
    """The error a fault must produce: its type, and the phase or the reply code it carries."""

    error: tuple[type[SMTPError], ...] | None
    phases: tuple[str, ...] = ()
    code: int | None = None


#: The steps of the transaction, in order, with the phases a client waits in there.
STEP_PHASES: dict[str, tuple[str, ...]] = {
    "GREETING": ("GREETING",),
    "EHLO": ("EHLO",),
    "STARTTLS": ("STARTTLS",),
    "HANDSHAKE": ("TLS handshake",),
    "EHLO-TLS": ("EHLO",),
    "AUTH": ("AUTH",),
    "MAIL": ("MAIL",),
    "RCPT1": ("RCPT",),
    "RCPT2": ("RCPT",),
    "DATA": ("DATA",),
    # The client may still be writing (the send times out) or already waiting for the reply.
    "BODY": ("MESSAGE-DATA", "END-OF-MESSAGE"),
    "DOT": ("END-OF-MESSAGE",),
    "QUIT": ("QUIT",),
}
#: Before the session is open a 421 is a refusal of the session; later the server's closing.
OPENING = ("GREETING", "EHLO")


def expected(step: str, fault: Fault) -> Expected:
    if step == "QUIT":
        return Expected(None)  # the message is delivered; leaving the session never raises (C14)
    if fault is Fault.SERVICE_CLOSING:
        return Expected((GreetingRefused if step in OPENING else ServiceClosing,), code=421)
    if fault is Fault.STALL:
        return Expected((SMTPTimeoutError,), STEP_PHASES[step])
    if step == "HANDSHAKE":  # EOF mid-handshake: the TLS library's error or a lost connection
        return Expected((TLSError, ConnectionLostError), STEP_PHASES[step])
    if step == "GREETING" and fault is Fault.RESET:
        # A reset right after accept() may reach trio while it is still connecting.
        return Expected((ConnectionLostError, ConnectError), STEP_PHASES[step])
    return Expected((ConnectionLostError,), STEP_PHASES[step])


CASES = [
    (step, fault)
    for step in STEP_PHASES
    for fault in Fault
    # A 421 is an SMTP reply; in the middle of the TLS handshake there is no room for one.
    if not (step == "HANDSHAKE" and fault is Fault.SERVICE_CLOSING)
]


@dataclass
class ClientRun:
    """What the client API did: its error, its result, how long, and the later command's
    error."""

    error: SMTPError | None = None
    result: SendResult | None = None
    later_error: SMTPError | None = None
    opened: bool = False
    elapsed: float = 0.0


def run_client(adapter: Adapter, server: ScriptedServer, tls: TLSMaterial) -> ClientRun:
    run = ClientRun()
    started = time.monotonic()
    try:
        with adapter.connect(
            *server.address,
            tls=TLSMode.STARTTLS,
            ssl_context=tls.client_context(),
            timeout=PHASE_TIMEOUTS,
            local_hostname="client.test",
        ) as client:
            run.opened = True
            try:
                client.authenticate(USERNAME, PASSWORD)
                run.result = client.send_message(MESSAGE, SENDER, RECIPIENTS)
            except SMTPError as exc:
                run.error = exc
        # Whatever happened, the session is over now: no command may silently reuse it.
        try:
            client.noop()
        except SMTPError as exc:
            run.later_error = exc
    except SMTPError as exc:
        run.error = exc
    run.elapsed = time.monotonic() - started
    return run


def deliver_in_background(
    adapter: Adapter, server: ScriptedServer, tls: TLSMaterial
) -> Callable[[], tuple[DeliveryReport, float]]:
    """Start ``deliver()`` through ``server`` as a relay; the returned function waits for it."""
    relay = Relay(
        "127.0.0.1", server.address[1], username=USERNAME, password=PASSWORD, tls=TLSMode.STARTTLS
    )
    options: dict[str, Any] = {
        "relay": relay,
        "ssl_context": tls.client_context(),
        "options": DeliveryOptions(
            session=SessionOptions(local_hostname="client.test", timeout=PHASE_TIMEOUTS)
        ),
    }
    deliver = adapter.module.deliver
    outcome: list[DeliveryReport] = []
    errors: list[BaseException] = []

    async def run_async() -> DeliveryReport:
        report: DeliveryReport = await deliver(MESSAGE, SENDER, RECIPIENTS, **options)
        return report

    def target() -> None:
        try:
            if adapter.name == "blocking":
                outcome.append(deliver(MESSAGE, SENDER, RECIPIENTS, **options))
            elif adapter.name == "asyncio":
                outcome.append(asyncio.run(run_async()))
            else:
                outcome.append(trio.run(run_async))
        except BaseException as exc:  # handed to the test's thread
            errors.append(exc)

    started = time.monotonic()
    thread = threading.Thread(target=target, name=f"deliver-{adapter.name}", daemon=True)
    thread.start()

    def wait() -> tuple[DeliveryReport, float]:
        thread.join(CASE_BOUND * 2)
        assert not thread.is_alive(), "deliver() hung"
        if errors:
            raise errors[0]
        return outcome[0], time.monotonic() - started

    return wait


def check_fault_reached(record: ConnectionRecord, step: str, fault: Fault) -> None:
    """The fault really struck where the case says (else the case proves nothing)."""
    assert record.fault == (step, fault), (record.fault, record.steps, record.errors)


def check_cleaned_up(record: ConnectionRecord) -> None:
    """The client closed its socket: the server, still reading, saw EOF (after a reset the
    server has no socket left to see it with)."""
    if record.fault is not None and record.fault[1] is Fault.RESET:
        return
    assert record.eof, f"the client never closed the connection: {record.errors}"


@pytest.mark.parametrize(
    ("step", "fault"), CASES, ids=[f"{step}-{fault.value}" for step, fault in CASES]
)
def test_fault_matrix_C12_C15_C16_C17(
    adapter: Adapter, tls_material: TLSMaterial, step: str, fault: Fault
) -> None:
    """C12, C15, C16, C17: ``fault`` at ``step``, through the client API and through
    ``deliver()``: bounded, typed, cleaned up, and never "delivered" without a 2xx to the end
    of data."""
    with (
        ScriptedServer({step: fault}, tls_context=tls_material.server_context()) as server,
        ScriptedServer(
            {step: fault}, tls_context=tls_material.server_context(), pipelining=False
        ) as relay_server,
    ):
        wait_for_delivery = deliver_in_background(adapter, relay_server, tls_material)
        run = run_client(adapter, server, tls_material)
        report, delivery_elapsed = wait_for_delivery()
    record, relay_record = server.record, relay_server.record

    # Bounded: one stalled phase at most, then the session is dropped.
    assert run.elapsed < CASE_BOUND, run.elapsed
    assert delivery_elapsed < CASE_BOUND, delivery_elapsed

    # The right typed error, naming the phase or carrying the 421, and temporary (C15-C17).
    want = expected(step, fault)
    if want.error is None:
        assert run.error is None, repr(run.error)
    else:
        assert isinstance(run.error, want.error), repr(run.error)
        assert run.error.temporary
        if want.phases and isinstance(run.error, (SMTPTimeoutError, ConnectionLostError)):
            assert run.error.phase in want.phases, run.error.phase
        if isinstance(run.error, SMTPTimeoutError):
            assert run.error.timeout == PHASE_TIMEOUT
        if want.code is not None:
            assert isinstance(run.error, (GreetingRefused, ServiceClosing))
            assert run.error.code == want.code

    # Cleaned up: the socket is closed, and the session refuses further commands.
    for each in (record, relay_record):
        check_fault_reached(each, step, fault)
        check_cleaned_up(each)
    if run.opened:
        assert isinstance(run.later_error, ConnectionLostError), repr(run.later_error)
        assert "closed" in str(run.later_error)

    # Delivered only after a 2xx to the end of data (C12): per recipient, in both APIs.
    if run.result is not None:
        assert record.delivered
        assert all(r.delivered for r in run.result.recipients)
    assert (run.result is not None) == record.delivered
    for outcome in report.outcomes:
        assert (outcome.status == "delivered") == relay_record.delivered, outcome
        if not relay_record.delivered:
            assert outcome.status == "temporary", outcome  # C16: a lost session is a 4xx
    assert relay_record.delivered == (step == "QUIT")
