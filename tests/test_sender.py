"""The long-lived sender of each adapter, against scripted servers: connections reused across
calls, checked with NOOP after an idle spell and replaced when stale, closed after their age or
message limit, limits per destination and overall, QUIT on close, and the same per-recipient
report ``deliver()`` gives.  Concurrency: many threads (blocking), many tasks (asyncio, trio).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
import trio
from smtpproto.testing import Answer, Delayed, Fault, ScriptedServer, reply

from smtpproto import (
    DeliveryOptions,
    DeliveryReport,
    OutgoingMessage,
    Relay,
    SessionOptions,
    TLSMode,
    TLSPolicy,
    prepare_message,
)
from tests.deliver_harness import TEST_TIMEOUTS, address
from tests.servers.dnsmasq import DNSServer

if TYPE_CHECKING:
    import adapters.blocking as blocking_adapter
    from adapters.sender_asyncio import Sender as AsyncioSender
    from adapters.sender_blocking import Sender, SenderLimits
    from adapters.sender_trio import Sender as TrioSender
else:
    import smtpproto.adapters.blocking as blocking_adapter
    from smtpproto.adapters.sender_asyncio import Sender as AsyncioSender
    from smtpproto.adapters.sender_blocking import Sender, SenderLimits
    from smtpproto.adapters.sender_trio import Sender as TrioSender

SENDER = "sender@client.test"
OPTIONS = DeliveryOptions(
    session=SessionOptions(local_hostname="client.test", timeout=TEST_TIMEOUTS), port=25
)


def content(marker: str | None = None) -> bytes:
    marker = marker or uuid.uuid4().hex
    return f"Subject: {marker}\r\nMessage-ID: <{marker}@client.test>\r\n\r\n{marker}\r\n".encode()


def message(recipients: list[str], marker: str | None = None) -> OutgoingMessage:
    return prepare_message(content(marker), SENDER, recipients)


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    # 451 to any recipient named "later", 550 to "nobody": a report with every status.
    def rcpt(line: bytes) -> bytes:
        if b"<later@" in line:
            return bytes(reply(451, "4.2.1 try later"))
        return bytes(reply(550, "5.1.1 no such user") if b"<nobody@" in line else reply(250, "ok"))

    with ScriptedServer({"RCPT": Answer(rcpt)}) as running:
        yield running


def relay_to(server: ScriptedServer) -> Relay:
    host, port = server.address
    return Relay(host, port, tls=TLSMode.NONE)


def counted(server: ScriptedServer) -> list[bytes]:
    return [m for record in server.connections for m in record.messages]


def comparable(report: DeliveryReport) -> list[tuple[object, ...]]:
    """A report's outcomes, without the port each attempt names (each server has its own)."""
    return [
        (o.recipient, o.status, o.reply, o.detail, o.server_host, o.tls, len(o.attempts))
        for o in report.outcomes
    ]


def test_one_connection_serves_every_call_and_closing_quits(server: ScriptedServer) -> None:
    """Three calls, one session: EHLO once, three transactions, QUIT when the sender closes."""
    with Sender(relay=relay_to(server), options=OPTIONS) as sender:
        reports = [sender.send(message([f"a{i}@example.net"])) for i in range(3)]
        assert [r.all_delivered for r in reports] == [True] * 3
        assert server.connections[0].verbs[-1] != "QUIT"  # kept open between calls
    [record] = server.finish()
    assert record.verbs == ["EHLO"] + ["MAIL", "RCPT", "DATA"] * 3 + ["QUIT"]


def test_the_report_is_the_one_deliver_gives(server: ScriptedServer) -> None:
    rcpts = ["a@example.net", "later@example.net", "nobody@example.org"]
    relay = relay_to(server)
    expected = blocking_adapter.deliver(content(), SENDER, rcpts, relay=relay, options=OPTIONS)
    with Sender(relay=relay, options=OPTIONS) as sender:
        got = sender.send(message(rcpts))
        again = sender.send(message(rcpts))  # and over a reused connection
    assert comparable(got) == comparable(expected) == comparable(again)
    assert [o.status for o in got.outcomes] == ["delivered", "temporary", "permanent"]
    assert str(got) == str(expected)


def test_a_refused_message_does_not_spoil_the_next_one() -> None:
    """A sender refused with 550 is a permanent outcome; the session goes on (RSET)."""

    def mail(line: bytes) -> bytes:
        return bytes(reply(550, "5.7.1 not you") if b"<bad@" in line else reply(250, "ok"))

    with ScriptedServer({"MAIL": Answer(mail)}) as server:
        limits = SenderLimits(per_destination=1)
        with Sender(relay=relay_to(server), options=OPTIONS, limits=limits) as sender:
            refused = prepare_message(b"Subject: x\r\n\r\nx\r\n", "bad@client.test", ["a@b.net"])
            first, second = sender.send_many([refused, message(["a@example.net"])])
        assert first["a@b.net"].status == "permanent"
        refusal = first["a@b.net"].reply
        assert refusal is not None and (refusal.code, refusal.text) == (550, "5.7.1 not you")
        assert second.all_delivered
        [record] = server.finish()
        assert record.verbs.count("EHLO") == 1 and "RSET" in record.verbs


def test_an_idle_connection_is_checked_with_noop(server: ScriptedServer) -> None:
    limits = SenderLimits(idle_check=0.0)
    with Sender(relay=relay_to(server), options=OPTIONS, limits=limits) as sender:
        sender.send(message(["a@example.net"]))
        sender.send(message(["b@example.net"]))
    [record] = server.finish()
    assert record.verbs == ["EHLO", "MAIL", "RCPT", "DATA", "NOOP", "MAIL", "RCPT", "DATA", "QUIT"]


def test_a_stale_connection_is_replaced() -> None:
    """The NOOP finds the server gone: the message goes over a fresh connection."""
    with ScriptedServer({"NOOP": Fault.CLOSE}) as server:
        limits = SenderLimits(idle_check=0.0)
        with Sender(relay=relay_to(server), options=OPTIONS, limits=limits) as sender:
            assert sender.send(message(["a@example.net"])).all_delivered
            assert sender.send(message(["b@example.net"])).all_delivered
        first, second = server.finish()
        assert first.verbs[-1] == "NOOP" and second.verbs[0] == "EHLO"
        assert len(first.messages) == len(second.messages) == 1


@pytest.mark.parametrize(
    ("limits", "connections"),
    [
        (SenderLimits(idle_close=0.0), 3),  # idle too long: closed, a new one opened
        (SenderLimits(max_age=0.0), 3),  # too old after its first message
        (SenderLimits(messages_per_connection=2), 2),  # 2 + 1
    ],
)
def test_limits_close_connections(
    server: ScriptedServer, limits: SenderLimits, connections: int
) -> None:
    with Sender(relay=relay_to(server), options=OPTIONS, limits=limits) as sender:
        for i in range(3):
            assert sender.send(message([f"a{i}@example.net"])).all_delivered
    records = server.finish()
    assert len(records) == connections
    assert all(record.verbs[-1] == "QUIT" for record in records)
    assert len(counted(server)) == 3


def test_a_batch_is_cut_to_what_the_connection_may_still_send(server: ScriptedServer) -> None:
    limits = SenderLimits(messages_per_connection=3, batch=10, per_destination=1)
    with Sender(relay=relay_to(server), options=OPTIONS, limits=limits) as sender:
        reports = sender.send_many([message([f"a{i}@example.net"]) for i in range(7)])
    assert all(r.all_delivered for r in reports)
    assert [len(r.messages) for r in server.finish()] == [3, 3, 1]


def test_many_threads_share_few_connections(server: ScriptedServer) -> None:
    """40 threads, 5 messages each, at most 3 connections: every message sent exactly once."""
    limits = SenderLimits(per_destination=3, messages_per_connection=0)
    markers = [uuid.uuid4().hex for _ in range(200)]
    reports: list[DeliveryReport] = []
    with Sender(relay=relay_to(server), options=OPTIONS, limits=limits) as sender:

        def work(part: list[str]) -> None:
            for marker in part:
                reports.append(sender.send(message(["a@example.net"], marker)))

        threads = [threading.Thread(target=work, args=(markers[i::40],)) for i in range(40)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert len(reports) == 200 and all(r.all_delivered for r in reports)
    records = server.finish()
    assert 2 <= len(records) <= 3  # in parallel, within the limit
    assert sorted(_marker(m) for m in counted(server)) == sorted(markers)
    assert all(record.verbs.count("EHLO") == 1 for record in records)


def _marker(content: bytes) -> str:
    return content.split(b"Message-ID: <", 1)[1].split(b"@", 1)[0].decode()


def test_closing_waits_for_the_work_in_progress() -> None:
    """close() during a slow transaction: the message is delivered, then QUIT; no new call."""
    with ScriptedServer({"DOT": Delayed(0.3, reply(250, "ok"))}) as server:
        sender = Sender(relay=relay_to(server), options=OPTIONS)
        reports: list[DeliveryReport] = []
        thread = threading.Thread(target=lambda: reports.append(sender.send(message(["a@b.net"]))))
        thread.start()
        while not server.connections or "DATA" not in server.connections[0].verbs:
            threading.Event().wait(0.01)
        sender.close()
        thread.join(10)
        assert reports[0].all_delivered
        with pytest.raises(RuntimeError, match="closed"):
            sender.send(message(["a@b.net"]))
        [record] = server.finish()
        assert record.verbs[-1] == "QUIT"


def test_bad_input_is_refused_before_anything_is_queued(server: ScriptedServer) -> None:
    with Sender(relay=relay_to(server), options=OPTIONS) as sender:
        with pytest.raises(ValueError, match="stream"):
            sender.send(prepare_message(iter([b"x"]), SENDER, ["a@b.net"]))
        with pytest.raises(ValueError, match="recipients"):
            sender.send(b"Subject: x\r\n\r\nx\r\n")
    with pytest.raises(ValueError, match="at least 1"):
        SenderLimits(batch=0)
    assert server.finish() == []


def test_a_relay_that_refuses_settles_every_message() -> None:
    """Nobody listens, then a relay whose greeting is 554: each message says why."""
    with ScriptedServer({"GREETING": reply(554, "5.3.2 go away")}) as server:
        relay = relay_to(server)
    with Sender(relay=relay, options=OPTIONS) as sender:  # the server is gone now
        [report] = sender.send_many([message(["a@example.net"])])
    assert report["a@example.net"].status == "temporary"
    assert report["a@example.net"].attempts[0].connect_failed
    with ScriptedServer({"GREETING": reply(554, "5.3.2 go away")}) as server:
        with Sender(relay=relay_to(server), options=OPTIONS) as sender:
            report = sender.send(message(["a@example.net"]))
        assert report["a@example.net"].status == "permanent"


def test_authentication_at_the_relay_once_per_connection() -> None:
    with ScriptedServer() as server:
        host, port = server.address
        relay = Relay(host, port, "user", "secret", tls=TLSMode.NONE, allow_cleartext_auth=True)
        with Sender(relay=relay) as sender:  # no EHLO name given: the driver's is asked
            for i in range(2):
                assert sender.send(message([f"a{i}@example.net"])).all_delivered
        [record] = server.finish()
        assert record.verbs.count("AUTH") == 1


# -- MX delivery -------------------------------------------------------------------------------


def mx_sender(dns_server: DNSServer, **kwargs: object) -> Sender:
    return Sender(options=OPTIONS, resolver=dns_server.resolver(), **kwargs)  # type: ignore[arg-type]


def test_mx_delivery_keeps_a_connection_per_domain(dns_server: DNSServer) -> None:
    with (
        ScriptedServer(host=address("mx1.ordered.test"), port=25) as ordered,
        ScriptedServer(host=address("a.equal.test"), port=25) as equal_a,
        ScriptedServer(host=address("b.equal.test"), port=25) as equal_b,
    ):
        with mx_sender(dns_server) as sender:
            for _ in range(2):
                report = sender.send(message(["x@ordered.test", "y@equal.test", "z@ordered.test"]))
                assert report.all_delivered
                assert report["x@ordered.test"].server_host == "mx1.ordered.test"
        [record] = ordered.finish()
        assert record.verbs.count("EHLO") == 1 and len(record.messages) == 2
        assert len(equal_a.finish() + equal_b.finish()) == 1


def test_mx_walking_and_plan_errors_as_deliver_reports_them(dns_server: DNSServer) -> None:
    rcpts = ["a@deadmx.test", "b@nullmx.test", "c@nxdomain.test"]
    with ScriptedServer(host=address("live.deadmx.test"), port=25):
        resolver = dns_server.resolver()
        expected = blocking_adapter.deliver(
            content(), SENDER, rcpts, options=OPTIONS, resolver=resolver
        )
        with mx_sender(dns_server) as sender:
            got = sender.send(message(rcpts))
    assert comparable(got) == comparable(expected)
    assert [o.status for o in got.outcomes] == ["delivered", "permanent", "permanent"]
    assert got["a@deadmx.test"].attempts[0].connect_failed


def later_here(host: str) -> ScriptedServer:
    """A server for ``host`` that answers 451 to the recipient "later" (and to it only)."""

    def rcpt(line: bytes) -> bytes:
        return bytes(reply(451, "4.2.1 try later") if b"<later@" in line else reply(250, "ok"))

    return ScriptedServer({"RCPT": Answer(rcpt)}, host=address(host), port=25)


def send_in_turn(
    library: str, dns_server: DNSServer, messages: list[OutgoingMessage], options: DeliveryOptions
) -> list[DeliveryReport]:
    """Each message in turn through one sender of ``library``, for direct delivery."""
    if library == "blocking":
        with Sender(options=options, resolver=dns_server.resolver()) as sender:
            return [sender.send(m) for m in messages]
    sender_type = AsyncioSender if library == "asyncio" else TrioSender

    async def run() -> list[DeliveryReport]:
        resolver = dns_server.async_resolver()
        async with sender_type(options=options, resolver=resolver) as sender:
            return [await sender.send(m) for m in messages]

    return asyncio.run(run()) if library == "asyncio" else trio.run(run)


@pytest.mark.parametrize("library", ["blocking", "asyncio", "trio"])
@pytest.mark.parametrize(("hosts", "session_limit"), [(3, 2), (3, 3), (1, 2)])
def test_a_4xx_at_the_pooled_host_moves_on_to_the_next_mx(
    dns_server: DNSServer, hosts: int, session_limit: int, library: str
) -> None:
    """As ``deliver()``: "later" is tried at mx2 (451 too) and then mx3 (no 451 there) within
    the session limit; the pooled connection to mx1 stays for the next message."""
    names = ["mx1.ordered.test", "mx2.ordered.test", "mx3.ordered.test"][:hosts]
    rcpts = ["a@ordered.test", "later@ordered.test"]
    options = dataclasses.replace(OPTIONS, session_limit=session_limit)
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(later_here(n)) for n in names[:2]]
        if hosts == 3:
            servers.append(stack.enter_context(ScriptedServer(host=address(names[2]), port=25)))
        resolver = dns_server.resolver()
        expected = blocking_adapter.deliver(
            content(), SENDER, rcpts, options=options, resolver=resolver
        )
        got = send_in_turn(library, dns_server, [message(rcpts), message(rcpts)], options)
    assert comparable(got[0]) == comparable(got[1]) == comparable(expected)
    later = got[0]["later@ordered.test"]
    delivered = hosts == 3 and session_limit == 3
    assert later.status == ("delivered" if delivered else "temporary")
    assert len(servers[0].connections) == 2  # one for deliver(), one pooled for both sends


def test_no_mx_reachable_is_temporary(dns_server: DNSServer) -> None:
    with mx_sender(dns_server) as sender:
        report = sender.send(message(["a@ordered.test"]))
    outcome = report["a@ordered.test"]
    assert outcome.status == "temporary" and len(outcome.attempts) == 3


def test_a_required_tls_policy_skips_a_cleartext_host(dns_server: DNSServer) -> None:
    options = dataclasses.replace(OPTIONS, tls_policy=TLSPolicy(frozenset({"ordered.test"})))
    with ScriptedServer(host=address("mx1.ordered.test"), port=25) as server:
        with Sender(options=options, resolver=dns_server.resolver()) as sender:
            report = sender.send(message(["a@ordered.test"]))
        expected = blocking_adapter.deliver(
            content(), SENDER, ["a@ordered.test"], options=options, resolver=dns_server.resolver()
        )
    assert comparable(report) == comparable(expected)
    assert report["a@ordered.test"].status == "temporary"
    assert not counted(server)


def test_the_overall_limit_closes_another_domains_idle_connection(dns_server: DNSServer) -> None:
    """One connection in all: each domain in turn takes the place of the other's."""
    limits = SenderLimits(connections=1)
    with (
        ScriptedServer(host=address("mx1.ordered.test"), port=25) as ordered,
        ScriptedServer(host=address("implicit.test"), port=25) as implicit,
    ):
        with mx_sender(dns_server, limits=limits) as sender:
            for domain in ("ordered.test", "implicit.test", "ordered.test"):
                assert sender.send(message([f"a@{domain}"])).all_delivered
            # Both at once: one waits for the other's connection to be closed.
            reports = sender.send_many([message(["b@implicit.test"]), message(["c@ordered.test"])])
            assert all(r.all_delivered for r in reports)
        records = ordered.finish() + implicit.finish()
        assert all(r.verbs[-1] == "QUIT" for r in records)
        assert len(counted(ordered)) == 3 and len(counted(implicit)) == 2


# -- the event-loop adapters -------------------------------------------------------------------


@pytest.mark.parametrize("library", ["asyncio", "trio"])
def test_many_tasks_share_few_connections(server: ScriptedServer, library: str) -> None:
    limits = SenderLimits(per_destination=2, messages_per_connection=0, idle_check=0.0)
    markers = [uuid.uuid4().hex for _ in range(150)]
    relay = relay_to(server)
    reports: list[DeliveryReport] = []

    async def one(sender: AsyncioSender | TrioSender, marker: str) -> None:
        reports.append(await sender.send(message(["a@example.net", "later@example.net"], marker)))

    async def with_asyncio() -> None:
        async with AsyncioSender(relay=relay, options=OPTIONS, limits=limits) as sender:
            await asyncio.gather(*(one(sender, m) for m in markers[:100]))
            await sender.send_many([message(["a@example.net"], m) for m in markers[100:]])

    async def with_trio() -> None:
        async with TrioSender(relay=relay, options=OPTIONS, limits=limits) as sender:
            async with trio.open_nursery() as nursery:
                for marker in markers[:100]:
                    nursery.start_soon(one, sender, marker)
            await sender.send_many([message(["a@example.net"], m) for m in markers[100:]])

    if library == "asyncio":
        asyncio.run(with_asyncio())
    else:
        trio.run(with_trio)
    assert len(reports) == 100
    assert all(r.with_status("temporary") == ["later@example.net"] for r in reports)
    records = server.finish()
    assert 1 <= len(records) <= 2 and all(r.verbs[-1] == "QUIT" for r in records)
    assert sorted(_marker(m) for m in counted(server)) == sorted(markers)


@pytest.mark.parametrize("library", ["asyncio", "trio"])
def test_a_stale_connection_is_replaced_under_an_event_loop(library: str) -> None:
    with ScriptedServer({"NOOP": Fault.CLOSE}) as server:
        relay, limits = relay_to(server), SenderLimits(idle_check=0.0)
        sender_type = AsyncioSender if library == "asyncio" else TrioSender

        async def run() -> list[bool]:
            async with sender_type(relay=relay, options=OPTIONS, limits=limits) as sender:
                return [
                    (await sender.send(message([f"a{i}@example.net"]))).all_delivered
                    for i in range(2)
                ]

        delivered = asyncio.run(run()) if library == "asyncio" else trio.run(run)
        assert delivered == [True, True]
        assert [len(r.messages) for r in server.finish()] == [1, 1]
