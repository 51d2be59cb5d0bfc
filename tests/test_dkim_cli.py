"""DKIM on the command line: ``send --dkim-key/--dkim-selector/--dkim-domain`` (repeatable, RSA
and Ed25519 together) and ``dkim-record``, run as ``python -m smtpproto.cli``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from smtpproto.dkim import DKIMSigner
from tests.dkim_harness import DOMAIN, TXTServer, mail_dkim_verdicts, make_keys, serve_keys, verify
from tests.test_cli import run_cli

if TYPE_CHECKING:
    from tests.servers.fixtures import SMTPServerFactory

EXIT_OK, EXIT_USAGE = 0, 64


@pytest.fixture(scope="module")
def keys() -> dict[str, bytes]:
    return make_keys()


@pytest.fixture(scope="module")
def txt_server(keys: dict[str, bytes]) -> Iterator[TXTServer]:
    yield from serve_keys({n: DKIMSigner(DOMAIN, n, keys[n]) for n in ("rsa", "ed25519")})


@pytest.fixture
def key_files(keys: dict[str, bytes], tmp_path: Path) -> dict[str, str]:
    files = {}
    for name in ("rsa", "ed25519"):
        path = tmp_path / f"{name}.pem"
        path.write_bytes(keys[name])
        files[name] = str(path)
    return files


def test_send_signs_with_rsa_and_ed25519(
    smtp_server_factory: SMTPServerFactory, txt_server: TXTServer, key_files: dict[str, str]
) -> None:
    server = smtp_server_factory()
    result = run_cli(
        "send", "--from", "alice@x.test", "--to", "bob@y.test", "--tls", "none",
        "--server", f"{server.host}:{server.port}", "--ehlo", "client.test",
        "--dkim-key", key_files["rsa"], "--dkim-selector", "rsa",
        "--dkim-key", key_files["ed25519"], "--dkim-selector", "ed25519",
        "--dkim-domain", DOMAIN, "--quiet",
    )  # fmt: skip
    assert result.returncode == EXIT_OK, result.stderr
    (received,) = server.messages
    content = received.content
    assert content.count(b"DKIM-Signature:") == 2
    assert b"d=dkim.test" in content and b"s=ed25519" in content
    assert verify(txt_server, content, 0) and verify(txt_server, content, 1)
    assert "rsa-sha256 pass" in mail_dkim_verdicts(txt_server, content)


def test_send_signs_for_the_senders_domain_by_default(
    smtp_server_factory: SMTPServerFactory, key_files: dict[str, str]
) -> None:
    server = smtp_server_factory()
    result = run_cli(
        "send", "--from", "alice@x.test", "--to", "bob@y.test", "--tls", "none",
        "--server", f"{server.host}:{server.port}", "--ehlo", "client.test",
        "--dkim-key", key_files["ed25519"], "--dkim-selector", "s1", "--quiet",
    )  # fmt: skip
    assert result.returncode == EXIT_OK, result.stderr
    (received,) = server.messages
    assert b"a=ed25519-sha256; c=relaxed/relaxed; d=x.test;" in received.content


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        (["--dkim-selector", "s"], "need --dkim-key"),
        (["--dkim-key", "{rsa}"], "one --dkim-selector for each"),
        (
            ["--dkim-key", "{rsa}", "--dkim-selector", "a", "--dkim-domain", "a.test"] * 2
            + ["--dkim-key", "{rsa}", "--dkim-selector", "c"],
            "one --dkim-domain for all keys",
        ),
        (["--dkim-key", "/nonexistent.pem", "--dkim-selector", "s"], "cannot read the DKIM key"),
        (["--dkim-key", "{rsa}", "--dkim-selector", "bad selector"], "not a sequence of DNS"),
    ],
)
def test_send_refuses_bad_dkim_options(
    arguments: list[str], error: str, key_files: dict[str, str]
) -> None:
    args = [a.format(**key_files) for a in arguments]
    result = run_cli(
        "send", "--from", "alice@x.test", "--to", "bob@y.test", "--server", "127.0.0.1:1", *args
    )
    assert result.returncode == EXIT_USAGE, result.stderr
    assert error in result.stderr and "Traceback" not in result.stderr


def test_dkim_record(keys: dict[str, bytes], key_files: dict[str, str]) -> None:
    signer = DKIMSigner(DOMAIN, "rsa", keys["rsa"])
    plain = run_cli("dkim-record", "--key", key_files["rsa"])
    assert plain.returncode == EXIT_OK, plain.stderr
    assert plain.stdout == signer.dns_record + "\n"
    zone = run_cli(
        "dkim-record", "--key", key_files["rsa"], "--selector", "rsa", "--domain", DOMAIN
    )
    assert zone.returncode == EXIT_OK, zone.stderr
    assert zone.stdout == signer.zone_entry() + "\n"
    assert zone.stdout.startswith('rsa._domainkey.dkim.test. IN TXT ( "v=DKIM1; k=rsa; p=')


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        (["--key", "{rsa}", "--selector", "s"], "together"),
        (["--key", "/nonexistent.pem"], "cannot read the DKIM key"),
        (["--key", "{bad}"], "neither PEM nor"),
        (["--key", "{bad}", "--selector", "s", "--domain", "d.test"], "neither PEM nor"),
    ],
)
def test_dkim_record_refuses(
    arguments: list[str], error: str, key_files: dict[str, str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_bytes(b"not a key")
    args = [a.format(bad=bad, **key_files) for a in arguments]
    result = run_cli("dkim-record", *args)
    assert result.returncode == EXIT_USAGE, result.stderr
    assert error in result.stderr and "Traceback" not in result.stderr
