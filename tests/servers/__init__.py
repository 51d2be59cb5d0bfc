"""Real servers on loopback for the integration tests: aiosmtpd, Postfix, smtp-sink, dnsmasq.

Everything binds to 127.0.0.0/8 or ::1 only. The pytest fixtures live in
``tests.servers.fixtures`` (loaded from ``tests/conftest.py``).
"""
