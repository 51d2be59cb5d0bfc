"""Properties of the protocol machine that must hold for every state and every input."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smtpproto import (
    NEED_DATA,
    PAUSED,
    Auth,
    AuthResponse,
    Bdat,
    ClientConnection,
    Command,
    ConnectionClosed,
    Data,
    Ehlo,
    EndOfMessage,
    Helo,
    Lhlo,
    LocalProtocolError,
    MailFrom,
    MessageData,
    Noop,
    ProtocolError,
    Quit,
    RcptTo,
    RemoteProtocolError,
    Reply,
    Rset,
    StartTLS,
    State,
    UnexpectedReplyCode,
    Vrfy,
)
from smtpproto._machine.state import (
    LMTP_REPLY_TRANSITIONS,
    REPLY_TRANSITIONS,
    SEND_TRANSITIONS,
    TRIGGER_TRANSITIONS,
    CommandKind,
    Trigger,
    kind_of,
)

from .test_connection import EHLO_ALL, GREETING

if TYPE_CHECKING:  # mypy knows testing/ as "testing" (package-dir mapping)
    from testing import strategies as kit
else:
    from smtpproto.testing import strategies as kit

K = CommandKind
SAMPLE_COMMANDS: dict[CommandKind, Callable[[], Command]] = {
    K.EHLO: Ehlo,
    K.HELO: Helo,
    K.LHLO: Lhlo,
    K.STARTTLS: StartTLS,
    K.AUTH: lambda: Auth("PLAIN", b"\0u\0p"),
    K.AUTH_RESPONSE: lambda: AuthResponse(b"x"),
    K.MAIL: lambda: MailFrom("a@example.org"),
    K.RCPT: lambda: RcptTo("b@example.net"),
    K.DATA: Data,
    K.MESSAGE_DATA: lambda: MessageData(b"x\r\n"),
    K.END_OF_MESSAGE: EndOfMessage,
    K.BDAT: lambda: Bdat(b"x\r\n"),
    K.BDAT_LAST: lambda: Bdat(b"x\r\n", last=True),
    K.RSET: Rset,
    K.NOOP: Noop,
    K.VRFY: lambda: Vrfy("postmaster"),
    K.QUIT: Quit,
}


def _feed(conn: ClientConnection, data: bytes) -> None:
    conn.receive_data(data)
    while conn.next_event() not in (NEED_DATA, PAUSED):
        pass


class Build(Protocol):
    def __call__(self, lmtp: bool = False) -> ClientConnection: ...


def _new(lmtp: bool = False) -> ClientConnection:
    return ClientConnection(local_hostname="client.example.org", lmtp=lmtp)


def _connected(lmtp: bool = False) -> ClientConnection:
    conn = _new(lmtp)
    _feed(conn, GREETING)
    return conn


def _hello(lmtp: bool) -> Command:
    return Lhlo() if lmtp else Ehlo()


def _ready(lmtp: bool = False) -> ClientConnection:
    conn = _connected(lmtp)
    conn.send(_hello(lmtp))
    _feed(conn, EHLO_ALL)
    return conn


def _after(*steps: Command | bytes, start: Build = _ready) -> Build:
    def build(lmtp: bool = False) -> ClientConnection:
        conn = start(lmtp)
        for step in steps:
            if isinstance(step, bytes):
                _feed(conn, step)
            else:
                conn.send(_hello(lmtp) if isinstance(step, Ehlo) else step)
        return conn

    return build


def _error(lmtp: bool = False) -> ClientConnection:
    conn = _ready(lmtp)
    conn.receive_data(b"250 nobody asked\r\n")
    with pytest.raises(RemoteProtocolError):
        conn.next_event()
    return conn


def _closed(lmtp: bool = False) -> ClientConnection:
    conn = _ready(lmtp)
    conn.receive_data(b"")
    assert isinstance(conn.next_event(), ConnectionClosed)
    return conn


def _refused(lmtp: bool = False) -> ClientConnection:
    conn = _new(lmtp)
    _feed(conn, b"554 no\r\n")
    return conn


_MAIL, _RCPT = MailFrom("a@example.org"), RcptTo("b@example.net")
REACH: dict[State, Build] = {
    State.GREETING: _new,
    State.REFUSED: _refused,
    State.CONNECTED: _connected,
    State.HELLO: _after(Ehlo(), start=_connected),
    State.READY: _ready,
    State.STARTTLS: _after(StartTLS()),
    State.TLS_PAUSED: _after(StartTLS(), b"220 go\r\n"),
    State.AUTH: _after(Auth("LOGIN")),
    State.AUTH_CHALLENGE: _after(Auth("LOGIN"), b"334 VXNlcm5hbWU6\r\n"),
    State.MAIL: _after(_MAIL),
    State.RCPT: _after(_MAIL, _RCPT),
    State.DATA: _after(_MAIL, _RCPT, Data()),
    State.MESSAGE: _after(_MAIL, _RCPT, Data(), b"250 ok\r\n250 ok\r\n354 go\r\n"),
    State.BDAT: _after(_MAIL, _RCPT, Bdat(b"x\r\n")),
    State.BDAT_FAILED: _after(_MAIL, _RCPT, Bdat(b"x\r\n"), b"250 ok\r\n250 ok\r\n554 no\r\n"),
    State.QUIT: _after(Quit()),
    State.CLOSED: _closed,
    State.ERROR: _error,
}


@pytest.mark.parametrize("lmtp", [False, True])
def test_every_state_is_reached(lmtp: bool) -> None:
    for state, build in REACH.items():
        assert build(lmtp).state is state


def test_every_command_kind_is_sampled_and_named_by_its_class() -> None:
    kinds = set(CommandKind) - {K.GREETING}
    assert set(SAMPLE_COMMANDS) == kinds
    assert all(kind_of(make()) is kind for kind, make in SAMPLE_COMMANDS.items())


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("kind", list(SAMPLE_COMMANDS))
def test_transition_table_is_total(state: State, kind: CommandKind) -> None:
    """Every state x every command either follows the table or raises LocalProtocolError."""
    conn = REACH[state]()
    event = SAMPLE_COMMANDS[kind]()
    expected = SEND_TRANSITIONS.get((state, kind))
    if expected is None:
        with pytest.raises(LocalProtocolError):
            conn.send(event)
        assert conn.state is State.ERROR
        return
    try:
        wire = conn.send(event)
    except LocalProtocolError:
        # Allowed by the table but refused by a guard: pipelining, or a rule of the command.
        assert conn.state is State.ERROR
    else:
        assert isinstance(wire, bytes)
        assert conn.state is expected


@pytest.mark.parametrize("state", [s for s in State if s not in (State.CLOSED, State.ERROR)])
@pytest.mark.parametrize("lmtp", [False, True])
def test_R5_an_unexpected_code_in_any_state_leaves_quit_possible(state: State, lmtp: bool) -> None:
    """R5 and C14: after a 651 the machine is in step, and once the replies due are in, RSET
    (in a session) and QUIT can still be sent.  With nothing to answer, it is out of step."""
    conn = REACH[state](lmtp)
    conn.receive_data(b"651 what\r\n")
    answering = conn.pending or conn.state is State.GREETING
    if state is State.TLS_PAUSED or not answering:
        with pytest.raises(RemoteProtocolError) as caught:
            conn.next_event()
        assert not isinstance(caught.value, UnexpectedReplyCode)
        assert conn.state is State.ERROR
        return
    assert isinstance(_next_event(conn), UnexpectedReplyCode)
    while conn.pending:
        conn.receive_data(b"554 no\r\n")
        assert isinstance(_next_event(conn), Reply)
    if conn.state is State.QUIT:  # it answered QUIT: nothing more to say
        return
    assert (conn.state, K.QUIT) in SEND_TRANSITIONS
    assert (conn.state, K.RSET) in SEND_TRANSITIONS or conn.state is State.REFUSED
    assert conn.send(Quit()) == b"QUIT\r\n"


REPLY_LINE = kit.reply_lines()


def _moves(before: State) -> set[State]:
    """Where one reply (then perhaps a 421) or one trigger may take the machine from ``before``."""
    tables = (REPLY_TRANSITIONS, LMTP_REPLY_TRANSITIONS)
    one = {before}
    one |= {after for table in tables for key, after in table.items() if key[0] is before}
    one |= {after for (state, _), after in TRIGGER_TRANSITIONS.items() if state is before}
    closing = {TRIGGER_TRANSITIONS.get((s, Trigger.SERVICE_CLOSING)) for s in one}
    return one | {s for s in closing if s is not None}


def _next_event(conn: ClientConnection) -> object:
    """``next_event()``, checking that the state moved only as a table says; an
    UnexpectedReplyCode is returned rather than raised."""
    before = conn.state
    try:
        event: object = conn.next_event()
    except UnexpectedReplyCode as exc:
        # The reply was consumed: the dialogue is in step, the machine not in ERROR (R5).
        assert conn.state is not State.ERROR
        event = exc
    # Every state change is an entry of a table.
    assert conn.state in _moves(before), (before, conn.state, event)
    return event


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    # CLOSED is reached by the end of the stream: no more bytes can follow it.
    state=st.sampled_from([s for s in State if s is not State.CLOSED]),
    lines=st.lists(REPLY_LINE, max_size=12),
    noise=st.binary(max_size=40),
    cut=st.integers(0, 1000),
)
def test_random_replies_raise_only_protocol_errors(
    state: State, lines: list[bytes], noise: bytes, cut: int
) -> None:
    """Whatever the server sends, in any state: events or a ProtocolError, nothing else."""
    conn = REACH[state]()
    data = b"".join(lines) + noise
    cut %= len(data) + 1
    try:
        for piece in [p for p in (data[:cut], data[cut:]) if p] + [b""]:  # b"": the close
            conn.receive_data(piece)
            for _ in range(100):
                event = _next_event(conn)
                if event is NEED_DATA or event is PAUSED or isinstance(event, ConnectionClosed):
                    break
                assert isinstance(event, (Reply, UnexpectedReplyCode))
    except ProtocolError:
        assert conn.state is State.ERROR


@settings(max_examples=200)
@given(data=st.binary(max_size=300), sizes=st.lists(st.integers(1, 50), max_size=20))
def test_feeding_in_any_pieces_gives_the_same_events(data: bytes, sizes: list[int]) -> None:
    """The events depend on the bytes, never on how the network cut them."""

    def events(pieces: list[bytes]) -> list[object]:
        conn = _ready()
        conn.send(Noop())
        out: list[object] = []
        try:
            for piece in pieces:
                conn.receive_data(piece)
                while (event := _next_event(conn)) is not NEED_DATA:
                    if isinstance(event, UnexpectedReplyCode):
                        event = (event.code, event.lines, event.command)
                    out.append(event)
                    if event is PAUSED or isinstance(event, ConnectionClosed):
                        break
        except ProtocolError as exc:
            out.append(type(exc))
        return out

    pieces, rest = [], data
    for size in sizes:
        pieces.append(rest[:size])
        rest = rest[size:]
    pieces.append(rest)
    assert events([p for p in pieces if p]) == events([data] if data else [])
