"""Fuzz target ``sasl``: every SASL mechanism answering arbitrary server challenges.

Input layout::

    mechanism (1 byte) | mode (1 byte) | challenge 0 0xFF challenge 1 0xFF ... [0xFF 0xFF success]

Each challenge is the base64-*decoded* 334 text, so arbitrary octets (0xFF is the separator: it
is never part of the UTF-8 that SCRAM and the bearer mechanisms expect, and the other mechanisms
ignore the text).  A field after an empty separator pair is the additional data given to
``verify_success``.  ``mode`` bit 0 asks for the initial response first, as ``AUTH`` with an
initial response would; bit 1 calls ``verify_success`` at the end; bit 2 says there are
challenges at all (so that a single empty challenge can be expressed).

SCRAM uses the user, password and client nonces of the RFC 5802 §5 and RFC 7677 §3 examples, so
the seeds can run a whole exchange, the server signature included; its iteration cap is lowered to
4096 so a hostile count costs the fuzzer little (the cap's own check is unit-tested).

Checks: nothing but ``SASLError`` (``ServerNotAuthenticated`` included) comes out of
``initial_response``, ``respond`` or ``verify_success``; answers are ``bytes``; once a call failed
every later one fails; the password and token never appear in an error message or ``repr``
unless the server itself sent them.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["smtpproto"]):
    from smtpproto.sasl import (
        Mechanism,
        SASLError,
        ScramSHA1Mechanism,
        ScramSHA256Mechanism,
        create_mechanism,
    )

USER = "user"
PASSWORD = "pencil"  # RFC 5802 §5 / RFC 7677 §3
TOKEN = "fuzz-bearer-token-5d0c1e"
SCRAM_SHA1_NONCE = "fyko+d2lbbFgONRv9qkxdawL"
SCRAM_SHA256_NONCE = "rOprNGfwEbeRWgbNEkqO"
SECRETS = (PASSWORD, TOKEN)
SEPARATOR = b"\xff"


def _scram_sha1() -> Mechanism:
    return ScramSHA1Mechanism(
        USER, PASSWORD, nonce=SCRAM_SHA1_NONCE, min_iterations=1, max_iterations=4096
    )


def _scram_sha256() -> Mechanism:
    return ScramSHA256Mechanism(
        USER, PASSWORD, nonce=SCRAM_SHA256_NONCE, min_iterations=1, max_iterations=4096
    )


def _created(name: str) -> Mechanism:
    return create_mechanism(name, username=USER, password=PASSWORD, token=TOKEN)


MECHANISMS = (
    lambda: _created("PLAIN"),
    lambda: _created("LOGIN"),
    lambda: _created("CRAM-MD5"),
    lambda: _created("XOAUTH2"),
    lambda: _created("OAUTHBEARER"),
    lambda: _created("EXTERNAL"),
    _scram_sha1,
    _scram_sha256,
)


class Checked:
    """Calls the mechanism, enforcing the error contract."""

    def __init__(self, mechanism: Mechanism, server_text: bytes) -> None:
        self.mechanism = mechanism
        self.server_text = server_text
        self.failed = False

    def call(self, method: str, *args: bytes | None) -> object:
        try:
            result = getattr(self.mechanism, method)(*args)
        except SASLError as exc:
            self.check_secret_free(str(exc))
            self.failed = True
            return None
        assert not self.failed or method == "initial_response", f"{method} after a failure"
        return result

    def check_secret_free(self, text: str) -> None:
        for secret in SECRETS:
            assert secret.encode() in self.server_text or secret not in text, text


def TestOneInput(data: bytes) -> None:  # the name atheris looks for
    fdp = atheris.FuzzedDataProvider(data)
    which, mode = fdp.ConsumeBytes(2).ljust(2, b"\0")
    rest = fdp.ConsumeBytes(fdp.remaining_bytes())
    challenges, _, additional = rest.partition(SEPARATOR * 2)
    mechanism = MECHANISMS[which % len(MECHANISMS)]()
    checked = Checked(mechanism, rest)
    checked.check_secret_free(repr(mechanism))

    if mode & 1:
        first = checked.call("initial_response")
        assert first is None or isinstance(first, bytes), first
    for challenge in challenges.split(SEPARATOR) if mode & 4 else []:
        answer = checked.call("respond", challenge)
        assert answer is None or isinstance(answer, bytes), answer
    if mode & 2:
        assert checked.call("verify_success", additional or None) is None
    checked.check_secret_free(repr(mechanism))


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
