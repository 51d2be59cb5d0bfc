"""SASL client mechanisms (RFC 4954 AUTH; S8 cleartext rule) against the RFCs' test vectors."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smtpproto.sasl import (
    CramMD5Mechanism,
    ExternalMechanism,
    LoginMechanism,
    Mechanism,
    OAuthBearerMechanism,
    PlainMechanism,
    SASLError,
    ScramSHA1Mechanism,
    ScramSHA256Mechanism,
    XOAuth2Mechanism,
    choose_mechanism,
    create_mechanism,
    saslprep,
)

# RFC 5802 §5 (SCRAM-SHA-1) and RFC 7677 §3 (SCRAM-SHA-256) exchanges for user/pencil.
SHA1_NONCE = "fyko+d2lbbFgONRv9qkxdawL"
SHA1_SERVER_FIRST = b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096"
SHA1_CLIENT_FINAL = (
    b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
)
SHA1_SERVER_FINAL = b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ="

SHA256_NONCE = "rOprNGfwEbeRWgbNEkqO"
SHA256_SERVER_FIRST = (
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
SHA256_CLIENT_FINAL = (
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
SHA256_SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def scram256(min_iterations: int = 4096) -> ScramSHA256Mechanism:
    mechanism = create_mechanism(
        "scram-sha-256",
        username="user",
        password="pencil",
        nonce=SHA256_NONCE,
        min_iterations=min_iterations,
    )
    assert isinstance(mechanism, ScramSHA256Mechanism)
    return mechanism


def scram256_after_first(server_first: bytes) -> ScramSHA256Mechanism:
    mechanism = scram256()
    mechanism.respond(server_first)
    return mechanism


# --- PLAIN, EXTERNAL ----------------------------------------------------------------------


def test_plain_without_authzid() -> None:
    mechanism = create_mechanism("PLAIN", username="tim", password="tanstaaf")
    assert mechanism.initial_response() == b"\0tim\0tanstaaf"
    mechanism.verify_success()


def test_plain_with_authzid() -> None:
    mechanism = PlainMechanism("tim", "tanstaaf", authzid="admin")
    assert mechanism.initial_response() == b"admin\0tim\0tanstaaf"


def test_plain_utf8() -> None:
    assert PlainMechanism("jürgen", "pässwörd").initial_response() == (
        "\0jürgen\0pässwörd".encode()
    )


def test_plain_sent_after_an_empty_challenge_when_the_initial_response_was_left_out() -> None:
    # RFC 4422 §5: without an initial response the server asks with an empty 334.
    mechanism = PlainMechanism("tim", "tanstaaf")
    assert mechanism.respond(b"") == b"\0tim\0tanstaaf"
    with pytest.raises(SASLError):
        mechanism.respond(b"")


def test_plain_refuses_any_challenge_after_its_message() -> None:
    mechanism = PlainMechanism("tim", "tanstaaf")
    mechanism.initial_response()
    with pytest.raises(SASLError):
        mechanism.respond(b"more please")
    # Dead after the failure, even for an otherwise acceptable challenge, and for a 235.
    with pytest.raises(SASLError, match="already failed"):
        mechanism.respond(b"")
    with pytest.raises(SASLError, match="failed exchange"):
        mechanism.verify_success()


def test_plain_refuses_additional_data_with_success() -> None:
    with pytest.raises(SASLError, match="additional data"):
        PlainMechanism("tim", "tanstaaf").verify_success(b"extra")


@pytest.mark.parametrize(
    ("username", "password", "authzid"),
    [("", "pw", ""), ("tim", "", ""), ("t\0m", "pw", ""), ("tim", "p\0w", ""), ("tim", "pw", "\0")],
)
def test_plain_rejects_bad_fields(username: str, password: str, authzid: str) -> None:
    with pytest.raises(ValueError, match="PLAIN"):
        PlainMechanism(username, password, authzid=authzid)


def test_external() -> None:
    assert create_mechanism("EXTERNAL", username="ignored").initial_response() == b""
    mechanism = create_mechanism("external", username="ignored", authzid="boss")
    assert mechanism.initial_response() == b"boss"
    assert not mechanism.sends_secret_in_clear
    assert mechanism.respond(b"") == b"boss"
    with pytest.raises(SASLError):
        mechanism.respond(b"x")


def test_external_refuses_a_non_empty_first_challenge() -> None:
    with pytest.raises(SASLError):
        ExternalMechanism().respond(b"what?")


# --- LOGIN, CRAM-MD5 ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "challenges",
    [(b"Username:", b"Password:"), (b"User Name\0", b"Password\0"), (b"", b""), (b"b", b"a")],
)
def test_login_answers_by_order_not_text(challenges: tuple[bytes, bytes]) -> None:
    mechanism = create_mechanism("LOGIN", username="tim", password="secret")
    assert mechanism.initial_response() is None
    assert [mechanism.respond(c) for c in challenges] == [b"tim", b"secret"]
    mechanism.verify_success()


def test_login_refuses_a_third_challenge() -> None:
    mechanism = LoginMechanism("tim", "secret")
    mechanism.respond(b"Username:")
    mechanism.respond(b"Password:")
    with pytest.raises(SASLError):
        mechanism.respond(b"Again:")


def test_cram_md5_rfc2195_vector() -> None:
    mechanism = create_mechanism("CRAM-MD5", username="tim", password="tanstaaftanstaaf")
    assert mechanism.initial_response() is None
    challenge = b"<1896.697170952@postoffice.reston.mci.net>"
    assert mechanism.respond(challenge) == b"tim b913a602c7eda7a495b4e6e7334d3890"
    mechanism.verify_success()
    with pytest.raises(SASLError):
        mechanism.respond(challenge)


def test_cram_md5_refuses_an_empty_challenge() -> None:
    with pytest.raises(SASLError, match="empty challenge"):
        CramMD5Mechanism("tim", "tanstaaftanstaaf").respond(b"")


# --- XOAUTH2, OAUTHBEARER -----------------------------------------------------------------

TOKEN = "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg"
ERROR_JSON = {"status": "401", "schemes": "bearer", "scope": "https://mail.google.com/"}


def test_xoauth2_message() -> None:
    mechanism = create_mechanism("xoauth2", username="someuser@example.com", token=TOKEN)
    expected = f"user=someuser@example.com\x01auth=Bearer {TOKEN}\x01\x01".encode()
    assert mechanism.initial_response() == expected
    assert mechanism.respond(b"") == expected  # when the initial response was left out
    mechanism.verify_success()


def test_xoauth2_error_flow() -> None:
    # The server's 334 carries a JSON error; the client answers with an empty line, then 535.
    mechanism = XOAuth2Mechanism("someuser@example.com", TOKEN)
    mechanism.initial_response()
    assert mechanism.error is None
    assert mechanism.respond(json.dumps(ERROR_JSON).encode()) == b""
    assert mechanism.error == ERROR_JSON
    with pytest.raises(SASLError):
        mechanism.respond(b"{}")


def test_token_mechanism_refuses_success_after_an_error() -> None:
    mechanism = XOAuth2Mechanism("u", TOKEN)
    mechanism.respond(b"")
    mechanism.respond(b'{"status": "400"}')
    with pytest.raises(SASLError, match="after an error"):
        mechanism.verify_success()


@pytest.mark.parametrize(
    "challenge", [b"not json", b"\xff\xfe\xfa", b"[1, 2]", b"[" * 50_000 + b"]" * 50_000]
)
def test_token_error_challenge_must_be_a_json_object(challenge: bytes) -> None:
    mechanism = OAuthBearerMechanism("u", TOKEN)
    with pytest.raises(SASLError, match="JSON"):
        mechanism.respond(challenge)


def test_oauthbearer_message_rfc7628() -> None:
    mechanism = create_mechanism("OAUTHBEARER", username="user@example.com", token=TOKEN)
    assert mechanism.initial_response() == (
        f"n,a=user@example.com,\x01auth=Bearer {TOKEN}\x01\x01".encode()
    )


def test_oauthbearer_with_host_port_and_escaped_authzid() -> None:
    mechanism = OAuthBearerMechanism("a,b=c", TOKEN, host="server.example.com", port=587)
    assert (
        mechanism.initial_response()
        == (
            f"n,a=a=2Cb=3Dc,\x01host=server.example.com\x01port=587\x01auth=Bearer {TOKEN}\x01\x01"
        ).encode()
    )


def test_oauthbearer_port_without_host_and_no_authzid() -> None:
    mechanism = OAuthBearerMechanism("", TOKEN, port=25)
    assert mechanism.initial_response() == f"n,,\x01port=25\x01auth=Bearer {TOKEN}\x01\x01".encode()


def test_oauthbearer_error_flow() -> None:
    # RFC 7628 §3.2.3: the client acknowledges the error with a lone ^A, "AQ==" on the wire.
    mechanism = OAuthBearerMechanism("user@example.com", TOKEN)
    mechanism.initial_response()
    reply = mechanism.respond(json.dumps({"status": "invalid_token"}).encode())
    assert base64.b64encode(reply) == b"AQ=="
    assert mechanism.error == {"status": "invalid_token"}


@pytest.mark.parametrize("token", ["", "has space", "ctl\x01", "new\nline", "ünicode"])
def test_token_must_be_visible_ascii(token: str) -> None:
    with pytest.raises(ValueError, match="token"):
        XOAuth2Mechanism("u", token)


def test_token_mechanisms_reject_control_characters() -> None:
    with pytest.raises(ValueError, match="username"):
        XOAuth2Mechanism("u\x01", TOKEN)
    with pytest.raises(ValueError, match="host"):
        OAuthBearerMechanism("u", TOKEN, host="h\x7f")
    with pytest.raises(ValueError, match="port"):
        OAuthBearerMechanism("u", TOKEN, port=65536)


# --- SCRAM --------------------------------------------------------------------------------


def test_scram_sha1_rfc5802_vector() -> None:
    mechanism = create_mechanism(
        "SCRAM-SHA-1", username="user", password="pencil", nonce=SHA1_NONCE
    )
    assert isinstance(mechanism, ScramSHA1Mechanism)
    assert mechanism.initial_response() == b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"
    assert mechanism.respond(SHA1_SERVER_FIRST) == SHA1_CLIENT_FINAL
    assert mechanism.respond(SHA1_SERVER_FINAL) == b""
    mechanism.verify_success()


def test_scram_sha256_rfc7677_vector() -> None:
    mechanism = scram256()
    assert mechanism.initial_response() == b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    assert mechanism.respond(SHA256_SERVER_FIRST) == SHA256_CLIENT_FINAL
    # SMTP carries the server-final message in a 334 that we answer with an empty response.
    assert mechanism.respond(SHA256_SERVER_FINAL) == b""
    mechanism.verify_success()
    with pytest.raises(SASLError):
        mechanism.respond(SHA256_SERVER_FINAL)


def test_scram_without_initial_response() -> None:
    mechanism = scram256()
    assert mechanism.respond(b"") == b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    assert mechanism.respond(SHA256_SERVER_FIRST) == SHA256_CLIENT_FINAL


def test_scram_server_final_as_additional_data_with_success() -> None:
    mechanism = scram256_after_first(SHA256_SERVER_FIRST)
    mechanism.verify_success(SHA256_SERVER_FINAL)


def test_scram_success_without_server_signature_is_refused() -> None:
    # A 235 straight after our proof: the server never proved it knows the password.
    mechanism = scram256_after_first(SHA256_SERVER_FIRST)
    with pytest.raises(SASLError, match="verified server signature"):
        mechanism.verify_success()


def test_scram_bad_server_signature() -> None:
    mechanism = scram256_after_first(SHA256_SERVER_FIRST)
    forged = b"v=" + base64.b64encode(b"\0" * 32)
    with pytest.raises(SASLError, match="does not verify"):
        mechanism.respond(forged)
    with pytest.raises(SASLError):
        mechanism.verify_success()


def test_scram_bad_signature_as_additional_data() -> None:
    mechanism = scram256_after_first(SHA256_SERVER_FIRST)
    with pytest.raises(SASLError, match="does not verify"):
        mechanism.verify_success(SHA1_SERVER_FINAL)


@pytest.mark.parametrize(
    "server_nonce",
    [
        "rOprNGfwEbeRWgbNEkqO",  # no server part
        "XOprNGfwEbeRWgbNEkqO%hvYDpWUa2Ra",  # not our prefix
        "attacker-chosen-nonce",
    ],
)
def test_scram_nonce_mismatch(server_nonce: str) -> None:
    mechanism = scram256()
    with pytest.raises(SASLError, match="nonce"):
        mechanism.respond(f"r={server_nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096".encode())


def test_scram_server_error_attribute() -> None:
    mechanism = scram256_after_first(SHA256_SERVER_FIRST)
    with pytest.raises(SASLError, match="invalid-proof"):
        mechanism.respond(b"e=invalid-proof")


@pytest.mark.parametrize("count", ["1", "4095"])
def test_scram_low_iteration_count_refused(count: str) -> None:
    server_first = SHA256_SERVER_FIRST.replace(b"i=4096", f"i={count}".encode())
    with pytest.raises(SASLError, match="iteration count"):
        scram256().respond(server_first)


def test_scram_minimum_is_configurable() -> None:
    mechanism = scram256(min_iterations=1)
    client_final = mechanism.respond(SHA256_SERVER_FIRST.replace(b"i=4096", b"i=1"))
    assert client_final.startswith(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%")


def test_scram_excessive_iteration_count_refused() -> None:
    # A hostile server must not make us compute for hours.
    with pytest.raises(SASLError, match="iteration count"):
        scram256().respond(SHA256_SERVER_FIRST.replace(b"i=4096", b"i=999999999999"))


@pytest.mark.parametrize(
    "server_first",
    [
        b"m=must-understand," + SHA256_SERVER_FIRST,
        b"r=rOprNGfwEbeRWgbNEkqOxyz,i=4096,s=W22ZaJ0SNY7soEsUEjb6gQ==",
        b"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==",
        b"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=04096",
        b"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=+4096",
        b"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1234567890123",
        b"r=rOprNGfwEbeRWgbNEkqOxyz,s=not*base64,i=4096",
        "r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7söEsUEjb6gQ==,i=4096".encode(),
        b"r=rOprNGfwEbeRWgbNEkqOxyz,,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
        b"r=rOprNGfwEbeRWgbNEkqOxyz\xff,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
        b"e=other-error",
        b"",  # a second empty challenge: the client-first message was already requested
    ],
)
def test_scram_malformed_server_first(server_first: bytes) -> None:
    mechanism = scram256()
    mechanism.respond(b"")
    with pytest.raises(SASLError):
        mechanism.respond(server_first)


def test_scram_accepts_extensions_after_the_iteration_count() -> None:
    mechanism = scram256()
    assert mechanism.respond(SHA256_SERVER_FIRST + b",x=future") != b""


@pytest.mark.parametrize("server_final", [b"x=unknown", b"v=%%%", b"no attribute"])
def test_scram_malformed_server_final(server_final: bytes) -> None:
    mechanism = scram256_after_first(SHA256_SERVER_FIRST)
    with pytest.raises(SASLError):
        mechanism.respond(server_final)


def test_scram_escapes_username_and_adds_authzid() -> None:
    mechanism = ScramSHA256Mechanism("a=b,c", "pencil", authzid="x,y", nonce="abc")
    assert mechanism.initial_response() == b"n,a=x=2Cy,n=a=3Db=2Cc,r=abc"


def test_scram_saslprep_applies_to_username() -> None:
    mechanism = ScramSHA256Mechanism("I\u00adX", "pencil", nonce="abc")
    assert mechanism.initial_response() == b"n,,n=IX,r=abc"


def test_scram_default_nonce_is_random_and_printable() -> None:
    first = ScramSHA256Mechanism("user", "pencil").initial_response()
    second = ScramSHA256Mechanism("user", "pencil").initial_response()
    assert first != second
    nonce = first.split(b",r=")[1]
    assert len(nonce) >= 24
    assert b"," not in nonce


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: ScramSHA256Mechanism("\u00ad", "pencil"), "empty"),
        (lambda: ScramSHA256Mechanism("us\x07er", "pencil"), "prohibited"),
        (lambda: ScramSHA256Mechanism("user", "pen\x00cil"), "prohibited"),
        # Unassigned in Unicode 3.2: allowed in the username (query), not the password (stored).
        (lambda: ScramSHA256Mechanism("user", "pen\u0221cil"), "unassigned"),
        (lambda: ScramSHA256Mechanism("user", "pencil", nonce="has,comma"), "nonce"),
        (lambda: ScramSHA256Mechanism("user", "pencil", nonce=""), "nonce"),
        (lambda: ScramSHA256Mechanism("user", "pencil", min_iterations=0), "min_iterations"),
        (
            lambda: ScramSHA256Mechanism("user", "pencil", min_iterations=10, max_iterations=9),
            "max_iterations",
        ),
    ],
)
def test_scram_rejects_bad_construction(build: Callable[[], object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build()


def _server_verifies(first: bytes, server_first: bytes, final: bytes, password: str) -> bytes:
    """A minimal RFC 5802 server for one exchange: checks the proof, returns the server-final."""
    first_bare = first.split(b",", 2)[2]
    without_proof, proof_b64 = final.rsplit(b",p=", 1)
    salt, iterations = b"salt-value", 16
    salted = hashlib.pbkdf2_hmac("sha256", saslprep(password).encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    auth_message = b",".join([first_bare, server_first, without_proof])
    signature = hmac.new(stored_key, auth_message, "sha256").digest()
    recovered = bytes(a ^ b for a, b in zip(base64.b64decode(proof_b64), signature, strict=True))
    assert hashlib.sha256(recovered).digest() == stored_key
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    return b"v=" + base64.b64encode(hmac.new(server_key, auth_message, "sha256").digest())


def _saslprep_ok(text: str, *, allow_unassigned: bool) -> bool:
    try:
        return saslprep(text, allow_unassigned=allow_unassigned) != ""
    except ValueError:
        return False


# Latin text, with spaces, soft hyphens and compatibility characters that SASLprep rewrites.
PREPARABLE = st.characters(min_codepoint=0x20, max_codepoint=0x1FF, exclude_categories=["Cc"])


@given(
    username=st.text(PREPARABLE, min_size=1, max_size=20).filter(
        lambda text: _saslprep_ok(text, allow_unassigned=True)
    ),
    password=st.text(PREPARABLE, max_size=30).filter(
        lambda text: _saslprep_ok(text, allow_unassigned=False)
    ),
    nonce=st.from_regex(r"[!-+\--~]{1,30}", fullmatch=True),
)
def test_scram_round_trip_against_a_reference_server(
    username: str, password: str, nonce: str
) -> None:
    """Any preparable username and password: the proof and server signature agree (RFC 5802)."""
    mechanism = ScramSHA256Mechanism(username, password, nonce=nonce, min_iterations=16)
    first = mechanism.initial_response()
    salt = base64.b64encode(b"salt-value").decode()
    server_first = f"r={nonce}SERVER,s={salt},i=16".encode()
    final = mechanism.respond(server_first)
    server_final = _server_verifies(first, server_first, final, password)
    assert mechanism.respond(server_final) == b""
    mechanism.verify_success()


# --- SASLprep (RFC 4013 §3 examples) ------------------------------------------------------


@pytest.mark.parametrize(
    ("given_text", "prepared"),
    [
        ("I\u00adX", "IX"),  # SOFT HYPHEN mapped to nothing
        ("user", "user"),
        ("USER", "USER"),  # case preserved
        ("\u00aa", "a"),  # NFKC
        ("\u2168", "IX"),  # NFKC
        ("a\u00a0b", "a b"),  # non-ASCII space mapped to SPACE
        ("\u0627\u0031\u0628", "\u0627\u0031\u0628"),  # right-to-left, properly bracketed
    ],
)
def test_saslprep_rfc4013_examples(given_text: str, prepared: str) -> None:
    assert saslprep(given_text) == prepared


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("\u0007", "ASCII control"),
        ("a\ue000", "private-use"),
        ("\U000e0001", "tagging"),
        ("\u0627\u0031", "start and end"),  # RFC 4013 §3 example 7
        ("\u0627a\u0628", "mixes"),
    ],
)
def test_saslprep_prohibited(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        saslprep(text)


def test_saslprep_unassigned_code_points_only_in_query_strings() -> None:
    assert saslprep("\u0221") == "\u0221"
    assert saslprep("ok", allow_unassigned=False) == "ok"
    with pytest.raises(ValueError, match="unassigned"):
        saslprep("\u0221", allow_unassigned=False)


# --- secrets never leak -------------------------------------------------------------------

SECRET = "s3cr3t-Pa55w0rd"


def all_mechanisms() -> list[Mechanism]:
    return [
        PlainMechanism("tim", SECRET),
        LoginMechanism("tim", SECRET),
        CramMD5Mechanism("tim", SECRET),
        ScramSHA1Mechanism("tim", SECRET),
        ScramSHA256Mechanism("tim", SECRET),
        XOAuth2Mechanism("tim", SECRET),
        OAuthBearerMechanism("tim", SECRET),
    ]


@pytest.mark.parametrize("mechanism", all_mechanisms(), ids=lambda m: m.name)
def test_secret_absent_from_repr_and_errors(mechanism: Mechanism) -> None:
    assert SECRET not in repr(mechanism)
    assert "tim" in repr(mechanism)
    messages = []
    for challenge in [b"", b"x", b"y", b"z", b"w"]:
        try:
            mechanism.respond(challenge)
        except SASLError as error:
            messages.append(str(error))
    try:
        mechanism.verify_success(b"extra")
    except SASLError as error:
        messages.append(str(error))
    assert messages
    assert all(SECRET not in message for message in messages)


def test_secret_absent_from_construction_errors() -> None:
    for build in (
        lambda: PlainMechanism("tim", "bad\0" + SECRET),
        lambda: ScramSHA256Mechanism("tim", SECRET + "\x07"),
        lambda: XOAuth2Mechanism("tim", SECRET + " "),
    ):
        with pytest.raises(ValueError, match=r"\w") as info:
            build()
        assert SECRET not in str(info.value)


# --- choosing and creating (S8) -----------------------------------------------------------

ALL_OFFERED = [
    "LOGIN",
    "PLAIN",
    "CRAM-MD5",
    "SCRAM-SHA-1",
    "SCRAM-SHA-256",
    "XOAUTH2",
    "OAUTHBEARER",
]


@pytest.mark.parametrize(
    ("offered", "expected"),
    [
        (ALL_OFFERED, "SCRAM-SHA-256"),
        (["login", "plain", "cram-md5", "scram-sha-1"], "SCRAM-SHA-1"),
        (["LOGIN", "PLAIN", "CRAM-MD5"], "CRAM-MD5"),
        (["LOGIN", "PLAIN"], "PLAIN"),  # LOGIN draft §1: not LOGIN when PLAIN is there
        (["Login"], "LOGIN"),
        (["XOAUTH2", "OAUTHBEARER", "GSSAPI"], None),  # no token
        (["GSSAPI", "EXTERNAL"], None),
        ([], None),
    ],
)
def test_choose_mechanism_ranks_password_mechanisms(
    offered: list[str], expected: str | None
) -> None:
    choice = choose_mechanism(offered, have_password=True, have_token=False, tls_active=True)
    assert choice == expected


def test_choose_mechanism_ranks_token_mechanisms() -> None:
    def choose(offered: list[str]) -> str | None:
        return choose_mechanism(offered, have_password=False, have_token=True, tls_active=True)

    assert choose(ALL_OFFERED) == "OAUTHBEARER"
    assert choose(["xoauth2", "PLAIN"]) == "XOAUTH2"
    assert choose(["PLAIN", "SCRAM-SHA-256"]) is None


def test_choose_mechanism_with_password_and_token_prefers_scram_then_token() -> None:
    both = {"have_password": True, "have_token": True, "tls_active": True}
    assert choose_mechanism(ALL_OFFERED, **both) == "SCRAM-SHA-256"
    assert choose_mechanism(["PLAIN", "CRAM-MD5", "XOAUTH2"], **both) == "XOAUTH2"


@pytest.mark.parametrize(
    ("offered", "expected"),
    [
        (["PLAIN", "LOGIN", "CRAM-MD5"], "CRAM-MD5"),
        (["PLAIN", "LOGIN", "XOAUTH2", "OAUTHBEARER"], None),
        (["PLAIN", "SCRAM-SHA-1"], "SCRAM-SHA-1"),
    ],
)
def test_s8_no_cleartext_secret_without_tls(offered: list[str], expected: str | None) -> None:
    """S8: PLAIN, LOGIN, XOAUTH2 and OAUTHBEARER are refused without TLS."""
    choice = choose_mechanism(offered, have_password=True, have_token=True, tls_active=False)
    assert choice == expected


def test_s8_cleartext_only_when_explicitly_allowed() -> None:
    """S8: the explicit override lets PLAIN through without TLS."""
    choice = choose_mechanism(
        ["PLAIN", "LOGIN"],
        have_password=True,
        have_token=False,
        tls_active=False,
        allow_cleartext=True,
    )
    assert choice == "PLAIN"


def test_s8_cleartext_flags() -> None:
    """S8: the mechanism objects themselves say whether they expose the secret."""
    exposed = {m.name for m in all_mechanisms() if m.sends_secret_in_clear}
    assert exposed == {"PLAIN", "LOGIN", "XOAUTH2", "OAUTHBEARER"}


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("PLAIN", PlainMechanism),
        ("login", LoginMechanism),
        ("Cram-MD5", CramMD5Mechanism),
        ("SCRAM-SHA-1", ScramSHA1Mechanism),
        ("SCRAM-SHA-256", ScramSHA256Mechanism),
        ("XOAUTH2", XOAuth2Mechanism),
        ("OAUTHBEARER", OAuthBearerMechanism),
        ("EXTERNAL", ExternalMechanism),
    ],
)
def test_create_mechanism_by_name(name: str, cls: type[Mechanism]) -> None:
    mechanism = create_mechanism(name, username="tim", password="pw", token=TOKEN)
    assert type(mechanism) is cls
    assert mechanism.name == name.upper()


@pytest.mark.parametrize("name", ["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256"])
def test_create_mechanism_needs_a_password(name: str) -> None:
    with pytest.raises(ValueError, match="password"):
        create_mechanism(name, username="tim", token=TOKEN)


@pytest.mark.parametrize("name", ["XOAUTH2", "OAUTHBEARER"])
def test_create_mechanism_needs_a_token(name: str) -> None:
    with pytest.raises(ValueError, match="token"):
        create_mechanism(name, username="tim", password="pw")


def test_create_mechanism_unknown_name() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        create_mechanism("GSSAPI", username="tim", password="pw")
