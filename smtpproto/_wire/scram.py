"""SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802, RFC 7677): the client proves it knows the password
without sending it, and the server proves it knows it too."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from typing import ClassVar

from .sasl_base import (
    SASLError,
    ServerNotAuthenticated,
    _ClientFirstMechanism,
    _gs2_escape,
    _reject_challenge,
    saslprep,
)

__all__ = [
    "DEFAULT_MAX_ITERATIONS",
    "DEFAULT_MIN_ITERATIONS",
    "ScramMechanism",
    "ScramSHA1Mechanism",
    "ScramSHA256Mechanism",
]

# RFC 5802 §7: a nonce is printable ASCII except ",".
_NONCE = re.compile(r"[\x21-\x2b\x2d-\x7e]+")
# RFC 5802 §7 posit-number, bounded so that a hostile server cannot hand us a huge integer.
_ITERATION_COUNT = re.compile(r"[1-9][0-9]{0,11}")
_ATTRIBUTE = re.compile(r"([A-Za-z])=(.*)", re.DOTALL)

#: RFC 7677 §4: the iteration count SHOULD be at least 4096.
DEFAULT_MIN_ITERATIONS = 4096
#: Every iteration costs us one HMAC: cap what a hostile server can make us compute.
DEFAULT_MAX_ITERATIONS = 200_000


def _parse_attributes(name: str, challenge: bytes) -> list[tuple[str, str]]:
    """Split a SCRAM message into its ``a=value`` attributes, in order."""
    try:
        text = challenge.decode("utf-8")
    except UnicodeDecodeError:
        raise SASLError(f"{name}: the server message is not UTF-8") from None
    attributes = []
    for part in text.split(","):
        match = _ATTRIBUTE.fullmatch(part)
        if match is None:
            raise SASLError(f"{name}: malformed server message")
        attributes.append((match[1], match[2]))
    return attributes


def _b64decode(name: str, value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):  # ValueError: non-ASCII text
        raise SASLError(f"{name}: the server's {what} is not valid base64") from None


class ScramMechanism(_ClientFirstMechanism):
    """SCRAM without channel binding (gs2 flag ``n``), RFC 5802 §5 and §3.

    The client checks that the server's nonce extends its own, refuses iteration counts outside
    ``[min_iterations, max_iterations]``, and trusts success only after the server signature
    ``v=`` verified: SMTP delivers it in a ``334`` (answered with an empty response) before the
    ``235``, so :meth:`verify_success` raises unless that happened.
    """

    sends_secret_in_clear = False
    _digest: ClassVar[str]

    def __init__(
        self,
        username: str,
        password: str,
        *,
        authzid: str = "",
        nonce: str | None = None,
        min_iterations: int = DEFAULT_MIN_ITERATIONS,
        max_iterations: int = DEFAULT_MAX_ITERATIONS,
    ) -> None:
        # RFC 5802 §5.1: the username is a query string; §2.2: the password a stored string.
        prepared_user = saslprep(username)
        if not prepared_user:
            raise ValueError("SCRAM needs a username that is not empty after SASLprep")
        prepared_password = saslprep(password, allow_unassigned=False)
        if nonce is None:
            nonce = secrets.token_urlsafe(24)
        elif not _NONCE.fullmatch(nonce):
            raise ValueError("the SCRAM nonce must be printable ASCII without ','")
        if not 1 <= min_iterations <= max_iterations:
            raise ValueError("need 1 <= min_iterations <= max_iterations")
        super().__init__(username)
        self._password = prepared_password.encode()
        self._nonce = nonce
        self._min_iterations = min_iterations
        self._max_iterations = max_iterations
        authzid_field = f"a={_gs2_escape(saslprep(authzid))}" if authzid else ""
        self._gs2_header = f"n,{authzid_field},"
        self._first_bare = f"n={_gs2_escape(prepared_user)},r={nonce}"
        self._server_signature: bytes | None = None  # expected v=, known after server-first
        self._verified = False

    def _client_first(self) -> bytes:
        return (self._gs2_header + self._first_bare).encode()

    def _answer(self, challenge: bytes) -> bytes:
        if self._rounds == 1:
            return self._client_final(challenge)
        if self._rounds == 2:
            self._check_server_final(challenge)
            return b""
        raise _reject_challenge(self.name)

    def _client_final(self, server_first: bytes) -> bytes:
        attributes = _parse_attributes(self.name, server_first)
        if attributes[0][0] == "m":
            raise SASLError(f"{self.name}: the server requires an unsupported extension")
        if [key for key, _ in attributes[:3]] != ["r", "s", "i"]:
            raise SASLError(f"{self.name}: the server-first message lacks r=, s=, i=")
        (_, nonce), (_, salt_b64), (_, count_text) = attributes[:3]
        if not (nonce.startswith(self._nonce) and len(nonce) > len(self._nonce)):
            raise SASLError(f"{self.name}: the server nonce does not extend the client nonce")
        salt = _b64decode(self.name, salt_b64, "salt")
        if not _ITERATION_COUNT.fullmatch(count_text):
            raise SASLError(f"{self.name}: malformed iteration count")
        iterations = int(count_text)
        if not self._min_iterations <= iterations <= self._max_iterations:
            raise SASLError(
                f"{self.name}: iteration count {iterations} is outside the accepted range "
                f"{self._min_iterations}..{self._max_iterations}"
            )

        channel_binding = base64.b64encode(self._gs2_header.encode()).decode()
        final_without_proof = f"c={channel_binding},r={nonce}"
        auth_message = ",".join(
            [self._first_bare, server_first.decode(), final_without_proof]
        ).encode()
        salted = hashlib.pbkdf2_hmac(self._digest, self._password, salt, iterations)
        client_key = self._hmac(salted, b"Client Key")
        client_signature = self._hmac(hashlib.new(self._digest, client_key).digest(), auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, client_signature, strict=True))
        self._server_signature = self._hmac(self._hmac(salted, b"Server Key"), auth_message)
        return f"{final_without_proof},p={base64.b64encode(proof).decode()}".encode()

    def _check_server_final(self, server_final: bytes) -> None:
        key, value = _parse_attributes(self.name, server_final)[0]
        if key == "e":
            # The RFC 5802 §7 server-error-value vocabulary: safe, and useful, to report.
            raise SASLError(f"{self.name}: the server reported an error: {value[:100]!r}")
        if key != "v":
            raise SASLError(f"{self.name}: the server-final message lacks v=")
        signature = _b64decode(self.name, value, "signature")
        assert self._server_signature is not None  # set in round 1, which succeeded
        if not hmac.compare_digest(signature, self._server_signature):
            raise ServerNotAuthenticated(f"{self.name}: the server signature does not verify")
        self._verified = True

    def verify_success(self, additional: bytes | None = None) -> None:
        if additional:
            # Not in SMTP (RFC 4954 §4 has none), but SASL allows the server-final message here.
            self.respond(additional)
        super().verify_success()
        if not self._verified:
            raise ServerNotAuthenticated(
                f"{self.name}: success without a verified server signature"
            )

    def _hmac(self, key: bytes, message: bytes) -> bytes:
        return hmac.new(key, message, self._digest).digest()


class ScramSHA1Mechanism(ScramMechanism):
    """SCRAM-SHA-1 (RFC 5802)."""

    name = "SCRAM-SHA-1"
    _digest = "sha1"


class ScramSHA256Mechanism(ScramMechanism):
    """SCRAM-SHA-256 (RFC 7677)."""

    name = "SCRAM-SHA-256"
    _digest = "sha256"
