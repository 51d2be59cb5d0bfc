"""Sending at volume (issue 15): the sender against a loop of ``deliver()`` and smtplib.

Small messages to a handful of destinations (relays: one ``smtp-sink`` behind a latency proxy
each, or the same sink straight on loopback), in the same run:

- **sender**: one :class:`smtpproto.adapters.sender_blocking.Sender` per destination, each
  handed its messages with ``send_many`` from a thread of its own (connections kept and
  reused, batches pipelined);
- **deliver loop**: ``deliver(message, relay=...)`` once per message, in one thread;
- **smtplib loop**: ``smtplib.SMTP(...)``, ``sendmail``, ``quit`` once per message (what a
  worker that calls smtplib per task does);
- **smtplib reused**: one smtplib connection per destination, ``sendmail`` per message.

The slow loops send fewer messages (``--baseline``) at 10 ms: their rate is what is compared.
RSS is sampled after every slice of the sender's messages: it must stay flat.

    python bench/bench_volume.py                     # 10,000 messages, loopback and 10 ms
    python bench/bench_volume.py --messages 2000 --rounds 1 --rtt 0   # quick look
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import smtplib
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _servers import HOST, latency_proxy, smtp_sink
from smtpproto.adapters.blocking import deliver
from smtpproto.adapters.sender_blocking import Sender, SenderLimits

from smtpproto import DeliveryOptions, Relay, SessionOptions, TLSMode, prepare_message

SENDER = "bench@client.test"
#: Messages handed to send_many at once, per destination; RSS is sampled after each slice.
SLICE = 500
OPTIONS = DeliveryOptions(session=SessionOptions(local_hostname="client.test"))


def body(index: int) -> bytes:
    return (
        f"From: {SENDER}\r\nTo: r{index}@example.net\r\nSubject: volume {index}\r\n"
        f"Message-ID: <v{index}@client.test>\r\n\r\n" + "A small message body line.\r\n" * 10
    ).encode()


def rss_mib() -> float:
    """The current resident set (not the peak), from /proc."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / (1 << 20)


def run_sender(ports: list[int], messages: int, samples: list[float]) -> int:
    relays = [Relay(HOST, port, tls=TLSMode.NONE) for port in ports]
    limits = SenderLimits(per_destination=4, messages_per_connection=0, batch=50)
    delivered = [0] * len(ports)

    def one(index: int, relay: Relay) -> None:
        with Sender(relay=relay, options=OPTIONS, limits=limits) as sender:
            mine = range(index, messages, len(ports))
            for start in range(0, len(mine), SLICE):  # in slices: the reports do not pile up
                chunk = [
                    prepare_message(body(i), SENDER, [f"r{i}@example.net"])
                    for i in mine[start : start + SLICE]
                ]
                delivered[index] += sum(r.all_delivered for r in sender.send_many(chunk))
                samples.append(rss_mib())

    threads = [threading.Thread(target=one, args=(i, r)) for i, r in enumerate(relays)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(delivered)


def run_deliver_loop(ports: list[int], messages: int) -> int:
    done = 0
    for i in range(messages):
        relay = Relay(HOST, ports[i % len(ports)], tls=TLSMode.NONE)
        done += deliver(
            body(i), SENDER, [f"r{i}@example.net"], relay=relay, options=OPTIONS
        ).all_delivered
    return done


def run_smtplib_loop(ports: list[int], messages: int) -> int:
    for i in range(messages):
        with smtplib.SMTP(HOST, ports[i % len(ports)], local_hostname="client.test") as smtp:
            smtp.sendmail(SENDER, [f"r{i}@example.net"], body(i))
    return messages


def run_smtplib_reused(ports: list[int], messages: int) -> int:
    clients = [smtplib.SMTP(HOST, port, local_hostname="client.test") for port in ports]
    try:
        for i in range(messages):
            clients[i % len(ports)].sendmail(SENDER, [f"r{i}@example.net"], body(i))
    finally:
        for client in clients:
            client.quit()
    return messages


@contextlib.contextmanager
def destinations(count: int, rtt_ms: float) -> Iterator[list[int]]:
    with smtp_sink() as sink, contextlib.ExitStack() as stack:
        if not rtt_ms:
            yield [sink] * count
            return
        yield [stack.enter_context(latency_proxy(sink, rtt_ms)) for _ in range(count)]


def timed(run: Callable[[], int], expected: int) -> float:
    start = time.perf_counter()
    done = run()
    seconds = time.perf_counter() - start
    if done != expected:
        raise RuntimeError(f"{done} of {expected} messages delivered")
    return seconds


def contenders(
    ports: list[int], messages: int, baseline: int, samples: list[float]
) -> dict[str, tuple[Callable[[], int], int]]:
    """Each contender's run, and how many messages it sends."""
    return {
        "sender": (lambda: run_sender(ports, messages, samples), messages),
        "deliver loop": (lambda: run_deliver_loop(ports, baseline), baseline),
        "smtplib loop": (lambda: run_smtplib_loop(ports, baseline), baseline),
        "smtplib reused": (lambda: run_smtplib_reused(ports, baseline), baseline),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=10_000, help="through the sender")
    parser.add_argument("--baseline", type=int, default=300, help="through each loop at RTT > 0")
    parser.add_argument("--destinations", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rtt", default="0,10", help="round trips in ms (0: straight loopback)")
    args = parser.parse_args()
    print(f"{args.destinations} destinations, medians of {args.rounds} rounds; msg/s")
    for rtt_ms in (float(r) for r in args.rtt.split(",")):
        baseline = args.messages if not rtt_ms else args.baseline
        rates: dict[str, list[float]] = {}
        samples: list[float] = []
        with destinations(args.destinations, rtt_ms) as ports:
            runs = contenders(ports, args.messages, baseline, samples)
            for _ in range(args.rounds):
                for name, (run, count) in runs.items():
                    rates.setdefault(name, []).append(count / timed(run, count))
        medians = {name: statistics.median(values) for name, values in rates.items()}
        print(f"\nRTT {rtt_ms:g} ms (sender: {args.messages} messages, loops: {baseline})")
        for name, rate in medians.items():
            ratio = medians["sender"] / rate
            spread = f"{min(rates[name]):.0f}-{max(rates[name]):.0f}"
            print(f"  {name:15} {rate:9.0f} msg/s  ({spread})  sender is {ratio:5.1f}x")
        first, last = samples[0], samples[-1]
        print(
            f"  sender RSS per slice of {SLICE} per destination: {first:.1f} -> {last:.1f} MiB"
            f" (max {max(samples):.1f}); peak RSS of the process "
            f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB"
        )


if __name__ == "__main__":
    main()
