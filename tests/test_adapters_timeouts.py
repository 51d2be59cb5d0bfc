"""Timeouts and refused connections through each adapter."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from smtpproto import ConnectError, SMTPError, SMTPTimeoutError, Timeouts, TLSMode
from tests.servers.net import pick_free_port

if TYPE_CHECKING:  # imported for real by pytest_plugins, which rewrites its asserts
    from tests.adapters_harness import Adapter


@pytest.fixture
def silent_server() -> Iterator[tuple[str, int]]:
    """A listening socket that never answers: the kernel completes the handshake, nobody
    ever writes a greeting."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()


def test_greeting_timeout_names_the_phase_C17(
    adapter: Adapter, silent_server: tuple[str, int]
) -> None:
    started = time.monotonic()
    with pytest.raises(SMTPTimeoutError) as caught:
        adapter.connect(*silent_server, tls=TLSMode.NONE, timeout=Timeouts(greeting=0.5))
    elapsed = time.monotonic() - started
    assert caught.value.phase == "GREETING"
    assert caught.value.timeout == 0.5
    assert caught.value.temporary
    assert 0.4 <= elapsed < 1.5


def test_implicit_tls_handshake_timeout_names_the_handshake_C17(
    adapter: Adapter, silent_server: tuple[str, int]
) -> None:
    """Implicit TLS to a server that never answers the ClientHello: a timeout of the TLS
    handshake (the TCP connect succeeded), the same in every adapter."""
    with pytest.raises(SMTPTimeoutError) as caught:
        adapter.connect(*silent_server, tls=TLSMode.IMPLICIT, timeout=Timeouts(connect=0.5))
    assert caught.value.phase == "TLS handshake"
    assert caught.value.timeout == 0.5


def test_connection_refused_is_connect_error(adapter: Adapter) -> None:
    port = pick_free_port("127.0.0.1")  # nothing listens there
    with pytest.raises(ConnectError) as caught:
        adapter.connect("127.0.0.1", port, tls=TLSMode.NONE, timeout=Timeouts(connect=5.0))
    assert (caught.value.host, caught.value.port) == ("127.0.0.1", port)
    assert caught.value.temporary
    assert not caught.value.timed_out


@pytest.mark.parametrize(
    ("code", "reason"),
    [("EAI_NONAME", "name or service not known"),
     ("EAI_AGAIN", "temporary failure in name resolution")],
)  # fmt: skip
def test_a_failed_name_lookup_is_worded_from_its_code(
    adapter: Adapter, monkeypatch: pytest.MonkeyPatch, code: str, reason: str
) -> None:
    """getaddrinfo's message differs between platforms and os.strerror knows none of its codes
    ("Unknown error -2"): the reason is the code's, the same through every adapter."""

    def fail(*args: object, **kwargs: object) -> None:
        raise socket.gaierror(getattr(socket, code), "this platform's own words")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    with pytest.raises(ConnectError) as caught:
        adapter.connect("mx.example.invalid", 25, tls=TLSMode.NONE, timeout=Timeouts(connect=5.0))
    assert str(caught.value) == f"cannot resolve mx.example.invalid: {reason}"
    assert caught.value.resolving and caught.value.temporary and not caught.value.timed_out


class StallingServer:
    """A minimal SMTP server on loopback (one connection) that answers everything with a
    positive reply except one step, where it keeps reading and never answers."""

    def __init__(self, stall_on: str) -> None:
        self.stall_on = stall_on
        self.lines: list[bytes] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address: tuple[str, int] = self._listener.getsockname()
        self._thread = threading.Thread(target=self._serve, name="stalling-server", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        connection, _ = self._listener.accept()
        with connection, connection.makefile("rb") as reader:
            connection.sendall(b"220 stall.test ESMTP\r\n")
            in_data = False
            for line in reader:
                self.lines.append(line)
                if in_data:
                    in_data = line != b".\r\n"
                    step = "END-OF-MESSAGE"
                else:
                    step = line.split(b" ", 1)[0].strip().upper().decode("ascii", "replace")
                if in_data or step == self.stall_on:
                    continue
                reply = {
                    "EHLO": b"250-stall.test\r\n250 8BITMIME\r\n",
                    "DATA": b"354 go ahead\r\n",
                    "QUIT": b"221 bye\r\n",
                }.get(step, b"250 ok\r\n")
                in_data = step == "DATA"
                connection.sendall(reply)

    @property
    def verbs(self) -> list[str]:
        return [line.split(b" ", 1)[0].strip().decode("ascii", "replace") for line in self.lines]

    def stop(self) -> None:
        self._listener.close()
        self._thread.join(5.0)


@pytest.mark.parametrize(
    ("phase", "timeout"),
    [
        ("MAIL", Timeouts(mail=0.3, command=0.3)),
        ("END-OF-MESSAGE", Timeouts(data_termination=0.3, command=0.3)),
    ],
)
def test_timeout_mid_session_drops_the_connection_C12_C17(
    adapter: Adapter, phase: str, timeout: Timeouts
) -> None:
    """A server silent after MAIL, or after the final dot: SMTPTimeoutError naming the phase,
    the connection is dropped without waiting for QUIT's reply, nothing counts as delivered."""
    server = StallingServer(phase)
    try:
        with adapter.connect(*server.address, tls=TLSMode.NONE, timeout=timeout) as client:
            started = time.monotonic()
            with pytest.raises(SMTPTimeoutError) as caught:
                client.send_message(
                    b"Subject: t\r\n\r\nbody\r\n", "a@example.org", ["b@example.org"]
                )
            assert time.monotonic() - started < 1.5
            assert caught.value.phase == phase
            with pytest.raises(SMTPError):  # the session is gone: no silent reuse
                client.noop()
    finally:
        server.stop()
    assert "QUIT" not in server.verbs
    assert server.verbs[:2] == ["EHLO", "MAIL"]
