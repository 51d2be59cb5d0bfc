"""The operations: SMTP policy as generators of I/O requests (Session)."""
