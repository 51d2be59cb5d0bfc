"""The kit's scripted server (:mod:`smtpproto.testing`), under the names the suite imports."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # mypy knows testing/ as "testing" (package-dir mapping)
    from testing import Action, ConnectionRecord, Fault, Peer, ScriptedServer
    from testing.server import DEFAULT_REPLIES
else:
    from smtpproto.testing import Action, ConnectionRecord, Fault, Peer, ScriptedServer
    from smtpproto.testing.server import DEFAULT_REPLIES

__all__ = ["DEFAULT_REPLIES", "Action", "ConnectionRecord", "Fault", "Peer", "ScriptedServer"]
