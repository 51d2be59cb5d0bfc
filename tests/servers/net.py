"""Loopback-only networking helpers shared by the test servers."""

from __future__ import annotations

import ipaddress
import socket
import time


class ServerStartError(RuntimeError):
    """A server did not come up; the message carries its command line or log."""


def check_loopback(host: str) -> None:
    """Refuse anything but 127.0.0.0/8 and ::1: these tests must never reach another host."""
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"test servers bind to loopback addresses only, not {host!r}")


def pick_free_port(host: str, kind: int = socket.SOCK_STREAM) -> int:
    """A port that is free on ``host`` right now (a later bind can still race; callers retry)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, kind) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_banner(host: str, port: int, timeout: float) -> bytes | None:
    """Connect until the server sends its first reply line; None if it never did in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1.0) as connection:
                banner = connection.recv(512)
                connection.sendall(b"QUIT\r\n")
                if banner:
                    return banner
        except OSError:
            pass
        time.sleep(0.1)
    return None
