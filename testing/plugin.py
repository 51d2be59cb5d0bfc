"""pytest fixtures for testing SMTP clients, registered through the ``pytest11`` entry point.

Installed with smtpproto, so a test only names them:

- ``smtp_certificates`` (session): a throwaway CA and server certificates
  (:class:`~smtpproto.testing.TLSMaterial`); ``.client_context()`` trusts only that CA.
- ``scripted_smtp`` (per test): a factory of :class:`~smtpproto.testing.ScriptedServer`;
  ``scripted_smtp({"RCPT": b"550 no\\r\\n"}, tls="starttls")``.  Every server it started is
  finished when the test ends, so a test that forgets cannot leak a thread.

When a test fails, what each of its scripted servers recorded (steps, commands, errors) is
added to the failure report.  Disable the plugin with ``-p no:smtpproto``.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping
from typing import Any, Literal

import pytest

from .certificates import CertKind, TLSMaterial, make_tls_material
from .records import Action
from .server import ScriptedServer

__all__ = ["ScriptedSMTPFactory", "scripted_smtp", "smtp_certificates"]


@pytest.fixture(scope="session")
def smtp_certificates(tmp_path_factory: pytest.TempPathFactory) -> TLSMaterial:
    """A private CA and its server certificates, made once per test session."""
    return make_tls_material(tmp_path_factory.mktemp("smtp-certificates"))


class ScriptedSMTPFactory:
    """Starts scripted servers for one test and finishes them all at its end."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self._request = request
        self.servers: list[ScriptedServer] = []

    def __call__(
        self,
        rules: Mapping[str, Action] | None = None,
        *,
        tls: Literal["none", "starttls", "implicit"] = "none",
        certificate: CertKind = "good",
        **options: Any,
    ) -> ScriptedServer:
        """A started server.  ``tls``: offer STARTTLS, or handshake before the greeting, with
        the ``smtp_certificates`` certificate of kind ``certificate``; ``options`` are
        :class:`~smtpproto.testing.ScriptedServer`'s keyword arguments."""
        if tls != "none":
            material: TLSMaterial = self._request.getfixturevalue("smtp_certificates")
            options["tls_context"] = material.server_context(certificate)
            options["implicit_tls"] = tls == "implicit"
        server = ScriptedServer(rules, **options)
        self.servers.append(server)
        return server

    def finish_all(self) -> None:
        for server in self.servers:
            server.finish()


@pytest.fixture
def scripted_smtp(request: pytest.FixtureRequest) -> Iterator[ScriptedSMTPFactory]:
    """``scripted_smtp(rules, tls=..., **options)`` starts a scripted SMTP server."""
    factory = ScriptedSMTPFactory(request)
    try:
        yield factory
    finally:
        factory.finish_all()


def _describe(factory: ScriptedSMTPFactory) -> str:
    parts = []
    for server in factory.servers:
        for number, record in enumerate(server.connections, 1):
            parts.append(
                f"{server.address[0]}:{server.address[1]} connection {number}: "
                f"steps {record.steps}, commands {record.commands[:40]}, tls {record.tls}, "
                f"fault {record.fault}, errors {record.errors}"
            )
    return "\n".join(parts) or "no connection was made"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        values: dict[str, Any] = getattr(item, "funcargs", {})
        for value in values.values():
            if isinstance(value, ScriptedSMTPFactory):
                report.sections.append(("scripted SMTP servers", _describe(value)))
    return report
