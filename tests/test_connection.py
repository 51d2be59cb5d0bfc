"""ClientConnection driven by scripted server bytes: exact events in, exact bytes out.

Every transcript runs whole, byte by byte and cut at every offset (``run_all_splits``).
"""

from __future__ import annotations

import pytest

from smtpproto import (
    NEED_DATA,
    PAUSED,
    Auth,
    AuthResponse,
    Bdat,
    ClientConnection,
    ConnectionClosed,
    Data,
    Ehlo,
    EndOfMessage,
    EnhancedStatus,
    Helo,
    Lhlo,
    Limits,
    LocalProtocolError,
    MailFrom,
    MessageData,
    Noop,
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

from .transcript import C, S, Unexpected, run, run_all_splits

GREETING = b"220 mx.example.net ESMTP\r\n"
EHLO_ALL = (
    b"250-mx.example.net Hello client.example.org\r\n"
    b"250-PIPELINING\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
    b"250-CHUNKING\r\n250-BINARYMIME\r\n250-DSN\r\n250-STARTTLS\r\n"
    b"250-AUTH PLAIN LOGIN CRAM-MD5\r\n250-ENHANCEDSTATUSCODES\r\n250-REQUIRETLS\r\n"
    b"250-MT-PRIORITY\r\n250 HELP\r\n"
)
EHLO_PLAIN = b"250-mx.example.net\r\n250 8BITMIME\r\n"
EHLO_TEXTS = (
    "mx.example.net Hello client.example.org",
    "PIPELINING",
    "SIZE 10240000",
    "8BITMIME",
    "SMTPUTF8",
    "CHUNKING",
    "BINARYMIME",
    "DSN",
    "STARTTLS",
    "AUTH PLAIN LOGIN CRAM-MD5",
    "ENHANCEDSTATUSCODES",
    "REQUIRETLS",
    "MT-PRIORITY",
    "HELP",
)
OK = EnhancedStatus(2, 0, 0)


def opened(ehlo: bytes = EHLO_ALL, texts: tuple[str, ...] = EHLO_TEXTS) -> list[C | S]:
    """Greeting and EHLO: the prefix of most transcripts."""
    return [
        S(GREETING, Reply(220, ("mx.example.net ESMTP",))),
        C(Ehlo(), b"EHLO client.example.org\r\n"),
        S(ehlo, Reply(250, texts, command=Ehlo())),
    ]


def state(conn: ClientConnection) -> State:
    """The state, read through a call so the type checker does not narrow it across sends."""
    return conn.state


def session(ehlo: bytes = EHLO_ALL, **kwargs: object) -> ClientConnection:
    conn = ClientConnection(local_hostname="client.example.org", **kwargs)  # type: ignore[arg-type]
    texts = tuple(line[4:].decode() for line in ehlo.split(b"\r\n")[:-1])
    return run(opened(ehlo, texts), conn)


# -- greeting and hello -------------------------------------------------------------------


def test_G1_multiline_greeting_with_bare_last_line() -> None:
    run_all_splits(
        [
            S(
                b"220-mx.example.net ESMTP\r\n220-no UCE\r\n220\r\n",
                Reply(220, ("mx.example.net ESMTP", "no UCE", "")),
            ),
            C(Ehlo(), b"EHLO client.example.org\r\n"),
        ]
    )


def test_G1_nothing_may_be_sent_before_the_greeting() -> None:
    conn = ClientConnection()
    assert conn.next_event() is NEED_DATA
    assert conn.recommended_timeout == 300
    with pytest.raises(LocalProtocolError):
        conn.send(Ehlo())
    assert conn.state is State.ERROR


def test_G2_554_greeting_allows_only_quit() -> None:
    conn = run(
        [
            S(b"554 go away\r\n", Reply(554, ("go away",))),
            C(Quit(), b"QUIT\r\n"),
            S(b"221 bye\r\n", Reply(221, ("bye",), command=Quit())),
            S(b"", ConnectionClosed()),
        ]
    )
    assert conn.state is State.CLOSED
    refused = run([S(b"554 go away\r\n", Reply(554, ("go away",)))])
    assert refused.state is State.REFUSED
    with pytest.raises(LocalProtocolError, match="EHLO in state REFUSED"):
        refused.send(Ehlo())


def test_G3_421_greeting_closes() -> None:
    conn = run([S(b"421 busy\r\n", Reply(421, ("busy",)))])
    assert conn.state is State.CLOSED


def test_G4_helo_fallback_after_rejected_ehlo() -> None:
    run_all_splits(
        [
            S(GREETING, Reply(220, ("mx.example.net ESMTP",))),
            C(Ehlo(), b"EHLO client.example.org\r\n"),
            S(b"502 5.5.2 what?\r\n", Reply(502, ("5.5.2 what?",), command=Ehlo())),
            C(Helo(), b"HELO client.example.org\r\n"),
            S(b"250 mx.example.net\r\n", Reply(250, ("mx.example.net",), command=Helo())),
            C(MailFrom("a@example.org"), b"MAIL FROM:<a@example.org>\r\n"),
        ]
    )


def test_G5_ehlo_argument_literal_and_idna() -> None:
    conn = run([S(GREETING, Reply(220, ("mx.example.net ESMTP",)))])
    assert conn.send(Ehlo("[192.0.2.1]")) == b"EHLO [192.0.2.1]\r\n"
    conn = ClientConnection(local_hostname="bücher.example")
    conn.receive_data(GREETING)
    conn.next_event()
    assert conn.send(Ehlo()) == b"EHLO xn--bcher-kva.example\r\n"


def test_G5_invalid_local_hostname_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"forbidden character U\+000D"):
        ClientConnection(local_hostname="bad\r\nhost")
    with pytest.raises(ValueError, match="invalid label"):
        Ehlo("bad host")


def test_G6_extensions_parsed_from_ehlo() -> None:
    conn = session()
    ext = conn.extensions
    assert ext.esmtp and ext.pipelining and ext.chunking and ext.starttls
    assert ext.size == 10240000
    assert ext.auth == frozenset({"PLAIN", "LOGIN", "CRAM-MD5"})


def test_G7_parameters_after_helo_are_refused() -> None:
    conn = run(
        [
            S(GREETING, Reply(220, ("mx.example.net ESMTP",))),
            C(Helo(), b"HELO client.example.org\r\n"),
            S(b"250 ok\r\n", Reply(250, ("ok",), command=Helo())),
        ]
    )
    assert not conn.extensions.esmtp
    with pytest.raises(LocalProtocolError, match="after HELO"):
        conn.send(MailFrom("a@example.org", extra=(("X-FOO", None),)))


@pytest.mark.parametrize(
    ("event", "extension"),
    [
        (MailFrom("a@example.org", size=10), "SIZE"),
        (MailFrom("a@example.org", body="7BIT"), "8BITMIME"),
        (MailFrom("a@example.org", body="BINARYMIME"), "BINARYMIME"),
        (MailFrom("a@example.org", smtputf8=True), "SMTPUTF8"),
        (MailFrom("a@example.org", ret="HDRS"), "DSN"),
        (MailFrom("a@example.org", envid="x"), "DSN"),
        (MailFrom("a@example.org", auth="<>"), "AUTH"),
        (MailFrom("a@example.org", requiretls=True), "REQUIRETLS"),
        (MailFrom("a@example.org", mt_priority=3), "MT-PRIORITY"),
    ],
)
def test_G7_mail_parameter_needs_its_extension(event: MailFrom, extension: str) -> None:
    conn = session(b"250-mx.example.net\r\n250 PIPELINING\r\n")
    with pytest.raises(LocalProtocolError, match=extension):
        conn.send(event)
    assert conn.state is State.ERROR


@pytest.mark.parametrize(
    "event",
    [RcptTo("b@example.net", notify=("NEVER",)), RcptTo("b@example.net", orcpt="b@example.net")],
)
def test_G7_rcpt_dsn_parameters_need_dsn(event: RcptTo) -> None:
    conn = session(b"250-mx.example.net\r\n250 PIPELINING\r\n")
    conn.send(MailFrom("a@example.org"))
    with pytest.raises(LocalProtocolError, match="DSN"):
        conn.send(event)


def test_G7_rcpt_extra_parameters_are_sent_as_given() -> None:
    conn = session(b"250-mx.example.net\r\n250 PIPELINING\r\n")
    conn.send(MailFrom("a@example.org"))
    rcpt = RcptTo("b@example.net", extra=(("X-TAG", "blue"), ("X-FLAG", None)))
    assert conn.send(rcpt) == b"RCPT TO:<b@example.net> X-TAG=blue X-FLAG\r\n"


# -- a whole transaction ---------------------------------------------------------------------


def test_R1_pipelined_transaction_exact_bytes() -> None:
    mail = MailFrom("a@example.org", size=42, body="8BITMIME", ret="HDRS", envid="a+b=c")
    rcpt1 = RcptTo("b@example.net", notify=("SUCCESS", "FAILURE"), orcpt="b@example.net")
    rcpt2 = RcptTo("c@example.net")
    run_all_splits(
        [
            *opened(),
            C(
                mail,
                b"MAIL FROM:<a@example.org> SIZE=42 BODY=8BITMIME RET=HDRS ENVID=a+2Bb+3Dc\r\n",
            ),
            C(
                rcpt1,
                b"RCPT TO:<b@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@example.net\r\n",
            ),
            C(rcpt2, b"RCPT TO:<c@example.net>\r\n"),
            C(Data(), b"DATA\r\n"),
            S(
                b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 no such user\r\n354 go ahead\r\n",
                Reply(250, ("2.1.0 Ok",), EnhancedStatus(2, 1, 0), mail),
                Reply(250, ("2.1.5 Ok",), EnhancedStatus(2, 1, 5), rcpt1),
                Reply(550, ("5.1.1 no such user",), EnhancedStatus(5, 1, 1), rcpt2),
                Reply(354, ("go ahead",), None, Data()),
            ),
            C(MessageData(b"Subject: hi\n\n.dot\n"), b"Subject: hi\r\n\r\n..dot\r\n"),
            C(MessageData(b"last line"), b"last line"),
            C(EndOfMessage(), b"\r\n.\r\n"),
            C(Quit(), b"QUIT\r\n"),
            S(
                b"250 2.0.0 queued as X\r\n221 2.0.0 bye\r\n",
                Reply(250, ("2.0.0 queued as X",), OK, EndOfMessage()),
                Reply(221, ("2.0.0 bye",), OK, Quit()),
            ),
            S(b"", ConnectionClosed()),
        ]
    )


def test_R1_without_pipelining_one_command_at_a_time() -> None:
    conn = session(EHLO_PLAIN)
    conn.send(MailFrom("a@example.org"))
    with pytest.raises(LocalProtocolError, match="before the reply to MAIL"):
        conn.send(RcptTo("b@example.net"))


def test_C3_order_is_enforced() -> None:
    conn = session()
    with pytest.raises(LocalProtocolError, match="RCPT in state READY"):
        conn.send(RcptTo("b@example.net"))
    conn = session()
    conn.send(MailFrom("a@example.org"))
    with pytest.raises(LocalProtocolError, match="DATA in state MAIL"):
        conn.send(Data())
    conn = session()
    conn.send(MailFrom("a@example.org"))
    with pytest.raises(LocalProtocolError, match="MAIL in state MAIL"):
        conn.send(MailFrom("a@example.org"))


def test_C4_no_data_after_refused_data() -> None:
    conn = session()
    conn.send(MailFrom("a@example.org"))
    conn.send(RcptTo("b@example.net"))
    conn.send(Data())
    conn.receive_data(b"250 ok\r\n250 ok\r\n554 no\r\n")
    assert [conn.next_event().code for _ in range(3)] == [250, 250, 554]  # type: ignore[union-attr]
    assert conn.state is State.RCPT
    with pytest.raises(LocalProtocolError):
        conn.send(MessageData(b"x"))


def test_C5_empty_message_and_existing_final_crlf() -> None:
    steps = [
        *opened(),
        C(MailFrom("a@example.org"), b"MAIL FROM:<a@example.org>\r\n"),
        C(RcptTo("b@example.net"), b"RCPT TO:<b@example.net>\r\n"),
        C(Data(), b"DATA\r\n"),
        S(
            b"250 ok\r\n250 ok\r\n354 go\r\n",
            Reply(250, ("ok",), None, MailFrom("a@example.org")),
            Reply(250, ("ok",), None, RcptTo("b@example.net")),
            Reply(354, ("go",), None, Data()),
        ),
    ]
    conn = run(steps)
    assert conn.send(MessageData(b"")) == b""
    assert conn.send(EndOfMessage()) == b".\r\n"
    conn = run(steps)
    assert conn.send(MessageData(b"body\r\n")) == b"body\r\n"
    assert conn.send(EndOfMessage()) == b".\r\n"


def test_S2_smuggled_terminator_is_neutralised() -> None:
    conn = run(
        [
            *opened(),
            C(MailFrom("a@example.org"), b"MAIL FROM:<a@example.org>\r\n"),
            C(RcptTo("b@example.net"), b"RCPT TO:<b@example.net>\r\n"),
            C(Data(), b"DATA\r\n"),
            S(
                b"250 ok\r\n250 ok\r\n354 go\r\n",
                Reply(250, ("ok",), None, MailFrom("a@example.org")),
                Reply(250, ("ok",), None, RcptTo("b@example.net")),
                Reply(354, ("go",), None, Data()),
            ),
        ]
    )
    wire = conn.send(MessageData(b"a\n.\r\nMAIL FROM:<x>\r\n")) + conn.send(EndOfMessage())
    assert wire == b"a\r\n..\r\nMAIL FROM:<x>\r\n.\r\n"


def test_C11_pipelined_data_with_no_accepted_recipient_sends_lone_dot() -> None:
    conn = session()
    conn.send(MailFrom("a@example.org"))
    conn.send(RcptTo("b@example.net"))
    conn.send(Data())
    conn.receive_data(b"250 ok\r\n550 no\r\n354 go\r\n")
    for _ in range(3):
        conn.next_event()
    assert conn.state is State.MESSAGE
    with pytest.raises(LocalProtocolError, match="no recipient was accepted"):
        conn.send(MessageData(b"secret body"))
    conn = session()
    conn.send(MailFrom("a@example.org"))
    conn.send(RcptTo("b@example.net"))
    conn.send(Data())
    conn.receive_data(b"250 ok\r\n550 no\r\n354 go\r\n")
    for _ in range(3):
        conn.next_event()
    assert conn.send(EndOfMessage()) == b".\r\n"
    conn.receive_data(b"554 5.5.1 no valid recipients\r\n")
    reply = conn.next_event()
    assert isinstance(reply, Reply) and reply.code == 554 and reply.command == EndOfMessage()
    assert conn.state is State.READY


def test_C8_eight_bit_content_needs_8bitmime() -> None:
    conn = session()
    conn.send(MailFrom("a@example.org"))
    conn.send(RcptTo("b@example.net"))
    conn.send(Data())
    conn.receive_data(b"250 ok\r\n250 ok\r\n354 go\r\n")
    for _ in range(3):
        conn.next_event()
    with pytest.raises(LocalProtocolError, match="8BITMIME"):
        conn.send(MessageData("héllo".encode()))


def test_C8_non_ascii_addresses_need_smtputf8() -> None:
    conn = session(b"250-mx.example.net\r\n250 PIPELINING\r\n")
    with pytest.raises(LocalProtocolError, match="SMTPUTF8 extension"):
        conn.send(MailFrom("jösé@example.org", smtputf8=True))
    conn = session()
    with pytest.raises(LocalProtocolError, match="smtputf8=True"):
        conn.send(MailFrom("jösé@example.org"))
    conn = session()
    conn.send(MailFrom("a@example.org"))
    with pytest.raises(LocalProtocolError, match="non-ASCII recipient"):
        conn.send(RcptTo("δοκιμή@παράδειγμα.δοκιμή"))
    conn = session()
    assert conn.send(MailFrom("jösé@example.org", smtputf8=True)) == (
        "MAIL FROM:<jösé@example.org> SMTPUTF8\r\n".encode()
    )
    assert (
        conn.send(RcptTo("δοκιμή@παράδειγμα.δοκιμή"))
        == "RCPT TO:<δοκιμή@παράδειγμα.δοκιμή>\r\n".encode()
    )
    conn.send(Data())
    conn.receive_data(b"250 ok\r\n250 ok\r\n354 go\r\n")
    for _ in range(3):
        conn.next_event()
    assert conn.send(MessageData("Subject: é\r\n".encode())) == "Subject: é\r\n".encode()


def test_C9_size_over_the_advertised_limit_is_refused() -> None:
    conn = session()
    with pytest.raises(LocalProtocolError, match="exceeds the server's SIZE"):
        conn.send(MailFrom("a@example.org", size=10240001))
    conn = session()
    assert conn.send(MailFrom("a@example.org", size=10240000)).endswith(b"SIZE=10240000\r\n")


def test_C9_command_line_limit_with_allowances() -> None:
    conn = session()
    long_param = "x" * 500
    with pytest.raises(LocalProtocolError, match="over the 512 limit"):
        conn.send(MailFrom("a@example.org", extra=(("X-LONG", long_param),)))
    conn = session()
    local = "l" * 64
    domain = ".".join(["d" * 63, "d" * 63, "d" * 40]) + ".example"
    line = conn.send(MailFrom(f"{local}@{domain}", size=1, auth=f"{local}@{domain}", smtputf8=True))
    assert 512 < len(line) < 512 + 26 + 500 + 10


def test_C13_rset_noop_vrfy() -> None:
    run_all_splits(
        [
            *opened(),
            C(Vrfy("postmaster"), b"VRFY postmaster\r\n"),
            S(
                b"252 2.0.0 cannot verify\r\n",
                Reply(252, ("2.0.0 cannot verify",), OK, Vrfy("postmaster")),
            ),
            C(MailFrom(""), b"MAIL FROM:<>\r\n"),
            C(Rset(), b"RSET\r\n"),
            S(
                b"250 ok\r\n250 ok\r\n",
                Reply(250, ("ok",), None, MailFrom("")),
                Reply(250, ("ok",), None, Rset()),
            ),
            C(Noop(), b"NOOP\r\n"),
            S(b"250 ok\r\n", Reply(250, ("ok",), None, Noop())),
        ]
    )


def test_C13_vrfy_non_ascii_needs_smtputf8() -> None:
    conn = session(EHLO_PLAIN)
    with pytest.raises(LocalProtocolError, match="SMTPUTF8"):
        conn.send(Vrfy("jösé"))
    with pytest.raises(ValueError, match="forbidden character"):
        Vrfy("a\r\nRCPT TO:<x@y>")


def test_C2_postmaster_recipient() -> None:
    conn = session()
    conn.send(MailFrom("a@example.org"))
    assert conn.send(RcptTo("Postmaster")) == b"RCPT TO:<Postmaster>\r\n"


def test_C14_quit_is_last() -> None:
    conn = session()
    conn.send(Quit())
    with pytest.raises(LocalProtocolError):
        conn.send(Noop())


# -- failures, closes and 421 -----------------------------------------------------------------


def test_C15_421_fails_everything_pending() -> None:
    mail, rcpt1, rcpt2 = MailFrom("a@example.org"), RcptTo("b@example.net"), RcptTo("c@example.net")
    run_all_splits(
        [
            *opened(),
            C(mail, b"MAIL FROM:<a@example.org>\r\n"),
            C(rcpt1, b"RCPT TO:<b@example.net>\r\n"),
            C(rcpt2, b"RCPT TO:<c@example.net>\r\n"),
            C(Data(), b"DATA\r\n"),
            S(
                b"250 ok\r\n421 4.3.2 shutting down\r\n",
                Reply(250, ("ok",), None, mail),
                Reply(421, ("4.3.2 shutting down",), EnhancedStatus(4, 3, 2), rcpt1),
                Reply(421, ("4.3.2 shutting down",), EnhancedStatus(4, 3, 2), rcpt2),
                Reply(421, ("4.3.2 shutting down",), EnhancedStatus(4, 3, 2), Data()),
            ),
            S(b"", ConnectionClosed()),
        ]
    )


def test_C15_unsolicited_421() -> None:
    conn = session()
    conn.receive_data(b"421 idle too long\r\n")
    assert conn.next_event() == Reply(421, ("idle too long",))
    assert conn.state is State.CLOSED


def test_R1_unsolicited_reply_is_a_protocol_error() -> None:
    conn = session()
    conn.receive_data(b"250 surprise\r\n")
    with pytest.raises(RemoteProtocolError, match="no command outstanding"):
        conn.next_event()
    assert conn.state is State.ERROR
    with pytest.raises(RemoteProtocolError, match="ERROR"):
        conn.next_event()
    with pytest.raises(LocalProtocolError, match="state ERROR"):
        conn.send(Noop())
    # That misuse does not shift the blame: the server broke the session.
    with pytest.raises(RemoteProtocolError, match="ERROR"):
        conn.next_event()


def test_R2_a_reply_half_received_when_AUTH_is_sent_keeps_all_its_lines() -> None:
    # AUTH may follow the end of data in a pipelined group; the reply to the end of data may
    # already be half in. Raising the limits for AUTH's replies must not drop those lines.
    conn = session()
    conn.send(MailFrom("a@example.org"))
    conn.send(RcptTo("b@example.net"))
    conn.send(Data())
    conn.receive_data(b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go\r\n")
    for _ in range(3):
        conn.next_event()
    conn.send(EndOfMessage())
    conn.receive_data(b"250-2.0.0 first line\r\n")
    assert conn.next_event() is NEED_DATA
    conn.send(Auth("PLAIN", b"\0u\0p"))
    conn.receive_data(b"250 2.0.0 queued\r\n")
    reply = conn.next_event()
    assert isinstance(reply, Reply)
    assert reply.lines == ("2.0.0 first line", "2.0.0 queued")
    assert reply.command == EndOfMessage()


def test_C16_connection_loss_lists_unanswered_commands() -> None:
    mail, rcpt = MailFrom("a@example.org"), RcptTo("b@example.net")
    run_all_splits(
        [
            *opened(),
            C(mail, b"MAIL FROM:<a@example.org>\r\n"),
            C(rcpt, b"RCPT TO:<b@example.net>\r\n"),
            S(b"250 ok\r\n250 o", Reply(250, ("ok",), None, mail)),
            S(b"", ConnectionClosed((rcpt,))),
        ]
    )


def test_C12_close_after_final_dot_is_not_success() -> None:
    conn = session()
    conn.send(MailFrom("a@example.org"))
    conn.send(RcptTo("b@example.net"))
    conn.send(Data())
    conn.receive_data(b"250 ok\r\n250 ok\r\n354 go\r\n")
    for _ in range(3):
        conn.next_event()
    conn.send(MessageData(b"hi\r\n"))
    conn.send(EndOfMessage())
    assert conn.recommended_timeout == 600
    conn.receive_data(b"")
    assert conn.next_event() == ConnectionClosed((EndOfMessage(),))
    assert conn.next_event() == ConnectionClosed()
    with pytest.raises(RuntimeError):
        conn.receive_data(b"late")
    conn.receive_data(b"")


def test_R3_code_mismatch_is_a_protocol_error() -> None:
    conn = session()
    conn.send(Noop())
    conn.receive_data(b"250-one\r\n251 two\r\n")
    with pytest.raises(RemoteProtocolError):
        conn.next_event()
    assert conn.state is State.ERROR


@pytest.mark.parametrize("reply", [b"354 what\r\n", b"334 what\r\n"])
def test_R5_intermediate_reply_to_mail_is_a_protocol_error(reply: bytes) -> None:
    conn = session()
    conn.send(MailFrom("a@example.org"))
    conn.receive_data(reply)
    with pytest.raises(RemoteProtocolError, match="unexpected"):
        conn.next_event()


def test_R5_positive_reply_to_data_is_a_protocol_error() -> None:
    conn = session()
    conn.send(MailFrom("a@example.org"))
    conn.send(RcptTo("b@example.net"))
    conn.send(Data())
    conn.receive_data(b"250 ok\r\n250 ok\r\n250 ok\r\n")
    conn.next_event()
    conn.next_event()
    with pytest.raises(RemoteProtocolError, match="354"):
        conn.next_event()


def test_R5_unknown_code_read_by_first_digit() -> None:
    conn = session()
    conn.send(Noop())
    conn.receive_data(b"299 odd but positive\r\n")
    reply = conn.next_event()
    assert isinstance(reply, Reply) and reply.is_positive and reply.code == 299


def test_R6_line_limit() -> None:
    conn = ClientConnection(limits=Limits(max_line_length=512))
    conn.receive_data(b"220 " + b"x" * 506 + b"\r\n")
    assert isinstance(conn.next_event(), Reply)
    conn = ClientConnection(limits=Limits(max_line_length=512))
    conn.receive_data(b"220 " + b"x" * 507 + b"\r\n")
    with pytest.raises(RemoteProtocolError):
        conn.next_event()


def test_S6_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="512"):
        Limits(max_line_length=100)
    with pytest.raises(ValueError, match="12288"):
        Limits(max_auth_line_length=1000)
    with pytest.raises(ValueError, match="max_reply_lines"):
        Limits(max_reply_lines=0)
    with pytest.raises(ValueError, match="max_reply_bytes"):
        Limits(max_reply_bytes=600)
    with pytest.raises(ValueError, match="unknown timeout"):
        ClientConnection(timeouts={"SOMETHING": 1})


# -- STARTTLS --------------------------------------------------------------------------------


def test_S4_starttls_pauses_and_forgets_extensions() -> None:
    run_all_splits(
        [
            *opened(),
            C(StartTLS(), b"STARTTLS\r\n"),
            S(b"220 2.0.0 ready\r\n", Reply(220, ("2.0.0 ready",), OK, StartTLS()), PAUSED),
        ]
    )
    conn = session()
    conn.send(StartTLS())
    conn.receive_data(b"220 ready\r\n")
    conn.next_event()
    assert conn.next_event() is PAUSED
    assert conn.state is State.TLS_PAUSED
    conn.tls_established()
    assert conn.tls and conn.extensions.esmtp is False and state(conn) is State.CONNECTED
    conn.send(Ehlo())
    conn.receive_data(b"250-mx\r\n250 AUTH PLAIN\r\n")
    assert isinstance(conn.next_event(), Reply)
    assert conn.extensions.auth == {"PLAIN"} and not conn.extensions.starttls
    with pytest.raises(LocalProtocolError, match="STARTTLS"):
        conn.send(StartTLS())


def test_starttls_cannot_be_used_twice() -> None:
    conn = session()
    conn.send(StartTLS())
    conn.receive_data(b"220 ready\r\n")
    conn.next_event()
    conn.tls_established()
    conn.send(Ehlo())
    conn.receive_data(b"250-mx\r\n250 STARTTLS\r\n")  # a confused server offers it again
    conn.next_event()
    with pytest.raises(LocalProtocolError, match="cannot be used twice"):
        conn.send(StartTLS())


def test_S4_plaintext_after_220_is_never_parsed() -> None:
    conn = session()
    conn.send(StartTLS())
    conn.receive_data(b"220 ready\r\n250-injected\r\n250 AUTH PLAIN\r\n")
    assert conn.next_event() == Reply(220, ("ready",), None, StartTLS())
    with pytest.raises(RemoteProtocolError, match="after its 220"):
        conn.next_event()
    conn = session()
    conn.send(StartTLS())
    conn.receive_data(b"220 ready\r\n")
    conn.next_event()
    assert conn.next_event() is PAUSED
    conn.receive_data(b"250 late injection\r\n")
    with pytest.raises(RemoteProtocolError):
        conn.next_event()


def test_S5_nothing_is_pipelined_behind_starttls() -> None:
    conn = session()
    conn.send(StartTLS())
    with pytest.raises(LocalProtocolError, match="in state STARTTLS"):
        conn.send(Ehlo())


def test_starttls_refused_needs_advertisement_and_tls_established_needs_pause() -> None:
    conn = session(EHLO_PLAIN)
    with pytest.raises(LocalProtocolError, match="did not advertise STARTTLS"):
        conn.send(StartTLS())
    conn = session()
    with pytest.raises(LocalProtocolError, match="tls_established"):
        conn.tls_established()
    conn = session()
    conn.send(StartTLS())
    conn.receive_data(b"454 4.7.0 TLS not available\r\n")
    assert isinstance(conn.next_event(), Reply)
    assert conn.state is State.READY


# -- AUTH ------------------------------------------------------------------------------------


def test_auth_with_initial_response_and_challenge() -> None:
    run_all_splits(
        [
            *opened(),
            C(Auth("PLAIN", b"\0user\0pass"), b"AUTH PLAIN AHVzZXIAcGFzcw==\r\n"),
            S(
                b"235 2.7.0 ok\r\n",
                Reply(235, ("2.7.0 ok",), EnhancedStatus(2, 7, 0), Auth("PLAIN", b"\0user\0pass")),
            ),
        ]
    )
    conn = session()
    conn.send(Auth("login"))
    assert conn.recommended_timeout == 300
    conn.receive_data(b"334 VXNlcm5hbWU6\r\n")
    assert conn.next_event() == Reply(334, ("VXNlcm5hbWU6",), None, Auth("login"))
    assert conn.state is State.AUTH_CHALLENGE
    assert conn.send(AuthResponse(b"user")) == b"dXNlcg==\r\n"
    conn.receive_data(b"334 UGFzc3dvcmQ6\r\n")
    conn.next_event()
    assert conn.send(AuthResponse(b"")) == b"\r\n"
    conn.receive_data(b"535 5.7.8 bad\r\n")
    assert conn.next_event().code == 535  # type: ignore[union-attr]
    assert state(conn) is State.READY and not conn.authenticated


def test_auth_empty_initial_response_and_cancel() -> None:
    conn = session()
    assert conn.send(Auth("PLAIN", b"")) == b"AUTH PLAIN =\r\n"
    conn.receive_data(b"334 \r\n")
    conn.next_event()
    assert conn.send(AuthResponse(cancel=True)) == b"*\r\n"
    conn.receive_data(b"501 cancelled\r\n")
    conn.next_event()
    assert conn.state is State.READY


def test_auth_rules() -> None:
    conn = session()
    with pytest.raises(LocalProtocolError, match="AUTH XOAUTH2"):
        conn.send(Auth("XOAUTH2", b"x"))
    conn = session()
    with pytest.raises(LocalProtocolError, match="longer than 512"):
        conn.send(Auth("PLAIN", b"x" * 400))
    conn = session()
    conn.send(Auth("PLAIN", b"\0u\0p"))
    conn.receive_data(b"235 ok\r\n")
    conn.next_event()
    assert conn.authenticated
    with pytest.raises(LocalProtocolError, match="already authenticated"):
        conn.send(Auth("PLAIN", b"\0u\0p"))
    with pytest.raises(ValueError, match="keyword"):
        Auth("PLAIN\r\nMAIL")


def test_S6_auth_challenges_may_be_longer() -> None:
    conn = session()
    conn.send(Auth("CRAM-MD5"))
    conn.receive_data(b"334 " + b"A" * 10000 + b"\r\n")
    reply = conn.next_event()
    assert isinstance(reply, Reply) and reply.code == 334
    conn.send(AuthResponse(b"x"))
    conn.receive_data(b"235 ok\r\n")
    conn.next_event()
    conn.send(Noop())
    conn.receive_data(b"250 " + b"A" * 10000 + b"\r\n")
    with pytest.raises(RemoteProtocolError):
        conn.next_event()


# -- BDAT ------------------------------------------------------------------------------------


def test_bdat_pipelined_in_one_flight() -> None:
    mail, rcpt = MailFrom("a@example.org", body="8BITMIME"), RcptTo("b@example.net")
    chunk = "Subject: é\r\n\r\n.body\r\n".encode()
    run_all_splits(
        [
            *opened(),
            C(mail, b"MAIL FROM:<a@example.org> BODY=8BITMIME\r\n"),
            C(rcpt, b"RCPT TO:<b@example.net>\r\n"),
            C(Bdat(chunk, last=True), b"BDAT %d LAST\r\n" % len(chunk) + chunk),
            C(Quit(), b"QUIT\r\n"),
            S(
                b"250 ok\r\n250 ok\r\n250 2.0.0 queued\r\n221 bye\r\n",
                Reply(250, ("ok",), None, mail),
                Reply(250, ("ok",), None, rcpt),
                Reply(250, ("2.0.0 queued",), OK, Bdat(chunk, last=True)),
                Reply(221, ("bye",), None, Quit()),
            ),
        ]
    )


def test_bdat_chunks_may_split_crlf_but_not_hold_bare_endings() -> None:
    conn = session()
    conn.send(MailFrom("a@example.org"))
    conn.send(RcptTo("b@example.net"))
    assert conn.send(Bdat(b"line\r")) == b"BDAT 5\r\nline\r"
    assert conn.recommended_timeout == 300  # the MAIL reply is awaited first
    assert conn.send(Bdat(b"\nnext\r\n")) == b"BDAT 7\r\n\nnext\r\n"
    assert conn.send(Bdat(b"", last=True)) == b"BDAT 0 LAST\r\n"
    for bad in (b"bare\nlf", b"bare\rcr"):
        conn = session()
        conn.send(MailFrom("a@example.org"))
        conn.send(RcptTo("b@example.net"))
        with pytest.raises(LocalProtocolError, match="bare CR or LF"):
            conn.send(Bdat(bad))
    conn = session()
    conn.send(MailFrom("a@example.org"))
    conn.send(RcptTo("b@example.net"))
    conn.send(Bdat(b"x\r"))
    with pytest.raises(LocalProtocolError, match="bare CR"):
        conn.send(Bdat(b"y"))
    conn = session()
    conn.send(MailFrom("a@example.org"))
    conn.send(RcptTo("b@example.net"))
    with pytest.raises(LocalProtocolError, match="ends with a bare CR"):
        conn.send(Bdat(b"x\r", last=True))


def test_bdat_binarymime_sends_octets_untouched() -> None:
    conn = session()
    conn.send(MailFrom("a@example.org", body="BINARYMIME"))
    conn.send(RcptTo("b@example.net"))
    with pytest.raises(LocalProtocolError, match="BDAT"):
        conn.send(Data())
    conn = session()
    conn.send(MailFrom("a@example.org", body="BINARYMIME"))
    conn.send(RcptTo("b@example.net"))
    assert conn.send(Bdat(b"\x00\xff\n\r", last=True)) == b"BDAT 4 LAST\r\n\x00\xff\n\r"


def test_bdat_failure_blocks_further_chunks_until_rset() -> None:
    conn = session(b"250-mx\r\n250 CHUNKING\r\n")
    conn.send(MailFrom("a@example.org"))
    conn.receive_data(b"250 ok\r\n")
    conn.next_event()
    conn.send(RcptTo("b@example.net"))
    conn.receive_data(b"250 ok\r\n")
    conn.next_event()
    conn.send(Bdat(b"abc\r\n"))
    assert conn.recommended_timeout == 180
    conn.receive_data(b"452 4.3.1 full\r\n")
    conn.next_event()
    assert conn.state is State.BDAT_FAILED
    with pytest.raises(LocalProtocolError, match="BDAT in state BDAT_FAILED"):
        conn.send(Bdat(b"more"))
    conn = session(b"250-mx\r\n250 CHUNKING\r\n")
    for event, reply in (
        (MailFrom("a@example.org"), b"250 ok\r\n"),
        (RcptTo("b@example.net"), b"250 ok\r\n"),
    ):
        conn.send(event)
        conn.receive_data(reply)
        conn.next_event()
    conn.send(Bdat(b"abc\r\n", last=True))
    conn.receive_data(b"554 no\r\n")
    conn.next_event()
    assert conn.state is State.BDAT_FAILED
    assert conn.send(Rset()) == b"RSET\r\n"


def test_bdat_needs_chunking() -> None:
    conn = session(EHLO_PLAIN)
    conn.send(MailFrom("a@example.org"))
    conn.receive_data(b"250 ok\r\n")
    conn.next_event()
    conn.send(RcptTo("b@example.net"))
    conn.receive_data(b"250 ok\r\n")
    conn.next_event()
    with pytest.raises(LocalProtocolError, match="CHUNKING"):
        conn.send(Bdat(b"x", last=True))
    conn = session(b"250-mx\r\n250 BINARYMIME\r\n")
    with pytest.raises(LocalProtocolError, match="CHUNKING"):
        conn.send(MailFrom("a@example.org", body="BINARYMIME"))


# -- LMTP ------------------------------------------------------------------------------------


def test_lmtp_one_reply_per_accepted_recipient() -> None:
    mail = MailFrom("a@example.org")
    r1, r2, r3 = RcptTo("b@example.net"), RcptTo("c@example.net"), RcptTo("d@example.net")
    run_all_splits(
        [
            S(b"220 lmtp ready\r\n", Reply(220, ("lmtp ready",))),
            C(Lhlo(), b"LHLO client.example.org\r\n"),
            S(b"250-lmtp\r\n250 PIPELINING\r\n", Reply(250, ("lmtp", "PIPELINING"), None, Lhlo())),
            C(mail, b"MAIL FROM:<a@example.org>\r\n"),
            C(r1, b"RCPT TO:<b@example.net>\r\n"),
            C(r2, b"RCPT TO:<c@example.net>\r\n"),
            C(r3, b"RCPT TO:<d@example.net>\r\n"),
            C(Data(), b"DATA\r\n"),
            S(
                b"250 ok\r\n250 ok\r\n550 no\r\n250 ok\r\n354 go\r\n",
                Reply(250, ("ok",), None, mail),
                Reply(250, ("ok",), None, r1),
                Reply(550, ("no",), None, r2),
                Reply(250, ("ok",), None, r3),
                Reply(354, ("go",), None, Data()),
            ),
            C(MessageData(b"hi\n"), b"hi\r\n"),
            C(EndOfMessage(), b".\r\n"),
            C(Quit(), b"QUIT\r\n"),
            S(
                b"250 delivered b\r\n452 over quota d\r\n221 bye\r\n",
                Reply(250, ("delivered b",), None, EndOfMessage()),
                Reply(452, ("over quota d",), None, EndOfMessage()),
                Reply(221, ("bye",), None, Quit()),
            ),
        ],
        lmtp=True,
    )


def test_lmtp_and_smtp_greetings_do_not_mix() -> None:
    conn = ClientConnection(lmtp=True)
    conn.receive_data(GREETING)
    conn.next_event()
    with pytest.raises(LocalProtocolError, match="LMTP"):
        conn.send(Ehlo())
    conn = ClientConnection()
    conn.receive_data(GREETING)
    conn.next_event()
    with pytest.raises(LocalProtocolError, match="SMTP"):
        conn.send(Lhlo())


def test_lmtp_bdat_last_with_no_accepted_recipient_gets_one_reply() -> None:
    conn = ClientConnection(lmtp=True)
    conn.receive_data(b"220 x\r\n")
    conn.next_event()
    conn.send(Lhlo())
    conn.receive_data(b"250-x\r\n250-PIPELINING\r\n250 CHUNKING\r\n")
    conn.next_event()
    conn.send(MailFrom("a@example.org"))
    conn.send(RcptTo("b@example.net"))
    conn.send(Bdat(b"x\r\n", last=True))
    conn.send(Noop())
    conn.receive_data(b"250 ok\r\n550 no\r\n554 no valid recipients\r\n250 ok\r\n")
    codes = [conn.next_event().code for _ in range(4)]  # type: ignore[union-attr]
    assert codes == [250, 550, 554, 250]


# -- timeouts --------------------------------------------------------------------------------


def test_C17_recommended_timeouts() -> None:
    conn = session()
    assert conn.recommended_timeout is None and conn.awaiting is None
    conn.send(MailFrom("a@example.org"))
    assert conn.recommended_timeout == 300
    # The kind awaited is the phase named in errors and in the timeouts: a str.
    assert conn.awaiting == "MAIL" and f"{conn.awaiting}" == "MAIL"
    conn.send(RcptTo("b@example.net"))
    conn.send(Data())
    conn.receive_data(b"250 ok\r\n250 ok\r\n")
    conn.next_event()
    conn.next_event()
    assert conn.recommended_timeout == 120
    conn.receive_data(b"354 go\r\n")
    conn.next_event()
    assert conn.recommended_timeout == 180
    conn.send(EndOfMessage())
    assert conn.recommended_timeout == 600
    conn.send(Rset())
    assert conn.pending == (EndOfMessage(), Rset())
    conn = ClientConnection(timeouts={"GREETING": 5})
    assert conn.recommended_timeout == 5
    # The phase names are plain strings, as the docs show them.
    assert all(type(name) is str for name in conn.timeouts)


def test_S4_server_hanging_up_instead_of_starting_tls_is_a_close() -> None:
    conn = session()
    conn.send(StartTLS())
    conn.receive_data(b"220 ready\r\n")
    conn.next_event()
    assert conn.next_event() is PAUSED
    conn.receive_data(b"")
    assert conn.next_event() == ConnectionClosed()
    assert conn.state is State.CLOSED


# -- reply codes outside 2xx-5xx (R5) ------------------------------------------------------
# Well framed, so the reply answers its command and the dialogue stays in step: the machine
# raises UnexpectedReplyCode, moves as for a refusal, and RSET and QUIT remain possible
# (RFC 5321 §4.2: treat it as fatal and end the transaction; C14: QUIT in every state).

MAIL, RCPT1, RCPT2 = MailFrom("a@example.org"), RcptTo("b@example.net"), RcptTo("c@example.net")
QUIT_AND_CLOSE: list[C | S] = [
    C(Quit(), b"QUIT\r\n"),
    S(b"221 bye\r\n", Reply(221, ("bye",), None, Quit())),
    S(b"", ConnectionClosed()),
]


def test_R5_651_to_a_pipelined_rcpt_is_consumed_and_the_transaction_can_end() -> None:
    run_all_splits(
        [
            *opened(),
            C(MAIL, b"MAIL FROM:<a@example.org>\r\n"),
            C(RCPT1, b"RCPT TO:<b@example.net>\r\n"),
            C(RCPT2, b"RCPT TO:<c@example.net>\r\n"),
            C(Data(), b"DATA\r\n"),
            S(
                b"250 2.1.0 ok\r\n651-what\r\n651 is this\r\n550 5.1.1 no\r\n"
                b"554 5.5.1 no valid recipients\r\n",
                Reply(250, ("2.1.0 ok",), EnhancedStatus(2, 1, 0), MAIL),
                Unexpected(651, ("what", "is this"), RCPT1),
                Reply(550, ("5.1.1 no",), EnhancedStatus(5, 1, 1), RCPT2),
                Reply(554, ("5.5.1 no valid recipients",), EnhancedStatus(5, 5, 1), Data()),
            ),
            C(Rset(), b"RSET\r\n"),
            S(b"250 ok\r\n", Reply(250, ("ok",), None, Rset())),
            *QUIT_AND_CLOSE,
        ]
    )


def test_R5_651_to_rcpt_is_no_accepted_recipient() -> None:
    # The 354 to a DATA pipelined behind still comes; with nothing accepted only the lone dot
    # may follow (C11), which ends the transaction.
    conn = session()
    for command in (MAIL, RCPT1, Data()):
        conn.send(command)
    conn.receive_data(b"250 ok\r\n651 what\r\n354 go\r\n")
    assert isinstance(conn.next_event(), Reply)
    with pytest.raises(UnexpectedReplyCode) as caught:
        conn.next_event()
    assert (caught.value.code, caught.value.lines, caught.value.command) == (651, ("what",), RCPT1)
    assert caught.value.temporary and isinstance(caught.value, RemoteProtocolError)
    assert conn.next_event() == Reply(354, ("go",), None, Data())
    assert state(conn) is State.MESSAGE
    with pytest.raises(LocalProtocolError, match="no recipient was accepted"):
        conn.send(MessageData(b"x"))


def test_R5_651_to_mail_without_pipelining_returns_to_ready() -> None:
    run_all_splits(
        [
            *opened(EHLO_PLAIN, ("mx.example.net", "8BITMIME")),
            C(MAIL, b"MAIL FROM:<a@example.org>\r\n"),
            S(b"651 5.1.0 odd\r\n", Unexpected(651, ("5.1.0 odd",), MAIL)),
            C(Rset(), b"RSET\r\n"),
            S(b"250 ok\r\n", Reply(250, ("ok",), None, Rset())),
            C(MAIL, b"MAIL FROM:<a@example.org>\r\n"),
            S(b"250 ok\r\n", Reply(250, ("ok",), None, MAIL)),
        ]
    )


@pytest.mark.parametrize("code", [b"000", b"099", b"100", b"199", b"600", b"651", b"999"])
def test_R5_every_first_digit_outside_2_to_5_is_unexpected(code: bytes) -> None:
    conn = session()
    conn.send(Noop())
    conn.receive_data(code + b" x\r\n")
    with pytest.raises(UnexpectedReplyCode, match=code.decode()) as caught:
        conn.next_event()
    assert caught.value.code == int(code) and caught.value.command == Noop()
    assert state(conn) is State.READY and conn.pending == ()
    assert conn.send(Quit()) == b"QUIT\r\n"


def test_R5_651_greeting_allows_only_quit() -> None:
    run_all_splits(
        [
            S(b"651 mx.example.net what\r\n", Unexpected(651, ("mx.example.net what",))),
            *QUIT_AND_CLOSE,
        ]
    )
    conn = run([S(b"651 x\r\n", Unexpected(651, ("x",)))])
    assert state(conn) is State.REFUSED


def test_R5_651_to_ehlo_learns_nothing() -> None:
    conn = run(
        [
            S(GREETING, Reply(220, ("mx.example.net ESMTP",))),
            C(Ehlo(), b"EHLO client.example.org\r\n"),
            S(b"651-mx\r\n651 PIPELINING\r\n", Unexpected(651, ("mx", "PIPELINING"), Ehlo())),
            C(Rset(), b"RSET\r\n"),
            S(b"250 ok\r\n", Reply(250, ("ok",), None, Rset())),
        ]
    )
    assert state(conn) is State.CONNECTED and not conn.extensions.pipelining


def test_R5_651_to_data_end_of_data_and_bdat() -> None:
    conn = session()
    conn.send(MAIL)
    conn.send(RCPT1)
    conn.receive_data(b"250 ok\r\n250 ok\r\n")
    conn.next_event()
    conn.next_event()
    conn.send(Data())
    conn.receive_data(b"651 no idea\r\n")
    with pytest.raises(UnexpectedReplyCode):
        conn.next_event()
    assert state(conn) is State.RCPT  # as for a refused DATA: RSET ends the transaction
    conn.send(Data())
    conn.receive_data(b"354 go\r\n")
    conn.next_event()
    conn.send(EndOfMessage())
    conn.receive_data(b"651 queued?\r\n")
    with pytest.raises(UnexpectedReplyCode) as caught:
        conn.next_event()
    assert caught.value.command == EndOfMessage()
    assert state(conn) is State.READY  # the transaction is over; its fate is unknown
    conn = session()
    for command in (MAIL, RCPT1, Bdat(b"x\r\n", last=True)):
        conn.send(command)
    conn.receive_data(b"250 ok\r\n250 ok\r\n651 what\r\n")
    conn.next_event()
    conn.next_event()
    with pytest.raises(UnexpectedReplyCode):
        conn.next_event()
    assert state(conn) is State.BDAT_FAILED  # as for a refused chunk: RSET before the next MAIL
    assert conn.send(Rset()) == b"RSET\r\n"


def test_R5_651_to_starttls_and_auth_changes_nothing_else() -> None:
    conn = session()
    conn.send(StartTLS())
    conn.receive_data(b"651 what\r\n")
    with pytest.raises(UnexpectedReplyCode):
        conn.next_event()
    assert state(conn) is State.READY and not conn.tls
    assert conn.next_event() is NEED_DATA  # no PAUSED: there is no handshake to do
    conn.send(Auth("PLAIN", b"\0u\0p"))
    conn.receive_data(b"735 what\r\n")
    with pytest.raises(UnexpectedReplyCode):
        conn.next_event()
    assert state(conn) is State.READY and not conn.authenticated


def test_R5_lmtp_651_counts_as_one_recipients_reply() -> None:
    mail, r1, r2 = MailFrom("a@example.org"), RcptTo("b@example.net"), RcptTo("c@example.net")
    run_all_splits(
        [
            S(b"220 lmtp ready\r\n", Reply(220, ("lmtp ready",))),
            C(Lhlo(), b"LHLO client.example.org\r\n"),
            S(b"250-lmtp\r\n250 PIPELINING\r\n", Reply(250, ("lmtp", "PIPELINING"), None, Lhlo())),
            C(mail, b"MAIL FROM:<a@example.org>\r\n"),
            C(r1, b"RCPT TO:<b@example.net>\r\n"),
            C(r2, b"RCPT TO:<c@example.net>\r\n"),
            C(Data(), b"DATA\r\n"),
            S(
                b"250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n",
                Reply(250, ("ok",), None, mail),
                Reply(250, ("ok",), None, r1),
                Reply(250, ("ok",), None, r2),
                Reply(354, ("go",), None, Data()),
            ),
            C(EndOfMessage(), b".\r\n"),
            C(Rset(), b"RSET\r\n"),
            S(
                b"651 b?\r\n250 delivered c\r\n250 reset\r\n",
                Unexpected(651, ("b?",), EndOfMessage()),
                Reply(250, ("delivered c",), None, EndOfMessage()),
                Reply(250, ("reset",), None, Rset()),
            ),
            *QUIT_AND_CLOSE,
        ],
        lmtp=True,
    )


def test_R5_unsolicited_651_is_out_of_step() -> None:
    conn = session()
    conn.receive_data(b"651 surprise\r\n")
    with pytest.raises(RemoteProtocolError, match="no command outstanding") as caught:
        conn.next_event()
    assert not isinstance(caught.value, UnexpectedReplyCode)
    assert state(conn) is State.ERROR


def test_R5_a_651_line_in_a_250_reply_is_a_framing_error() -> None:
    conn = session()
    conn.send(Noop())
    conn.receive_data(b"250-ok\r\n651 what\r\n")
    with pytest.raises(RemoteProtocolError, match="differs") as caught:
        conn.next_event()
    assert not isinstance(caught.value, UnexpectedReplyCode)
    assert state(conn) is State.ERROR


def test_R5_an_unexpected_code_is_quoted_within_bounds() -> None:
    conn = session()
    conn.send(Noop())
    conn.receive_data(b"651 " + b"x" * 1000 + b"\r\n")
    with pytest.raises(UnexpectedReplyCode) as caught:
        conn.next_event()
    assert len(str(caught.value)) < 300 and caught.value.lines == ("x" * 1000,)


# -- only the tables move the state ---------------------------------------------------------


@pytest.mark.parametrize("name", ["state", "extensions", "tls", "authenticated"])
def test_state_and_what_was_learnt_are_read_only(name: str) -> None:
    conn = session()
    with pytest.raises(AttributeError):
        setattr(conn, name, getattr(conn, name))


def test_lmtp_refused_last_chunk_is_one_recipient_not_a_failed_chunk() -> None:
    conn = ClientConnection(lmtp=True)
    conn.receive_data(b"220 x\r\n")
    conn.next_event()
    conn.send(Lhlo())
    conn.receive_data(b"250-x\r\n250-PIPELINING\r\n250 CHUNKING\r\n")
    conn.next_event()
    for command in (MAIL, RCPT1, Bdat(b"x\r\n", last=True)):
        conn.send(command)
    conn.receive_data(b"250 ok\r\n250 ok\r\n452 4.2.2 over quota\r\n")
    assert [conn.next_event().code for _ in range(3)] == [250, 250, 452]  # type: ignore[union-attr]
    assert state(conn) is State.READY
    assert conn.send(MAIL) == b"MAIL FROM:<a@example.org>\r\n"
