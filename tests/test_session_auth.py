"""Session.authenticate: mechanism choice, SASL exchanges, and the cleartext rule (S8)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from smtpproto import (
    AuthenticationError,
    AuthNotSupported,
    CleartextAuthRefused,
    ConnectionLostError,
    LocalProtocolError,
    SMTPTimeoutError,
)
from smtpproto import Reply as SMTPReply
from smtpproto.driver import Operation

from .scripted import EOF, Expect, Fail, Reply, Step, open_session, run, run_both

OK = b"235 2.7.0 authenticated\r\n"
QUIT = b"QUIT\r\n"
BYE = b"221 2.0.0 bye\r\n"


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def auth_line(mechanism: str, initial: bytes | None = None) -> bytes:
    line = b"AUTH " + mechanism.encode()
    if initial is not None:
        line += b" " + b64(initial)
    return line + b"\r\n"


# -- choosing a mechanism -------------------------------------------------------------------


def test_AUTH_PLAIN_with_initial_response_over_TLS() -> None:
    def make() -> Operation[SMTPReply]:
        session = open_session("AUTH LOGIN PLAIN", tls=True)
        return session.authenticate("user", "secret")

    script = [
        Expect.send(auth_line("PLAIN", b"\0user\0secret"), phase="AUTH"),
        Reply(OK, phase="AUTH", timeout=300.0),
    ]
    reply = run_both(make, script)
    assert reply.code == 235


def test_AUTH_LOGIN_answers_each_challenge_by_order() -> None:
    session = open_session("AUTH LOGIN", tls=True)
    script = [
        Expect.send(b"AUTH LOGIN\r\n"),
        Reply(b"334 " + b64(b"Username:") + b"\r\n"),
        Expect.send(b64(b"user") + b"\r\n", phase="AUTH-RESPONSE"),
        Reply(b"334 " + b64(b"Password:") + b"\r\n", phase="AUTH-RESPONSE"),
        Expect.send(b64(b"secret") + b"\r\n"),
        Reply(OK),
    ]
    assert run(session.authenticate("user", "secret"), script).code == 235


def test_AUTH_CRAM_MD5_answers_the_RFC_2195_challenge_in_cleartext() -> None:
    session = open_session("AUTH CRAM-MD5 PLAIN")  # no TLS: CRAM-MD5 sends no reusable secret
    challenge = b"<1896.697170952@postoffice.reston.mci.net>"
    script = [
        Expect.send(b"AUTH CRAM-MD5\r\n"),
        Reply(b"334 " + b64(challenge) + b"\r\n"),
        Expect.send(b64(b"tim b913a602c7eda7a495b4e6e7334d3890") + b"\r\n"),
        Reply(OK),
    ]
    run(session.authenticate("tim", "tanstaaftanstaaf"), script)


def test_AUTH_explicit_mechanism_is_used() -> None:
    session = open_session("AUTH PLAIN LOGIN")
    script = [Expect.send(b"AUTH LOGIN\r\n"), Reply(b"334 VXNlcm5hbWU6\r\n")]
    script += [Expect.send(b64(b"u") + b"\r\n"), Reply(b"334 UGFzc3dvcmQ6\r\n")]
    script += [Expect.send(b64(b"p") + b"\r\n"), Reply(OK)]
    run(session.authenticate("u", "p", mechanism="login", allow_cleartext=True), script)


def test_AUTH_explicit_mechanism_not_offered_is_a_local_error_and_closes() -> None:
    session = open_session("AUTH PLAIN")
    with pytest.raises(LocalProtocolError, match="CRAM-MD5"):
        run(session.authenticate("u", "p", mechanism="CRAM-MD5"), [Expect.close()])


def test_AUTH_XOAUTH2_with_a_token() -> None:
    session = open_session("AUTH PLAIN XOAUTH2", tls=True)
    initial = b"user=u@example.org\x01auth=Bearer ya29.tok\x01\x01"
    script = [Expect.send(auth_line("XOAUTH2", initial)), Reply(OK)]
    run(session.authenticate("u@example.org", token="ya29.tok"), script)


def test_AUTH_XOAUTH2_error_challenge_gets_an_empty_line_then_fails() -> None:
    session = open_session("AUTH XOAUTH2", tls=True)
    error = json.dumps({"status": "401", "schemes": "bearer"}).encode()
    script = [
        Expect.send(auth_line("XOAUTH2", b"user=u\x01auth=Bearer tok\x01\x01")),
        Reply(b"334 " + b64(error) + b"\r\n"),
        Expect.send(b"\r\n"),
        Reply(b"535 5.7.8 bad token\r\n"),
    ]
    with pytest.raises(AuthenticationError) as caught:
        run(session.authenticate("u", token="tok"), script)
    assert caught.value.code == 535
    assert not session.closed


# -- S8: never a password in cleartext unless allowed ----------------------------------------


def test_S8_PLAIN_only_server_without_TLS_refuses_before_writing() -> None:
    session = open_session("AUTH PLAIN LOGIN")
    with pytest.raises(CleartextAuthRefused, match="allow_cleartext"):
        session.authenticate("user", "secret")  # raises at the call: nothing was yielded
    assert not session.closed
    # Explicitly allowed: then it is sent.
    script = [Expect.send(auth_line("PLAIN", b"\0user\0secret")), Reply(OK)]
    run(session.authenticate("user", "secret", allow_cleartext=True), script)


def test_S8_explicit_cleartext_mechanism_without_TLS_is_refused() -> None:
    session = open_session("AUTH PLAIN CRAM-MD5")
    with pytest.raises(CleartextAuthRefused, match="PLAIN would expose"):
        session.authenticate("user", "secret", mechanism="PLAIN")


def test_S8_token_mechanisms_without_TLS_are_refused() -> None:
    session = open_session("AUTH XOAUTH2 OAUTHBEARER")
    with pytest.raises(CleartextAuthRefused):
        session.authenticate("user", token="tok")


def test_AUTH_not_offered() -> None:
    with pytest.raises(AuthNotSupported, match="does not offer AUTH"):
        open_session("SIZE 10", tls=True).authenticate("user", "secret")


@pytest.mark.parametrize("tls", [True, False])
def test_AUTH_no_usable_mechanism_is_not_a_cleartext_refusal(tls: bool) -> None:
    session = open_session("AUTH GSSAPI NTLM", tls=tls)
    with pytest.raises(AuthNotSupported, match="no usable mechanism"):
        session.authenticate("user", "secret")


def test_AUTH_password_for_a_token_only_server_over_TLS() -> None:
    session = open_session("AUTH XOAUTH2", tls=True)
    with pytest.raises(AuthNotSupported):
        session.authenticate("user", "secret")


# -- failures ------------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "temporary"), [(535, False), (454, True), (534, False)])
def test_AUTH_failure_reply_raises_and_keeps_the_session(code: int, temporary: bool) -> None:
    session = open_session("AUTH PLAIN", tls=True)
    script = [Expect.send(auth_line("PLAIN", b"\0u\0p")), Reply(b"%d 5.7.8 no\r\n" % code)]
    with pytest.raises(AuthenticationError, match="authentication failed") as caught:
        run(session.authenticate("u", "p"), script)
    assert caught.value.code == code
    assert caught.value.temporary is temporary
    assert not session.closed


def test_AUTH_undecodable_challenge_is_cancelled_with_a_star() -> None:
    session = open_session("AUTH LOGIN", tls=True)
    script = [
        Expect.send(b"AUTH LOGIN\r\n"),
        Reply(b"334 not*base64!\r\n"),
        Expect.send(b"*\r\n", phase="AUTH-RESPONSE"),
        Reply(b"501 5.7.0 cancelled\r\n"),
    ]
    with pytest.raises(AuthenticationError, match="cancelled") as caught:
        run(session.authenticate("u", "p"), script)
    assert caught.value.code == 501
    # The session is still usable.
    run(session.noop(), [Expect.send(b"NOOP\r\n"), Reply(b"250 ok\r\n")])


def test_AUTH_challenge_the_mechanism_refuses_is_cancelled() -> None:
    session = open_session("AUTH CRAM-MD5")
    script = [
        Expect.send(b"AUTH CRAM-MD5\r\n"),
        Reply(b"334 \r\n"),  # an empty CRAM-MD5 challenge would make a replayable response
        Expect.send(b"*\r\n"),
        Reply(b"501 cancelled\r\n"),
    ]
    with pytest.raises(AuthenticationError, match="empty challenge"):
        run(session.authenticate("u", "p"), script)


def test_AUTH_timeout_closes() -> None:
    session = open_session("AUTH PLAIN", tls=True)
    script = [
        Expect.send(auth_line("PLAIN", b"\0u\0p")),
        Fail(SMTPTimeoutError("AUTH", 300.0)),
        Expect.close(),
    ]
    with pytest.raises(SMTPTimeoutError):
        run(session.authenticate("u", "p"), script)
    assert session.closed


def test_AUTH_connection_lost_closes() -> None:
    session = open_session("AUTH PLAIN", tls=True)
    script = [Expect.send(auth_line("PLAIN", b"\0u\0p")), EOF, Expect.close()]
    with pytest.raises(ConnectionLostError, match="connection lost during AUTH"):
        run(session.authenticate("u", "p"), script)


# -- the 512-octet rule (RFC 4954 §4) --------------------------------------------------------


def test_AUTH_initial_response_kept_while_the_line_fits() -> None:
    password = "p" * 369  # "\0u\0" + 369 octets = 372 -> 496 base64 -> a 509-octet line
    session = open_session("AUTH PLAIN", tls=True)
    line = auth_line("PLAIN", b"\0u\0" + password.encode())
    assert len(line) == 509
    run(session.authenticate("u", password), [Expect.send(line), Reply(OK)])


def test_AUTH_initial_response_over_512_octets_is_sent_after_an_empty_334() -> None:
    password = "p" * 370  # one more octet: 500 base64 characters, a 513-octet line
    session = open_session("AUTH PLAIN", tls=True)
    response = b64(b"\0u\0" + password.encode()) + b"\r\n"
    script = [
        Expect.send(b"AUTH PLAIN\r\n"),
        Reply(b"334 \r\n"),
        Expect.send(response),
        Reply(OK),
    ]
    run(session.authenticate("u", password), script)


# -- SCRAM-SHA-256 against a scripted server that checks the proof (RFC 7677, RFC 5802) -------


class ScramServer:
    """The server side of SCRAM-SHA-256, computed with hashlib from what the client sends.

    Uses the salt, iteration count and server nonce of the RFC 7677 §3 example; the client's
    nonce is random, so every value is derived at run time.
    """

    def __init__(self, password: str = "pencil", *, wrong_signature: bool = False) -> None:
        self.password = password.encode()
        self.salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
        self.iterations = 4096
        self.server_nonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
        self.wrong_signature = wrong_signature
        self.signature = b""

    def _hmac(self, key: bytes, message: bytes) -> bytes:
        return hmac.new(key, message, hashlib.sha256).digest()

    def client_first(self, sent: bytes) -> None:
        prefix = b"AUTH SCRAM-SHA-256 "
        assert sent.startswith(prefix)
        assert sent.endswith(b"\r\n")
        message = base64.b64decode(sent[len(prefix) : -2]).decode()
        assert message.startswith("n,,")  # no channel binding, no authzid
        self.client_first_bare = message[3:]
        attributes = dict(part.split("=", 1) for part in self.client_first_bare.split(","))
        assert attributes["n"] == "user"
        self.nonce = attributes["r"] + self.server_nonce

    def server_first(self) -> bytes:
        salt = base64.b64encode(self.salt).decode()
        self.server_first_message = f"r={self.nonce},s={salt},i={self.iterations}"
        return b"334 " + b64(self.server_first_message.encode()) + b"\r\n"

    def client_final(self, sent: bytes) -> None:
        message = base64.b64decode(sent[:-2]).decode()
        without_proof, proof = message.rsplit(",p=", 1)
        assert without_proof == f"c=biws,r={self.nonce}"
        auth_message = ",".join(
            [self.client_first_bare, self.server_first_message, without_proof]
        ).encode()
        salted = hashlib.pbkdf2_hmac("sha256", self.password, self.salt, self.iterations)
        client_key = self._hmac(salted, b"Client Key")
        stored_key = hashlib.sha256(client_key).digest()
        signature = self._hmac(stored_key, auth_message)
        recovered = bytes(a ^ b for a, b in zip(base64.b64decode(proof), signature, strict=True))
        assert hashlib.sha256(recovered).digest() == stored_key, "the client proof is wrong"
        self.signature = self._hmac(self._hmac(salted, b"Server Key"), auth_message)

    def server_final(self) -> bytes:
        signature = self.signature
        if self.wrong_signature:
            signature = bytes(b ^ 1 for b in signature)
        return b"334 " + b64(b"v=" + base64.b64encode(signature)) + b"\r\n"


def scram_exchange(server: ScramServer) -> list[Step]:
    return [
        Expect.send(server.client_first),
        Reply(server.server_first),
        Expect.send(server.client_final),
        Reply(server.server_final),
    ]


def test_AUTH_SCRAM_SHA_256_is_preferred_and_verifies_the_server() -> None:
    server = ScramServer()

    def make() -> Operation[SMTPReply]:
        return open_session("AUTH PLAIN SCRAM-SHA-256").authenticate("user", "pencil")

    # The server-final message comes in a 334; the client answers with an empty line.
    script = [*scram_exchange(server), Expect.send(b"\r\n"), Reply(OK)]
    reply = run_both(make, script)
    assert reply.code == 235


def test_AUTH_SCRAM_success_without_a_server_signature_is_not_trusted() -> None:
    server = ScramServer()
    session = open_session("AUTH SCRAM-SHA-256")
    script = [
        Expect.send(server.client_first),
        Reply(server.server_first),
        Expect.send(server.client_final),
        Reply(OK),  # 235 at once: the server never proved it knows the password
        Expect.send(QUIT),
        Reply(BYE),
        Expect.close(),
    ]
    with pytest.raises(AuthenticationError, match="failed to authenticate itself"):
        run(session.authenticate("user", "pencil"), script)
    assert session.closed


def test_AUTH_SCRAM_wrong_password_is_refused_by_the_server() -> None:
    server = ScramServer(password="not pencil")
    session = open_session("AUTH SCRAM-SHA-256")
    script = [
        Expect.send(server.client_first),
        Reply(server.server_first),
        Expect.send(lambda sent: None),  # any client-final: this server cannot check it
        Reply(b"535 5.7.8 bad\r\n"),
    ]
    with pytest.raises(AuthenticationError):
        run(session.authenticate("user", "pencil"), script)


def test_AUTH_SCRAM_wrong_server_signature_quits_and_closes() -> None:
    server = ScramServer(wrong_signature=True)
    session = open_session("AUTH SCRAM-SHA-256")
    script = [
        *scram_exchange(server),
        Expect.send(b"*\r\n"),
        Reply(b"501 5.7.0 cancelled\r\n"),
        Expect.send(QUIT),
        Reply(BYE),
        Expect.close(),
    ]
    with pytest.raises(AuthenticationError, match="signature"):
        run(session.authenticate("user", "pencil"), script)
    assert session.closed


def test_AUTH_twice_is_refused_by_the_machine() -> None:
    session = open_session("AUTH PLAIN", tls=True)
    run(session.authenticate("u", "p"), [Expect.send(auth_line("PLAIN", b"\0u\0p")), Reply(OK)])
    with pytest.raises(LocalProtocolError, match="already authenticated"):
        run(session.authenticate("u", "p"), [Expect.close()])
