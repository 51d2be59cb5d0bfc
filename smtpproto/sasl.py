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

import hmac
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal

from ._wire.sasl_base import (
    Mechanism,
    SASLError,
    ServerNotAuthenticated,
    _ClientFirstMechanism,
    _gs2_escape,
    _reject_challenge,
    saslprep,
)
from ._wire.scram import (
    DEFAULT_MAX_ITERATIONS,
    DEFAULT_MIN_ITERATIONS,
    ScramMechanism,
    ScramSHA1Mechanism,
    ScramSHA256Mechanism,
)

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
