"""What the command line shows: the live transcript, a progress display and the result table.

The transcript comes from the ``smtpproto.transcript`` logger, which already hides credentials
and message content; this module only prints and colours it.  ``rich`` (the ``demo`` extra) is
used for the progress bar and the table when it is installed and the output is a terminal;
otherwise everything is plain text, which is also what scripts and tests read.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
import time
from collections.abc import Iterator
from typing import Any, Protocol, TextIO

from smtpproto import DeliveryReport, RecipientOutcome
from smtpproto._delivery.policy import DELIVERY_LOGGER
from smtpproto._delivery.report import policy_words
from smtpproto._operations.transcript import TRANSCRIPT_LOGGER

from .common import PORT_BLOCKED

__all__ = [
    "PROGRESS_MIN",
    "Progress",
    "TranscriptPrinter",
    "make_progress",
    "print_json",
    "print_report",
    "report_dict",
    "rich_available",
    "transcript",
]

#: Bodies smaller than this are sent too fast for a progress display to mean anything.
PROGRESS_MIN = 1 << 20
_CONTENT = re.compile(r"^C: <(\d+) octets of message content>$")
_RESET = "\x1b[0m"
_COLORS = {
    "client": "\x1b[36m",  # cyan: what we sent
    "2": "\x1b[32m",  # green: positive replies
    "3": "\x1b[32m",
    "4": "\x1b[33m",  # yellow: temporary failures
    "5": "\x1b[31m",  # red: permanent failures
    "note": "\x1b[2m",  # dim: our own remarks
}
_STATUS_COLORS = {"delivered": "2", "temporary": "4", "permanent": "5"}


def rich_available() -> bool:
    try:
        import rich  # noqa: F401, PLC0415 -- optional: only its presence matters here
    except ImportError:
        return False
    return True


def _paint(text: str, kind: str, color: bool) -> str:
    return f"{_COLORS[kind]}{text}{_RESET}" if color else text


class TranscriptPrinter(logging.Handler):
    """Prints ``C:``/``S:`` lines as they happen; a run of content lines becomes one line.

    The stream is looked up at each line (``sys.stdout`` by default) so that a progress display
    that redirects standard output still shows the transcript above itself.
    """

    def __init__(self, *, color: bool, stream: TextIO | None = None) -> None:
        super().__init__(logging.DEBUG)
        self.color = color
        self._stream = stream
        self._content = 0  # octets of message content logged but not printed yet

    @property
    def stream(self) -> TextIO:
        return self._stream or sys.stdout

    def emit(self, record: logging.LogRecord) -> None:
        line = record.getMessage()
        if record.name == DELIVERY_LOGGER.name:  # delivery's own remarks: a connection, a retry
            self._flush_content()
            self._write(f"* {line}", "note")
            return
        content = _CONTENT.match(line)
        if content:
            self._content += int(content.group(1))
            return
        self._flush_content()
        kind = "client" if line.startswith("C:") else line[3:4] if line.startswith("S:") else ""
        self._write(line, kind if kind in _COLORS else "note")

    def note(self, text: str) -> None:
        """One of our own remarks (``* connecting to ...``), set apart from the dialogue."""
        with self.lock or contextlib.nullcontext():
            self._flush_content()
            self._write(f"* {text}", "note")

    def _flush_content(self) -> None:
        if self._content:
            self._write(f"C: <{self._content} octets of message content>", "client")
            self._content = 0

    def _write(self, line: str, kind: str) -> None:
        self.stream.write(_paint(line, kind, self.color) + "\n")
        self.stream.flush()

    def close(self) -> None:
        self._flush_content()
        super().close()


@contextlib.contextmanager
def transcript(printer: TranscriptPrinter | None) -> Iterator[None]:
    """Send the transcript's and delivery's log lines to ``printer`` (and nowhere else) while
    inside: the SMTP dialogue with each connection, failover and cleartext retry marked."""
    if printer is None:
        yield
        return
    loggers = (TRANSCRIPT_LOGGER, DELIVERY_LOGGER)
    saved = [(logger.level, logger.propagate) for logger in loggers]
    for logger in loggers:
        logger.addHandler(printer)
        logger.setLevel(logging.DEBUG)
        logger.propagate = False  # printed once, even when --debug configures logging
    try:
        yield
    finally:
        for logger, (level, propagate) in zip(loggers, saved, strict=True):
            logger.removeHandler(printer)
            logger.setLevel(level)
            logger.propagate = propagate
        printer.close()


# -- progress ----------------------------------------------------------------------------------


class Progress(Protocol):
    def update(self, position: int) -> None: ...
    def close(self) -> None: ...


class _NoProgress:
    def update(self, position: int) -> None:
        pass

    def close(self) -> None:
        pass


def _mib(octets: float) -> str:
    return f"{octets / (1 << 20):.1f} MiB"


class _PlainProgress:
    """One line on standard error, rewritten at most ten times a second."""

    INTERVAL = 0.1

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.stream = stream
        self._start: float | None = None  # None until the first read
        self._shown = 0.0
        self._position = 0
        self._finished = False

    def update(self, position: int) -> None:
        now = time.monotonic()
        if self._start is None or position < self._position:  # first read, or a new attempt
            self._start, self._shown, self._finished = now, 0.0, False
        self._position = position
        if self._finished:
            return  # the read that finds the end of the file
        if position >= self.total:
            self._show(now, "done\n")
            self._finished = True
        elif now - self._shown >= self.INTERVAL:
            self._show(now, "")

    def _show(self, now: float, end: str) -> None:
        assert self._start is not None
        self._shown = now
        elapsed = now - self._start
        # Too early to know the rate: a guess from the first chunk would be absurd.
        rate = self._position / elapsed if elapsed >= 0.2 else None
        speed = "? MiB/s" if rate is None else f"{_mib(rate)}/s"
        left = f"ETA {(self.total - self._position) / rate:.0f}s" if rate else "ETA ?"
        percent = 100 * self._position // max(self.total, 1)
        self.stream.write(
            f"\rsending {_mib(self._position)} / {_mib(self.total)} ({percent}%) {speed} "
            f"{end or left}"
        )
        self.stream.flush()

    def close(self) -> None:
        if self._start is not None and not self._finished:  # stopped half-way: say where
            self._show(time.monotonic(), "stopped\n")
            self._finished = True


class _RichProgress:
    def __init__(self, total: int) -> None:
        from rich.console import Console  # noqa: PLC0415 -- optional dependency
        from rich.progress import (  # noqa: PLC0415
            BarColumn,
            DownloadColumn,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )
        from rich.progress import Progress as RichProgress  # noqa: PLC0415

        self._progress = RichProgress(
            TextColumn("sending"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self._task = self._progress.add_task("body", total=total)
        self._progress.start()

    def update(self, position: int) -> None:
        self._progress.update(self._task, completed=position)

    def close(self) -> None:
        self._progress.stop()


def make_progress(total: int, *, mode: str, fancy: bool) -> Progress:
    """A display of ``total`` octets being sent, on standard error.

    ``mode`` ``auto`` shows one for a body of at least :data:`PROGRESS_MIN` on a terminal,
    ``always`` for any body, ``never`` never.
    """
    shown = mode == "always" or (mode == "auto" and total >= PROGRESS_MIN and sys.stderr.isatty())
    if not shown:
        return _NoProgress()
    if fancy and rich_available():
        return _RichProgress(total)
    return _PlainProgress(total, sys.stderr)


# -- results -----------------------------------------------------------------------------------


def _one_line(text: str) -> str:
    """A multi-line reply (Exim's to BDAT) on one line, so the table's columns stay put."""
    return " / ".join(part.strip() for part in text.splitlines() if part.strip())


def _reply_text(outcome: RecipientOutcome) -> str:
    if outcome.reply is None:
        return _one_line(outcome.detail)
    return _one_line(f"{outcome.reply.code} {outcome.reply.text}")  # text starts with any x.y.z


def _server(outcome: RecipientOutcome) -> str:
    if outcome.server_host is None:
        # No server had the last word.  With one attempt, say how it failed (never "cleartext"
        # for a connection that was refused or a handshake that failed); with several, the
        # hosts tried are listed under the table.
        if len(outcome.attempts) != 1 or outcome.attempts[0].error is None:
            return "-"
        attempt = outcome.attempts[0]
        state = (
            "no connection"
            if attempt.connect_failed
            else "TLS failed"
            if attempt.tls_failed
            else "no session"
        )
        return f"{_host(attempt.host, attempt.address)}, {state}"
    where = _host(outcome.server_host, outcome.server_address)
    tls = "verified" if outcome.tls_verified else "unverified"
    said = f"{where}, TLS {tls}" if outcome.tls else f"{where}, cleartext"
    # The policy of the attempt that settled it, when there was more than opportunistic TLS.
    policy = next(
        (
            a.policy
            for a in outcome.attempts
            if (a.host, a.address) == (outcome.server_host, outcome.server_address)
        ),
        None,
    )
    if policy is not None and policy.kind.value not in ("opportunistic", "none"):
        said += f", policy {policy.kind.value} " + ("met" if policy.met else "NOT met")
    return said


def _host(host: str, address: str | None) -> str:
    return host if address in (None, host) else f"{host} [{address}]"


def _rows(report: DeliveryReport) -> list[tuple[str, str, str, str]]:
    return [(o.recipient, o.status, _reply_text(o), _server(o)) for o in report.outcomes]


_HEADINGS = ("Recipient", "Status", "Reply", "Server")


def diagnosis(report: DeliveryReport) -> str | None:
    """The report's advice in command-line words (``--server``, not ``Relay(...)``)."""
    if not report.port_25_blocked:
        return None
    count = len({a.address for o in report.outcomes for a in o.attempts})
    return PORT_BLOCKED.format(port=report.port, count=count)


def report_dict(report: DeliveryReport) -> dict[str, Any]:
    """:meth:`DeliveryReport.to_dict`, with the advice in command-line words."""
    data = report.to_dict()
    data["diagnosis"] = diagnosis(report)
    return data


def print_report(
    report: DeliveryReport, *, color: bool, fancy: bool, verbose: bool = False
) -> None:
    """The per-recipient table, the summary, the hosts tried (for every recipient with
    ``verbose``, else for those not delivered), and any advice."""
    if fancy and rich_available() and sys.stdout.isatty():
        _print_rich_table(report)
    else:
        rows = [_HEADINGS, *_rows(report)]
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        for index, row in enumerate(rows):
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
            if index and color:
                cells[1] = _paint(cells[1], _STATUS_COLORS[row[1]], color)
            print("  ".join([*cells, row[3]]).rstrip())
    print(report.summary)
    for outcome in report.outcomes:
        if verbose or outcome.status != "delivered":
            for attempt in outcome.attempts:
                where = f"{attempt.host} [{attempt.address}]:{attempt.port}"
                result = _one_line(attempt.error) if attempt.error else "ok"
                print(f"  {outcome.recipient}: tried {where}: {result}{policy_words(attempt)}")
    advice = diagnosis(report)
    if advice:
        print(advice)


def _print_rich_table(report: DeliveryReport) -> None:
    from rich.console import Console  # noqa: PLC0415 -- optional dependency
    from rich.table import Table  # noqa: PLC0415
    from rich.text import Text  # noqa: PLC0415

    styles = {"delivered": "green", "temporary": "yellow", "permanent": "red"}
    table = Table(*_HEADINGS)
    for recipient, status, reply, server in _rows(report):
        # Text, not markup: a server's reply must not be able to style (or hide) itself.
        table.add_row(Text(recipient), Text(status, styles[status]), Text(reply), Text(server))
    Console().print(table)


def print_json(data: dict[str, Any]) -> None:
    print(json.dumps(data, indent=2))
