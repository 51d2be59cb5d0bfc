"""MAIL and RCPT command lines: ESMTP parameters checked against what the server advertised.

Each parameter is a row of a table: the extension that must have been advertised for it (RFC 5321
§4.1.1.11, checklist G7) and how many octets it may add to the 512-octet command line limit
(RFC 5321 §4.5.3.1.4 as raised by each extension's RFC, checklist C9).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import NamedTuple

from .addresses import format_mailbox, needs_smtputf8, rcpt_path
from .errors import LocalProtocolError
from .events import MailFrom, RcptTo
from .extensions import Extensions
from .xtext import xtext_encode

__all__ = ["COMMAND_LINE_LIMIT", "auth_line", "render_mail", "render_rcpt"]

# RFC 5321 §4.5.3.1.4: a command line is at most 512 octets including its CRLF.
COMMAND_LINE_LIMIT = 512


class _Param(NamedTuple):
    keyword: str
    needs: Callable[[Extensions], bool]  # was the extension advertised?
    extension: str  # its name, for the error message
    allowance: int  # octets it may add to the line limit


_SIZE = _Param("SIZE", lambda e: e.size is not None, "SIZE", 26)  # RFC 1870 §3
_BODY_8BIT = _Param("BODY", lambda e: e.eightbitmime, "8BITMIME", 16)  # RFC 6152 §2
_BODY_BINARY = _Param("BODY", lambda e: e.binarymime, "BINARYMIME", 16)  # RFC 3030 §3
_SMTPUTF8 = _Param("SMTPUTF8", lambda e: e.smtputf8, "SMTPUTF8", 10)  # RFC 6531 §3.4
_RET = _Param("RET", lambda e: e.dsn, "DSN", 10)  # RFC 3461 §4.3
_ENVID = _Param("ENVID", lambda e: e.dsn, "DSN", 107)  # RFC 3461 §4.4: 100 + "ENVID="
_AUTH = _Param("AUTH", lambda e: bool(e.auth), "AUTH", 500)  # RFC 4954 §5
_REQUIRETLS = _Param("REQUIRETLS", lambda e: e.requiretls, "REQUIRETLS", 11)  # RFC 8689 §2
_MT_PRIORITY = _Param("MT-PRIORITY", lambda e: e.mt_priority, "MT-PRIORITY", 16)  # RFC 6710
_NOTIFY = _Param("NOTIFY", lambda e: e.dsn, "DSN", 30)  # RFC 3461 §4.1
_ORCPT = _Param("ORCPT", lambda e: e.dsn, "DSN", 500)  # RFC 3461 §4.2
# Parameters of extensions we do not model: the caller vouches for them; they get no allowance.
_EXTRA = _Param("", lambda e: True, "", 0)


def _line(command: str, params: list[tuple[_Param, str]], extensions: Extensions) -> bytes:
    if not params:
        # The common case: a bare path, at most 256 octets (RFC 5321 §4.5.3.1.3), always fits.
        return f"{command}\r\n".encode()
    limit = COMMAND_LINE_LIMIT
    parts = [command]
    if not extensions.esmtp:
        raise LocalProtocolError("ESMTP parameters cannot be sent after HELO (RFC 5321 §4.1.1.1)")
    for param, text in params:
        if not param.needs(extensions):
            raise LocalProtocolError(
                f"{param.keyword} needs the {param.extension} extension, "
                "which the server did not advertise"
            )
        limit += param.allowance
        parts.append(text)
    line = (" ".join(parts) + "\r\n").encode()
    if len(line) > limit:
        raise LocalProtocolError(f"the command line is {len(line)} octets, over the {limit} limit")
    return line


def _extra(extra: tuple[tuple[str, str | None], ...]) -> list[tuple[_Param, str]]:
    return [
        (_EXTRA, keyword if value is None else f"{keyword}={value}") for keyword, value in extra
    ]


def render_mail(event: MailFrom, extensions: Extensions) -> bytes:
    """``MAIL FROM:<...> [params]`` for ``event`` on a server with ``extensions``."""
    if event.sender:
        path = format_mailbox(event.sender)
        if needs_smtputf8(event.sender) and not event.smtputf8:
            raise LocalProtocolError("a non-ASCII sender needs smtputf8=True (RFC 6531 §3.4)")
    else:
        path = ""
    params: list[tuple[_Param, str]] = []
    if event.size is not None:
        if extensions.size and event.size > extensions.size:
            raise LocalProtocolError(
                f"the message ({event.size} octets) exceeds the server's SIZE {extensions.size}"
            )
        params.append((_SIZE, f"SIZE={event.size}"))
    if event.body is not None:
        body_param = _BODY_BINARY if event.body == "BINARYMIME" else _BODY_8BIT
        params.append((body_param, f"BODY={event.body}"))
        if event.body == "BINARYMIME" and not extensions.chunking:
            raise LocalProtocolError("BODY=BINARYMIME needs CHUNKING, which was not advertised")
    if event.smtputf8:
        params.append((_SMTPUTF8, "SMTPUTF8"))
    if event.ret is not None:
        params.append((_RET, f"RET={event.ret}"))
    if event.envid is not None:
        params.append((_ENVID, f"ENVID={xtext_encode(event.envid)}"))
    if event.auth is not None:
        auth = "<>" if event.auth == "<>" else xtext_encode(format_mailbox(event.auth))
        params.append((_AUTH, f"AUTH={auth}"))
    if event.requiretls:
        params.append((_REQUIRETLS, "REQUIRETLS"))
    if event.mt_priority is not None:
        params.append((_MT_PRIORITY, f"MT-PRIORITY={event.mt_priority}"))
    if event.extra:
        params += _extra(event.extra)
    return _line(f"MAIL FROM:<{path}>", params, extensions)


def render_rcpt(event: RcptTo, extensions: Extensions) -> bytes:
    """``RCPT TO:<...> [params]`` for ``event`` on a server with ``extensions``."""
    recipient = event.recipient
    path = rcpt_path(recipient)
    params: list[tuple[_Param, str]] = []
    if event.notify is not None:
        params.append((_NOTIFY, "NOTIFY=" + ",".join(event.notify)))
    if event.orcpt is not None:
        params.append((_ORCPT, f"ORCPT={event.orcpt_type};{xtext_encode(event.orcpt)}"))
    if event.extra:
        params += _extra(event.extra)
    return _line(f"RCPT TO:<{path}>", params, extensions)


def auth_line(mechanism: str, initial_response: bytes | None) -> bytes:
    """``AUTH mechanism [initial-response]``; an empty response is sent as ``=`` (RFC 4954 §4).

    Its length decides whether the initial response may go on the line at all (512 octets).
    """
    line = f"AUTH {mechanism}"
    if initial_response is not None:
        line += " " + (base64.b64encode(initial_response).decode("ascii") or "=")
    return f"{line}\r\n".encode("ascii")
