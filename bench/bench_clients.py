"""smtpproto's blocking, asyncio and trio clients against smtplib and aiosmtplib, in one run.

Run: ``python bench/bench_clients.py`` (``--quick``: a smoke run of under half a minute; ``--help``
for the rest).  Not a test: it prints a table, and a second one saying which targets of issues 8
and 13 were met.  Scenarios, each against a local sink on 127.0.0.1:

- A: many 1 KB messages, one recipient each, over one connection;
- B: the same number of sessions, a new connection for each message;
- C: one message to many recipients;
- D: one large message read from a file (the discard sink: smtp-sink would be the bottleneck);
- E: concurrent connections, several messages each (tasks for the async clients, threads for
  the blocking ones).

``--dkim`` adds rows to D for smtpproto's blocking, asyncio and trio clients: the same file
signed with an RSA-2048 and an Ed25519 key (generated once per run), given as a path and as a
one-pass stream.  smtplib and aiosmtplib cannot sign: their rows stay unsigned.

``--latency`` runs A, B, C and E over a "network" instead: through ``bench/_latency_proxy.py``,
which adds a 10 ms and a 50 ms round trip, to a sink that offers DATA only and to one that offers
CHUNKING too, with fewer messages (a round trip now costs what a thousand messages cost on
loopback).

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
from dataclasses import asdict, dataclass, replace
from importlib import metadata
from pathlib import Path

# Run from a checkout without installing: make the repository root and bench/ importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _scenarios import CLIENTS, SCENARIOS, Work, available, load_client, run_client
from _servers import HOST, discard_sink, latency_proxy, smtp_sink, smtp_sink_path

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
# Behind the latency proxy, per round trip in ms.  smtplib pays 4 round trips per message of A,
# 8 per connection of B (handshake, greeting, EHLO, MAIL, RCPT, DATA, content, QUIT), one per
# recipient of C and 4 per message of E: these counts keep each of its runs under about 3 s
# (A at 50 ms: 16 x 4 x 50 ms), and the whole latency run near 3 minutes.
LATENCY = {
    10: {"messages": 40, "connections": 15, "recipients": 40, "per_connection": 10},
    50: {"messages": 16, "connections": 4, "recipients": 16, "per_connection": 4},
}
LATENCY_QUICK = {
    10: {"messages": 10, "connections": 3, "recipients": 10, "per_connection": 2},
    50: {"messages": 4, "connections": 1, "recipients": 4, "per_connection": 1},
}
LATENCY_CONCURRENCY = {"full": 20, "quick": 5}
LATENCY_SCENARIOS = "ABCE"
#: The sinks behind the proxy: name -> offers CHUNKING.
LATENCY_SERVERS = {"DATA": False, "CHUNKING": True}
#: The clients of a latency run unless --clients says otherwise (trio behaves like asyncio).
LATENCY_CLIENTS = (
    "smtplib",
    "aiosmtplib",
    "blocking",
    "blocking-pipelined",
    "asyncio",
    "asyncio-pipelined",
)


@dataclass(frozen=True)
class Setting:
    """Where a run's scenarios go: loopback (label ""), or "10 ms DATA" behind the proxy."""

    label: str
    work: Work


@dataclass(frozen=True)
class Target:
    """Each of ``clients`` must be at least ``ratio`` times as fast as ``peer`` in ``scenario``
    of the setting labelled ``setting``; ``issue`` is where the target was set."""

    setting: str
    scenario: str
    clients: tuple[str, ...]
    peer: str
    ratio: float
    issue: int


BLOCKING = ("blocking", "blocking-pipelined")
ASYNCIO = ("asyncio", "asyncio-pipelined")
TARGETS = [
    # Loopback.
    Target("", "A", BLOCKING, "smtplib", 2.0, 13),
    Target("", "B", BLOCKING, "smtplib", 1.2, 13),
    Target("", "C", ("blocking",), "smtplib", 5.0, 8),
    Target("", "D", ("blocking",), "smtplib", 2.0, 13),
    Target("", "E", ASYNCIO, "aiosmtplib", 1.5, 13),
    Target("", "E", ("trio",), "aiosmtplib", 1.5, 8),
    # Behind the latency proxy.
    Target("10 ms DATA", "A", BLOCKING, "smtplib", 4.0, 13),
    Target("10 ms CHUNKING", "A", BLOCKING, "smtplib", 20.0, 13),
    Target("50 ms CHUNKING", "A", BLOCKING, "smtplib", 50.0, 13),
    Target("10 ms DATA", "B", BLOCKING, "smtplib", 1.6, 13),
    Target("10 ms DATA", "E", ASYNCIO, "aiosmtplib", 4.0, 13),
    Target("10 ms CHUNKING", "E", ASYNCIO, "aiosmtplib", 4.0, 13),
]
# Scenario D's peak RSS limit for smtpproto's clients (the message is 200 MB).
RSS_LIMIT_MB = 60
SMTPPROTO_CLIENTS = ("blocking", "asyncio", "trio")
#: With --dkim, D's signed rows (for SMTPPROTO_CLIENTS): their key in the samples -> streamed.
DKIM_CASES = {"D+DKIM": False, "D+DKIM stream": True}


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


def write_dkim_keys(path: Path) -> None:
    """An RSA-2048 and an Ed25519 private key (PEM) as JSON, read by the workers."""
    # Here, not at the top: the workers run this script too, and their RSS is measured.
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa  # noqa: PLC0415

    pkcs8 = (
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    pem = {
        "rsa": rsa.generate_private_key(65537, 2048).private_bytes(*pkcs8),
        "ed": ed25519.Ed25519PrivateKey.generate().private_bytes(*pkcs8),
    }
    path.write_text(json.dumps({name: key.decode() for name, key in pem.items()}))


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
    print(json.dumps({"seconds": seconds, "max_rss_kib": peak_rss_kib()}))


def peak_rss_kib() -> int:
    """This process's peak RSS in KiB, imports included.

    Linux's VmHWM, not ``ru_maxrss``: that one survives ``exec``, so a worker reported the
    runner's peak (about 25 MiB) whenever its own was smaller.
    """
    with contextlib.suppress(OSError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def rotated(items: Sequence[str], by: int) -> list[str]:
    by %= len(items)
    return [*items[by:], *items[:by]]


# (setting label, scenario, client) -> the samples of its rounds
Samples = dict[tuple[str, str, str], list[Sample]]


def cases(
    setting: Setting, scenarios: str, clients: Sequence[str], dkim_keys: str
) -> Iterator[tuple[str, Work, list[str]]]:
    """Each row group of a setting: its key in the samples, its work, its clients.  The key is
    the scenario's letter, or with ``dkim_keys`` one of DKIM_CASES after D."""
    for scenario in scenarios:
        yield scenario, setting.work, list(clients)
        if scenario == "D" and dkim_keys:
            signers = [c for c in clients if c in SMTPPROTO_CLIENTS]
            for key, stream in DKIM_CASES.items():
                work = replace(setting.work, dkim_keys=dkim_keys, big_stream=stream)
                yield key, work, signers


def run_rounds(
    settings: Sequence[Setting],
    scenarios: str,
    clients: Sequence[str],
    rounds: int,
    dkim_keys: str = "",
) -> Samples:
    samples: Samples = {}
    for number in range(rounds):
        for turn, setting in enumerate(settings):
            for key, work, group in cases(setting, scenarios, clients, dkim_keys):
                for client in rotated(group, number + turn + "ABCDE".index(key[0])):
                    sample = run_worker(client, key[0], work)
                    samples.setdefault((setting.label, key, client), []).append(sample)
                    print(
                        f"  round {number + 1}/{rounds} {setting.label} {key} {client:<18} "
                        f"{sample.seconds:8.3f} s  {sample.max_rss_kib / 1024:7.1f} MiB",
                        file=sys.stderr,
                        flush=True,
                    )
    return samples


# --- the tables -------------------------------------------------------------------------------


def table(rows: list[list[str]], header: list[str], left: int = 2) -> str:
    """An aligned table that is also a reStructuredText simple table (``left`` columns of text,
    then figures)."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    rule = "  ".join("=" * w for w in widths)

    def line(cells: list[str]) -> str:
        return "  ".join(
            cell.ljust(w) if i < left else cell.rjust(w)
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


def ratio(samples: Samples, key: tuple[str, str], client: str, peer: str) -> str:
    if (*key, peer) not in samples:
        return "-"
    return f"{median(samples[*key, peer]) / median(samples[*key, client]):.2f}x"


def results_table(
    settings: Sequence[Setting],
    samples: Samples,
    scenarios: str,
    clients: Sequence[str],
    dkim_keys: str = "",
) -> str:
    rows = []
    for setting in settings:
        for case, work, group in cases(setting, scenarios, clients, dkim_keys):
            scenario = case[0]
            label = f"{setting.label} {scenario} {scenario_size(work, scenario)}".strip()
            key = (setting.label, case)
            for client in group:
                got = samples[*key, client]
                seconds = [s.seconds for s in got]
                rows.append(
                    [
                        label,
                        client,
                        f"{median(got):.3f}",
                        f"{min(seconds):.3f}-{max(seconds):.3f}",
                        rate(scenario, work.units(scenario), median(got)),
                        ratio(samples, key, client, "smtplib"),
                        ratio(samples, key, client, "aiosmtplib"),
                        f"{max(s.max_rss_kib for s in got) / 1024:.1f}",
                    ]
                )
    header = ["scenario", "client", "median s", "min-max s", "rate", "vs smtplib"]
    return table(rows, [*header, "vs aiosmtplib", "peak RSS MiB"])


def peer_of(client: str) -> str:
    """The reference a client is compared with in the summary: blocking ones with smtplib."""
    return "smtplib" if client.startswith(("blocking", "smtplib")) else "aiosmtplib"


def summary_table(
    settings: Sequence[Setting], samples: Samples, scenarios: str, clients: Sequence[str]
) -> str:
    """One row per setting and scenario: each client's rate, and its ratio to its peer."""
    rows = []
    for setting in settings:
        rtt, _, server = setting.label.partition(" ms ")
        for scenario in scenarios:
            key = (setting.label, scenario)
            cells = [f"{rtt} ms", server, f"{scenario} {scenario_size(setting.work, scenario)}"]
            for client in clients:
                per_second = setting.work.units(scenario) / median(samples[*key, client])
                cell = f"{per_second:,.1f}"
                versus = ratio(samples, key, client, peer_of(client))
                if client not in ("smtplib", "aiosmtplib") and versus != "-":
                    cell += f" ({versus})"
                cells.append(cell)
            rows.append(cells)
    return table(rows, ["RTT", "server", "scenario", *clients], left=3)


def scenario_size(work: Work, scenario: str) -> str:
    if scenario == "D":  # the file exists only when D was run
        kind = "stream" if work.big_stream else "file"
        return f"{work.units('D') / MB:.0f} MB {kind}" + (", DKIM" if work.dkim_keys else "")
    size = f"{work.message_size // 1024} KB" if work.message_size % 1024 == 0 else ""
    return {
        "A": f"{work.messages} x {size}, 1 connection",
        "B": f"{work.connections} connections",
        "C": f"{work.recipients} recipients",
        "E": f"{work.concurrency} conns x {work.per_connection}",
    }[scenario]


def targets_table(samples: Samples) -> str:
    rows = []
    for t in TARGETS:
        for client in t.clients:
            key = (t.setting, t.scenario)
            if (*key, client) not in samples or (*key, t.peer) not in samples:
                continue
            measured = median(samples[*key, t.peer]) / median(samples[*key, client])
            rows.append(
                [
                    f"{t.setting} {t.scenario}".strip(),
                    f"{client} >= {t.ratio:g}x {t.peer}",
                    str(t.issue),
                    f"{measured:.2f}x",
                    verdict(measured, t.ratio),
                ]
            )
    for client in SMTPPROTO_CLIENTS:
        if ("", "D", client) in samples:
            peak = max(s.max_rss_kib for s in samples["", "D", client]) / 1024
            status = "met" if peak < RSS_LIMIT_MB else f"MISSED by {peak - RSS_LIMIT_MB:.1f} MiB"
            rows.append(
                ["D", f"{client} peak RSS < {RSS_LIMIT_MB} MiB", "8", f"{peak:.1f} MiB", status]
            )
    return table(rows, ["scenario", "target", "issue", "measured", "status"])


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
    parser.add_argument(
        "--scenarios", help=f"which scenarios (default ABCDE; {LATENCY_SCENARIOS} with --latency)"
    )
    parser.add_argument(
        "--clients",
        help=f"comma-separated (default: all of {','.join(CLIENTS)} that this smtpproto has; "
        f"with --latency, {','.join(LATENCY_CLIENTS)})",
    )
    parser.add_argument(
        "--sink",
        choices=("smtp-sink", "discard"),
        default="smtp-sink",
        help="the server for A, B, C and E on loopback (D always uses the discard sink)",
    )
    parser.add_argument(
        "--latency", action="store_true", help="A, B, C, E through the latency proxy instead"
    )
    parser.add_argument(
        "--rtt", default="10,50", help="with --latency: round trips in ms (default 10,50)"
    )
    parser.add_argument(
        "--servers",
        default=",".join(LATENCY_SERVERS),
        help="with --latency: DATA (a sink without CHUNKING), CHUNKING, or both (the default)",
    )
    parser.add_argument(
        "--messages",
        type=int,
        help="A's number of messages (default 2000; 40 and 16 behind 10 "
        "and 50 ms), e.g. to see send_messages' window",
    )
    parser.add_argument(
        "--profile", metavar="CLIENT:SCENARIO", help="cProfile one scenario instead of the table"
    )
    parser.add_argument(
        "--dkim",
        action="store_true",
        help="D also signed (RSA-2048 + Ed25519) by blocking, asyncio and trio: path and stream",
    )
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return args
    args.scenarios = (args.scenarios or (LATENCY_SCENARIOS if args.latency else "ABCDE")).upper()
    allowed = LATENCY_SCENARIOS if args.latency else "".join(SCENARIOS)
    if not args.scenarios or set(args.scenarios) - set(allowed):
        parser.error(f"--scenarios takes letters of {allowed}")
    if args.dkim and (args.latency or "D" not in args.scenarios):
        parser.error("--dkim signs scenario D, on loopback")
    if args.clients is None:
        default = LATENCY_CLIENTS if args.latency else CLIENTS
        args.clients = [c for c in default if available(c)]
    else:
        args.clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    if not args.clients or set(args.clients) - set(CLIENTS):
        parser.error(f"--clients takes names of {', '.join(CLIENTS)}")
    missing = [c for c in args.clients if not available(c)]
    if missing:
        parser.error(f"this smtpproto has no send_messages for {', '.join(missing)}")
    args.rtt = [int(r) for r in args.rtt.split(",")]
    sizes = LATENCY_QUICK if args.quick else LATENCY
    if args.latency and set(args.rtt) - set(sizes):
        parser.error(f"--rtt takes {', '.join(map(str, sizes))}")
    args.servers = [s.strip().upper() for s in args.servers.split(",") if s.strip()]
    if not args.servers or set(args.servers) - set(LATENCY_SERVERS):
        parser.error(f"--servers takes {', '.join(LATENCY_SERVERS)}")
    if args.messages is not None and args.messages < 1:
        parser.error("--messages must be at least 1")
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


@contextlib.contextmanager
def latency_settings(args: argparse.Namespace) -> Iterator[list[Setting]]:
    """A sink per server kind, a proxy per sink and round trip; yields a setting for each."""
    sizes = LATENCY_QUICK if args.quick else LATENCY
    concurrency = LATENCY_CONCURRENCY["quick" if args.quick else "full"]
    settings = []
    with contextlib.ExitStack() as stack:
        for server in args.servers:
            sink = stack.enter_context(discard_sink(chunking=LATENCY_SERVERS[server]))
            for rtt in args.rtt:
                proxy = stack.enter_context(latency_proxy(sink, rtt))
                work = Work(
                    host=HOST,
                    port=proxy,
                    big_port=0,  # D is not run behind the proxy
                    message_size=FULL["message_size"],
                    big_file="",
                    concurrency=concurrency,
                    messages=args.messages or sizes[rtt]["messages"],
                    connections=sizes[rtt]["connections"],
                    recipients=sizes[rtt]["recipients"],
                    per_connection=sizes[rtt]["per_connection"],
                )
                settings.append(Setting(f"{rtt} ms {server}", work))
        # Round trips in the outer loop: the table reads 10 ms DATA, 10 ms CHUNKING, 50 ms...
        yield sorted(settings, key=lambda s: int(s.label.split()[0]))


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker_main(*args.worker)
        return
    if args.latency:
        if args.profile:
            sys.exit("--profile runs on loopback only")
        with latency_settings(args) as settings:
            report(settings, args)
        return
    if args.sink == "smtp-sink" and smtp_sink_path() is None:
        sys.exit("smtp-sink not found (Debian: apt-get install postfix); or use --sink discard")
    sizes = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory(prefix="smtpproto-bench-") as tmp:
        big_file = Path(tmp) / "large.eml"
        profiled = args.profile.partition(":")[2].upper() if args.profile else None
        if "D" in (profiled or args.scenarios):
            write_big_file(big_file, sizes["big"])
        args.dkim_keys = ""
        if args.dkim:
            args.dkim_keys = str(Path(tmp) / "dkim-keys.json")
            write_dkim_keys(Path(args.dkim_keys))
        with servers(args.sink) as ports:
            work = Work(
                host=HOST,
                port=ports.port,
                big_port=ports.big_port,
                message_size=sizes["message_size"],
                messages=args.messages or sizes["messages"],
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
            report([Setting("", work)], args)


def report(settings: list[Setting], args: argparse.Namespace) -> None:
    command = " ".join(["python", "bench/bench_clients.py", *sys.argv[1:]])
    print(f"# {command}", file=sys.stderr)
    dkim_keys = getattr(args, "dkim_keys", "")
    samples = run_rounds(settings, args.scenarios, args.clients, args.rounds, dkim_keys)
    where = (
        f"through the latency proxy to bench/_sink.py ({', '.join(args.servers)})"
        if args.latency
        else f"sink for A-C, E: {args.sink}"
    )
    print(f"\n{command}\n{environment()}; {args.rounds} round(s), {where}\n")
    print(results_table(settings, samples, args.scenarios, args.clients, dkim_keys))
    print("\nvs X: X's median time / this client's median time (higher is faster).\n")
    if args.latency:
        print("Rates per second (messages; recipients for C), medians of the rounds; in")
        print("brackets the ratio to smtplib (blocking clients) or aiosmtplib (async ones).\n")
        print(summary_table(settings, samples, args.scenarios, args.clients))
        print()
    print(targets_table(samples))


if __name__ == "__main__":
    main()
