"""Fixtures shared by the test modules: the real servers, and the adapter and delivery harnesses."""

pytest_plugins = [
    "smtpproto.testing.plugin",
    "tests.servers.fixtures",
    "tests.adapters_harness",
    "tests.deliver_harness",
]
