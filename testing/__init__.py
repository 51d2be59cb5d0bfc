"""Testing SMTP code with smtpproto: a scripted server, throwaway certificates, a script player
for operations, hypothesis strategies and a pytest plugin.

- :class:`ScriptedServer` — an SMTP server on a local socket that plays an ordinary dialogue,
  with *rules* that replace any step's reply by other bytes, chunked or delayed bytes, a fault
  (close, reset, stall, 421) or a function that takes the connection over; STARTTLS or implicit
  TLS; a :class:`ConnectionRecord` of everything the client sent.  It serves on threads;
  :class:`AsyncioScriptedServer` and :class:`TrioScriptedServer` serve the same dialogue as
  tasks of the running event loop.
- :func:`make_tls_material` — a private CA and good, wrong-name, untrusted and expired server
  certificates (:mod:`smtpproto.testing.certificates`, needs trustme).
- :mod:`smtpproto.testing.script` — play an operation against a list of expected requests and
  server bytes, whole and byte by byte, with no socket at all.
- :mod:`smtpproto.testing.strategies` — hypothesis strategies (needs hypothesis).
- :mod:`smtpproto.testing.plugin` — pytest fixtures, loaded automatically when smtpproto is
  installed: ``scripted_smtp`` and ``smtp_certificates``.
- :mod:`smtpproto.testing.unsafe` — UNSAFE raw bytes on a socket, for probes only.

Install what the kit needs with the ``testing`` extra: ``pip install 'smtpproto-sansio[testing]'``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .asyncio_server import AsyncioScriptedServer
from .certificates import CertKind, TLSMaterial, make_tls_material
from .lookalikes import END_OF_DATA_LOOKALIKES
from .peer import Peer
from .records import Action, Answer, Chunked, ConnectionRecord, Delayed, Fault, reply
from .server import DEFAULT_REPLIES, ScriptedServer

if TYPE_CHECKING:
    from .trio_server import TrioScriptedServer

__all__ = [
    "DEFAULT_REPLIES",
    "END_OF_DATA_LOOKALIKES",
    "Action",
    "Answer",
    "AsyncioScriptedServer",
    "CertKind",
    "Chunked",
    "ConnectionRecord",
    "Delayed",
    "Fault",
    "Peer",
    "ScriptedServer",
    "TLSMaterial",
    "TrioScriptedServer",
    "make_tls_material",
    "reply",
]


def __getattr__(name: str) -> object:
    # trio is optional: its server is imported when first asked for.
    if name == "TrioScriptedServer":
        from .trio_server import TrioScriptedServer  # noqa: PLC0415

        return TrioScriptedServer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
