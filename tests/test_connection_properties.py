"""Properties of the protocol machine that must hold for every state and every input."""

from __future__ import annotations

from collections.abc import Callable

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
    Vrfy,
)
from smtpproto._state import SEND_TRANSITIONS

from .test_connection import EHLO_ALL, GREETING

SAMPLE_COMMANDS: dict[str, Callable[[], Command]] = {
    "EHLO": Ehlo,
    "HELO": Helo,
    "LHLO": Lhlo,
    "STARTTLS": StartTLS,
    "AUTH": lambda: Auth("PLAIN", b"\0u\0p"),
    "AUTH-RESPONSE": lambda: AuthResponse(b"x"),
    "MAIL": lambda: MailFrom("a@example.org"),
    "RCPT": lambda: RcptTo("b@example.net"),
    "DATA": Data,
    "MESSAGE-DATA": lambda: MessageData(b"x\r\n"),
    "END-OF-MESSAGE": EndOfMessage,
    "BDAT": lambda: Bdat(b"x\r\n"),
    "BDAT-LAST": lambda: Bdat(b"x\r\n", last=True),
    "RSET": Rset,
    "NOOP": Noop,
    "VRFY": lambda: Vrfy("postmaster"),
    "QUIT": Quit,
}


def _feed(conn: ClientConnection, data: bytes) -> None:
    conn.receive_data(data)
    while conn.next_event() not in (NEED_DATA, PAUSED):
        pass


def _ready() -> ClientConnection:
    conn = ClientConnection(local_hostname="client.example.org")
    _feed(conn, GREETING)
    conn.send(Ehlo())
    _feed(conn, EHLO_ALL)
    return conn


def _after(
    *steps: Command | bytes, start: Callable[[], ClientConnection] = _ready
) -> Callable[[], ClientConnection]:
    def build() -> ClientConnection:
        conn = start()
        for step in steps:
            if isinstance(step, bytes):
                _feed(conn, step)
            else:
                conn.send(step)
        return conn

    return build


def _error() -> ClientConnection:
    conn = _ready()
    conn.receive_data(b"999 nonsense\r\n")
    with pytest.raises(RemoteProtocolError):
        conn.next_event()
    return conn


def _closed() -> ClientConnection:
    conn = _ready()
    conn.receive_data(b"")
    assert isinstance(conn.next_event(), ConnectionClosed)
    return conn


def _refused() -> ClientConnection:
    conn = ClientConnection()
    _feed(conn, b"554 no\r\n")
    return conn


def _connected() -> ClientConnection:
    conn = ClientConnection()
    _feed(conn, GREETING)
    return conn


_MAIL, _RCPT = MailFrom("a@example.org"), RcptTo("b@example.net")
REACH: dict[State, Callable[[], ClientConnection]] = {
    State.GREETING: ClientConnection,
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


def test_every_state_is_reached() -> None:
    for state, build in REACH.items():
        assert build().state is state


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("kind", list(SAMPLE_COMMANDS))
def test_transition_table_is_total(state: State, kind: str) -> None:
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


REPLY_LINE = st.builds(
    lambda code, sep, text: b"%d%s%s\r\n" % (code, sep, text),
    st.integers(100, 699),
    st.sampled_from([b" ", b"-", b""]),
    st.binary(max_size=20).filter(lambda b: b"\r\n" not in b),
)


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
                event = conn.next_event()
                if event is NEED_DATA or event is PAUSED or isinstance(event, ConnectionClosed):
                    break
                assert isinstance(event, Reply)
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
                while (event := conn.next_event()) is not NEED_DATA:
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
