"""smtpproto's blocking adapter; a large message is streamed from its path."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from _scenarios import LOCAL_HOSTNAME, SENDER, SyncSend, Work, run_sync

if TYPE_CHECKING:  # mypy knows adapters/ as "adapters" (the package-dir mapping)
    from adapters.blocking import SMTPClient, TLSMode
else:
    from smtpproto.adapters.blocking import SMTPClient, TLSMode


@contextlib.contextmanager
def session(host: str, port: int) -> Iterator[SyncSend]:
    with SMTPClient.connect(host, port, tls=TLSMode.NONE, local_hostname=LOCAL_HOSTNAME) as client:

        def send(body: Any, recipients: list[str]) -> None:
            result = client.send_message(body, SENDER, recipients)
            if not result.all_delivered:
                raise RuntimeError(f"smtpproto: not delivered to {result.failed}")

        yield send


def run(scenario: str, w: Work) -> float:
    return run_sync(session, Path, scenario, w)
