"""``python -m smtpproto.cli``: the command line."""

from .commands import main

raise SystemExit(main())
