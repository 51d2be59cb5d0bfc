from smtpproto.adapters.cli import main

raise SystemExit(main())
