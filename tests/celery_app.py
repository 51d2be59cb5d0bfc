"""The Celery app the workers of tests/test_celery.py run (``celery -A tests.celery_app``).

Configured from the environment the test sets: the Redis broker, the scripted relay, and a
directory where the "victim" message leaves its worker's pid before that worker hangs, once,
between the server's 250 and the acknowledgement (the test then kills it with SIGKILL).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from celery import Celery

from smtpproto import DeliveryOptions, DeliveryReport, Relay, SessionOptions, TLSMode
from smtpproto.sending import RetryPolicy, SenderLimits

if TYPE_CHECKING:
    from adapters.celery import install
else:
    from smtpproto.adapters.celery import install

BROKER = os.environ.get("SMTPPROTO_TEST_BROKER", "redis://127.0.0.1:1/0")
RELAY = os.environ.get("SMTPPROTO_TEST_RELAY", "127.0.0.1:1")
KILL_DIR = os.environ.get("SMTPPROTO_TEST_KILL_DIR")
VICTIM = "victim@example.net"
#: The hang the test cuts short with SIGKILL; long enough that the test never waits it out.
HANG = 120.0

app = Celery("smtpproto-tests", broker=BROKER, backend=BROKER)
app.conf.update(
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    result_expires=600,
    task_default_queue="smtpproto-tests",
)


def on_report(report: DeliveryReport, attempts: int, gave_up: bool) -> None:
    if KILL_DIR is None or VICTIM not in report.with_status("delivered"):
        return
    flag = Path(KILL_DIR, "victim")
    try:
        with flag.open("x") as file:  # the first delivery only
            file.write(str(os.getpid()))
    except FileExistsError:
        return
    time.sleep(HANG)


host, _, port = RELAY.rpartition(":")
deliver = install(
    app,
    relay=Relay(host, int(port), tls=TLSMode.NONE),
    options=DeliveryOptions(session=SessionOptions(local_hostname="worker.test")),
    limits=SenderLimits(per_destination=1),
    retry=RetryPolicy(first=0.5, longest=1.0, give_up_after=60.0),
    on_report=on_report,
)
