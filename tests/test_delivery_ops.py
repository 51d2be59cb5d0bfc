"""Direct (MX) and relay delivery, driven against a fake network of emulated SMTP servers.

Checklist X10 (when to move to the next MX), with X2/X3/X5/X8/C21 seen from the delivery side,
the opportunistic/required TLS policy (RFC 7435, RFC 3207) and the relay path (AUTH, RFC 4954).

The fake network answers ``ResolveMX``/``ResolveAddresses`` from dicts of ``DNSAnswer`` and, for a
``Connect`` to an address, starts a :class:`FakeServer` that parses the client's command lines
out of the ``Send`` bytes and answers as its :class:`Behaviour` says.  No socket, no DNS server.
"""

from __future__ import annotations

import base64
import io
import json
import os
import random
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from smtpproto import (
    BodyReadError,
    ConnectError,
    DeliveryOptions,
    DeliveryReport,
    Relay,
    SendOptions,
    SessionOptions,
    SMTPTimeoutError,
    TLSError,
    TLSMode,
    TLSPolicy,
    driver,
)
from smtpproto._delivery.policy import DeliveryJob, deliver_domain, deliver_relay, group_by_domain
from smtpproto._delivery.report import RecipientOutcome
from smtpproto._operations.message import prepare_message
from smtpproto.driver import (
    Close,
    CloseBody,
    Connect,
    OpenBody,
    ReadBody,
    Receive,
    Request,
    ResolveAddresses,
    ResolveMX,
    ResolveTXT,
    RunConcurrently,
    Send,
    StartTLSHandshake,
)
from smtpproto.mx import DNSAnswer, DNSStatus, MXRecord

if TYPE_CHECKING:  # mypy knows adapters/ as "adapters" (package-dir mapping)
    from adapters.bodies import perform_body_request
else:
    from smtpproto.adapters.bodies import perform_body_request

T = TypeVar("T")

SENDER = "sender@origin.example"
BODY = b"Subject: hi\r\n\r\nHello.\r\n.leading dot\r\n"
OK_RCPT = "250 2.1.5 ok"


# -- the fake SMTP server ----------------------------------------------------------------------


@dataclass(frozen=True)
class Behaviour:
    """How one server address behaves.  Replies are whole lines, e.g. ``"451 4.3.0 later"``."""

    connect: str = "ok"  # "ok", "refuse", "timeout"
    silent: bool = False  # accepts the connection, never says a word
    greeting: str = "220 mx ESMTP"
    ehlo: str = "250"  # code only: "250" gives the keywords below
    keywords: tuple[str, ...] = ("8BITMIME",)
    tls_keywords: tuple[str, ...] | None = None  # after STARTTLS; default: keywords - STARTTLS
    starttls: str = "220 2.0.0 go ahead"
    tls_fails: bool = False
    credentials: tuple[str, str] = ("user", "secret")
    auth: str = "235 2.7.0 authenticated"
    mail: str = "250 2.1.0 ok"
    rcpt: dict[str, str] = field(default_factory=dict)  # recipient -> reply; default OK_RCPT
    data: str = "354 go ahead"
    final: str = "250 2.0.0 queued"
    drop_after_dot: bool = False


class FakeServer:
    """One connection to an emulated server: bytes in, reply lines out."""

    def __init__(self, address: str, behaviour: Behaviour) -> None:
        self.address = address
        self.b = behaviour
        self.out = bytearray((behaviour.greeting + "\r\n").encode())
        self.inbuf = b""
        self.commands: list[str] = []
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.tls = False
        self.awaiting_tls = False
        self.in_data = False
        self.dropped = False
        self.closed_by_client = False
        self.sender = ""
        self.accepted: list[str] = []
        self.body: list[bytes] = []

    def reply(self, *lines: str) -> None:
        for line in lines:
            self.out += (line + "\r\n").encode()

    def feed(self, data: bytes) -> None:
        assert not self.closed_by_client and not self.dropped, "data sent on a closed connection"
        self.inbuf += data
        while b"\r\n" in self.inbuf:
            line, _, self.inbuf = self.inbuf.partition(b"\r\n")
            if self.in_data:
                self._data_line(line)
            else:
                self._command(line.decode("utf-8"))

    def _data_line(self, line: bytes) -> None:
        if line != b".":
            self.body.append(line[1:] if line.startswith(b".") else line)
            return
        self.in_data = False
        if self.b.drop_after_dot:
            self.dropped = True
            return
        if self.b.final.startswith("2"):
            self.messages.append((self.sender, list(self.accepted), b"\r\n".join(self.body)))
        self.reply(self.b.final)

    def _ehlo_reply(self) -> None:
        if self.b.ehlo != "250":
            self.reply(self.b.ehlo + " no")
            return
        keywords = self.b.keywords
        if self.tls:
            keywords = self.b.tls_keywords or tuple(k for k in keywords if k != "STARTTLS")
        lines = ["mx.example", *keywords]
        self.reply(*[f"250-{t}" for t in lines[:-1]], f"250 {lines[-1]}")

    def _command(self, line: str) -> None:
        self.commands.append(line)
        verb = line.split(" ", 1)[0].upper()
        if verb in ("EHLO", "HELO"):
            self._ehlo_reply()
        elif verb == "STARTTLS":
            self.reply(self.b.starttls)
            self.awaiting_tls = self.b.starttls.startswith("220")
        elif verb == "AUTH":
            mechanism, initial = line.split(" ")[1:3]
            assert mechanism == "PLAIN"
            _, user, password = base64.b64decode(initial).decode().split("\0")
            good = (user, password) == self.b.credentials
            self.reply(self.b.auth if good else "535 5.7.8 bad credentials")
        elif verb == "MAIL":
            self.sender = line[len("MAIL FROM:<") :].split(">", maxsplit=1)[0]
            self.accepted = []
            self.reply(self.b.mail)
        elif verb == "RCPT":
            rcpt = line[len("RCPT TO:<") :].split(">", maxsplit=1)[0]
            answer = self.b.rcpt.get(rcpt, OK_RCPT)
            if answer.startswith("2"):
                self.accepted.append(rcpt)
            self.reply(answer)
        elif verb == "DATA":
            self.reply(self.b.data)
            self.in_data = self.b.data.startswith("354")
            self.body = []
        elif verb == "RSET":
            self.reply("250 2.0.0 reset")
        elif verb == "QUIT":
            self.reply("221 2.0.0 bye")
        else:
            self.reply("500 5.5.1 unknown command")


class FakeNetwork:
    """DNS from dicts; each ``Connect`` starts a :class:`FakeServer` for that address."""

    def __init__(
        self,
        *,
        mx: dict[str, DNSAnswer] | None = None,
        addresses: dict[str, DNSAnswer] | None = None,
        servers: dict[str, Behaviour] | None = None,
        txt: dict[str, DNSAnswer] | None = None,
    ) -> None:
        self.mx = mx or {}
        self.txt = txt or {}  # none: no MTA-STS record anywhere
        self.addresses = addresses or {}
        self.behaviours = servers or {}
        self.requests: list[Request] = []
        self.limits: list[int] = []  # of each RunConcurrently
        self.connections: list[FakeServer] = []
        self.current: FakeServer | None = None

    @property
    def connected(self) -> list[str]:
        """Every address a connection was opened to, in order."""
        return [s.address for s in self.connections]

    @property
    def messages(self) -> list[tuple[str, str, list[str]]]:
        """(address, sender, recipients) of each message a server took."""
        return [(s.address, m[0], m[1]) for s in self.connections for m in s.messages]

    def of(self, kind: type[T]) -> list[T]:
        return [r for r in self.requests if isinstance(r, kind)]

    def perform(self, request: Request) -> Any:
        if isinstance(request, (OpenBody, ReadBody, CloseBody)):
            return perform_body_request(request)  # a real file or stream, read for real
        if isinstance(request, RunConcurrently):  # one after the other: the order is the same
            self.limits.append(request.limit)
            return [drive(op, self) for op in request.operations]
        self.requests.append(request)
        if isinstance(request, ResolveMX):
            return self.mx[request.domain]
        if isinstance(request, ResolveAddresses):
            return self.addresses[request.host]
        if isinstance(request, ResolveTXT):
            return self.txt.get(request.name, DNSAnswer(DNSStatus.NXDOMAIN))
        if isinstance(request, Connect):
            return self._connect(request)
        server = self.current
        assert server is not None, f"{request!r} without a connection"
        if isinstance(request, Send):
            server.feed(request.data)
        elif isinstance(request, Receive):
            return self._receive(server, request)
        elif isinstance(request, StartTLSHandshake):
            assert server.awaiting_tls and not server.inbuf
            server.awaiting_tls = False
            if server.b.tls_fails:
                raise TLSError("certificate verify failed")
            server.tls = True
        else:
            assert isinstance(request, Close)
            server.closed_by_client = True
            self.current = None
        return None

    def _connect(self, request: Connect) -> None:
        assert self.current is None, "a connection was left open"
        behaviour = self.behaviours[request.host]
        if behaviour.connect == "refuse":
            raise ConnectError(request.host, request.port, "Connection refused")
        if behaviour.connect == "timeout":
            raise ConnectError(request.host, request.port, "timed out", timed_out=True)
        self.current = FakeServer(request.host, behaviour)
        self.connections.append(self.current)

    def _receive(self, server: FakeServer, request: Receive) -> bytes:
        if server.b.silent:
            raise SMTPTimeoutError(request.phase, request.timeout)
        if server.out:
            data = bytes(server.out)
            server.out.clear()
            return data
        assert server.dropped, "the client waits for a reply the server will never send"
        return b""


def drive(op: Generator[Request, Any, T], network: FakeNetwork) -> T:
    """Run ``op`` on the fake network, with the public driver loop."""
    return driver.drive(op, network.perform)


def mx_answer(*records: tuple[int, str]) -> DNSAnswer:
    return DNSAnswer(DNSStatus.OK, mx=tuple(MXRecord(p, h) for p, h in records))


def a(*addresses: str) -> DNSAnswer:
    return DNSAnswer(DNSStatus.OK, addresses=addresses)


def two_mx(first: Behaviour, second: Behaviour, domain: str = "example.com") -> FakeNetwork:
    return FakeNetwork(
        mx={domain: mx_answer((10, "mx1.example.com"), (20, "mx2.example.com"))},
        addresses={"mx1.example.com": a("192.0.2.1"), "mx2.example.com": a("192.0.2.2")},
        servers={"192.0.2.1": first, "192.0.2.2": second},
    )


def options(**kwargs: Any) -> DeliveryOptions:
    kwargs.setdefault("rng", random.Random(0))
    kwargs.setdefault("session", SessionOptions(local_hostname="client.origin.example"))
    return DeliveryOptions(**kwargs)


def deliver(
    network: FakeNetwork,
    recipients: list[str],
    *,
    body: Any = BODY,
    relay: Relay | None = None,
    opts: DeliveryOptions | None = None,
    sender: str = SENDER,
) -> DeliveryReport:
    job = DeliveryJob(body, sender, recipients, relay=relay, options=opts or options())
    report = drive(job.run(), network)
    assert network.current is None, "a connection was left open"
    return report


def statuses(report: DeliveryReport) -> dict[str, str]:
    return {o.recipient: o.status for o in report.outcomes}


# -- the driver itself -----------------------------------------------------------------------


def test_fake_server_delivers_and_unstuffs_the_body() -> None:
    network = two_mx(Behaviour(), Behaviour())
    report = deliver(network, ["u@example.com"])
    assert report.all_delivered
    assert network.messages == [("192.0.2.1", SENDER, ["u@example.com"])]
    assert network.connections[0].messages[0][2] == BODY.rstrip(b"\r\n")
    assert network.connections[0].commands[0] == "EHLO client.origin.example"
    assert network.connections[0].commands[-1] == "QUIT"
    outcome = report["u@example.com"]
    assert (outcome.server_host, outcome.server_address, outcome.reply and outcome.reply.code) == (
        "mx1.example.com",
        "192.0.2.1",
        250,
    )
    assert [r.domain for r in network.of(ResolveMX)] == ["example.com"]


# -- X10: moving on to the next MX -------------------------------------------------------------


def test_X10_dead_first_mx_then_the_second_delivers() -> None:
    network = two_mx(Behaviour(connect="refuse"), Behaviour())
    report = deliver(network, ["u@example.com"])
    outcome = report["u@example.com"]
    assert outcome.status == "delivered"
    assert outcome.server_address == "192.0.2.2"
    assert [(t.address, t.connect_failed, t.error is None) for t in outcome.attempts] == [
        ("192.0.2.1", True, False),
        ("192.0.2.2", False, True),
    ]
    assert "Connection refused" in (outcome.attempts[0].error or "")
    assert not report.port_25_blocked


def test_X10_C17_silent_first_mx_times_out_then_the_next() -> None:
    network = two_mx(Behaviour(silent=True), Behaviour())
    report = deliver(network, ["u@example.com"])
    assert report["u@example.com"].status == "delivered"
    assert network.connected == ["192.0.2.1", "192.0.2.2"]
    assert network.connections[0].closed_by_client
    first = report["u@example.com"].attempts[0]
    assert not first.connect_failed and "timed out" in (first.error or "")


@pytest.mark.parametrize(
    ("greeting", "commands"),
    [("421 4.3.2 busy", []), ("554 5.7.1 go away", ["QUIT"])],  # no EHLO after either (G2, G3)
)
def test_X10_G2_G3_refused_greeting_moves_to_the_next_mx(
    greeting: str, commands: list[str]
) -> None:
    network = two_mx(Behaviour(greeting=greeting), Behaviour())
    report = deliver(network, ["u@example.com"])
    assert report["u@example.com"].status == "delivered"
    assert network.connections[0].commands == commands
    assert network.connections[0].closed_by_client
    assert greeting.split(maxsplit=1)[0] in (report["u@example.com"].attempts[0].error or "")


@pytest.mark.parametrize("greeting", ["421 4.3.2 busy", "554 5.7.1 go away"])
def test_X10_refused_greeting_at_the_last_mx_defers(greeting: str) -> None:
    network = two_mx(Behaviour(greeting=greeting), Behaviour(greeting=greeting))
    report = deliver(network, ["u@example.com"])
    outcome = report["u@example.com"]
    assert outcome.status == "temporary"
    # The last server's refusal is the latest word, and names that server (issue 14).
    assert outcome.reply is not None and outcome.reply.code == int(greeting[:3])
    assert outcome.server_address == "192.0.2.2"
    assert len(outcome.attempts) == 2
    assert not report.port_25_blocked  # servers were reached


def test_X10_4xx_to_ehlo_moves_to_the_next_mx() -> None:
    network = two_mx(Behaviour(ehlo="421"), Behaviour())
    report = deliver(network, ["u@example.com"])
    assert report["u@example.com"].status == "delivered"
    assert report["u@example.com"].server_address == "192.0.2.2"


def test_X10_4xx_to_mail_moves_to_the_next_mx() -> None:
    network = two_mx(Behaviour(mail="451 4.3.0 try later"), Behaviour())
    report = deliver(network, ["u@example.com", "v@example.com"])
    assert statuses(report) == {"u@example.com": "delivered", "v@example.com": "delivered"}
    assert network.messages == [("192.0.2.2", SENDER, ["u@example.com", "v@example.com"])]
    assert "451" in (report["u@example.com"].attempts[0].error or "")


def test_X10_5xx_to_mail_is_permanent_and_no_other_mx_is_tried() -> None:
    network = two_mx(Behaviour(mail="550 5.7.1 sender rejected"), Behaviour())
    report = deliver(network, ["u@example.com", "v@example.com"])
    assert statuses(report) == {"u@example.com": "permanent", "v@example.com": "permanent"}
    assert network.connected == ["192.0.2.1"]
    outcome = report["v@example.com"]
    assert outcome.reply is not None and outcome.reply.code == 550
    assert (outcome.server_host, outcome.server_address) == ("mx1.example.com", "192.0.2.1")
    assert network.connections[0].commands[-2:] == ["RSET", "QUIT"]


def test_X10_C11_rcpt_5xx_is_final_for_that_recipient_4xx_is_retried_elsewhere() -> None:
    first = Behaviour(rcpt={"bad@example.com": "550 5.1.1 no such user", "busy@example.com": "450"})
    network = two_mx(first, Behaviour())
    report = deliver(network, ["ok@example.com", "bad@example.com", "busy@example.com"])
    assert statuses(report) == {
        "ok@example.com": "delivered",
        "bad@example.com": "permanent",
        "busy@example.com": "delivered",
    }
    # The first MX took "ok"; only the temporarily refused recipient went to the second.
    assert network.messages == [
        ("192.0.2.1", SENDER, ["ok@example.com"]),
        ("192.0.2.2", SENDER, ["busy@example.com"]),
    ]
    assert report["bad@example.com"].server_address == "192.0.2.1"
    assert report["busy@example.com"].server_address == "192.0.2.2"
    assert [o.recipient for o in report.outcomes] == [
        "ok@example.com",
        "bad@example.com",
        "busy@example.com",
    ]


def test_X10_every_recipient_refused_mixed_codes() -> None:
    first = Behaviour(rcpt={"bad@example.com": "550 5.1.1 no", "busy@example.com": "451 4.2.1"})
    network = two_mx(first, first)
    report = deliver(network, ["bad@example.com", "busy@example.com"])
    assert statuses(report) == {"bad@example.com": "permanent", "busy@example.com": "temporary"}
    assert network.connections[0].commands.count("RCPT TO:<bad@example.com>") == 1
    assert network.connections[1].commands.count("RCPT TO:<bad@example.com>") == 0
    busy = report["busy@example.com"]
    assert busy.reply is not None and busy.reply.code == 451
    # Not settled, but the reply came from a server, and the outcome names it (issue 14).
    assert (busy.server_host, busy.server_address) == ("mx2.example.com", "192.0.2.2")


def test_X10_every_recipient_refused_for_good_stops_at_the_first_mx() -> None:
    first = Behaviour(rcpt={"bad@example.com": "550 5.1.1 no"})
    network = two_mx(first, Behaviour())
    report = deliver(network, ["bad@example.com"])
    assert statuses(report) == {"bad@example.com": "permanent"}
    assert network.connected == ["192.0.2.1"]


def test_X10_an_address_given_twice_and_refused_for_good_is_settled_once() -> None:
    first = Behaviour(rcpt={"bad@example.com": "550 5.1.1 no"})
    network = two_mx(first, Behaviour())
    report = deliver(network, ["bad@example.com", "bad@example.com"])
    assert [o.status for o in report.outcomes] == ["permanent", "permanent"]
    assert network.connected == ["192.0.2.1"]  # a 5xx is final: no second MX (X10)


TOO_MANY = "452 4.5.3 too many recipients"


def test_C10_C12_recipient_delivered_before_a_452_is_never_sent_again() -> None:
    network = two_mx(Behaviour(rcpt={"t@example.com": TOO_MANY}), Behaviour())
    report = deliver(network, ["u@example.com", "t@example.com"])
    assert network.messages == [
        ("192.0.2.1", SENDER, ["u@example.com"]),
        ("192.0.2.2", SENDER, ["t@example.com"]),
    ]
    assert report["u@example.com"].server_address == "192.0.2.1"


def test_C10_C11_relay_reports_the_first_transaction_after_a_452() -> None:
    rcpt = {"bad@example.org": "550 5.1.1 unknown", "t@x.example": TOO_MANY}
    network = relay_network(replace(TLS_RELAY, rcpt=rcpt))
    relay = Relay("smtp.provider.example", username="user", password="secret")
    report = deliver(network, ["u@example.com", "bad@example.org", "t@x.example"], relay=relay)
    assert statuses(report) == {
        "u@example.com": "delivered",
        "bad@example.org": "permanent",
        "t@x.example": "temporary",
    }


def test_X10_C12_4xx_at_end_of_data_moves_to_the_next_mx() -> None:
    network = two_mx(Behaviour(final="451 4.3.0 queue full"), Behaviour())
    report = deliver(network, ["u@example.com"])
    assert report["u@example.com"].status == "delivered"
    assert network.connected == ["192.0.2.1", "192.0.2.2"]


def test_X10_5xx_at_end_of_data_is_permanent() -> None:
    network = two_mx(Behaviour(final="554 5.6.0 content rejected"), Behaviour())
    report = deliver(network, ["u@example.com"])
    outcome = report["u@example.com"]
    assert outcome.status == "permanent"
    assert outcome.reply is not None and outcome.reply.code == 554
    assert network.connected == ["192.0.2.1"]


def test_X10_5xx_to_data_is_permanent() -> None:
    network = two_mx(Behaviour(data="554 5.5.1 no valid recipients"), Behaviour())
    report = deliver(network, ["u@example.com"])
    assert report["u@example.com"].status == "permanent"
    assert network.connected == ["192.0.2.1"]


def test_X10_C16_connection_dropped_after_the_dot_is_temporary() -> None:
    network = FakeNetwork(
        mx={"example.com": mx_answer((10, "mx1.example.com"))},
        addresses={"mx1.example.com": a("192.0.2.1")},
        servers={"192.0.2.1": Behaviour(drop_after_dot=True)},
    )
    report = deliver(network, ["u@example.com"])
    outcome = report["u@example.com"]
    assert outcome.status == "temporary"
    assert "connection lost" in outcome.detail
    assert network.messages == []
    assert network.connections[0].closed_by_client
    assert "QUIT" not in network.connections[0].commands


def test_X10_C16_connection_dropped_after_the_dot_moves_to_the_next_mx() -> None:
    network = two_mx(Behaviour(drop_after_dot=True), Behaviour())
    report = deliver(network, ["u@example.com"])
    assert report["u@example.com"].status == "delivered"
    assert report["u@example.com"].server_address == "192.0.2.2"


def test_X5_session_limit_stops_after_two_sessions_past_ehlo() -> None:
    busy = Behaviour(mail="451 4.3.0 later")
    network = FakeNetwork(
        mx={"example.com": mx_answer((10, "a"), (20, "b"), (30, "c"), (40, "d"))},
        addresses={h: a(f"192.0.2.{i}") for i, h in enumerate("abcd", start=1)},
        servers={
            "192.0.2.1": Behaviour(connect="refuse"),  # never got past EHLO: not counted
            "192.0.2.2": busy,
            "192.0.2.3": busy,
            "192.0.2.4": Behaviour(),
        },
    )
    report = deliver(network, ["u@example.com"])
    assert network.connected == ["192.0.2.2", "192.0.2.3"]
    assert report["u@example.com"].status == "temporary"
    assert len(report["u@example.com"].attempts) == 3
    network2 = FakeNetwork(mx=network.mx, addresses=network.addresses, servers=network.behaviours)
    report2 = deliver(network2, ["u@example.com"], opts=options(session_limit=3))
    assert report2["u@example.com"].status == "delivered"


def test_X5_zero_session_limit_tries_nothing() -> None:
    network = two_mx(Behaviour(), Behaviour())
    report = deliver(network, ["u@example.com"], opts=options(session_limit=0))
    outcome = report["u@example.com"]
    assert outcome.status == "temporary"
    assert outcome.detail == "no mail server could be reached"
    assert outcome.attempts == ()
    assert network.connections == []
    assert not report.port_25_blocked


def test_X5_X9_address_limit_and_family_from_the_options() -> None:
    network = FakeNetwork(
        mx={"example.com": mx_answer((10, "mx1"), (20, "mx2"))},
        addresses={"mx1": a("192.0.2.1", "2001:db8::1"), "mx2": a("192.0.2.2")},
        servers={
            "2001:db8::1": Behaviour(connect="refuse"),
            "192.0.2.1": Behaviour(connect="refuse"),
            "192.0.2.2": Behaviour(),
        },
    )
    report = deliver(
        network, ["u@example.com"], opts=options(prefer_family="ipv6", address_limit=2)
    )
    assert [c.host for c in network.of(Connect)] == ["2001:db8::1", "192.0.2.1"]
    assert report["u@example.com"].status == "temporary"


def test_X7_local_names_from_the_options() -> None:
    network = two_mx(Behaviour(), Behaviour())
    report = deliver(
        network, ["u@example.com"], opts=options(local_names=frozenset({"mx1.example.com"}))
    )
    outcome = report["u@example.com"]
    assert outcome.status == "permanent"
    assert outcome.reply is not None and outcome.reply.code == 554
    assert network.connections == []


# -- planning through the delivery operation (X1-X3, X8, C21) ---------------------------------


def test_X1_X3_idn_domain_resolved_as_a_label_with_implicit_mx() -> None:
    network = FakeNetwork(
        mx={"xn--bcher-kva.example": DNSAnswer(DNSStatus.NODATA)},
        addresses={"xn--bcher-kva.example": a("192.0.2.5")},
        servers={"192.0.2.5": Behaviour(keywords=("SMTPUTF8",))},
    )
    report = deliver(network, ["u@Bücher.example"], sender="s@origin.example")
    assert report["u@Bücher.example"].status == "delivered"
    assert network.of(ResolveMX) == [ResolveMX("xn--bcher-kva.example")]
    assert network.of(ResolveAddresses) == [ResolveAddresses("xn--bcher-kva.example")]
    assert network.of(Connect)[0].server_hostname == "xn--bcher-kva.example"


def test_X6_each_mx_target_is_resolved_once_null_targets_never() -> None:
    network = FakeNetwork(
        mx={"example.com": mx_answer((0, "."), (10, "MX.example.com."), (20, "mx.example.com"))},
        addresses={"mx.example.com": a("192.0.2.1")},
        servers={"192.0.2.1": Behaviour(connect="refuse")},
    )
    deliver(network, ["u@example.com"])
    assert network.of(ResolveAddresses) == [ResolveAddresses("mx.example.com")]


@pytest.mark.parametrize(
    ("answer", "code", "status"),
    [
        (DNSAnswer(DNSStatus.NXDOMAIN), 550, "permanent"),
        (DNSAnswer(DNSStatus.SERVFAIL), 451, "temporary"),
        (DNSAnswer(DNSStatus.TIMEOUT), 451, "temporary"),
        (mx_answer((0, ".")), 556, "permanent"),
    ],
)
def test_X2_X8_dns_failures_and_null_mx_connect_nowhere(
    answer: DNSAnswer, code: int, status: str
) -> None:
    network = FakeNetwork(mx={"example.com": answer})
    report = deliver(network, ["u@example.com", "v@example.com"])
    assert set(statuses(report).values()) == {status}
    for outcome in report.outcomes:
        assert outcome.reply is not None and outcome.reply.code == code
        assert outcome.reply.text == f"{outcome.reply.text.split()[0]} {outcome.detail}"
        assert outcome.reply.text[0] == str(code)[0]  # carries the enhanced status
        assert outcome.attempts == ()
    assert network.of(ResolveAddresses) == []  # no fallback to A/AAAA (X2)
    assert network.connections == []
    assert not report.port_25_blocked


@pytest.mark.parametrize(
    ("network", "status"),
    [
        (FakeNetwork(mx={"example.com": mx_answer((0, "."))}), "5.1.10"),
        (two_mx(Behaviour(keywords=("SIZE 10",)), Behaviour()), "5.3.4"),
    ],
)
def test_X8_C9_synthesized_replies_carry_their_enhanced_status(
    network: FakeNetwork, status: str
) -> None:
    report = deliver(network, ["u@example.com"])
    assert report["u@example.com"].to_dict()["reply"]["enhanced_status"] == status


def test_C21_address_literal_is_connected_to_without_dns() -> None:
    network = FakeNetwork(servers={"192.0.2.7": Behaviour(keywords=("STARTTLS",))})
    report = deliver(network, ["u@[192.0.2.7]"])
    outcome = report["u@[192.0.2.7]"]
    assert outcome.status == "delivered"
    assert (outcome.server_host, outcome.server_address) == ("[192.0.2.7]", "192.0.2.7")
    assert network.of(ResolveMX) == [] and network.of(ResolveAddresses) == []
    # No name to check a certificate against: the address is the reference identity.
    assert network.of(Connect)[0].server_hostname == "192.0.2.7"
    assert network.of(StartTLSHandshake)[0].server_hostname == "192.0.2.7"


# -- TLS policy --------------------------------------------------------------------------------


def test_opportunistic_starttls_is_unverified_and_labelled_so() -> None:
    network = two_mx(Behaviour(keywords=("STARTTLS", "8BITMIME")), Behaviour())
    report = deliver(network, ["u@example.com"])
    outcome = report["u@example.com"]
    assert outcome.status == "delivered"
    assert (outcome.tls, outcome.tls_verified) == (True, False)
    assert network.of(StartTLSHandshake) == [
        StartTLSHandshake("mx1.example.com", network.of(StartTLSHandshake)[0].timeout, False)
    ]
    assert network.of(Connect)[0].verify is False
    assert outcome.attempts[0].tls and not outcome.attempts[0].tls_verified
    assert "TLS (unverified)" in str(report)


def test_opportunistic_without_starttls_stays_in_cleartext() -> None:
    network = two_mx(Behaviour(), Behaviour())
    outcome = deliver(network, ["u@example.com"])["u@example.com"]
    assert (outcome.status, outcome.tls) == ("delivered", False)
    assert network.of(StartTLSHandshake) == []


def test_opportunistic_handshake_failure_retries_the_same_address_in_cleartext() -> None:
    network = two_mx(Behaviour(keywords=("STARTTLS",), tls_fails=True), Behaviour())
    report = deliver(network, ["u@example.com"])
    outcome = report["u@example.com"]
    assert outcome.status == "delivered"
    assert (outcome.server_address, outcome.tls) == ("192.0.2.1", False)
    assert network.connected == ["192.0.2.1", "192.0.2.1"]
    assert "STARTTLS" in network.connections[0].commands
    assert "STARTTLS" not in network.connections[1].commands
    assert network.connections[0].closed_by_client


def test_S3_required_domain_verifies_and_is_labelled_verified() -> None:
    policy = TLSPolicy(required_domains=frozenset({"Example.COM"}))
    network = two_mx(Behaviour(keywords=("STARTTLS",)), Behaviour())
    outcome = deliver(network, ["u@example.com"], opts=options(tls_policy=policy))["u@example.com"]
    assert outcome.status == "delivered"
    assert (outcome.tls, outcome.tls_verified) == (True, True)
    assert network.of(Connect)[0].verify is True
    assert network.of(StartTLSHandshake)[0].verify is True


def test_S3_required_domain_skips_a_server_without_starttls() -> None:
    policy = TLSPolicy(required_domains=frozenset({"example.com"}))
    network = two_mx(Behaviour(), Behaviour(keywords=("STARTTLS",)))
    report = deliver(network, ["u@example.com"], opts=options(tls_policy=policy))
    outcome = report["u@example.com"]
    assert (outcome.status, outcome.server_address, outcome.tls_verified) == (
        "delivered",
        "192.0.2.2",
        True,
    )
    assert "MAIL" not in " ".join(network.connections[0].commands)
    assert "TLS is required" in (outcome.attempts[0].error or "")


def test_S3_required_domain_without_any_tls_server_is_temporary() -> None:
    policy = TLSPolicy(required_domains=frozenset({"example.com"}))
    network = two_mx(Behaviour(), Behaviour(keywords=("STARTTLS",), tls_fails=True))
    report = deliver(network, ["u@example.com"], opts=options(tls_policy=policy))
    assert report["u@example.com"].status == "temporary"
    # A failed handshake under a required policy is not retried in cleartext.
    assert network.connected == ["192.0.2.1", "192.0.2.2"]
    assert network.messages == []


def test_S3_required_policy_covers_every_spelling_of_the_domain() -> None:
    policy = TLSPolicy(required_domains=frozenset({"xn--bcher-kva.example"}))
    assert policy.mode_for("bücher.example") == (TLSMode.STARTTLS, True)


# -- whole-delivery failures -------------------------------------------------------------------


def test_port_25_blocked_when_every_host_of_every_domain_refuses() -> None:
    network = FakeNetwork(
        mx={
            "example.com": mx_answer((10, "mx1.example.com"), (20, "mx2.example.com")),
            "example.org": DNSAnswer(DNSStatus.NODATA),
        },
        addresses={
            "mx1.example.com": a("192.0.2.1"),
            "mx2.example.com": a("192.0.2.2"),
            "example.org": a("198.51.100.1"),
        },
        servers={
            "192.0.2.1": Behaviour(connect="refuse"),
            "192.0.2.2": Behaviour(connect="timeout"),
            "198.51.100.1": Behaviour(connect="refuse"),
        },
    )
    report = deliver(network, ["u@example.com", "v@example.org"])
    assert set(statuses(report).values()) == {"temporary"}
    assert report.port_25_blocked
    assert report.diagnosis is not None
    assert "relay" in report.diagnosis and "port 25" in report.diagnosis
    assert report["u@example.com"].detail == "no mail server could be reached"
    assert report.diagnosis in str(report)
    assert report.to_dict()["port_25_blocked"] is True


def test_C9_message_too_large_is_permanent_5_3_4_for_all() -> None:
    network = two_mx(Behaviour(keywords=("SIZE 10",)), Behaviour())
    report = deliver(network, ["u@example.com", "v@example.com"])
    assert statuses(report) == {"u@example.com": "permanent", "v@example.com": "permanent"}
    reply = report["v@example.com"].reply
    assert reply is not None and reply.code == 552 and reply.text.startswith("5.3.4 ")
    assert network.connected == ["192.0.2.1"]
    assert "MAIL" not in " ".join(network.connections[0].commands)  # nothing was sent
    assert network.connections[0].commands[-1] == "QUIT"


def test_C8_non_ascii_address_without_smtputf8_anywhere_is_permanent() -> None:
    network = two_mx(Behaviour(), Behaviour())
    report = deliver(network, ["jösé@example.com"])
    outcome = report["jösé@example.com"]
    assert outcome.status == "permanent"
    assert "SMTPUTF8" in outcome.detail
    assert [t.encoding_error for t in outcome.attempts] == [True, True]
    assert network.messages == []


def test_C8_non_ascii_address_is_temporary_while_a_host_was_unreachable() -> None:
    network = two_mx(Behaviour(), Behaviour(connect="refuse"))
    outcome = deliver(network, ["jösé@example.com"])["jösé@example.com"]
    assert outcome.status == "temporary"


def test_C8_non_ascii_address_goes_to_the_mx_with_smtputf8() -> None:
    network = two_mx(Behaviour(), Behaviour(keywords=("SMTPUTF8", "8BITMIME")))
    outcome = deliver(network, ["jösé@example.com"])["jösé@example.com"]
    assert (outcome.status, outcome.server_address) == ("delivered", "192.0.2.2")


def test_send_options_reach_the_transaction() -> None:
    network = two_mx(Behaviour(keywords=("DSN",)), Behaviour())
    send = SendOptions(envid="abc", ret="HDRS")
    deliver(network, ["u@example.com"], opts=options(send=send))
    mail = next(c for c in network.connections[0].commands if c.startswith("MAIL"))
    assert "ENVID=abc" in mail and "RET=HDRS" in mail


@pytest.mark.parametrize(
    ("send_options", "error"),
    [({"ret": "BOGUS"}, ValueError), ({"notfy": ["FAILURE"]}, TypeError)],
)
def test_bad_send_options_are_refused_when_made(
    send_options: dict[str, Any], error: type[Exception]
) -> None:
    # Not per domain, after DNS and a connection: before anything happens at all.
    with pytest.raises(error):
        SendOptions(**send_options)


# -- relay -------------------------------------------------------------------------------------

TLS_RELAY = Behaviour(keywords=("STARTTLS",), tls_keywords=("AUTH PLAIN LOGIN",))


def relay_network(behaviour: Behaviour) -> FakeNetwork:
    return FakeNetwork(servers={"smtp.provider.example": behaviour})


def test_relay_authenticates_with_plain_over_tls_and_reports_per_recipient() -> None:
    rcpt = {"bad@example.org": "550 5.1.1 unknown", "t@x.example": "450 4.2.1 mailbox busy"}
    server = replace(TLS_RELAY, rcpt=rcpt)
    network = relay_network(server)
    relay = Relay("smtp.provider.example", username="user", password="secret")
    report = deliver(network, ["u@example.com", "bad@example.org", "t@x.example"], relay=relay)
    assert statuses(report) == {
        "u@example.com": "delivered",
        "bad@example.org": "permanent",
        "t@x.example": "temporary",
    }
    assert network.of(Connect)[0].port == 587
    commands = network.connections[0].commands
    assert [c.split(" ")[0] for c in commands[:4]] == ["EHLO", "STARTTLS", "EHLO", "AUTH"]
    assert commands[3].startswith("AUTH PLAIN ")
    assert network.messages == [("smtp.provider.example", SENDER, ["u@example.com"])]
    delivered = report["u@example.com"]
    assert (delivered.server_host, delivered.tls, delivered.tls_verified) == (
        "smtp.provider.example",
        True,
        True,
    )
    assert not report.port_25_blocked and report.relay
    assert len(report.outcomes) == 3


def test_relay_auth_failure_535_is_permanent() -> None:
    network = relay_network(TLS_RELAY)
    relay = Relay("smtp.provider.example", 2525, username="user", password="wrong")
    report = deliver(network, ["u@example.com", "v@example.org"], relay=relay)
    assert statuses(report) == {"u@example.com": "permanent", "v@example.org": "permanent"}
    outcome = report["u@example.com"]
    assert outcome.reply is not None and outcome.reply.code == 535
    assert network.of(Connect)[0].port == 2525
    assert network.connections[0].commands[-1] == "QUIT"
    assert "MAIL" not in " ".join(network.connections[0].commands)


def test_relay_temporary_auth_failure_is_temporary() -> None:
    network = relay_network(replace(TLS_RELAY, auth="454 4.7.0 try later"))
    relay = Relay("smtp.provider.example", username="user", password="secret")
    assert deliver(network, ["u@example.com"], relay=relay)["u@example.com"].status == "temporary"


def test_relay_connect_refused_is_temporary_and_not_a_port_25_problem() -> None:
    network = relay_network(Behaviour(connect="refuse"))
    relay = Relay("smtp.provider.example", tls=TLSMode.IMPLICIT, username="u", password="p")
    report = deliver(network, ["u@example.com"], relay=relay)
    outcome = report["u@example.com"]
    assert outcome.status == "temporary"
    assert outcome.attempts[0].connect_failed
    assert network.of(Connect)[0].port == 465 and network.of(Connect)[0].implicit_tls
    assert not report.port_25_blocked
    assert report.diagnosis is None


def test_relay_without_credentials_sends_without_auth() -> None:
    network = relay_network(Behaviour(keywords=("STARTTLS",)))
    relay = Relay("smtp.provider.example")
    report = deliver(network, ["u@example.com"], relay=relay)
    assert report.all_delivered
    assert not any(c.startswith("AUTH") for c in network.connections[0].commands)


def test_relay_5xx_to_mail_is_permanent() -> None:
    network = relay_network(replace(TLS_RELAY, mail="553 5.7.1 not your address"))
    relay = Relay("smtp.provider.example", username="user", password="secret")
    outcome = deliver(network, ["u@example.com"], relay=relay)["u@example.com"]
    assert outcome.status == "permanent"
    assert outcome.reply is not None and outcome.reply.code == 553


def test_relay_4xx_at_end_of_data_is_temporary() -> None:
    network = relay_network(replace(TLS_RELAY, final="451 4.3.0 later"))
    relay = Relay("smtp.provider.example", username="user", password="secret")
    outcome = deliver(network, ["u@example.com"], relay=relay)["u@example.com"]
    assert outcome.status == "temporary"
    assert outcome.reply is not None and outcome.reply.code == 451


def test_relay_operation_directly() -> None:
    network = relay_network(TLS_RELAY)
    message = prepare_message(BODY, SENDER, ["a@example.com", "b@example.com"])
    relay = Relay("smtp.provider.example", 587, username="user", password="secret")
    outcomes = drive(deliver_relay(message, relay, options()), network)
    assert [o.status for o in outcomes] == ["delivered", "delivered"]


# -- DeliveryJob ---------------------------------------------------------------------------------


def test_job_groups_recipients_by_domain_case_insensitively() -> None:
    job = DeliveryJob(
        BODY,
        SENDER,
        ["a@Example.com", "b@example.org", "c@EXAMPLE.COM"],
        relay=None,
        options=options(),
    )
    assert job.groups == {
        "example.com": ["a@Example.com", "c@EXAMPLE.COM"],
        "example.org": ["b@example.org"],
    }
    assert len(job.operations()) == 2
    assert job.parallelism(8) == 2  # one operation per domain, both at once
    assert job.parallelism(1) == 1


def test_job_report_follows_the_recipients_order() -> None:
    network = FakeNetwork(
        mx={"example.com": DNSAnswer(DNSStatus.NODATA), "example.org": DNSAnswer(DNSStatus.NODATA)},
        addresses={"example.com": a("192.0.2.1"), "example.org": a("192.0.2.2")},
        servers={"192.0.2.1": Behaviour(), "192.0.2.2": Behaviour(connect="refuse")},
    )
    recipients = ["a@example.com", "b@example.org", "c@Example.com"]
    report = deliver(network, recipients)
    assert [o.recipient for o in report.outcomes] == recipients
    assert statuses(report) == {
        "a@example.com": "delivered",
        "b@example.org": "temporary",
        "c@Example.com": "delivered",
    }
    # One transaction for both recipients of the same domain.
    assert network.messages == [("192.0.2.1", SENDER, ["a@example.com", "c@Example.com"])]
    assert report.port == 25 and not report.relay


def test_job_with_a_relay_has_one_operation_and_no_groups() -> None:
    job = DeliveryJob(
        BODY, SENDER, ["a@x.example", "b@y.example"], relay=Relay("r.example"), options=options()
    )
    assert job.groups == {}
    assert len(job.operations()) == 1


def test_job_refuses_a_stream_body() -> None:
    def chunks() -> Iterator[bytes]:
        yield b"Subject: x\r\n\r\nbody\r\n"

    with pytest.raises(ValueError, match="stream"):
        DeliveryJob(chunks(), SENDER, ["a@example.com"], relay=None, options=options())


def test_job_with_a_file_object_is_not_concurrent() -> None:
    job = DeliveryJob(io.BytesIO(BODY), SENDER, ["a@example.com"], relay=None, options=options())
    assert job.parallelism(8) == 1  # one file position: one operation at a time
    # The file is read again for each MX tried (its start offset is remembered).
    network = two_mx(Behaviour(final="451 4.3.0 later"), Behaviour())
    drive(job.prepare(), network)
    report = job.report([drive(op, network) for op in job.operations()])
    assert report.all_delivered
    assert [m[2] for s in network.connections for m in s.messages] == [BODY.rstrip(b"\r\n")]


def test_whole_delivery_runs_domains_concurrently_within_the_limit() -> None:
    network = FakeNetwork(
        mx={d: mx_answer((10, f"mx.{d}")) for d in ("a.example", "b.example")},
        addresses={"mx.a.example": a("192.0.2.1"), "mx.b.example": a("192.0.2.2")},
        servers={"192.0.2.1": Behaviour(), "192.0.2.2": Behaviour()},
    )
    report = deliver(network, ["x@a.example", "y@b.example"])
    assert report.all_delivered
    assert network.limits == [2]  # two domains: no more at once than there is work


def test_deliver_refuses_a_pipe_before_connecting() -> None:
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "wb") as writer:
        writer.write(BODY)
    network = two_mx(Behaviour(), Behaviour())
    with os.fdopen(read_end, "rb") as pipe, pytest.raises(ValueError, match="not a stream"):
        deliver(network, ["u@example.com"], body=pipe)
    assert network.requests == []


def test_deliver_of_a_missing_file_fails_before_connecting(tmp_path: Path) -> None:
    network = two_mx(Behaviour(), Behaviour())
    with pytest.raises(BodyReadError, match="cannot read the message body"):
        deliver(network, ["u@example.com"], body=tmp_path / "missing.eml")
    assert network.requests == []


def test_deliver_reads_a_path_for_each_attempt(tmp_path: Path) -> None:
    path = tmp_path / "m.eml"
    path.write_bytes(BODY)
    network = two_mx(Behaviour(final="451 4.3.0 later"), Behaviour())
    assert deliver(network, ["u@example.com"], body=path).all_delivered
    assert len(network.connections) == 2


def test_job_rejects_a_recipient_without_domain() -> None:
    with pytest.raises(ValueError, match="no domain"):
        DeliveryJob(BODY, SENDER, ["postmaster"], relay=None, options=options())
    with pytest.raises(ValueError, match="no domain"):
        group_by_domain(["user@"])


def test_deliver_domain_operation_directly() -> None:
    network = two_mx(Behaviour(), Behaviour())
    message = prepare_message(BODY, SENDER, ["u@example.com"])
    outcomes = drive(deliver_domain("example.com", ["u@example.com"], message, options()), network)
    assert outcomes == [
        RecipientOutcome(
            "u@example.com",
            "delivered",
            outcomes[0].reply,
            "2.0.0 queued",
            "mx1.example.com",
            "192.0.2.1",
            attempts=outcomes[0].attempts,
        )
    ]
    assert json.dumps(outcomes[0].to_dict())


def test_delivery_options_defaults_follow_postfix() -> None:
    opts = DeliveryOptions()
    assert (opts.port, opts.address_limit, opts.session_limit) == (25, 5, 2)
    assert opts.tls_policy.mode_for("example.com") == (TLSMode.OPPORTUNISTIC, False)
    assert opts.new_session().options.timeouts.connect == 30.0
    assert opts.concurrency == 8
