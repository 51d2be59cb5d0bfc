"""A TCP proxy that adds latency, for benchmarks over a "network" on loopback (no netem here).

Run as ``python bench/_latency_proxy.py --upstream 127.0.0.1:PORT --rtt-ms 10``: it prints
``PORT <n>`` once it listens on 127.0.0.1.  Every chunk read from one side is written to the other
side half a round trip after it arrived, in order, one write per chunk.  Chunks in flight overlap:
it is a pipe with latency, not a stop-and-wait, so a bulk transfer is limited by ``--window``
(octets in flight per direction, like a TCP window), not by one chunk per round trip.

A new connection is connected upstream 1.5 round trips after it was accepted: TCP's handshake
lets a server send its first octet (SMTP's greeting) at 1.5 RTT, so a client sees it at 2 RTT, as
it would over a real network.  ``--no-handshake`` connects at once (greeting at half an RTT).

Only loopback (127.0.0.0/8) addresses are accepted, for listening and upstream alike.  It runs as
a process of its own so that it never competes with the measured client for that client's GIL.

``python bench/_latency_proxy.py --check`` measures the proxy itself: a ping-pong (about one
RTT per exchange) and a bulk transfer (far more than one chunk per RTT), at 0, 10 and 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import selectors
import socket
import statistics
import sys
import threading
import time
from collections import deque

HOST = "127.0.0.1"
#: Octets in flight per direction before the proxy stops reading the sender (a TCP window).
DEFAULT_WINDOW = 4 << 20
# The handshake's delay, in one-way delays: SYN, SYN-ACK, then the ACK that completes accept().
HANDSHAKE_ONE_WAYS = 3
# A timer fires about 0.2 ms after its time here (the wake-up of a process on this VM): aimed
# that much early, with a chunk due within that much, chunks leave close to their deadline.
SLACK = 0.0002
EOF = b""  # queued like a chunk: the sender half-closed (or closed) its side


def loopback(host: str) -> str:
    """``host`` if it is a 127.0.0.0/8 address; the proxy never talks to anything else."""
    if not ipaddress.ip_address(host).is_loopback or ipaddress.ip_address(host).version != 4:
        raise ValueError(f"{host} is not a 127.0.0.0/8 address")
    return host


class DelayedPipe:
    """One direction of a connection: each chunk leaves ``delay`` seconds after it arrived."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.loop = link.loop
        self.source: asyncio.Transport | None = None  # paused while the window is full
        self.dest: asyncio.Transport | None = None  # None until connected upstream
        self.queue: deque[tuple[float, bytes]] = deque()  # (deadline, chunk or EOF)
        self.queued = 0
        self.timer: asyncio.TimerHandle | None = None
        self.dest_blocked = False  # the destination's write buffer is full
        self.source_paused = False
        self.ended = False  # EOF delivered, or the destination is gone

    def push(self, chunk: bytes) -> None:
        if self.ended or (self.queue and self.queue[-1][1] is EOF):
            return
        # One timer, for the head of the queue: equal deadlines keep their order (asyncio's
        # timer heap does not promise that), and there is no timer per chunk.
        self.queue.append((self.loop.time() + self.link.delay, chunk))
        self.queued += len(chunk)
        self._flow()
        if self.timer is None and self.dest is not None:
            self.timer = self.loop.call_at(self.queue[0][0] - SLACK, self.deliver)

    def deliver(self) -> None:
        self.timer = None
        if self.dest is None or self.ended:
            return
        now = self.loop.time() + SLACK
        while self.queue and self.queue[0][0] <= now:
            _, chunk = self.queue.popleft()
            self.queued -= len(chunk)
            if chunk is EOF:
                if self.dest.can_write_eof():
                    self.dest.write_eof()  # pass the half-close on: replies may still flow back
                self.end()
                return
            self.dest.write(chunk)
        if self.queue:
            self.timer = self.loop.call_at(self.queue[0][0] - SLACK, self.deliver)
        self._flow()

    def connected(self, dest: asyncio.Transport) -> None:
        self.dest = dest
        self.deliver()

    def blocked(self, blocked: bool) -> None:
        self.dest_blocked = blocked
        self._flow()

    def end(self) -> None:
        """Nothing more goes this way (EOF delivered, or the destination is gone)."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.queue.clear()
        self.queued = 0
        if not self.ended:
            self.ended = True
            self.link.direction_ended()

    def _flow(self) -> None:
        full = self.dest_blocked or self.queued > self.link.window
        if self.source is None or full == self.source_paused or self.source.is_closing():
            return
        self.source_paused = full
        if full:
            self.source.pause_reading()
        else:
            self.source.resume_reading()


class Side(asyncio.Protocol):
    """One socket of a proxied connection: what it reads goes into ``outgoing``."""

    def __init__(self, outgoing: DelayedPipe, incoming: DelayedPipe) -> None:
        self.outgoing = outgoing  # from this socket to the other one
        self.incoming = incoming  # from the other socket to this one
        self.transport: asyncio.Transport | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=1 << 20)
        self.outgoing.source = transport

    def data_received(self, data: bytes) -> None:
        self.outgoing.push(data)

    def eof_received(self) -> bool:
        self.outgoing.push(EOF)
        return True  # keep our writing half open: replies may still be in flight

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.outgoing.push(EOF)
        self.incoming.end()

    def pause_writing(self) -> None:
        self.incoming.blocked(True)

    def resume_writing(self) -> None:
        self.incoming.blocked(False)


class Link:
    """One proxied connection: two delayed pipes; both sockets close when both have ended."""

    def __init__(self, delay: float, window: int) -> None:
        self.loop = asyncio.get_running_loop()
        self.delay = delay
        self.window = window
        self.to_server = DelayedPipe(self)
        self.to_client = DelayedPipe(self)
        self.client = Side(self.to_server, self.to_client)
        self.server: Side | None = None
        self.connecting: asyncio.Task[None] | None = None  # a reference keeps the task alive

    def direction_ended(self) -> None:
        if self.to_server.ended and self.to_client.ended:
            for side in (self.client, self.server):
                if side is not None and side.transport is not None:
                    side.transport.close()  # writes what is buffered first

    async def connect(self, upstream: tuple[str, int]) -> None:
        if self.client.lost and not self.to_server.queue:
            return  # the client left before its handshake would have completed
        try:
            transport, server = await self.loop.create_connection(
                lambda: Side(self.to_client, self.to_server), *upstream
            )
        except OSError:
            self.to_server.end()
            self.to_client.end()
            return
        self.server = server
        self.to_server.connected(transport)
        if self.client.lost:
            self.to_client.end()
        else:
            assert self.client.transport is not None
            self.to_client.connected(self.client.transport)


class Proxy:
    def __init__(self, upstream: tuple[str, int], rtt: float, window: int, handshake: bool):
        self.upstream = upstream
        self.delay = rtt / 2
        self.window = window
        self.handshake = handshake

    def accept(self) -> Side:
        link = Link(self.delay, self.window)
        wait = self.delay * HANDSHAKE_ONE_WAYS if self.handshake else 0.0

        def connect() -> None:
            link.connecting = link.loop.create_task(link.connect(self.upstream))

        link.loop.call_later(wait, connect)
        return link.client


def select_loop() -> asyncio.AbstractEventLoop:
    """An event loop on select(), whose timeout has microseconds: epoll's has milliseconds
    (rounded up), which made every delayed chunk leave 0-1 ms late."""
    return asyncio.SelectorEventLoop(selectors.SelectSelector())


async def serve(proxy: Proxy, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(proxy.accept, HOST, port, backlog=1024)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


# --- the check: does it behave like a pipe with latency? --------------------------------------


def _echo_server() -> int:
    """A threaded echo server on 127.0.0.1 (for the check); returns its port."""
    listener = socket.create_server((HOST, 0))

    def echo(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(1 << 16):
                conn.sendall(data)

    def accept() -> None:
        while True:
            conn, _ = listener.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    port: int = listener.getsockname()[1]
    return port


def _ping_pong(port: int, exchanges: int) -> tuple[float, float]:
    """(the first exchange, with the handshake; the median of the others), in seconds."""
    with socket.create_connection((HOST, port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        times = []
        for _ in range(exchanges):
            start = time.perf_counter()
            sock.sendall(b"x")
            if sock.recv(16) != b"x":
                raise RuntimeError("ping-pong: wrong echo")
            times.append(time.perf_counter() - start)
    return times[0], statistics.median(times[1:])


def _bulk(port: int, total: int, chunk: int) -> float:
    """Send ``total`` octets in ``chunk`` writes while reading the echo back; its seconds."""
    pattern = bytes(range(256)) * (chunk // 256)  # octet p of the stream is p % 256
    expected = pattern * ((1 << 20) // len(pattern) + 2)
    with socket.create_connection((HOST, port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def send() -> None:
            for _ in range(total // len(pattern)):
                sock.sendall(pattern)

        start = time.perf_counter()
        sender = threading.Thread(target=send)
        sender.start()
        received = 0
        while received < total:
            data = sock.recv(1 << 20)
            if not data or data != expected[received % 256 : received % 256 + len(data)]:
                raise RuntimeError("bulk: octets lost or out of order")
            received += len(data)
        sender.join()
        return time.perf_counter() - start


def check() -> None:
    from _servers import latency_proxy  # noqa: PLC0415 (it starts this script)

    echo_port = _echo_server()
    chunk = 64 << 10
    print("RTT      first exchange  ping-pong median  bulk 32 MiB in 64 KiB writes, echoed")
    for rtt_ms in (0.0, 10.0, 50.0):
        with latency_proxy(echo_port, rtt_ms) as port:
            first, pong = _ping_pong(port, 40 if rtt_ms else 2000)
            seconds = _bulk(port, 32 << 20, chunk)
        stop_and_wait = f"{chunk / (rtt_ms / 1000) / 1e6:.1f} MB/s" if rtt_ms else "-"
        window = f"{DEFAULT_WINDOW / (rtt_ms / 2000) / 1e6:.0f} MB/s" if rtt_ms else "-"
        print(
            f"{rtt_ms:2.0f} ms  {first * 1000:11.3f} ms  {pong * 1000:13.3f} ms  "
            f"{(32 << 20) / seconds / 1e6:8.1f} MB/s (one chunk per RTT: {stop_and_wait}; "
            f"window / one-way delay: {window})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--upstream", help="HOST:PORT to forward to (127.0.0.0/8 only)")
    parser.add_argument("--rtt-ms", type=float, default=10.0, help="round trip added (10)")
    parser.add_argument("--port", type=int, default=0, help="where to listen (0: a free port)")
    parser.add_argument("--window", type=int, default=DEFAULT_WINDOW, help="octets in flight")
    parser.add_argument("--no-handshake", action="store_true", help="connect upstream at once")
    parser.add_argument("--check", action="store_true", help="measure the proxy and exit")
    args = parser.parse_args()
    if args.check:
        check()
        return
    if not args.upstream:
        parser.error("--upstream is required")
    host, _, port = args.upstream.rpartition(":")
    try:
        upstream = (loopback(host), int(port))
    except ValueError as exc:
        parser.error(str(exc))
    proxy = Proxy(upstream, args.rtt_ms / 1000, args.window, not args.no_handshake)
    try:
        with asyncio.Runner(loop_factory=select_loop) as runner:
            runner.run(serve(proxy, args.port))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
