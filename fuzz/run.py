"""Run every fuzz target for a bounded time; exit non-zero if any of them crashed.

Usage: ``python fuzz/run.py [seconds-per-target] [target ...]`` (default 12 s, all targets).

Each target runs on a temporary copy of its seed corpus, so the corpus in the repository never
changes.  Per target it prints the number of executions (libFuzzer's final statistics) and the
corpus size before and after.  A crash (uncaught exception, failed check, timeout, memory limit)
leaves the temporary directory in place and its path, with the crashing input, is printed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

FUZZ_DIR = Path(__file__).resolve().parent
TARGETS = ("replies", "ehlo", "addresses", "encoder", "sasl")
DEFAULT_SECONDS = 12
RSS_LIMIT_MB = 2048
INPUT_TIMEOUT_S = 25  # one input running longer than this is reported as a hang
# Time for start-up and shutdown on top of -max_total_time before the run counts as stuck.
GRACE_S = 120
ARTIFACT_PREFIXES = ("crash-", "timeout-", "oom-", "leak-", "slow-unit-")

_EXECUTED = re.compile(rb"stat::number_of_executed_units:\s*(\d+)")
_DONE = re.compile(rb"^#(\d+)\s+DONE", re.MULTILINE)


@dataclass
class Result:
    target: str
    executions: int | None
    seeds: int
    corpus: int
    failed: bool
    workdir: Path


def executions(log: bytes) -> int | None:
    """The executions libFuzzer reported last: the final stats line, else the ``DONE`` line."""
    for pattern in (_EXECUTED, _DONE):
        found = pattern.findall(log)
        if found:
            return int(found[-1])
    return None


def run_target(target: str, seconds: int) -> Result:
    workdir = Path(tempfile.mkdtemp(prefix=f"smtpproto-fuzz-{target}-"))
    corpus = workdir / "corpus"
    shutil.copytree(FUZZ_DIR / "corpus" / target, corpus)
    artifacts = workdir / "artifacts"
    artifacts.mkdir()
    seeds = len(list(corpus.iterdir()))
    command = [
        sys.executable,
        str(FUZZ_DIR / f"fuzz_{target}.py"),
        f"-max_total_time={seconds}",
        f"-rss_limit_mb={RSS_LIMIT_MB}",
        f"-timeout={INPUT_TIMEOUT_S}",
        f"-dict={FUZZ_DIR / 'smtp.dict'}",
        f"-artifact_prefix={artifacts}/",
        "-print_final_stats=1",
        str(corpus),
    ]
    log_path = workdir / "fuzz.log"
    with log_path.open("wb") as log_file:
        try:
            returncode = subprocess.run(
                command,
                check=False,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                timeout=seconds + GRACE_S,
            ).returncode
        except subprocess.TimeoutExpired:
            returncode = -1
    log = log_path.read_bytes()
    crashers = [path for path in artifacts.iterdir() if path.name.startswith(ARTIFACT_PREFIXES)]
    failed = returncode != 0 or bool(crashers)
    result = Result(target, executions(log), seeds, len(list(corpus.iterdir())), failed, workdir)
    if failed:
        tail = b"\n".join(log.splitlines()[-60:]).decode("utf-8", "replace")
        print(f"--- {target}: FAILED (exit code {returncode}); last lines of {log_path}:")
        print(tail)
        for crasher in crashers:
            print(f"--- crashing input {crasher}: {crasher.read_bytes()!r}")
    else:
        shutil.rmtree(workdir)
    return result


def main(argv: list[str]) -> int:
    seconds = int(argv[0]) if argv else DEFAULT_SECONDS
    targets = argv[1:] or list(TARGETS)
    unknown = set(targets) - set(TARGETS)
    if seconds < 1 or unknown:
        print(f"usage: run.py [seconds-per-target >= 1] [{' | '.join(TARGETS)} ...]")
        return 2
    results = [run_target(target, seconds) for target in targets]
    print(f"{'target':<10} {'executions':>11} {'corpus':>13}  result")
    for result in results:
        count = "?" if result.executions is None else str(result.executions)
        corpus = f"{result.seeds} -> {result.corpus}"
        verdict = f"CRASH (kept in {result.workdir})" if result.failed else "ok"
        print(f"{result.target:<10} {count:>11} {corpus:>13}  {verdict}")
    return 1 if any(result.failed for result in results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
