"""smtpproto's blocking, asyncio and trio clients against smtplib and aiosmtplib, in one run.

Run: ``python bench/bench_clients.py`` (``--quick``: a smoke run of under half a minute; ``--help``
for the rest).  Not a test: it prints a table, and a second one saying which targets of issue 8
were met.  Scenarios, each against a local sink on 127.0.0.1:

- A: many 1 KB messages, one recipient each, over one connection;
- B: the same number of sessions, a new connection for each message;
- C: one message to many recipients;
- D: one large message read from a file (the discard sink: smtp-sink would be the bottleneck);
- E: concurrent connections, several messages each (tasks for the async clients, threads for
  the blocking ones).

Every measurement runs in a fresh worker process (this script with ``--worker``), so the peak
RSS reported is that of one client doing one scenario.  Within a round the order of the clients
rotates, so that no client always runs first or last.  Times are taken inside the worker around
the scenario alone (interpreter start and imports excluded); figures are medians of the rounds.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime
import json
import os
import platform
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

# Run from a checkout without installing: make the repository root and bench/ importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _scenarios import CLIENTS, SCENARIOS, Work, load_client, run_client
from _servers import HOST, discard_sink, smtp_sink, smtp_sink_path

MB = 1_000_000
MIB = 1 << 20
WORKER_TIMEOUT = 600.0

FULL = {
    "message_size": 1024,
    "messages": 2000,
    "connections": 300,
    "recipients": 500,
    "big": 200 * MB,
    "concurrency": 20,
    "per_connection": 100,
}
QUICK = {
    "message_size": 1024,
    "messages": 100,
    "connections": 20,
    "recipients": 100,
    "big": 10 * MB,
    "concurrency": 5,
    "per_connection": 10,
}


@dataclass(frozen=True)
class Target:
    """``client`` must be at least ``ratio`` times as fast as ``peer`` in ``scenario``."""

    scenario: str
    client: str
    peer: str
    ratio: float


TARGETS = [
    Target("A", "blocking", "smtplib", 2.0),
    Target("B", "blocking", "smtplib", 1.0),
    Target("C", "blocking", "smtplib", 5.0),
    Target("D", "blocking", "smtplib", 2.0),
    Target("E", "asyncio", "aiosmtplib", 2.0),
    Target("E", "trio", "aiosmtplib", 1.5),
]
# Scenario D's peak RSS limit for smtpproto's clients (the message is 200 MB).
RSS_LIMIT_MB = 60
SMTPPROTO_CLIENTS = ("blocking", "asyncio", "trio")


@dataclass(frozen=True)
class Sample:
    seconds: float
    max_rss_kib: int


# --- the big file -----------------------------------------------------------------------------


def write_big_file(path: Path, size: int) -> None:
    """A text message of ``size`` octets: 76-character lines, 1 in 50 starting with a dot."""
    header = (
        b"From: <bench@example.org>\r\nTo: <rcpt@example.net>\r\nSubject: large\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n"
    )
    lines = []
    for i in range(50):
        text = f"{'.' if i == 0 else ''}line {i:02d} of a long message: " + "x" * 76
        lines.append(text[:76].encode() + b"\r\n")
    block = b"".join(lines) * (MIB // (50 * 78))
    with path.open("wb") as file:
        file.write(header)
        remaining = size - len(header)
        while remaining > len(block):
            file.write(block)
            remaining -= len(block)
        file.write(block[: remaining - 2] + b"\r\n")


# --- running the workers ----------------------------------------------------------------------


def run_worker(client: str, scenario: str, work: Work) -> Sample:
    """Measure one client doing one scenario in a fresh process."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        client,
        scenario,
        json.dumps(asdict(work)),
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=WORKER_TIMEOUT, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{client} {scenario} failed:\n{done.stderr}")
    result = json.loads(done.stdout.splitlines()[-1])
    return Sample(result["seconds"], result["max_rss_kib"])


def worker_main(client: str, scenario: str, work_json: str) -> None:
    work = Work(**json.loads(work_json))
    seconds = run_client(client, scenario, work)
    # ru_maxrss is in KiB on Linux: the peak of this process, imports included.
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "max_rss_kib": max_rss}))


def rotated(items: Sequence[str], by: int) -> list[str]:
    by %= len(items)
    return [*items[by:], *items[:by]]


def run_rounds(
    work: Work, scenarios: str, clients: Sequence[str], rounds: int
) -> dict[tuple[str, str], list[Sample]]:
    samples: dict[tuple[str, str], list[Sample]] = {}
    for number in range(rounds):
        for scenario in scenarios:
            for client in rotated(clients, number + "ABCDE".index(scenario)):
                sample = run_worker(client, scenario, work)
                samples.setdefault((scenario, client), []).append(sample)
                print(
                    f"  round {number + 1}/{rounds} {scenario} {client:<10} "
                    f"{sample.seconds:8.3f} s  {sample.max_rss_kib / 1024:7.1f} MiB",
                    file=sys.stderr,
                    flush=True,
                )
    return samples


# --- the tables -------------------------------------------------------------------------------


def table(rows: list[list[str]], header: list[str]) -> str:
    """An aligned table that is also a reStructuredText simple table."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    rule = "  ".join("=" * w for w in widths)

    def line(cells: list[str]) -> str:
        return "  ".join(
            cell.ljust(w) if i < 2 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([rule, line(header), rule, *(line(r) for r in rows), rule])


def median(samples: list[Sample]) -> float:
    return statistics.median(s.seconds for s in samples)


def rate(scenario: str, units: int, seconds: float) -> str:
    unit = SCENARIOS[scenario]
    if unit == "MB":
        return f"{units / MB / seconds:,.1f} MB/s"
    return f"{units / seconds:,.0f} {unit}/s"


def ratio(
    samples: dict[tuple[str, str], list[Sample]], scenario: str, client: str, peer: str
) -> str:
    if (scenario, peer) not in samples:
        return "-"
    return f"{median(samples[scenario, peer]) / median(samples[scenario, client]):.2f}x"


def results_table(
    work: Work, samples: dict[tuple[str, str], list[Sample]], scenarios: str, clients: Sequence[str]
) -> str:
    rows = []
    for scenario in scenarios:
        label = f"{scenario} {scenario_size(work, scenario)}"
        for client in clients:
            got = samples[scenario, client]
            seconds = [s.seconds for s in got]
            rows.append(
                [
                    label,
                    client,
                    f"{median(got):.3f}",
                    f"{min(seconds):.3f}-{max(seconds):.3f}",
                    rate(scenario, work.units(scenario), median(got)),
                    ratio(samples, scenario, client, "smtplib"),
                    ratio(samples, scenario, client, "aiosmtplib"),
                    f"{max(s.max_rss_kib for s in got) / 1024:.1f}",
                ]
            )
    header = ["scenario", "client", "median s", "min-max s", "rate", "vs smtplib"]
    return table(rows, [*header, "vs aiosmtplib", "peak RSS MiB"])


def scenario_size(work: Work, scenario: str) -> str:
    if scenario == "D":  # the file exists only when D was run
        return f"{work.units('D') / MB:.0f} MB file"
    size = f"{work.message_size // 1024} KB" if work.message_size % 1024 == 0 else ""
    return {
        "A": f"{work.messages} x {size}, 1 connection",
        "B": f"{work.connections} connections",
        "C": f"{work.recipients} recipients",
        "E": f"{work.concurrency} conns x {work.per_connection}",
    }[scenario]


def targets_table(samples: dict[tuple[str, str], list[Sample]]) -> str:
    rows = []
    for t in TARGETS:
        if (t.scenario, t.client) not in samples or (t.scenario, t.peer) not in samples:
            continue
        measured = median(samples[t.scenario, t.peer]) / median(samples[t.scenario, t.client])
        rows.append(
            [
                t.scenario,
                f"{t.client} >= {t.ratio:g}x {t.peer}",
                f"{measured:.2f}x",
                verdict(measured, t.ratio),
            ]
        )
    for client in SMTPPROTO_CLIENTS:
        if ("D", client) in samples:
            peak = max(s.max_rss_kib for s in samples["D", client]) / 1024
            status = "met" if peak < RSS_LIMIT_MB else f"MISSED by {peak - RSS_LIMIT_MB:.1f} MiB"
            rows.append(["D", f"{client} peak RSS < {RSS_LIMIT_MB} MiB", f"{peak:.1f} MiB", status])
    return table(rows, ["scenario", "target", "measured", "status"])


def verdict(measured: float, wanted: float) -> str:
    if measured >= wanted:
        return "met"
    return f"MISSED by {(1 - measured / wanted) * 100:.0f}%"


def environment() -> str:
    versions = []
    for package in ("aiosmtplib", "trio"):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} missing")
    return (
        f"{datetime.date.today().isoformat()}, Python {platform.python_version()}, "
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, " + ", ".join(versions)
    )


# --- profiling --------------------------------------------------------------------------------


def profile(client: str, scenario: str, work: Work, top: int = 25) -> None:
    """Run one scenario in this process under cProfile; print the top functions two ways.

    Only the main thread is profiled: for the blocking clients in E, profile A instead.
    """
    run = load_client(client)  # imports are not what we profile
    profiler = cProfile.Profile()
    profiler.enable()
    seconds = run(scenario, work)
    profiler.disable()
    print(f"# {client} {scenario}: {seconds:.3f} s under cProfile")
    for key in ("cumulative", "tottime"):
        print(f"\n## sorted by {key}, top {top}\n")
        stats = pstats.Stats(profiler, stream=sys.stdout)
        stats.strip_dirs().sort_stats(key).print_stats(top)


# --- main -------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, 1 round: a smoke run")
    parser.add_argument("--rounds", type=int, help="rounds per scenario (default 3, quick 1)")
    parser.add_argument("--scenarios", default="ABCDE", help="which scenarios (default ABCDE)")
    parser.add_argument(
        "--clients",
        default=",".join(CLIENTS),
        help=f"comma-separated (default {','.join(CLIENTS)})",
    )
    parser.add_argument(
        "--sink",
        choices=("smtp-sink", "discard"),
        default="smtp-sink",
        help="the server for A, B, C and E (D always uses the discard sink)",
    )
    parser.add_argument(
        "--profile", metavar="CLIENT:SCENARIO", help="cProfile one scenario instead of the table"
    )
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.scenarios = args.scenarios.upper()
    if not args.scenarios or set(args.scenarios) - set(SCENARIOS):
        parser.error(f"--scenarios takes letters of {''.join(SCENARIOS)}")
    args.clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    if not args.clients or set(args.clients) - set(CLIENTS):
        parser.error(f"--clients takes names of {', '.join(CLIENTS)}")
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


@dataclass
class Servers:
    port: int
    big_port: int


@contextlib.contextmanager
def servers(sink: str) -> Iterator[Servers]:
    with discard_sink() as big_port:
        if sink == "discard":
            yield Servers(big_port, big_port)
        else:
            with smtp_sink() as port:
                yield Servers(port, big_port)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker_main(*args.worker)
        return
    if args.sink == "smtp-sink" and smtp_sink_path() is None:
        sys.exit("smtp-sink not found (Debian: apt-get install postfix); or use --sink discard")
    sizes = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory(prefix="smtpproto-bench-") as tmp:
        big_file = Path(tmp) / "large.eml"
        profiled = args.profile.partition(":")[2].upper() if args.profile else None
        if "D" in (profiled or args.scenarios):
            write_big_file(big_file, sizes["big"])
        with servers(args.sink) as ports:
            work = Work(
                host=HOST,
                port=ports.port,
                big_port=ports.big_port,
                message_size=sizes["message_size"],
                messages=sizes["messages"],
                connections=sizes["connections"],
                recipients=sizes["recipients"],
                big_file=str(big_file),
                concurrency=sizes["concurrency"],
                per_connection=sizes["per_connection"],
            )
            if args.profile:
                client, _, scenario = args.profile.partition(":")
                profile(client, scenario.upper(), work)
                return
            report(work, args)


def report(work: Work, args: argparse.Namespace) -> None:
    command = " ".join(["python", "bench/bench_clients.py", *sys.argv[1:]])
    print(f"# {command}", file=sys.stderr)
    samples = run_rounds(work, args.scenarios, args.clients, args.rounds)
    print(f"\n{command}\n{environment()}; {args.rounds} round(s), sink for A-C, E: {args.sink}\n")
    print(results_table(work, samples, args.scenarios, args.clients))
    print("\nvs X: X's median time / this client's median time (higher is faster).\n")
    print(targets_table(samples))


if __name__ == "__main__":
    main()
