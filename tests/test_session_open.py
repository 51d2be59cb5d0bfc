"""Session.open, STARTTLS policy, the simple commands and quit, driven by a scripted server."""

from __future__ import annotations

from typing import Any

import pytest

from smtpproto import (
    ConnectError,
    ConnectionLostError,
    GreetingRefused,
    LocalProtocolError,
    Noop,
    RemoteProtocolError,
    Session,
    SessionOptions,
    SMTPTimeoutError,
    StartTLS,
    Timeouts,
    TLSError,
    TLSMode,
    TLSRequiredError,
)
from smtpproto import Reply as SMTPReply
from smtpproto.driver import Operation, Send, StartTLSHandshake

from .scripted import (
    EHLO,
    EOF,
    GREETING,
    LHLO,
    Expect,
    Fail,
    Reply,
    ehlo_reply,
    greeted,
    open_session,
    run,
    run_both,
)

HOST = "mx.example.net"
QUIT = b"QUIT\r\n"
BYE = b"221 2.0.0 bye\r\n"


def new_session(**kwargs: Any) -> Session:
    return Session(SessionOptions(local_hostname="client.example.org", **kwargs))


# -- greeting and EHLO ----------------------------------------------------------------------


def test_G1_waits_for_a_multiline_greeting_then_says_EHLO() -> None:
    greeting = b"220-mx.example.net ESMTP\r\n220-no UCE\r\n220\r\n"

    def make() -> Operation[SMTPReply]:
        return new_session().open(HOST, 25, tls=TLSMode.NONE)

    script = [
        Expect.connect(HOST, 25, server_hostname=HOST, verify=True, timeout=30.0),
        Reply(greeting[:10], greeting[10:]),
        Expect.send(EHLO),
        Reply(ehlo_reply("PIPELINING", "SIZE 1000")),
    ]
    reply = run_both(make, script)
    assert reply.code == 220
    assert reply.lines == ("mx.example.net ESMTP", "no UCE", "")


def test_C17_receive_requests_carry_the_phase_and_its_timeout() -> None:
    session = new_session()
    script = [
        Expect.connect(HOST, 25, timeout=30.0),
        Reply(GREETING, phase="GREETING", timeout=300.0),
        Expect.send(EHLO, phase="EHLO", timeout=180.0),
        Reply(ehlo_reply("SIZE 1000"), phase="EHLO", timeout=300.0),
    ]
    run(session.open(HOST, tls=TLSMode.NONE), script)
    assert not session.closed
    assert session.extensions.size == 1000
    assert not session.tls_active


def test_C17_timeouts_are_configurable_phase_by_phase() -> None:
    session = new_session(timeout=Timeouts(greeting=5.0, command=7.0, connect=3.0))
    script = [
        Expect.connect(HOST, 25, timeout=3.0),
        Reply(GREETING, phase="GREETING", timeout=5.0),
        Expect.send(EHLO),
        Reply(ehlo_reply(), phase="EHLO", timeout=7.0),
    ]
    run(session.open(HOST, tls=TLSMode.NONE), script)


def test_G2_554_greeting_quits_without_EHLO_and_closes() -> None:
    sessions: list[Session] = []

    def make() -> Operation[SMTPReply]:
        sessions.append(new_session())
        return sessions[-1].open(HOST, tls=TLSMode.NONE)

    script = [
        Expect.connect(HOST, 25),
        Reply(b"554 5.7.1 no service for you\r\n"),
        Expect.send(QUIT),
        Reply(BYE),
        Expect.close(),
    ]
    with pytest.raises(GreetingRefused) as caught:
        run_both(make, script)
    assert caught.value.code == 554
    assert not caught.value.temporary
    assert all(session.closed for session in sessions)


def test_G3_421_greeting_closes_at_once_and_is_temporary() -> None:
    session = new_session()
    script = [Expect.connect(HOST, 25), Reply(b"421 busy, try later\r\n"), Expect.close()]
    with pytest.raises(GreetingRefused) as caught:
        run(session.open(HOST, tls=TLSMode.NONE), script)
    assert caught.value.code == 421
    assert caught.value.temporary
    assert session.closed


@pytest.mark.parametrize("code", [500, 502, 504])
def test_G4_EHLO_not_recognized_falls_back_to_HELO(code: int) -> None:
    session = new_session()
    script = [
        Expect.connect(HOST, 25),
        Reply(GREETING),
        Expect.send(EHLO),
        Reply(b"%d 5.5.1 what?\r\n" % code),
        Expect.send(b"HELO client.example.org\r\n", phase="HELO"),
        Reply(b"250 mx.example.net\r\n", phase="HELO"),
    ]
    run(session.open(HOST, tls=TLSMode.NONE), script)
    assert not session.extensions.esmtp


def test_G4_EHLO_refused_with_550_quits_and_raises() -> None:
    session = new_session()
    script = [
        Expect.connect(HOST, 25),
        Reply(GREETING),
        Expect.send(EHLO),
        Reply(b"550 5.7.1 go away\r\n"),
        Expect.send(QUIT),
        Reply(BYE),
        Expect.close(),
    ]
    with pytest.raises(GreetingRefused, match="refused our greeting") as caught:
        run(session.open(HOST, tls=TLSMode.NONE), script)
    assert caught.value.code == 550


def test_C15_421_to_EHLO_closes_without_QUIT() -> None:
    """The server announced it is going away: QUIT cannot be sent, the failure is temporary."""
    script = [
        Expect.connect(HOST, 25),
        Reply(GREETING),
        Expect.send(EHLO),
        Reply(b"421 4.3.2 shutting down\r\n"),
        Expect.close(),
    ]
    with pytest.raises(GreetingRefused) as caught:
        run(new_session().open(HOST, tls=TLSMode.NONE), script)
    assert caught.value.code == 421
    assert caught.value.temporary


def test_G4_HELO_refused_after_fallback_quits_and_raises() -> None:
    script = [
        Expect.connect(HOST, 25),
        Reply(GREETING),
        Expect.send(EHLO),
        Reply(b"502 no\r\n"),
        Expect.send(b"HELO client.example.org\r\n"),
        Reply(b"501 bad name\r\n"),
        Expect.send(QUIT),
        Reply(BYE),
        Expect.close(),
    ]
    with pytest.raises(GreetingRefused) as caught:
        run(new_session().open(HOST, tls=TLSMode.NONE), script)
    assert caught.value.code == 501


def test_LMTP_session_says_LHLO() -> None:
    session = new_session(lmtp=True)
    script = [Expect.connect(HOST, 24), Reply(GREETING), Expect.send(LHLO), Reply(ehlo_reply())]
    run(session.open(HOST, 24, tls=TLSMode.NONE), script)


# -- failures of the transport ------------------------------------------------------------


def test_connect_failure_propagates_and_nothing_is_closed() -> None:
    session = new_session()
    error = ConnectError(HOST, 25, "connection refused")
    with pytest.raises(ConnectError) as caught:
        run(session.open(HOST, tls=TLSMode.NONE), [Fail(error)])
    assert caught.value is error
    assert session.closed


def test_C17_timeout_waiting_for_the_greeting_closes() -> None:
    session = new_session()
    script = [
        Expect.connect(HOST, 25),
        Fail(SMTPTimeoutError("GREETING", 300.0)),
        Expect.close(),
    ]
    with pytest.raises(SMTPTimeoutError):
        run(session.open(HOST, tls=TLSMode.NONE), script)
    assert session.closed


def test_C16_server_closing_before_the_greeting_is_a_lost_connection() -> None:
    session = new_session()
    with pytest.raises(ConnectionLostError) as caught:
        run(session.open(HOST, tls=TLSMode.NONE), [Expect.connect(HOST, 25), EOF, Expect.close()])
    assert caught.value.phase == "GREETING"
    assert caught.value.temporary


# -- TLS ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "port"),
    [
        (TLSMode.IMPLICIT, 465),
        (TLSMode.STARTTLS, 587),
        (TLSMode.OPPORTUNISTIC, 25),
        (TLSMode.NONE, 25),
    ],
)
def test_default_ports(mode: TLSMode, port: int) -> None:
    implicit = mode is TLSMode.IMPLICIT
    script = [
        Expect.connect(HOST, port, implicit_tls=implicit),
        Reply(b"554 no\r\n"),
        Expect.send(QUIT),
        Reply(BYE),
        Expect.close(),
    ]
    with pytest.raises(GreetingRefused):
        run(new_session().open(HOST, tls=mode), script)


def test_implicit_TLS_connects_wrapped_and_never_sends_STARTTLS() -> None:
    session = new_session()
    script = [
        Expect.connect(HOST, 465, implicit_tls=True, server_hostname="smtp.example.net"),
        Reply(GREETING),
        Expect.send(EHLO),
        Reply(ehlo_reply("STARTTLS", "AUTH PLAIN")),
    ]
    run(session.open(HOST, tls=TLSMode.IMPLICIT, server_hostname="smtp.example.net"), script)
    assert session.tls_active
    assert session.tls_verified
    assert session.server_hostname == "smtp.example.net"


def test_implicit_TLS_without_verification_is_recorded() -> None:
    session = new_session()
    run(
        session.open(HOST, tls=TLSMode.IMPLICIT, verify=False),
        [
            Expect.connect(HOST, 465, implicit_tls=True, verify=False),
            Reply(GREETING),
            Expect.send(EHLO),
            Reply(ehlo_reply()),
        ],
    )
    assert session.tls_active
    assert not session.tls_verified


def _starttls_script(verify: bool = True) -> list[object]:
    return [
        Expect.connect(HOST, 587, verify=verify),
        Reply(GREETING),
        Expect.send(EHLO),
        Reply(ehlo_reply("PIPELINING", "STARTTLS", "SIZE 1000")),
        # S5: STARTTLS ends its group; nothing is queued behind it.
        Expect.send(b"STARTTLS\r\n", phase="STARTTLS"),
        Reply(b"220 2.0.0 go ahead\r\n", phase="STARTTLS", timeout=300.0),
        Expect.starttls(verify=verify, server_hostname=HOST, timeout=300.0),
        Expect.send(EHLO),
        Reply(ehlo_reply("PIPELINING", "AUTH PLAIN", "SIZE 2000")),
    ]


def test_S4_S5_STARTTLS_alone_then_handshake_then_EHLO_again_with_new_extensions() -> None:
    sessions: list[Session] = []

    def make() -> Operation[SMTPReply]:
        sessions.append(new_session())
        return sessions[-1].open(HOST, tls=TLSMode.STARTTLS)

    reply = run_both(make, _starttls_script())  # type: ignore[arg-type]
    assert reply.code == 220
    for session in sessions:
        assert session.tls_active
        assert session.tls_verified
        # Everything learnt before TLS was forgotten and re-read (RFC 3207 §4.2).
        assert session.extensions.size == 2000
        assert session.extensions.auth == {"PLAIN"}
        assert not session.extensions.starttls


def test_opportunistic_TLS_without_verification_is_labelled_honestly() -> None:
    session = new_session()
    script = _starttls_script(verify=False)
    script[0] = Expect.connect(HOST, 25, verify=False)
    run(session.open(HOST, tls=TLSMode.OPPORTUNISTIC, verify=False), script)  # type: ignore[arg-type]
    assert session.tls_active
    assert not session.tls_verified


def test_S3_required_TLS_without_STARTTLS_quits_and_sends_nothing_else() -> None:
    session = new_session()
    script = [
        Expect.connect(HOST, 587),
        Reply(GREETING),
        Expect.send(EHLO),
        Reply(ehlo_reply("AUTH PLAIN", "PIPELINING")),
        Expect.send(QUIT),
        Reply(BYE),
        Expect.close(),
    ]
    with pytest.raises(TLSRequiredError, match="does not offer STARTTLS") as caught:
        run(session.open(HOST, tls=TLSMode.STARTTLS), script)
    assert caught.value.temporary
    assert session.closed


def test_S3_required_TLS_without_STARTTLS_closes_even_if_QUIT_is_not_answered() -> None:
    script = [
        Expect.connect(HOST, 587),
        Reply(GREETING),
        Expect.send(EHLO),
        Reply(ehlo_reply()),
        Expect.send(QUIT),
        EOF,
        Expect.close(),
    ]
    with pytest.raises(TLSRequiredError):
        run(new_session().open(HOST, tls=TLSMode.STARTTLS), script)


def test_S3_required_TLS_refused_with_454_quits() -> None:
    session = new_session()
    script = [
        Expect.connect(HOST, 587),
        Reply(GREETING),
        Expect.send(EHLO),
        Reply(ehlo_reply("STARTTLS")),
        Expect.send(b"STARTTLS\r\n"),
        Reply(b"454 4.7.0 TLS not available\r\n"),
        Expect.send(QUIT),
        Reply(BYE),
        Expect.close(),
    ]
    with pytest.raises(TLSRequiredError, match="454"):
        run(session.open(HOST, tls=TLSMode.STARTTLS), script)
    assert not session.tls_active


def test_opportunistic_TLS_refused_with_454_carries_on_in_cleartext() -> None:
    session = new_session()
    script = [
        Expect.connect(HOST, 25),
        Reply(GREETING),
        Expect.send(EHLO),
        Reply(ehlo_reply("STARTTLS", "SIZE 10")),
        Expect.send(b"STARTTLS\r\n"),
        Reply(b"454 4.7.0 TLS not available\r\n"),
    ]
    greeting = run(session.open(HOST, tls=TLSMode.OPPORTUNISTIC), script)
    assert greeting.code == 220
    assert not session.tls_active
    assert not session.closed
    assert session.extensions.size == 10  # the cleartext EHLO still holds


def test_opportunistic_TLS_not_offered_carries_on_in_cleartext() -> None:
    session = new_session()
    run(session.open(HOST, tls=TLSMode.OPPORTUNISTIC), greeted())
    assert not session.tls_active
    assert not session.tls_verified


def test_S4_bytes_injected_after_the_220_to_STARTTLS_abort_the_session() -> None:
    session = new_session()
    script = [
        Expect.connect(HOST, 587),
        Reply(GREETING),
        Expect.send(EHLO),
        Reply(ehlo_reply("STARTTLS")),
        Expect.send(b"STARTTLS\r\n"),
        # The injected reply arrives in the same read as the 220: it must never be parsed.
        Reply(b"220 go ahead\r\n250-evil\r\n250 AUTH PLAIN\r\n"),
        Expect.close(),
    ]
    with pytest.raises(RemoteProtocolError) as caught:
        run(session.open(HOST, tls=TLSMode.STARTTLS), script)
    assert caught.value.line == b"250-evil\r\n250 AUTH PLAIN\r\n"
    assert session.closed
    assert not session.tls_active


def test_failed_TLS_handshake_closes_and_reraises() -> None:
    session = new_session()
    error = TLSError("certificate verify failed")
    script = [
        Expect.connect(HOST, 587),
        Reply(GREETING),
        Expect.send(EHLO),
        Reply(ehlo_reply("STARTTLS")),
        Expect.send(b"STARTTLS\r\n"),
        Reply(b"220 go ahead\r\n"),
        Fail(error, on=StartTLSHandshake),
        Expect.close(),
    ]
    with pytest.raises(TLSError) as caught:
        run(session.open(HOST, tls=TLSMode.STARTTLS), script)
    assert caught.value is error
    assert caught.value.temporary
    assert session.closed
    assert not session.tls_active
    run(session.quit(), [])  # already closed: nothing more to do


def test_reopening_starts_a_fresh_connection() -> None:
    session = open_session("SIZE 100")
    run(session.quit(), [Expect.send(QUIT), Reply(BYE), Expect.close()])
    run(session.open(HOST, tls=TLSMode.NONE), greeted("SIZE 200"))
    assert session.extensions.size == 200


# -- simple commands and quit ---------------------------------------------------------------


def test_R1_noop_verify_and_reset_return_their_replies() -> None:
    session = open_session("PIPELINING")
    noop = run(session.noop(), [Expect.send(b"NOOP\r\n"), Reply(b"250 2.0.0 ok\r\n")])
    assert noop.code == 250
    vrfy = run(
        session.verify("postmaster"),
        [Expect.send(b"VRFY postmaster\r\n"), Reply(b"252 2.1.5 cannot verify\r\n")],
    )
    assert vrfy.code == 252
    # A failure reply is a result of a simple command, not an exception.
    rset = run(session.reset(), [Expect.send(b"RSET\r\n"), Reply(b"451 4.3.0 later\r\n")])
    assert rset.code == 451
    assert not session.closed


def test_command_sends_one_command_and_returns_its_reply() -> None:
    session = open_session()
    reply = run(session.command(Noop()), [Expect.send(b"NOOP\r\n"), Reply(b"250 ok\r\n")])
    assert reply.command == Noop()


def test_C17_timeout_on_a_simple_command_closes() -> None:
    session = open_session()
    script = [
        Expect.send(b"NOOP\r\n"),
        Fail(SMTPTimeoutError("NOOP", 300.0)),
        Expect.close(graceful=False),  # a failed connection is dropped, not wound down
    ]
    with pytest.raises(SMTPTimeoutError):
        run(session.noop(), script)
    assert session.closed


def test_C14_quit_waits_for_221_then_closes_and_is_idempotent() -> None:
    session = open_session()
    # QUIT was answered: the adapter may close gracefully (a TLS close_notify).
    script = [
        Expect.send(QUIT, phase="QUIT"),
        Reply(BYE, phase="QUIT"),
        Expect.close(graceful=True),
    ]
    run(session.quit(), script)
    assert session.closed
    run(session.quit(), [])


def test_C14_quit_never_raises_when_the_server_vanishes() -> None:
    session = open_session()
    run(session.quit(), [Expect.send(QUIT), EOF, Expect.close(graceful=False)])
    session = open_session()
    run(
        session.quit(),
        [
            Expect.send(QUIT),
            Fail(ConnectionLostError("QUIT", "reset")),
            Expect.close(graceful=False),
        ],
    )
    assert session.closed


def test_C14_quit_before_open_does_nothing() -> None:
    run(new_session().quit(), [])


def test_a_cancelled_operation_leaves_the_session_closed() -> None:
    """A driver may abandon an operation mid-way (asyncio/trio cancellation): ``drive`` closes
    it, and the session counts its connection as lost (the driver drops it); quit() then asks
    for nothing, and later operations fail at once."""
    session = open_session()
    op = session.noop()
    assert op.send(None) == Send(b"NOOP\r\n", 180.0, "NOOP")
    op.close()  # cancelled while the NOOP is unanswered
    assert session.closed
    run(session.quit(), [])
    with pytest.raises(ConnectionLostError):
        run(session.noop(), [])


def test_quit_while_a_command_is_unanswered_just_drops_the_connection() -> None:
    """A command still unanswered (a raw ``command`` cut short): QUIT cannot be sent in order,
    so the connection is closed instead."""
    session = open_session()
    op = session.command(Noop())
    assert op.send(None) == Send(b"NOOP\r\n", 180.0, "NOOP")
    op.close()  # not guarded: the session still believes in its connection
    run(session.quit(), [Expect.close()])
    assert session.closed


def test_a_command_the_machine_refuses_raises_before_any_byte_and_quit_still_closes() -> None:
    """``command`` is the raw step: it leaves closing to the caller; ``quit`` then cannot send
    QUIT on a broken machine, and closes without raising."""
    session = open_session()  # no STARTTLS advertised
    with pytest.raises(LocalProtocolError):
        run(session.command(StartTLS()), [])
    assert not session.closed
    run(session.quit(), [Expect.close()])
    assert session.closed


def test_C16_operations_on_a_closed_session_fail_without_any_request() -> None:
    session = open_session()
    with pytest.raises(ConnectionLostError):
        run(session.noop(), [Expect.send(b"NOOP\r\n"), EOF, Expect.close()])
    assert session.closed
    for op in (session.noop(), session.verify("x"), session.reset()):
        with pytest.raises(ConnectionLostError, match="open a new one"):
            run(op, [])
    with pytest.raises(ConnectionLostError, match="open a new one"):
        run(new_session().noop(), [])  # never opened
