"""smtpproto's command line: ``smtpproto send``, ``smtpproto mx``, ``smtpproto demo``.

Installed as ``smtpproto.cli``; the top layer, over the blocking, asyncio and trio adapters.
Run it as ``smtpproto ...`` or ``python -m smtpproto.cli ...``.
"""

from .commands import main

__all__ = ["main"]
