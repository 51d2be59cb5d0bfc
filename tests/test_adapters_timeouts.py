"""Timeouts and refused connections through each adapter."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from smtpproto import ConnectError, SMTPTimeoutError, TLSMode
from tests.servers.net import pick_free_port

if TYPE_CHECKING:  # imported for real by pytest_plugins, which rewrites its asserts
    from tests.adapters_harness import Adapter

pytest_plugins = ["tests.adapters_harness"]


@pytest.fixture
def silent_server() -> Iterator[tuple[str, int]]:
    """A listening socket that never answers: the kernel completes the handshake, nobody
    ever writes a greeting."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()


def test_greeting_timeout_names_the_phase(
    adapter: Adapter, silent_server: tuple[str, int]
) -> None:
    started = time.monotonic()
    with pytest.raises(SMTPTimeoutError) as caught:
        adapter.connect(*silent_server, tls=TLSMode.NONE, timeouts={"GREETING": 0.5})
    elapsed = time.monotonic() - started
    assert caught.value.phase == "GREETING"
    assert caught.value.timeout == 0.5
    assert caught.value.temporary
    assert 0.4 <= elapsed < 1.5


def test_connection_refused_is_connect_error(adapter: Adapter) -> None:
    port = pick_free_port("127.0.0.1")  # nothing listens there
    with pytest.raises(ConnectError) as caught:
        adapter.connect("127.0.0.1", port, tls=TLSMode.NONE, connect_timeout=5.0)
    assert (caught.value.host, caught.value.port) == ("127.0.0.1", port)
    assert caught.value.temporary
    assert not caught.value.timed_out
