"""Issue 14, as a new user meets it: one ``--timeout`` for every phase, failover that shows in
the transcript, and the TLS mode that follows the port (465 implicit, 587 STARTTLS, 25
opportunistic).  Each test runs the real program against loopback servers; the ones that wait
for a silent server bound how long the whole run may take (``run_cli(timeout=...)``), far below
the 60 s default and the RFC's 300 s, so a phase the timeout does not reach fails the test."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

from tests.deliver_harness import SilentListener

if TYPE_CHECKING:  # mypy knows testing/ as "testing" (package-dir mapping)
    from testing import Peer, ScriptedServer
else:
    from smtpproto.testing import Peer, ScriptedServer

from tests.servers.dnsmasq import DEFAULT_ZONE, DNSServer
from tests.servers.fixtures import SMTPServerFactory
from tests.servers.tls import TLSMaterial
from tests.test_cli import assert_one_line_error, run_cli

if TYPE_CHECKING:  # mypy knows cli/ as "cli" (package-dir mapping)
    from cli.common import EXIT_OK, EXIT_TEMPFAIL
else:
    from smtpproto.cli.common import EXIT_OK, EXIT_TEMPFAIL

# Bounds for a run against a silent server with --timeout 1: a phase left at its default (60 s,
# or the RFC's 300 s) would blow them, while a loaded machine still has room.
BOUND = 25.0

MX1, MX2 = "mx1.ordered.test", "mx2.ordered.test"
# A zone address no other test serves on 465 or 2525 (its certificate names it).
TLS_HOST = DEFAULT_ZONE.address("mx.multihomed.test")


def direct(dns_server: DNSServer, *extra: str, to: str = "bob@ordered.test") -> list[str]:
    return [
        "send", "--from", "a@x.test", "--to", to, "--direct", "--ehlo", "client.test",
        "--resolver", f"{dns_server.host}:{dns_server.port}", *extra,
    ]  # fmt: skip


@pytest.fixture
def silent() -> Iterator[Callable[..., SilentListener]]:
    """``silent(host, port=25)``: accepts TCP and never says a word."""
    listeners: list[SilentListener] = []

    def start(host: str, port: int = 25) -> SilentListener:
        listeners.append(SilentListener(host, port))
        return listeners[-1]

    yield start
    for listener in listeners:
        listener.close()


class SynDropper:
    """A port whose accept queue is full: the kernel drops every further SYN, as a filtering
    firewall does, so a client's connect hangs until its own timeout."""

    def __init__(self, host: str, port: int = 25) -> None:
        self.listener = socket.create_server((host, port), backlog=0)
        self.filler = socket.create_connection((host, port))  # fills the queue of one

    def close(self) -> None:
        self.filler.close()
        self.listener.close()


# -- one --timeout for every phase -------------------------------------------------------------


@pytest.mark.parametrize("adapter", ["blocking", "asyncio", "trio"])
def test_silent_first_mx_fails_over_within_the_timeout(
    dns_server: DNSServer,
    smtp_server_factory: SMTPServerFactory,
    silent: Callable[..., SilentListener],
    adapter: str,
) -> None:
    """mx1 accepts TCP and never greets: with --timeout 1 the greeting wait ends after a second
    and mx2 delivers; the transcript marks both connections and why mx1 was left."""
    listener = silent(DEFAULT_ZONE.address(MX1))
    mx2 = smtp_server_factory(host=DEFAULT_ZONE.address(MX2), port=25)
    started = time.monotonic()
    result = run_cli(*direct(dns_server, "--timeout", "1", "--adapter", adapter), timeout=BOUND)
    assert time.monotonic() - started < BOUND
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    assert listener.connections == 1 and len(mx2.messages) == 1
    out = result.stdout
    connect1 = out.index(f"* connecting to {MX1} [127.0.0.11] port 25 (TLS: opportunistic)")
    gave_up = out.index(f"* giving up on {MX1} [127.0.0.11] port 25: timed out after 1.0 s")
    connect2 = out.index(f"* connecting to {MX2} [127.0.0.12] port 25")
    settled = out.index(f"* outcome at {MX2} [127.0.0.12] port 25: delivered: bob@ordered.test")
    assert connect1 < gave_up < connect2 < out.index("S: 220 mx.aiosmtpd.test") < settled
    assert "GREETING" in out[gave_up:connect2]


def test_syn_dropping_first_mx_fails_over_within_the_timeout(
    dns_server: DNSServer, smtp_server_factory: SMTPServerFactory
) -> None:
    """mx1 drops every SYN: the connect wait is --timeout too."""
    dropper = SynDropper(DEFAULT_ZONE.address(MX1))
    try:
        smtp_server_factory(host=DEFAULT_ZONE.address(MX2), port=25)
        result = run_cli(*direct(dns_server, "--timeout", "1"), timeout=BOUND)
    finally:
        dropper.close()
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    assert re.search(
        rf"\* giving up on {MX1} .*: cannot connect to 127\.0\.0\.11 port 25", result.stdout
    )
    assert re.search(r"bob@ordered\.test\s+delivered\s+250.*mx2\.ordered\.test", result.stdout)


def test_relay_that_never_greets_ends_within_the_timeout(
    silent: Callable[..., SilentListener],
) -> None:
    """A relay that never greets: 75 within the bound, the phase and the flags that help."""
    port = silent("127.0.0.1", 0).port
    result = run_cli(
        "send", "--from", "a@x.test", "--to", "b@x.test", "--server", f"127.0.0.1:{port}",
        "--tls", "none", "--timeout", "1", timeout=BOUND,
    )  # fmt: skip
    assert result.returncode == EXIT_TEMPFAIL, result.stdout + result.stderr
    assert_one_line_error(result)
    assert "timed out after 1.0 s waiting for the reply to GREETING" in result.stderr
    assert "--tls implicit" in result.stderr and "--timeout" in result.stderr
    assert re.search(r"b@x\.test\s+temporary\s+timed out.*127\.0\.0\.1, no session", result.stdout)


def test_phase_timeout_overrides_one_phase(silent: Callable[..., SilentListener]) -> None:
    """--timeout 30 with --phase-timeout greeting=1: the silent greeting ends after a second."""
    port = silent("127.0.0.1", 0).port
    result = run_cli(
        "send", "--from", "a@x.test", "--to", "b@x.test", "--server", f"127.0.0.1:{port}",
        "--tls", "none", "--timeout", "30", "--phase-timeout", "greeting=1", timeout=BOUND,
    )  # fmt: skip
    assert result.returncode == EXIT_TEMPFAIL
    assert "timed out after 1.0 s waiting for the reply to GREETING" in result.stderr


def test_mx_timeout_bounds_the_probe_of_a_silent_server(
    dns_server: DNSServer, silent: Callable[..., SilentListener]
) -> None:
    """``mx --timeout`` means what ``send --timeout`` means: the longest wait in any phase."""
    silent(DEFAULT_ZONE.address(MX1))
    result = run_cli(
        "mx", "ordered.test", "--resolver", f"{dns_server.host}:{dns_server.port}",
        "--timeout", "1", timeout=BOUND,
    )  # fmt: skip
    assert result.returncode == EXIT_TEMPFAIL, result.stdout
    assert re.search(
        rf"{MX1} \[127\.0\.0\.11\] port 25\n  failed: timed out after 1\.0 s waiting for the "
        "reply to GREETING",
        result.stdout,
    )


# -- the TLS mode follows the port -------------------------------------------------------------


def relay(host: str, port: int, *extra: str) -> list[str]:
    return ["send", "--from", "a@x.test", "--to", "b@x.test", "--server", f"{host}:{port}",
            "--ehlo", "client.test", *extra]  # fmt: skip


def test_port_465_is_implicit_tls_without_being_told(
    smtp_server_factory: SMTPServerFactory, tls_material: TLSMaterial
) -> None:
    server = smtp_server_factory(host=TLS_HOST, port=465, implicit_tls=True)
    cafile = ("--cafile", str(tls_material.ca_cert))
    result = run_cli(*relay(TLS_HOST, 465, *cafile))
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    assert f"* connecting to {TLS_HOST} port 465 (TLS: implicit, the default for port 465)" in (
        result.stdout
    )
    assert re.search(r"b@x\.test\s+delivered\s+250.*TLS verified", result.stdout)
    told = run_cli(*relay(TLS_HOST, 465, "--tls", "implicit", *cafile))
    assert told.returncode == EXIT_OK, told.stderr
    assert "(TLS: implicit, from --tls)" in told.stdout
    assert all(message.tls for message in server.wait_for_messages(2))


def test_port_465_with_starttls_names_tls_implicit(
    smtp_server_factory: SMTPServerFactory, tls_material: TLSMaterial
) -> None:
    """--tls starttls on 465: the server waits for a ClientHello, we for a greeting; the
    greeting timeout says to use --tls implicit, within the bound."""
    smtp_server_factory(host=TLS_HOST, port=465, implicit_tls=True)
    result = run_cli(
        *relay(TLS_HOST, 465, "--tls", "starttls", "--timeout", "1", "--cafile",
               str(tls_material.ca_cert)),
        timeout=BOUND,
    )  # fmt: skip
    assert result.returncode == EXIT_TEMPFAIL, result.stdout + result.stderr
    assert_one_line_error(result)
    assert "port 465 expects TLS from the first byte" in result.stderr
    assert "use --tls implicit" in result.stderr


def test_port_25_is_opportunistic_and_587_requires_starttls(
    smtp_server_factory: SMTPServerFactory, tls_material: TLSMaterial
) -> None:
    """Port 25 without STARTTLS: delivered in cleartext (opportunistic); the same server on
    587 is refused, since STARTTLS is required there."""
    smtp_server_factory(host=TLS_HOST, port=25)
    on_25 = run_cli(*relay(TLS_HOST, 25))
    assert on_25.returncode == EXIT_OK, on_25.stderr
    assert "(TLS: opportunistic, the default for port 25)" in on_25.stdout
    assert re.search(r"b@x\.test\s+delivered\s+250.*, cleartext", on_25.stdout)
    smtp_server_factory(host=TLS_HOST, port=587)
    on_587 = run_cli(*relay(TLS_HOST, 587))
    assert on_587.returncode == EXIT_TEMPFAIL
    assert "(TLS: starttls, the default for port 587)" in on_587.stdout
    assert "does not offer STARTTLS" in on_587.stderr and "--tls opportunistic" in on_587.stderr


def test_help_says_the_tls_mode_follows_the_port() -> None:
    result = run_cli("send", "--help")
    text = " ".join(result.stdout.split())
    assert "465 implicit" in text and "587 starttls" in text and "25 opportunistic" in text
    assert "--phase-timeout PHASE=SECONDS" in text and "greeting" in text


# -- failover and retries, marked --------------------------------------------------------------


def test_a_421_greeting_and_the_next_host_are_marked(
    dns_server: DNSServer, smtp_server_factory: SMTPServerFactory
) -> None:
    """The transcript no longer runs mx1's 421 into mx2's 220: a line says mx1 was given up."""
    smtp_server_factory(host=DEFAULT_ZONE.address(MX1), port=25, greeting="421 4.3.2 busy")
    smtp_server_factory(host=DEFAULT_ZONE.address(MX2), port=25)
    result = run_cli(*direct(dns_server))
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    refused = lines.index("S: 421 4.3.2 busy")
    assert lines[refused + 1].startswith(f"* giving up on {MX1} [127.0.0.11] port 25: ")
    assert lines[refused + 2].startswith(f"* connecting to {MX2} [127.0.0.12] port 25")


def not_tls(peer: Peer) -> None:
    """After the 220 to STARTTLS: read the client's ClientHello, answer with plain text."""
    peer.receive()
    peer.send(b"this is not TLS\r\n")


def test_failed_handshake_and_cleartext_retry_are_marked(
    dns_server: DNSServer, tls_material: TLSMaterial
) -> None:
    """mx1 answers 220 to STARTTLS, then sends no TLS: the handshake fails; opportunistic TLS
    retries the same host in cleartext, and the transcript says both."""
    with ScriptedServer(
        {"HANDSHAKE": not_tls},
        host=DEFAULT_ZONE.address(MX1),
        port=25,
        tls_context=tls_material.server_context(),
    ) as server:
        result = run_cli(*direct(dns_server, "-v"))
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    out = result.stdout
    starttls = out.index("C: STARTTLS")
    failed = out.index(f"* TLS handshake with {MX1} [127.0.0.11] port 25 failed")
    retry = out.index("connecting again, in cleartext")
    assert starttls < failed < retry < out.index("C: MAIL FROM:<a@x.test>")
    assert len(server.connections) == 2
    assert re.search(r"bob@ordered\.test\s+delivered\s+250.*mx1\.ordered\.test.*, cleartext", out)


def test_verbose_lists_every_attempt_for_every_recipient(
    dns_server: DNSServer, smtp_server_factory: SMTPServerFactory
) -> None:
    """mx1 defers one recipient (450), mx2 takes both: without -v the delivered recipients'
    attempts are not listed; with -v they are, each with what happened there."""
    rcpts = ("bob@ordered.test", "carol@ordered.test")
    smtp_server_factory(
        host=DEFAULT_ZONE.address(MX1), port=25,
        recipient_replies={"carol@ordered.test": "450 4.2.0 busy"},
    )  # fmt: skip
    smtp_server_factory(host=DEFAULT_ZONE.address(MX2), port=25)
    args = [*direct(dns_server), "--to", rcpts[1]]
    quiet = run_cli(*args)
    assert quiet.returncode == EXIT_OK, quiet.stdout + quiet.stderr
    assert "tried " not in quiet.stdout
    assert (
        f"* outcome at {MX1} [127.0.0.11] port 25: delivered: bob@ordered.test; "
        "not settled here: carol@ordered.test"
    ) in quiet.stdout
    verbose = run_cli(*args, "-v")
    assert verbose.returncode == EXIT_OK
    assert f"  bob@ordered.test: tried {MX1} [127.0.0.11]:25: ok" in verbose.stdout
    assert f"  carol@ordered.test: tried {MX2} [127.0.0.12]:25: ok" in verbose.stdout
    assert re.search(r"carol@ordered\.test\s+delivered\s+250.*mx2\.ordered\.test", verbose.stdout)
