"""The reference: the standard library's ``smtplib`` (one command, one round trip)."""

from __future__ import annotations

import contextlib
import smtplib
from collections.abc import Iterator
from typing import Any

from _scenarios import (
    LOCAL_HOSTNAME,
    SENDER,
    SyncSendAll,
    Work,
    one_at_a_time,
    read_whole_file,
    run_sync,
)


@contextlib.contextmanager
def session(host: str, port: int) -> Iterator[SyncSendAll]:
    with smtplib.SMTP(host, port, local_hostname=LOCAL_HOSTNAME) as client:
        client.ehlo()  # sendmail() would do it with the first message: the session is open now

        def send(body: Any, recipients: list[str]) -> None:
            refused = client.sendmail(SENDER, recipients, body)
            if refused:
                raise RuntimeError(f"smtplib: refused {refused}")

        yield one_at_a_time(send)


def run(scenario: str, w: Work) -> float:
    return run_sync(session, read_whole_file, scenario, w)
