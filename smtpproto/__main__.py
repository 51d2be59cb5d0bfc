from smtpproto.adapters.cli import main  # type: ignore[import-not-found]

raise SystemExit(main())
