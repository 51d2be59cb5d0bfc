"""SASL client mechanisms for SMTP AUTH (RFC 4954), without I/O.

Each mechanism is a small single-use state machine that works on *raw* bytes: the caller decodes
every ``334`` challenge from base64, hands it to :meth:`Mechanism.respond`, and base64-encodes the
answer (or cancels with ``*`` when a :class:`SASLError` is raised).  The SMTP framing — ``AUTH``,
``=`` for an empty initial response, the 512-octet line limit — belongs to the connection and the
operations, not here.

Typical use::

    name = choose_mechanism(conn.extensions.auth, have_password=True, have_token=False,
                            tls_active=True)
    mech = create_mechanism(name, username="tim", password="secret")
    first = mech.initial_response()      # None: the mechanism lets the server speak first
    ...                                  # each 334: mech.respond(base64-decoded challenge)
    mech.verify_success()                # on 235: SCRAM checks that the server proved itself

Secrets (passwords, tokens, derived keys) never appear in ``repr()`` or in exception messages.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import stringprep
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal

__all__ = [
    "DEFAULT_MAX_ITERATIONS",
    "DEFAULT_MIN_ITERATIONS",
    "CramMD5Mechanism",
    "ExternalMechanism",
    "LoginMechanism",
    "Mechanism",
    "OAuthBearerMechanism",
    "PlainMechanism",
    "SASLError",
    "ScramMechanism",
    "ScramSHA1Mechanism",
    "ScramSHA256Mechanism",
    "ServerNotAuthenticated",
    "XOAuth2Mechanism",
    "choose_mechanism",
    "create_mechanism",
    "saslprep",
]


class SASLError(Exception):
    """A server challenge we refuse or cannot parse.

    The exchange is over: the caller cancels it by answering ``*`` (RFC 4954 §4).
    """


class ServerNotAuthenticated(SASLError):
    """The server failed to prove that it knows the credentials (SCRAM's ``v=``): it may be an
    impostor, so the connection must not be trusted any further."""


# ---------------------------------------------------------------------------------------------
# SASLprep (RFC 4013), built on the stdlib's RFC 3454 tables.

# RFC 4013 §2.3: everything that must not survive preparation, with a description for the error
# message.  The message never quotes the character itself: it may be part of a password.
_PROHIBITED: tuple[tuple[Callable[[str], bool], str], ...] = (
    (stringprep.in_table_c12, "non-ASCII space"),
    (stringprep.in_table_c21, "ASCII control character"),
    (stringprep.in_table_c22, "non-ASCII control character"),
    (stringprep.in_table_c3, "private-use character"),
    (stringprep.in_table_c4, "non-character code point"),
    (stringprep.in_table_c5, "surrogate code point"),
    (stringprep.in_table_c6, "character inappropriate for plain text"),
    (stringprep.in_table_c7, "character inappropriate for canonical representation"),
    (stringprep.in_table_c8, "display-changing or deprecated character"),
    (stringprep.in_table_c9, "tagging character"),
)


def saslprep(text: str, *, allow_unassigned: bool = True) -> str:
    """Prepare a user name or password with SASLprep (RFC 4013).

    ``allow_unassigned=True`` treats ``text`` as a *query* string, ``False`` as a *stored* string
    (RFC 3454 §7): code points unassigned in Unicode 3.2 are then refused.  Raises ``ValueError``
    for prohibited output or a bidirectional-text violation.
    """
    # §2.1 mapping: non-ASCII spaces become SPACE, "commonly mapped to nothing" characters vanish.
    mapped = "".join(
        " " if stringprep.in_table_c12(char) else char
        for char in text
        if not stringprep.in_table_b1(char)
    )
    # §2.2: NFKC with the Unicode version stringprep is defined on.
    prepared = unicodedata.ucd_3_2_0.normalize("NFKC", mapped)
    for char in prepared:
        for in_table, description in _PROHIBITED:
            if in_table(char):
                raise ValueError(f"SASLprep: prohibited {description}")
        if not allow_unassigned and stringprep.in_table_a1(char):
            raise ValueError("SASLprep: code point unassigned in Unicode 3.2")
    _check_bidi(prepared)
    return prepared


def _check_bidi(text: str) -> None:
    """RFC 3454 §6: right-to-left text must be purely right-to-left and start and end that way."""
    if not any(stringprep.in_table_d1(char) for char in text):
        return
    if any(stringprep.in_table_d2(char) for char in text):
        raise ValueError("SASLprep: mixes right-to-left and left-to-right characters")
    if not (stringprep.in_table_d1(text[0]) and stringprep.in_table_d1(text[-1])):
        raise ValueError("SASLprep: right-to-left text must start and end with such a character")


# ---------------------------------------------------------------------------------------------
# The mechanism contract.


class Mechanism(ABC):
    """One SASL client exchange.  Single use: create a fresh object for every ``AUTH``."""

    #: The SASL mechanism name as sent in ``AUTH``.
    name: ClassVar[str]
    #: True when a passive eavesdropper learns a reusable secret: allowed only under TLS (S8).
    sends_secret_in_clear: ClassVar[bool]

    def __init__(self, username: str) -> None:
        self.username = username
        self._failed = False

    def __repr__(self) -> str:
        # Written by hand so that no secret attribute can ever leak into logs.
        return f"<{type(self).__name__} {self.name} username={self.username!r}>"

    @abstractmethod
    def initial_response(self) -> bytes | None:
        """The response to send with ``AUTH``; ``None`` when the server must speak first."""

    def respond(self, challenge: bytes) -> bytes:
        """Answer one decoded ``334`` challenge.

        Raises :class:`SASLError` for a challenge that is malformed, unexpected at this point, or
        fails a check; the exchange is then dead and every later call raises too.
        """
        if self._failed:
            raise SASLError(f"{self.name}: the exchange has already failed")
        try:
            return self._respond(challenge)
        except SASLError:
            self._failed = True
            raise

    def verify_success(self, additional: bytes | None = None) -> None:
        """Check a ``235`` before trusting it; ``additional`` is any data that came with it.

        Raises :class:`SASLError` when the mechanism cannot accept the success.
        """
        if self._failed:
            raise SASLError(f"{self.name}: success reported for a failed exchange")
        if additional:
            raise SASLError(f"{self.name}: unexpected additional data with success")

    @abstractmethod
    def _respond(self, challenge: bytes) -> bytes:
        """The mechanism-specific step behind :meth:`respond`."""


class _ClientFirstMechanism(Mechanism):
    """A mechanism whose first message is the client's.

    :meth:`initial_response` only *reads* that message, so the caller may still leave it out (for
    instance when the ``AUTH`` line would exceed 512 octets).  The server then asks for it with an
    empty challenge (RFC 4422 §5).  No server message of these mechanisms is empty in the first
    round, so an empty first challenge always means "send your initial response" — once.
    """

    def __init__(self, username: str) -> None:
        super().__init__(username)
        self._first_requested = False
        self._rounds = 0  # server challenges answered after the client's first message

    def initial_response(self) -> bytes:
        return self._client_first()

    def _respond(self, challenge: bytes) -> bytes:
        if not challenge and self._rounds == 0 and not self._first_requested:
            self._first_requested = True
            return self._client_first()
        self._rounds += 1
        return self._answer(challenge)

    @abstractmethod
    def _client_first(self) -> bytes:
        """The client's first message, the same bytes on every call."""

    @abstractmethod
    def _answer(self, challenge: bytes) -> bytes:
        """Answer server challenge number ``self._rounds`` (1-based)."""


def _reject_challenge(name: str) -> SASLError:
    return SASLError(f"{name}: the server sent a challenge the mechanism does not have")


# ---------------------------------------------------------------------------------------------
# PLAIN, EXTERNAL, LOGIN, CRAM-MD5.


class PlainMechanism(_ClientFirstMechanism):
    """PLAIN (RFC 4616 §2): ``[authzid] NUL authcid NUL passwd`` in one message."""

    name = "PLAIN"
    sends_secret_in_clear = True

    def __init__(self, username: str, password: str, *, authzid: str = "") -> None:
        if not username or not password:
            raise ValueError("PLAIN needs a non-empty username and password")
        if "\0" in authzid or "\0" in username or "\0" in password:
            raise ValueError("PLAIN fields must not contain NUL")
        super().__init__(username)
        self._message = f"{authzid}\0{username}\0{password}".encode()

    def _client_first(self) -> bytes:
        return self._message

    def _answer(self, challenge: bytes) -> bytes:
        raise _reject_challenge(self.name)


class ExternalMechanism(_ClientFirstMechanism):
    """EXTERNAL (RFC 4422 Appendix A): identity from outside SASL (a TLS client certificate).

    The only message is the authorization identity; empty means "derive it from the credentials".
    """

    name = "EXTERNAL"
    sends_secret_in_clear = False

    def __init__(self, authzid: str = "") -> None:
        super().__init__(authzid)

    def _client_first(self) -> bytes:
        return self.username.encode()

    def _answer(self, challenge: bytes) -> bytes:
        raise _reject_challenge(self.name)


class LoginMechanism(Mechanism):
    """LOGIN (draft-murchison-sasl-login §2.1): username, then password, one per challenge.

    The challenge text ("Username:", "Password:", or anything else) varies between servers, so
    the answers go by order, never by text.
    """

    name = "LOGIN"
    sends_secret_in_clear = True

    def __init__(self, username: str, password: str) -> None:
        super().__init__(username)
        self._answers = (username.encode(), password.encode())
        self._step = 0

    def initial_response(self) -> None:
        return None

    def _respond(self, challenge: bytes) -> bytes:
        if self._step == len(self._answers):
            raise _reject_challenge(self.name)
        answer = self._answers[self._step]
        self._step += 1
        return answer


class CramMD5Mechanism(Mechanism):
    """CRAM-MD5 (RFC 2195 §2): ``user SP lowercase-hex(HMAC-MD5(password, challenge))``."""

    name = "CRAM-MD5"
    sends_secret_in_clear = False

    def __init__(self, username: str, password: str) -> None:
        super().__init__(username)
        self._key = password.encode()
        self._answered = False

    def initial_response(self) -> None:
        return None

    def _respond(self, challenge: bytes) -> bytes:
        if self._answered:
            raise _reject_challenge(self.name)
        if not challenge:
            # An empty challenge would make the response a fixed, replayable password hash.
            raise SASLError("CRAM-MD5: the server sent an empty challenge")
        self._answered = True
        digest = hmac.new(self._key, challenge, "md5").hexdigest()
        return f"{self.username} {digest}".encode()


# ---------------------------------------------------------------------------------------------
# Bearer tokens: XOAUTH2 and OAUTHBEARER.


def _check_token(token: str) -> None:
    # Bearer tokens are visible ASCII (RFC 6750 §2.1 b64token is a subset): anything else would
    # break the ^A-separated framing.
    if not token or not all("\x21" <= char <= "\x7e" for char in token):
        raise ValueError("the bearer token must be non-empty visible ASCII")


def _check_no_controls(value: str, what: str) -> None:
    if any(char < "\x20" or char == "\x7f" for char in value):
        raise ValueError(f"{what} must not contain control characters")


def _parse_error_challenge(name: str, challenge: bytes) -> dict[str, object]:
    """The JSON object a token mechanism's server sends instead of success."""
    try:
        parsed = json.loads(challenge)
    except (ValueError, RecursionError):  # bad UTF-8 or JSON; absurd nesting
        raise SASLError(f"{name}: the server's error challenge is not JSON") from None
    if not isinstance(parsed, dict):
        raise SASLError(f"{name}: the server's error challenge is not a JSON object")
    return parsed


class _BearerTokenMechanism(_ClientFirstMechanism):
    """The shared shape of XOAUTH2 and OAUTHBEARER.

    The client sends the token; a server that refuses it sends one challenge carrying a JSON error
    object, which the client acknowledges with ``_error_reply`` and the server follows with a
    failure reply.  The parsed object is kept in :attr:`error` for the caller to report.
    """

    sends_secret_in_clear = True
    _error_reply: ClassVar[bytes]

    def __init__(self, username: str, token: str) -> None:
        _check_no_controls(username, "the username")
        _check_token(token)
        super().__init__(username)
        self._token = token
        self.error: Mapping[str, object] | None = None

    def _answer(self, challenge: bytes) -> bytes:
        if self._rounds > 1:
            raise _reject_challenge(self.name)
        self.error = _parse_error_challenge(self.name, challenge)
        return self._error_reply

    def verify_success(self, additional: bytes | None = None) -> None:
        super().verify_success(additional)
        if self.error is not None:
            raise SASLError(f"{self.name}: success reported after an error challenge")


class XOAuth2Mechanism(_BearerTokenMechanism):
    """XOAUTH2 (Google/Microsoft): ``user=U ^A auth=Bearer T ^A ^A``; an error gets ``b""``."""

    name = "XOAUTH2"
    _error_reply = b""

    def _client_first(self) -> bytes:
        return f"user={self.username}\x01auth=Bearer {self._token}\x01\x01".encode()


def _gs2_escape(name: str) -> str:
    """``saslname`` (RFC 5801 §4, RFC 5802 §5.1): ``=`` and ``,`` would break the attribute list."""
    return name.replace("=", "=3D").replace(",", "=2C")


class OAuthBearerMechanism(_BearerTokenMechanism):
    """OAUTHBEARER (RFC 7628 §3.1): ``n,a=U,^A[host=H^A][port=P^A]auth=Bearer T^A^A``.

    An error challenge is acknowledged with a lone ``^A`` (§3.2.3), ``AQ==`` on the wire.
    """

    name = "OAUTHBEARER"
    _error_reply = b"\x01"

    def __init__(
        self, username: str, token: str, *, host: str | None = None, port: int | None = None
    ) -> None:
        super().__init__(username, token)
        if host is not None:
            _check_no_controls(host, "the host")
        if port is not None and not 0 <= port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {port}")
        self._host = host
        self._port = port

    def _client_first(self) -> bytes:
        authzid = f"a={_gs2_escape(self.username)}" if self.username else ""
        pairs = [] if self._host is None else [f"host={self._host}"]
        if self._port is not None:
            pairs.append(f"port={self._port}")
        pairs.append(f"auth=Bearer {self._token}")
        return "".join([f"n,{authzid},", *(f"\x01{pair}" for pair in pairs), "\x01\x01"]).encode()


# ---------------------------------------------------------------------------------------------
# SCRAM (RFC 5802, RFC 7677).

# RFC 5802 §7: a nonce is printable ASCII except ",".
_NONCE = re.compile(r"[\x21-\x2b\x2d-\x7e]+")
# RFC 5802 §7 posit-number, bounded so that a hostile server cannot hand us a huge integer.
_ITERATION_COUNT = re.compile(r"[1-9][0-9]{0,11}")
_ATTRIBUTE = re.compile(r"([A-Za-z])=(.*)", re.DOTALL)

#: RFC 7677 §4: the iteration count SHOULD be at least 4096.
DEFAULT_MIN_ITERATIONS = 4096
#: Every iteration costs us one HMAC: cap what a hostile server can make us compute.
DEFAULT_MAX_ITERATIONS = 1_000_000


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


# ---------------------------------------------------------------------------------------------
# Choosing and creating a mechanism.

_Credential = Literal["password", "token"]

# Strongest first.  SCRAM proves both sides without revealing the password; a bearer token is
# scoped and revocable, so exposing it to the server beats CRAM-MD5 (offline-guessable responses,
# plaintext-equivalent server storage); LOGIN last because PLAIN says the same in one step (LOGIN
# draft §1).  EXTERNAL is never chosen automatically: it needs a client certificate.
_PREFERENCE: tuple[tuple[type[Mechanism], _Credential], ...] = (
    (ScramSHA256Mechanism, "password"),
    (ScramSHA1Mechanism, "password"),
    (OAuthBearerMechanism, "token"),
    (XOAuth2Mechanism, "token"),
    (CramMD5Mechanism, "password"),
    (PlainMechanism, "password"),
    (LoginMechanism, "password"),
)


def choose_mechanism(
    offered: Iterable[str],
    *,
    have_password: bool,
    have_token: bool,
    tls_active: bool,
    allow_cleartext: bool = False,
) -> str | None:
    """The best mechanism the server ``offered`` (EHLO ``AUTH``) for the credentials we have.

    Names compare case-insensitively; the result is the canonical upper-case name, or ``None``.
    A mechanism that sends the secret in clear is chosen only under TLS, or when the caller
    explicitly allows cleartext (checklist S8).
    """
    available = {name.upper() for name in offered}
    have = {"password": have_password, "token": have_token}
    cleartext_ok = tls_active or allow_cleartext
    for mechanism, credential in _PREFERENCE:
        if mechanism.name not in available or not have[credential]:
            continue
        if mechanism.sends_secret_in_clear and not cleartext_ok:
            continue
        return mechanism.name
    return None


@dataclass(frozen=True)
class _Credentials:
    username: str
    password: str | None
    token: str | None
    authzid: str
    nonce: str | None
    min_iterations: int

    def need_password(self, mechanism: str) -> str:
        if self.password is None:
            raise ValueError(f"{mechanism} needs a password")
        return self.password

    def need_token(self, mechanism: str) -> str:
        if self.token is None:
            raise ValueError(f"{mechanism} needs a token")
        return self.token


_FACTORIES: dict[str, Callable[[_Credentials], Mechanism]] = {
    "PLAIN": lambda c: PlainMechanism(c.username, c.need_password("PLAIN"), authzid=c.authzid),
    "LOGIN": lambda c: LoginMechanism(c.username, c.need_password("LOGIN")),
    "CRAM-MD5": lambda c: CramMD5Mechanism(c.username, c.need_password("CRAM-MD5")),
    "SCRAM-SHA-1": lambda c: ScramSHA1Mechanism(
        c.username,
        c.need_password("SCRAM-SHA-1"),
        authzid=c.authzid,
        nonce=c.nonce,
        min_iterations=c.min_iterations,
    ),
    "SCRAM-SHA-256": lambda c: ScramSHA256Mechanism(
        c.username,
        c.need_password("SCRAM-SHA-256"),
        authzid=c.authzid,
        nonce=c.nonce,
        min_iterations=c.min_iterations,
    ),
    "XOAUTH2": lambda c: XOAuth2Mechanism(c.username, c.need_token("XOAUTH2")),
    "OAUTHBEARER": lambda c: OAuthBearerMechanism(c.username, c.need_token("OAUTHBEARER")),
    "EXTERNAL": lambda c: ExternalMechanism(c.authzid),
}


def create_mechanism(
    name: str,
    *,
    username: str,
    password: str | None = None,
    token: str | None = None,
    authzid: str = "",
    nonce: str | None = None,
    min_iterations: int = DEFAULT_MIN_ITERATIONS,
) -> Mechanism:
    """A fresh mechanism object for ``name`` (case-insensitive).

    ``nonce`` and ``min_iterations`` apply to SCRAM only; EXTERNAL sends ``authzid`` and ignores
    the username.  Raises ``ValueError`` for an unknown name or a missing credential.
    """
    factory = _FACTORIES.get(name.upper())
    if factory is None:
        raise ValueError(f"unsupported SASL mechanism {name!r}")
    return factory(_Credentials(username, password, token, authzid, nonce, min_iterations))
