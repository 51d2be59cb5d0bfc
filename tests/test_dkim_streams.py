"""DKIM at size and through real readers: a 50 MB body hashed at flat memory, Mail::DKIM (an
independent verifier) agreeing with us, and the signing operation reading every kind of body
source through the adapters' body reader.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from smtpproto import Body, BodyReadError
from smtpproto._operations.message import body_source
from smtpproto._operations.signing import hash_message, signature_for
from smtpproto.dkim import (
    MAX_HEADER_BLOCK,
    Canonicalization,
    DKIMSigner,
    HashedMessage,
    SigningError,
    sign_message,
)
from smtpproto.driver import CloseBody, Request, drive
from tests.dkim_harness import (
    BLOCK,
    DOMAIN,
    EDGE_MESSAGES,
    FIFTY_MB,
    HEADER,
    MESSAGE,
    NOW,
    RELAXED,
    SIMPLE,
    TXTServer,
    hash_blocks,
    make_keys,
    on_the_wire,
    serve_keys,
    signed_message,
    signers_for,
    verify,
)
from tests.servers.fixtures import require_server

if TYPE_CHECKING:
    from adapters.bodies import perform_body_request
else:
    from smtpproto.adapters.bodies import perform_body_request


@pytest.fixture(scope="module")
def keys() -> dict[str, bytes]:
    return make_keys()


@pytest.fixture(scope="module")
def signers(keys: dict[str, bytes]) -> dict[str, DKIMSigner]:
    return signers_for(keys)


@pytest.fixture(scope="module")
def txt_server(signers: dict[str, DKIMSigner]) -> Iterator[TXTServer]:
    yield from serve_keys(signers)


@pytest.fixture(scope="module")
def fifty_megabytes() -> tuple[HashedMessage, int, int]:
    """A 50 MB message hashed, its peak of memory, and the peak for 2 MB."""
    hashed, peak = hash_blocks(FIFTY_MB)
    return hashed, peak, hash_blocks(2 * (1 << 20) // len(BLOCK))[1]


def test_fifty_megabytes_hashed_at_flat_memory(
    txt_server: TXTServer,
    signers: dict[str, DKIMSigner],
    fifty_megabytes: tuple[HashedMessage, int, int],
) -> None:
    """A 50 MB body streams through the hasher with a peak of a few chunks, the same as for
    2 MB, and the signature verifies."""
    hashed, peak, small_peak = fifty_megabytes
    assert hashed.size == len(HEADER) + FIFTY_MB * len(BLOCK)
    assert peak < 2 << 20, f"peak {peak} octets while hashing 50 MB"
    assert peak < small_peak + len(BLOCK), (peak, small_peak)
    # Ed25519 here; Mail::DKIM checks the RSA signature of the same hash below.
    fields = sign_message(hashed, [signers["ed25519"]], now=NOW)
    assert verify(txt_server, fields + HEADER + BLOCK * FIFTY_MB)


# --- verified by Mail::DKIM too (an independent implementation; RSA only in Debian 12's) -------

MAIL_DKIM_VERIFY = """
use strict; use warnings;
use Mail::DKIM::Verifier; use Mail::DKIM::DNS; use Net::DNS::Resolver;
Mail::DKIM::DNS::resolver(Net::DNS::Resolver->new(
    nameservers => [$ARGV[0]], port => $ARGV[1], udp_timeout => 5, tcp_timeout => 5));
my $verifier = Mail::DKIM::Verifier->new();
binmode STDIN; local $/; $verifier->PRINT(<STDIN>); $verifier->CLOSE();
print $_->algorithm, " ", $_->result_detail, "\n" foreach $verifier->signatures;
"""


@pytest.fixture(scope="module")
def mail_dkim(txt_server: TXTServer) -> Callable[[bytes], list[str]]:
    """Mail::DKIM's verdict on each signature of a message: ``["rsa-sha256 pass", ...]``."""
    probe = ["perl", "-MMail::DKIM::Verifier", "-e", "1"]
    found = shutil.which("perl") is not None
    found = found and subprocess.run(probe, check=False, capture_output=True).returncode == 0
    require_server(found, "Mail::DKIM (Debian package libmail-dkim-perl)")

    def verdicts(message: bytes) -> list[str]:
        command = ["perl", "-e", MAIL_DKIM_VERIFY, txt_server.host, str(txt_server.port)]
        done = subprocess.run(command, input=message, capture_output=True, check=True)
        return done.stdout.decode().splitlines()

    return verdicts


@pytest.mark.parametrize("header_c", [RELAXED, SIMPLE])
@pytest.mark.parametrize("body_c", [RELAXED, SIMPLE])
@pytest.mark.parametrize("message", [MESSAGE, *EDGE_MESSAGES])
def test_mail_dkim_agrees(
    mail_dkim: Callable[[bytes], list[str]],
    keys: dict[str, bytes],
    message: bytes,
    header_c: Canonicalization,
    body_c: Canonicalization,
) -> None:
    signer = DKIMSigner(
        DOMAIN, "rsa", keys["rsa"], header_canonicalization=header_c, body_canonicalization=body_c
    )
    signed = signed_message(message, [signer], chunk=5)
    assert mail_dkim(signed) == ["rsa-sha256 pass"]
    tampered = signed.replace(b"From: ", b"From: x", 1)
    assert mail_dkim(tampered) == ["rsa-sha256 fail (message has been altered)"]


def test_mail_dkim_agrees_on_fifty_megabytes(
    mail_dkim: Callable[[bytes], list[str]],
    signers: dict[str, DKIMSigner],
    fifty_megabytes: tuple[HashedMessage, int, int],
) -> None:
    fields = sign_message(fifty_megabytes[0], [signers["rsa"]], now=NOW)
    assert mail_dkim(fields + HEADER + BLOCK * FIFTY_MB) == ["rsa-sha256 pass"]


# --- the operation the sending paths call: one pass over any body source -------------------------


def run_with_bodies(operation: Any, performed: list[Request]) -> Any:
    """Drive ``operation`` with the adapters' body reader, recording each request."""

    def perform(request: Request) -> Any:
        performed.append(request)
        return perform_body_request(request)  # type: ignore[arg-type]

    return drive(operation, perform)


def test_every_body_source_is_signed_as_it_is_read(
    txt_server: TXTServer, signers: dict[str, DKIMSigner], tmp_path: Path
) -> None:
    """Bytes, a path, a seekable file and chunks: each read once through the driver (memory
    needs no request), hashed alike, and the signature verifies on the bytes sent."""
    path = tmp_path / "message.eml"
    path.write_bytes(MESSAGE)
    both = [signers["rsa"], signers["ed25519"]]
    with path.open("rb") as file:
        sources: list[Body] = [MESSAGE, path, file, iter([MESSAGE[:10], MESSAGE[10:]])]
        results = []
        for source in sources:
            performed: list[Request] = []
            fields, hashed = run_with_bodies(
                signature_for(body_source(source), both, now=NOW), performed
            )
            results.append((fields, hashed))
            assert (performed == []) == (source is MESSAGE)
            assert len(performed) in (0, 4, 5)  # open, reads until b"", close
    assert all(result == results[0] for result in results)
    fields, hashed = results[0]
    assert hashed.size == len(on_the_wire(MESSAGE))
    assert verify(txt_server, fields + on_the_wire(MESSAGE), 0)
    assert verify(txt_server, fields + on_the_wire(MESSAGE), 1)


def test_a_failing_body_is_released(signers: dict[str, DKIMSigner]) -> None:
    def failing() -> Iterator[bytes]:
        yield MESSAGE
        raise OSError("disk gone")

    performed: list[Request] = []
    with pytest.raises(BodyReadError, match="disk gone"):
        run_with_bodies(hash_message(body_source(failing()), [signers["rsa"]]), performed)
    assert isinstance(performed[-1], CloseBody)
    too_big = iter([b"X-Filler: " + b"x" * MAX_HEADER_BLOCK])
    performed.clear()
    with pytest.raises(SigningError, match="header block is over"):
        run_with_bodies(hash_message(body_source(too_big), [signers["rsa"]]), performed)
    assert isinstance(performed[-1], CloseBody)
