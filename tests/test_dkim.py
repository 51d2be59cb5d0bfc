"""DKIM signing (smtpproto.dkim): every signature is checked by dkimpy's verifier, which fetches
the public key over DNS from a real dnsmasq serving the keys' TXT records; body hashes are
compared with dkimpy's own canonicalization of the bytes that go on the wire.
"""

from __future__ import annotations

import base64
import email.message
import hashlib
import re
import sys
import time
from collections.abc import Iterator

import dkim
import dkim.canonicalization
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import given
from hypothesis import strategies as st

from smtpproto import prepare_message
from smtpproto.dkim import (
    MAX_HEADER_BLOCK,
    Canonicalization,
    DKIMSigner,
    MessageHasher,
    SigningAlgorithm,
    SigningError,
    dns_txt_record,
    sign_message,
)
from tests.dkim_harness import (
    DOMAIN,
    EDGE_MESSAGES,
    MESSAGE,
    NOW,
    RELAXED,
    SIMPLE,
    TXTServer,
    hashed_and_signed,
    make_keys,
    on_the_wire,
    private_pem,
    serve_keys,
    signed_message,
    signers_for,
    verify,
)


@pytest.fixture(scope="module")
def keys() -> dict[str, bytes]:
    return make_keys()


@pytest.fixture(scope="module")
def signers(keys: dict[str, bytes]) -> dict[str, DKIMSigner]:
    return signers_for(keys)


@pytest.fixture(scope="module")
def txt_server(signers: dict[str, DKIMSigner]) -> Iterator[TXTServer]:
    yield from serve_keys(signers)


# --- verified by dkimpy, key from DNS ---------------------------------------------------------


@pytest.mark.parametrize("key", ["rsa", "rsa-pkcs1", "ed25519", "ed25519-seed"])
@pytest.mark.parametrize("header_c", [RELAXED, SIMPLE])
@pytest.mark.parametrize("body_c", [RELAXED, SIMPLE])
def test_every_key_and_canonicalization_verifies(
    txt_server: TXTServer,
    keys: dict[str, bytes],
    key: str,
    header_c: Canonicalization,
    body_c: Canonicalization,
) -> None:
    signer = DKIMSigner(
        DOMAIN, key, keys[key], header_canonicalization=header_c, body_canonicalization=body_c
    )
    signed = signed_message(MESSAGE, [signer], chunk=7)
    assert verify(txt_server, signed)
    assert not verify(txt_server, signed.replace(b"Hi Bob", b"Hi Eve"))
    expected = b"ed25519-sha256" if key.startswith("ed") else b"rsa-sha256"
    assert b"a=" + expected + b";" in signed
    assert f"c={header_c.value}/{body_c.value};".encode() in signed


def test_rsa_and_ed25519_together_rfc8463(
    txt_server: TXTServer, signers: dict[str, DKIMSigner]
) -> None:
    """Two signatures on one message, each verifiable on its own (RFC 8463 §4)."""
    both = [signers["ed25519"], signers["rsa"]]
    signed = signed_message(MESSAGE, both)
    assert signed.count(b"DKIM-Signature:") == 2
    assert signed.index(b"a=ed25519-sha256") < signed.index(b"a=rsa-sha256")
    assert verify(txt_server, signed, 0) and verify(txt_server, signed, 1)


def test_a_key_published_elsewhere_does_not_verify(
    txt_server: TXTServer, keys: dict[str, bytes]
) -> None:
    """The verifier really uses the DNS record: a signature by another key under a published
    selector fails, and an unpublished selector fails."""
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert not verify(
        txt_server, signed_message(MESSAGE, [DKIMSigner(DOMAIN, "rsa", private_pem(other))])
    )
    unpublished = DKIMSigner(DOMAIN, "nowhere", keys["rsa"])
    assert not verify(txt_server, signed_message(MESSAGE, [unpublished]))


def test_expiry_is_signed(txt_server: TXTServer, signers: dict[str, DKIMSigner]) -> None:
    base = signers["rsa"]
    later = DKIMSigner(DOMAIN, "rsa", base.private_key, expires_in=3600)
    now = int(time.time())
    signed = hashed_and_signed(MESSAGE, [later], now=now) + on_the_wire(MESSAGE)
    assert f"t={now}; x={now + 3600};".encode() in signed
    assert verify(txt_server, signed)
    fixed = DKIMSigner(DOMAIN, "rsa", base.private_key, expires_at=now + 60)
    assert f"x={now + 60};".encode() in hashed_and_signed(MESSAGE, [fixed], now=now)
    # Expired a day ago (dkimpy allows 10 hours for clock skew).
    past = hashed_and_signed(MESSAGE, [later], now=now - 90000) + on_the_wire(MESSAGE)
    assert not verify(txt_server, past)


def test_oversigned_fields_cannot_be_added(
    txt_server: TXTServer, signers: dict[str, DKIMSigner]
) -> None:
    signed = signed_message(MESSAGE, [signers["rsa"]])
    head, _, rest = signed.partition(b"From:")
    for added in (b"Subject: buy now\r\n", b"Cc: eve@example.net\r\n", b"Reply-To: e@x.test\r\n"):
        assert not verify(txt_server, head + added + b"From:" + rest)
    # A field nobody signs may be added on the way (a Received by the next hop).
    assert verify(txt_server, b"Received: by mx.example.net\r\n" + signed)


@pytest.mark.parametrize("message", EDGE_MESSAGES)
@pytest.mark.parametrize("body_c", [RELAXED, SIMPLE])
def test_edge_messages_verify(
    txt_server: TXTServer, keys: dict[str, bytes], message: bytes, body_c: Canonicalization
) -> None:
    for key in ("rsa", "ed25519"):
        signer = DKIMSigner(DOMAIN, key, keys[key], body_canonicalization=body_c)
        for chunk in (1, 3, 1 << 16):
            assert verify(txt_server, signed_message(message, [signer], chunk))


def test_an_email_message_is_signed_as_sent_without_bcc(
    txt_server: TXTServer, signers: dict[str, DKIMSigner]
) -> None:
    """An EmailMessage with SMTPUTF8 addresses and a Bcc: the bytes prepare_message sends are
    the bytes signed, and the Bcc is in neither."""
    message = email.message.EmailMessage()
    message["From"] = "Jörg <jörg@dkim.test>"
    message["To"] = "zoë@example.net"
    message["Bcc"] = "secret@example.net"
    message["Subject"] = "Grüße"
    message.set_content("Ünïcödé body\n.dot line\n", cte="8bit")
    outgoing = prepare_message(message)
    assert "secret@example.net" in outgoing.recipients
    data = outgoing.body.data
    assert data is not None and b"Bcc" not in data and "jörg".encode() in data
    hasher = MessageHasher({RELAXED})
    hasher.update(data)
    hashed = hasher.finish()
    assert hashed.size == outgoing.size
    signed = sign_message(hashed, [signers["rsa"], signers["ed25519"]], now=NOW)
    assert verify(txt_server, signed + on_the_wire(data), 0)
    assert verify(txt_server, signed + on_the_wire(data), 1)


# --- the hash: chunking never matters, and matches dkimpy on the wire bytes ---------------------


def reference_body_hash(message: bytes, canonicalization: Canonicalization) -> bytes:
    """dkimpy's body hash of ``message`` as the DATA encoder sends it."""
    wire = on_the_wire(message)
    if wire.startswith(b"\r\n"):
        body = wire[2:]
    else:
        end = wire.find(b"\r\n\r\n")
        body = wire[end + 4 :] if end >= 0 else b""
    c_value = f"simple/{canonicalization.value}".encode()
    policy = dkim.canonicalization.CanonicalizationPolicy.from_c_value(c_value)
    return hashlib.sha256(policy.canonicalize_body(body)).digest()


def hash_in_pieces(message: bytes, cuts: list[int]) -> tuple[bytes, dict[Canonicalization, bytes]]:
    hasher = MessageHasher([RELAXED, SIMPLE])
    previous = 0
    for cut in [*sorted(cuts), len(message)]:
        hasher.update(message[previous:cut])
        previous = cut
    hashed = hasher.finish()
    return hashed.header_block, dict(hashed.body_hashes)


TRICKY = [
    MESSAGE,
    b"From: a@x.test\r\n\r\na \t \r\n \r\n\t\r\nb  c\t\r\n\r\n\r\n \t",
    b"\r\nno headers\r\n",
    b"",
    b"From: a@x.test",
    b"From: a@x.test\r\n \tfolded\r\n\r\n\r\r\n\n\r",
]


@pytest.mark.parametrize("message", TRICKY)
def test_a_message_cut_at_every_byte_hashes_the_same(message: bytes) -> None:
    whole = hash_in_pieces(message, [])
    for cut in range(len(message) + 1):
        assert hash_in_pieces(message, [cut]) == whole, cut
    assert hash_in_pieces(message, list(range(len(message)))) == whole  # one byte at a time
    for canonicalization in (RELAXED, SIMPLE):
        assert whole[1][canonicalization] == reference_body_hash(message, canonicalization)


PIECES = [b"a", b"b c", b" ", b"  ", b"\t", b"\r", b"\n", b"\r\n", b".", b"\xc3\xa9", b"X: y"]


@given(
    st.lists(st.sampled_from(PIECES), max_size=40).map(b"".join),
    st.lists(st.integers(min_value=0, max_value=200), max_size=8),
)
def test_incremental_hash_is_dkimpys_on_the_whole_message(message: bytes, cuts: list[int]) -> None:
    cuts = [min(cut, len(message)) for cut in cuts]
    header_block, hashes = hash_in_pieces(message, cuts)
    for canonicalization in (RELAXED, SIMPLE):
        assert hashes[canonicalization] == reference_body_hash(message, canonicalization)
    wire = on_the_wire(message)
    assert wire.startswith(header_block)
    assert prepare_message(message or b"x", "a@x.test", ["b@x.test"]).size == (
        len(wire) if message else 3
    )


# --- what a signer refuses, and what signing refuses -------------------------------------------


def test_the_dns_record(keys: dict[str, bytes], signers: dict[str, DKIMSigner]) -> None:
    rsa_signer, ed_signer = signers["rsa"], signers["ed25519-seed"]
    assert rsa_signer.algorithm is SigningAlgorithm.RSA_SHA256
    assert ed_signer.algorithm is SigningAlgorithm.ED25519_SHA256
    assert rsa_signer.dns_name == "rsa._domainkey.dkim.test"
    assert rsa_signer.dns_record == dns_txt_record(keys["rsa-pkcs1"])
    assert rsa_signer.dns_record.startswith("v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOC")
    public = serialization.load_der_public_key(
        base64.b64decode(rsa_signer.dns_record.partition("p=")[2])
    )
    assert isinstance(public, rsa.RSAPublicKey) and public.key_size == 2048
    assert ed_signer.dns_record == dns_txt_record(keys["ed25519"])
    assert ed_signer.dns_record.startswith("v=DKIM1; k=ed25519; p=")
    entry = rsa_signer.zone_entry()
    strings = re.findall(r'"([^"]*)"', entry)
    assert entry.startswith("rsa._domainkey.dkim.test. IN TXT ( ")
    assert "".join(strings) == rsa_signer.dns_record and max(map(len, strings)) <= 255
    assert len(strings) == 2
    assert "private" not in repr(rsa_signer) and "BEGIN" not in repr(rsa_signer)


def test_a_signer_normalises_its_names(keys: dict[str, bytes]) -> None:
    signer = DKIMSigner("Bücher.TEST.", "2026-12.Sel.", keys["rsa"], headers=["From", "X-Tag"])
    assert signer.domain == "xn--bcher-kva.TEST"
    assert signer.selector == "2026-12.Sel"
    assert signer.headers == ("from", "x-tag")
    fields = hashed_and_signed(b"From: a@b.test\r\nX-Tag: 1\r\n\r\n", [signer])
    assert b"d=xn--bcher-kva.TEST;" in fields and b"s=2026-12.Sel;" in fields


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"domain": "[192.0.2.1]"}, "not '\\[192"),
        ({"domain": "bad domain.test"}, "invalid label"),
        ({"selector": "a..b"}, "selector"),
        ({"selector": "-a"}, "selector"),
        ({"headers": ("from", "to:")}, "not a header field name"),
        ({"headers": ("from", "Bcc")}, "bcc field is never signed"),
        ({"oversign": ("dkim-signature",)}, "never signed"),
        ({"headers": ("to",), "oversign": ("subject",)}, "From must be signed"),
        ({"expires_in": 60, "expires_at": NOW}, "not both"),
        ({"expires_in": 0}, "positive"),
    ],
)
def test_a_signer_refuses_bad_values(
    keys: dict[str, bytes], options: dict[str, object], error: str
) -> None:
    arguments: dict[str, object] = {"domain": DOMAIN, "selector": "s", "private_key": keys["rsa"]}
    arguments.update(options)
    with pytest.raises(ValueError, match=error):
        DKIMSigner(**arguments)  # type: ignore[arg-type]


def test_a_signer_refuses_headers_given_as_one_string(keys: dict[str, bytes]) -> None:
    with pytest.raises(TypeError, match="sequence of strings"):
        DKIMSigner(DOMAIN, "s", keys["rsa"], headers="from")


SHORT_RSA = b"""-----BEGIN PRIVATE KEY-----
MIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7AgEAAkEAxB35BfCDVKIZikDN
b1WDIQTdtRt3dd3EjKUtLComZjn7IoUaGgiPbJWlx51lKKISLFiln7D6fa7gSbsg
gJt7mQIDAQABAkAxkrn9zFwGKqt2DQdg2ya4U/iO7RB3VMV4H9CZV1Y5hIDY4J8A
yVcqnVyGERW3mQ8JlCa2XESo6BxltVMDryeZAiEA8rTW6wqhXQN97ZRJSgScwemb
PvAiR4d9Y9Br4ZHAKxsCIQDO297011VFkscRARSQsvupK1sk8HopSQLjxEsfw3YL
WwIgCkIee1y9qULGhc4ostozDfcjuqtHp6JQaHGcvbH9X1UCIQC9g77OPgHHjeOG
9qBquS/LGweT3iVtcZCOL6ZL4X1ihQIhALQqIMA9GEomHgaLC+cO/igJVr44Vv9r
F4k4kv+fM4r3
-----END PRIVATE KEY-----
"""


@pytest.mark.parametrize(
    ("key", "error"),
    [
        (SHORT_RSA, "512 bits is too short"),
        (b"-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n", "cannot be"),
        (base64.b64encode(b"x" * 31), "neither PEM nor"),
        (b"not base64 at all!", "neither PEM nor"),
    ],
)
def test_a_signer_refuses_bad_keys(key: bytes, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        DKIMSigner(DOMAIN, "s", key)


def test_a_signer_refuses_other_kinds_of_key() -> None:
    encrypted = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    with pytest.raises(ValueError, match="encrypted"):
        DKIMSigner(DOMAIN, "s", encrypted)
    with pytest.raises(ValueError, match="RSA or Ed25519 keys, not"):
        DKIMSigner(DOMAIN, "s", private_pem(ec.generate_private_key(ec.SECP256R1())))


def test_a_missing_extra_is_named(monkeypatch: pytest.MonkeyPatch, keys: dict[str, bytes]) -> None:
    monkeypatch.setitem(sys.modules, "dkim.crypto", None)
    with pytest.raises(ImportError, match=r"smtpproto-sansio\[dkim\]"):
        DKIMSigner(DOMAIN, "s", keys["rsa"])


@pytest.mark.parametrize(
    ("header_block", "error"),
    [
        (b"", "exactly one From"),
        (b"Subject: x\r\n", "exactly one From"),
        (b"From: a@x.test\r\nFrom: b@x.test\r\n", "exactly one From"),
        (b" folded first\r\nFrom: a@x.test\r\n", "cannot be parsed"),
        (b"From: a@x.test\r\nno colon here\r\n", "cannot be parsed"),
    ],
)
def test_signing_refuses_a_header_block_without_one_from(
    signers: dict[str, DKIMSigner], header_block: bytes, error: str
) -> None:
    with pytest.raises(SigningError, match=error):
        hashed_and_signed(header_block + b"\r\nbody\r\n", [signers["rsa"]])


def test_signing_refuses_bad_calls(signers: dict[str, DKIMSigner]) -> None:
    hasher = MessageHasher({SIMPLE})
    hasher.update(MESSAGE)
    hashed = hasher.finish()
    with pytest.raises(ValueError, match="at least one signer"):
        sign_message(hashed, [], now=NOW)
    with pytest.raises(ValueError, match="seconds since the Unix epoch"):
        sign_message(hashed, [signers["rsa"]], now=-1)
    with pytest.raises(ValueError, match="without relaxed body canonicalization"):
        sign_message(hashed, [signers["rsa"]], now=NOW)
    late = DKIMSigner(DOMAIN, "rsa", signers["rsa"].private_key, expires_at=NOW)
    with pytest.raises(ValueError, match="must be after the signing time"):
        hashed_and_signed(MESSAGE, [late])


def test_the_hasher_refuses_misuse() -> None:
    with pytest.raises(ValueError, match="at least one"):
        MessageHasher([])
    hasher = MessageHasher([SIMPLE])
    hasher.finish()
    with pytest.raises(ValueError, match="after finish"):
        hasher.update(b"x")
    with pytest.raises(ValueError, match="twice"):
        hasher.finish()


def test_a_header_block_too_large_to_sign() -> None:
    line = b"X-Filler: " + b"x" * 1000 + b"\r\n"
    hasher = MessageHasher([RELAXED])

    def feed_lines() -> None:
        for _ in range(MAX_HEADER_BLOCK // len(line) + 1):
            hasher.update(line)

    with pytest.raises(SigningError, match="header block is over"):
        feed_lines()
    # A large header block that does end is refused as well (it is signed whole).
    hasher = MessageHasher([RELAXED])
    with pytest.raises(SigningError, match="header block is over"):
        hasher.update(line * (MAX_HEADER_BLOCK // len(line) + 1) + b"\r\nbody")


def test_signing_reads_no_clock(signers: dict[str, DKIMSigner]) -> None:
    """The same inputs give the same signature: t= is the caller's ``now`` (Ed25519 and
    PKCS#1 v1.5 signatures are deterministic)."""
    for signer in (signers["rsa"], signers["ed25519"]):
        first = hashed_and_signed(MESSAGE, [signer])
        assert first == hashed_and_signed(MESSAGE, [signer], chunk=5)
        assert f"t={NOW};".encode() in first
