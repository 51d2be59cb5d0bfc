"""Issue 14: what the command line says is in its own words and true.

Errors name the flags that help (``--allow-cleartext-auth``, ``--cafile``, ``--insecure``), never
the Python arguments, and never "use TLS" when TLS was up; the table's server column never says
"cleartext" for a connection that was refused or a handshake that failed; a multi-line reply
stays on its row; the exit codes stay those of docs/cli.rst.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # mypy knows testing/ as "testing" (package-dir mapping)
    from testing import ScriptedServer
else:
    from smtpproto.testing import ScriptedServer

from tests.servers.dnsmasq import DEFAULT_ZONE, DNSServer
from tests.servers.fixtures import SMTPServerFactory
from tests.servers.tls import TLSMaterial
from tests.test_cli import PASSWORD, USER, assert_one_line_error, run_cli, send_args

if TYPE_CHECKING:  # mypy knows cli/ as "cli" (package-dir mapping)
    from cli.common import EXIT_OK, EXIT_TEMPFAIL, EXIT_UNAVAILABLE, PASSWORD_ENV
else:
    from smtpproto.cli.common import EXIT_OK, EXIT_TEMPFAIL, EXIT_UNAVAILABLE, PASSWORD_ENV

PYTHON_WORDS = ("allow_cleartext", "Relay(", "deliver(", "ssl_context", "=True")


def assert_cli_words(text: str) -> None:
    for word in PYTHON_WORDS:
        assert word not in text, text


def test_cleartext_auth_with_tls_none_names_the_flag(
    smtp_server_factory: SMTPServerFactory,
) -> None:
    """--tls none to a server that offers AUTH: refused, naming --allow-cleartext-auth (69, as
    a refused login); with the flag, it is sent."""
    server = smtp_server_factory(auth=(USER, PASSWORD), auth_require_tls=False)
    env = {PASSWORD_ENV: PASSWORD}
    refused = run_cli(*send_args(server, "--tls", "none", "--auth-user", USER), env=env)
    assert refused.returncode == EXIT_UNAVAILABLE, refused.stdout + refused.stderr
    assert_one_line_error(refused)
    assert "--allow-cleartext-auth" in refused.stderr and "(--tls none)" in refused.stderr
    assert_cli_words(refused.stderr + refused.stdout)
    assert not server.messages
    allowed = run_cli(
        *send_args(server, "--tls", "none", "--auth-user", USER, "--allow-cleartext-auth"),
        env=env,
    )
    assert allowed.returncode == EXIT_OK, allowed.stderr
    assert server.wait_for_messages(1)[0].auth_user == USER


def test_insecure_auth_does_not_say_use_tls(smtp_server_factory: SMTPServerFactory) -> None:
    """--insecure --auth-user: TLS was up (unverified), so the message says the certificate was
    not verified and names --insecure and --allow-cleartext-auth, not "use TLS"."""
    server = smtp_server_factory(starttls="require", auth=(USER, PASSWORD))
    result = run_cli(
        *send_args(server, "--insecure", "--auth-user", USER), env={PASSWORD_ENV: PASSWORD}
    )
    assert result.returncode == EXIT_UNAVAILABLE, result.stdout + result.stderr
    assert_one_line_error(result)
    assert "certificate was not verified (--insecure)" in result.stderr
    assert "--allow-cleartext-auth" in result.stderr and "--cafile" in result.stderr
    assert "use TLS" not in result.stderr and "in cleartext" not in result.stderr
    assert_cli_words(result.stderr)
    assert re.search(r"b(ob)?@x\.test\s+permanent.*, TLS unverified", result.stdout)


def test_untrusted_certificate_names_cafile_and_is_not_cleartext(
    smtp_server_factory: SMTPServerFactory, tls_material: TLSMaterial
) -> None:
    """A relay whose CA the client does not trust: 75 (a TLS failure, as documented), the
    error names --cafile and --insecure, and the server column says TLS failed."""
    server = smtp_server_factory(starttls="require", cert_kind="untrusted")
    result = run_cli(*send_args(server, "--cafile", str(tls_material.ca_cert)))
    assert result.returncode == EXIT_TEMPFAIL
    assert_one_line_error(result)
    assert "CERTIFICATE_VERIFY_FAILED" in result.stderr
    assert "--cafile PEM" in result.stderr and "--insecure" in result.stderr
    row = next(line for line in result.stdout.splitlines() if line.startswith("bob@x.test"))
    assert row.endswith("127.0.0.1, TLS failed") and "cleartext" not in row
    report = json.loads(
        run_cli(*send_args(server, "--cafile", str(tls_material.ca_cert), "--json")).stdout
    )
    (attempt,) = report["recipients"][0]["attempts"]
    assert attempt["tls_failed"] and not attempt["connect_failed"]
    assert report["recipients"][0]["server_host"] is None


def test_refused_connection_is_not_cleartext() -> None:
    result = run_cli("send", "--from", "a@x.test", "--to", "b@x.test",
                     "--server", "127.0.0.1:9", "--tls", "none")  # fmt: skip
    assert result.returncode == EXIT_TEMPFAIL
    row = next(line for line in result.stdout.splitlines() if line.startswith("b@x.test"))
    assert row.endswith("127.0.0.1, no connection") and "cleartext" not in row


def test_wrong_password_shows_the_code_once(
    smtp_server_factory: SMTPServerFactory, tls_material: TLSMaterial
) -> None:
    server = smtp_server_factory(starttls="require", auth=(USER, PASSWORD))
    result = run_cli(
        *send_args(server, "--auth-user", USER, "--cafile", str(tls_material.ca_cert), "--json"),
        env={PASSWORD_ENV: "wrong-" + PASSWORD},
    )
    assert result.returncode == EXIT_UNAVAILABLE
    (outcome,) = json.loads(result.stdout)["recipients"]
    assert outcome["reply"]["code"] == 535
    assert outcome["detail"].startswith("authentication failed: ")
    assert "535" not in outcome["detail"]  # the reply's code is shown once, next to it
    assert outcome["server_host"] == "127.0.0.1" and outcome["tls_verified"]


def test_a_multi_line_reply_stays_on_its_row() -> None:
    """A two-line reply to the end of data (Exim's to BDAT LAST has this shape): the table
    keeps one row per recipient."""
    with ScriptedServer({"DOT": b"250-1234 byte chunk, total 1234\r\n250 OK id=1tXyZ-0A\r\n"}) as (
        server
    ):
        host, port = server.address
        result = run_cli("send", "--from", "a@x.test", "--to", "b@x.test", "--to", "c@x.test",
                         "--server", f"{host}:{port}", "--tls", "none")  # fmt: skip
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    table = result.stdout.split("\n\n")[-1].splitlines()
    assert table[1].startswith("b@x.test") and table[2].startswith("c@x.test")
    assert "250 1234 byte chunk, total 1234 / OK id=1tXyZ-0A" in table[1]
    assert table[3].startswith("2 delivered")


def test_mx_keeps_a_multi_line_greeting_on_its_line(dns_server: DNSServer) -> None:
    greeting = b"220-mx1.ordered.test ESMTP\r\n220 no UCE, please\r\n"
    with ScriptedServer({"GREETING": greeting}, host=DEFAULT_ZONE.address("mx1.ordered.test"),
                        port=25):  # fmt: skip
        result = run_cli("mx", "ordered.test", "--resolver", f"{dns_server.host}:{dns_server.port}",
                         "--timeout", "2")  # fmt: skip
    assert result.returncode == EXIT_OK, result.stdout
    assert "\n  greeting: 220 mx1.ordered.test ESMTP / no UCE, please\n  EHLO: " in result.stdout
