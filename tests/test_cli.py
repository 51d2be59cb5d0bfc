"""The command line, run as a subprocess (``python -m smtpproto``) against loopback servers.

Each test runs the real program: argument parsing, exit codes, what reaches stdout and stderr
(and what must never: the password), against aiosmtpd, the private Postfix and dnsmasq.
"""

from __future__ import annotations

import base64
import email
import email.message
import email.policy
import json
import os
import pty
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.servers.aiosmtpd_server import RunningSMTPServer
from tests.servers.dnsmasq import DEFAULT_ZONE, DNSServer
from tests.servers.fixtures import SMTPServerFactory
from tests.servers.postfix import PostfixInstance
from tests.servers.tls import TLSMaterial

if TYPE_CHECKING:  # mypy knows adapters/ as "adapters" (package-dir mapping)
    import cli.commands as cli
    from cli.common import (
        EXIT_OK,
        EXIT_TEMPFAIL,
        EXIT_UNAVAILABLE,
        EXIT_USAGE,
        PASSWORD_ENV,
        Endpoint,
        UsageError,
        parse_endpoint,
        use_color,
    )
    from cli.demo import DEMO_PASSWORD
else:
    import smtpproto.cli.commands as cli
    from smtpproto.cli.common import (
        EXIT_OK,
        EXIT_TEMPFAIL,
        EXIT_UNAVAILABLE,
        EXIT_USAGE,
        PASSWORD_ENV,
        Endpoint,
        UsageError,
        parse_endpoint,
        use_color,
    )
    from smtpproto.cli.demo import DEMO_PASSWORD

REPO = Path(__file__).resolve().parent.parent
USER, PASSWORD = "carol", "s3cret-Pa55word"
ADAPTERS = ["blocking", "asyncio", "trio"]


def run_cli(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``python -m smtpproto ARGS`` with no terminal (so no password prompt can hang)."""
    environment = {k: v for k, v in os.environ.items() if k not in (PASSWORD_ENV, "NO_COLOR")}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "smtpproto.cli", *args],
        capture_output=True,
        text=True,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        env=environment,
        cwd=REPO,
        timeout=timeout,
        start_new_session=True,  # no controlling terminal: getpass cannot reach /dev/tty
        check=False,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str]) -> None:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("smtpproto"), lines
    assert "Traceback" not in result.stderr


def send_args(
    server: RunningSMTPServer, *extra: str, to: tuple[str, ...] = ("bob@x.test",)
) -> list[str]:
    args = ["send", "--from", "alice@x.test", "--server", f"{server.host}:{server.port}"]
    args += [arg for rcpt in to for arg in ("--to", rcpt)]
    return [*args, "--ehlo", "client.test", *extra]


# -- the demo ----------------------------------------------------------------------------------


def test_demo_exits_0_with_transcript_results_and_stored_messages() -> None:
    """The README's command: two messages, one refused recipient, the .eml files it names."""
    started = time.monotonic()
    result = run_cli("demo")
    elapsed = time.monotonic() - started
    assert result.returncode == EXIT_OK, result.stderr
    out = result.stdout
    for expected in ("C: STARTTLS", "S: 220", "C: AUTH PLAIN <credentials hidden>", "C: QUIT"):
        assert expected in out
    assert re.search(r"nobody@example\.net\s+permanent\s+550 5\.1\.1", out)
    assert re.search(r"bob@example\.net\s+delivered\s+250", out)
    assert "TLS verified" in out  # the throwaway CA is trusted, not verification switched off
    paths = [Path(p) for p in re.findall(r"^\s+(/\S+\.eml)", out, re.MULTILINE)]
    assert len(paths) == 2
    subjects = [email.message_from_bytes(p.read_bytes())["Subject"] for p in paths]
    assert subjects == ["sent with the staged API", "sent with send_message"]
    shutil.rmtree(paths[0].parent)
    assert DEMO_PASSWORD not in out + result.stderr
    assert elapsed < 15


def run_in_terminal(*args: str) -> tuple[int, str]:
    """Run the command with a pseudo-terminal as stdout and stderr; (exit code, output)."""
    controller, terminal = pty.openpty()
    environment = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    process = subprocess.Popen(
        [sys.executable, "-m", "smtpproto.cli", *args],
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
        cwd=REPO,
        env=environment,
    )
    os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the program closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(controller)
    return process.wait(timeout=30), b"".join(chunks).decode("utf-8", "replace")


def test_demo_on_a_terminal_is_coloured() -> None:
    """On a TTY the transcript has colours (and the table is rich's when rich is installed)."""
    code, output = run_in_terminal("demo")
    assert code == EXIT_OK
    assert "\x1b[36mC: EHLO" in output
    assert "delivered" in output
    for path in re.findall(r"(/\S+?smtpproto-demo-\w+)", output)[:1]:
        shutil.rmtree(path, ignore_errors=True)


def test_without_the_demo_extra(smtp_server: RunningSMTPServer, tmp_path: Path) -> None:
    """Without trustme the demo says what to install (69); without rich, output stays plain."""
    for missing in ("rich", "trustme"):
        (tmp_path / f"{missing}.py").write_text(f"raise ImportError('{missing} is hidden')\n")
    hidden = {"PYTHONPATH": str(tmp_path)}
    demo = run_cli("demo", env=hidden)
    assert demo.returncode == EXIT_UNAVAILABLE
    assert_one_line_error(demo)
    assert "pip install 'smtpproto-sansio[demo]'" in demo.stderr
    send = run_cli(*send_args(smtp_server, "--tls", "none", "--progress", "always"), env=hidden)
    assert send.returncode == EXIT_OK, send.stderr
    assert "sending" in send.stderr and "done" in send.stderr


# -- send through a server ---------------------------------------------------------------------


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_send_starttls_auth_password_from_env_never_printed_s8(
    smtp_server_factory: SMTPServerFactory, tls_material: TLSMaterial, adapter: str
) -> None:
    """S8: STARTTLS, then AUTH with the password from the environment; it is never shown."""
    server = smtp_server_factory(starttls="require", auth=(USER, PASSWORD))
    result = run_cli(
        *send_args(server, "--tls", "starttls", "--auth-user", USER),
        "--cafile", str(tls_material.ca_cert), "--adapter", adapter,
        env={PASSWORD_ENV: PASSWORD},
    )  # fmt: skip
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    assert "C: AUTH PLAIN <credentials hidden>" in result.stdout
    assert "S: 235" in result.stdout
    everything = result.stdout + result.stderr
    plain_token = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    assert PASSWORD not in everything and plain_token not in everything
    (message,) = server.wait_for_messages(1)
    assert message.tls and message.auth_user == USER
    assert re.search(r"bob@x\.test\s+delivered\s+250.*TLS verified", result.stdout)


def test_send_refuses_an_untrusted_certificate_then_insecure_sends(
    smtp_server_factory: SMTPServerFactory,
) -> None:
    """Verification is on by default; --insecure is the explicit way out (and says so)."""
    server = smtp_server_factory(starttls="require")
    refused = run_cli(*send_args(server))
    assert refused.returncode == EXIT_TEMPFAIL
    assert "CERTIFICATE_VERIFY_FAILED" in refused.stderr and "Traceback" not in refused.stderr
    assert not server.messages
    sent = run_cli(*send_args(server, "--insecure"))
    assert sent.returncode == EXIT_OK, sent.stderr
    assert "TLS unverified" in sent.stdout


CASES = {
    "delivered": ({}, EXIT_OK),
    "temporary": ({"b@x.test": "450 4.2.0 mailbox busy"}, EXIT_TEMPFAIL),
    "permanent": ({"b@x.test": "550 5.1.1 no such user"}, EXIT_UNAVAILABLE),
    "both": (
        {"b@x.test": "450 4.2.0 mailbox busy", "c@x.test": "550 5.1.1 no such user"},
        EXIT_UNAVAILABLE,
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_exit_code_by_recipient_outcome(smtp_server_factory: SMTPServerFactory, case: str) -> None:
    """0 all delivered; 75 a temporary failure and none permanent; 69 any permanent one."""
    replies, code = CASES[case]
    server = smtp_server_factory(recipient_replies=replies)
    result = run_cli(*send_args(server, "--tls", "none", to=("a@x.test", "b@x.test", "c@x.test")))
    assert result.returncode == code, result.stdout + result.stderr
    for rcpt, reply in replies.items():
        status = "temporary" if reply.startswith("4") else "permanent"
        assert re.search(rf"{re.escape(rcpt)}\s+{status}\s+{reply[:3]}", result.stdout)
    assert re.search(r"a@x\.test\s+delivered", result.stdout)


def test_exit_code_when_every_recipient_is_refused(smtp_server_factory: SMTPServerFactory) -> None:
    server = smtp_server_factory(recipient_replies={"bob@x.test": "550 5.1.1 no"})
    result = run_cli(*send_args(server, "--tls", "none"))
    assert result.returncode == EXIT_UNAVAILABLE
    assert re.search(r"bob@x\.test\s+permanent\s+550 5\.1\.1", result.stdout)
    assert_one_line_error(result)


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_exit_code_when_nothing_listens(adapter: str) -> None:
    """A refused connection is temporary (75), told in one sentence."""
    result = run_cli("send", "--from", "a@x.test", "--to", "b@x.test", "--adapter", adapter,
                     "--server", "127.0.0.1:9", "--tls", "none")  # fmt: skip
    assert result.returncode == EXIT_TEMPFAIL
    assert_one_line_error(result)
    assert re.search(r"b@x\.test\s+temporary", result.stdout)


def test_wrong_password_is_permanent(
    smtp_server_factory: SMTPServerFactory, tls_material: TLSMaterial
) -> None:
    server = smtp_server_factory(starttls="require", auth=(USER, PASSWORD))
    result = run_cli(
        *send_args(server, "--auth-user", USER, "--cafile", str(tls_material.ca_cert)),
        env={PASSWORD_ENV: "wrong-" + PASSWORD},
    )
    assert result.returncode == EXIT_UNAVAILABLE
    assert_one_line_error(result)
    assert "535" in result.stderr and "wrong-" not in result.stdout + result.stderr


def test_json_output_is_the_report_alone(smtp_server_factory: SMTPServerFactory) -> None:
    server = smtp_server_factory(recipient_replies={"c@x.test": "550 5.1.1 no"})
    result = run_cli(*send_args(server, "--tls", "none", "--json", to=("b@x.test", "c@x.test")))
    assert result.returncode == EXIT_UNAVAILABLE
    report = json.loads(result.stdout)
    assert [(r["recipient"], r["status"]) for r in report["recipients"]] == [
        ("b@x.test", "delivered"),
        ("c@x.test", "permanent"),
    ]
    assert report["recipients"][1]["reply"] == {
        "code": 550,
        "enhanced_status": "5.1.1",
        "text": "5.1.1 no",
    }
    assert report["relay"] is True


def test_quiet_prints_nothing(smtp_server_factory: SMTPServerFactory) -> None:
    server = smtp_server_factory()
    result = run_cli(*send_args(server, "--tls", "none", "--quiet", "--adapter", "asyncio"))
    assert (result.returncode, result.stdout, result.stderr) == (EXIT_OK, "", "")


def test_message_from_options(smtp_server_factory: SMTPServerFactory, tmp_path: Path) -> None:
    """Headers, body from stdin, an attachment; From/To/Subject/Date/Message-ID are set."""
    attachment = tmp_path / "notes.txt"
    attachment.write_text("attached text\n")
    archive = tmp_path / "logs.tar.gz"  # compressed: sent as the bytes it is
    archive.write_bytes(b"\x1f\x8b\x08\x00binary")
    server = smtp_server_factory()
    result = run_cli(
        *send_args(server, "--tls", "none", "--subject", "Grüße", "--header", "X-Test: one",
                   "--body", "-", "--attach", str(attachment), "--attach", str(archive)),
        stdin="Hello from stdin, café.\n",
    )  # fmt: skip
    assert result.returncode == EXIT_OK, result.stderr
    (received,) = server.wait_for_messages(1)
    message = email.message_from_bytes(received.content, policy=email.policy.default)
    assert message["Subject"] == "Grüße" and message["X-Test"] == "one"
    assert message["To"] == "bob@x.test" and message["Date"] and message["Message-ID"]
    body = message.get_body(("plain",))
    assert body is not None and body.get_content() == "Hello from stdin, café.\r\n"
    notes, logs = message.iter_attachments()
    assert (notes.get_filename(), notes.get_content_type()) == ("notes.txt", "text/plain")
    assert (logs.get_filename(), logs.get_content_type()) == (
        "logs.tar.gz",
        "application/octet-stream",
    )
    assert isinstance(logs, email.message.EmailMessage)
    assert logs.get_content() == b"\x1f\x8b\x08\x00binary"
    assert received.content.isascii()  # 7-bit: any server can take it


def test_dsn_options_reach_the_server(smtp_server_factory: SMTPServerFactory) -> None:
    server = smtp_server_factory(
        extra_ehlo=("DSN",), accept_params=("RET", "ENVID", "NOTIFY", "ORCPT")
    )
    result = run_cli(*send_args(server, "--tls", "none", "--dsn-notify", "success,failure",
                                "--dsn-ret", "hdrs", "--dsn-envid", "job-7"))  # fmt: skip
    assert result.returncode == EXIT_OK, result.stderr
    lines = b"".join(server.connections[0].lines)
    assert b"RET=HDRS" in lines and b"ENVID=job-7" in lines
    assert b"NOTIFY=SUCCESS,FAILURE" in lines


def test_progress_and_one_content_line_for_a_large_body(
    smtp_server_factory: SMTPServerFactory, tmp_path: Path
) -> None:
    """A 3 MiB body: one transcript line for its content, a progress line on stderr."""
    body = tmp_path / "big.txt"
    body.write_text(("x" * 99 + "\n") * 30_000)
    server = smtp_server_factory()
    result = run_cli(
        *send_args(server, "--tls", "none", "--body", str(body), "--progress", "always", "--plain")
    )
    assert result.returncode == EXIT_OK, result.stderr
    assert len(re.findall(r"^C: <\d+ octets of message content>$", result.stdout, re.M)) == 1
    assert "sending" in result.stderr and "MiB" in result.stderr and "done" in result.stderr
    assert len(server.wait_for_messages(1)[0].content) > 3_000_000


def test_progress_on_a_terminal(smtp_server: RunningSMTPServer, tmp_path: Path) -> None:
    """On a terminal, a body of 1 MiB or more gets a progress display (rich's if installed)."""
    body = tmp_path / "big.txt"
    body.write_text(("z" * 99 + "\n") * 12_000)
    code, output = run_in_terminal(
        *send_args(smtp_server, "--tls", "none", "--body", str(body), "--color", "never")
    )
    assert code == EXIT_OK, output
    assert "sending" in output and "MiB" in output
    assert "b@x.test" in output and "delivered" in output


def test_colours_can_be_forced_for_a_pipe(smtp_server: RunningSMTPServer) -> None:
    result = run_cli(*send_args(smtp_server, "--tls", "none", "--color", "always", "--plain"))
    assert result.returncode == EXIT_OK
    assert "\x1b[36mC: MAIL FROM:<alice@x.test>" in result.stdout
    assert "\x1b[32mdelivered" in result.stdout


class StallingServer:
    """Speaks SMTP up to the 354 for DATA, then stops reading: the client's send blocks."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.in_data = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        connection, _ = self.listener.accept()
        with connection, connection.makefile("rb") as lines:
            connection.sendall(b"220 stall.test ESMTP\r\n")
            for line in lines:
                verb = line[:4].upper()
                if verb == b"DATA":
                    connection.sendall(b"354 go ahead\r\n")
                    self.in_data.set()
                    time.sleep(30)  # never read the body; the test interrupts the client
                    return
                connection.sendall(b"250 ok\r\n")

    def close(self) -> None:
        self.listener.close()


def test_ctrl_c_mid_body_exits_130(tmp_path: Path) -> None:
    """Interrupted while the body is on its way: the progress line ends, one sentence, 130."""
    body = tmp_path / "big.txt"
    body.write_text(("q" * 99 + "\n") * 80_000)  # 8 MB: more than the socket buffers hold
    server = StallingServer()
    environment = {k: v for k, v in os.environ.items() if k != PASSWORD_ENV}
    process = subprocess.Popen(
        [sys.executable, "-m", "smtpproto.cli", "send", "--from", "a@x.test", "--to", "b@x.test",
         "--server", f"127.0.0.1:{server.port}", "--tls", "none", "--body", str(body),
         "--progress", "always", "--plain"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, cwd=REPO, env=environment,
    )  # fmt: skip
    try:
        assert server.in_data.wait(30)
        time.sleep(0.5)  # the client fills the socket buffers and blocks in send
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        server.close()
    assert process.returncode == 130
    assert "C: DATA" in stdout
    *progress, error = stderr.splitlines()  # text mode reads each \r as a line end too
    assert progress[-1].startswith("sending") and progress[-1].endswith("stopped")
    assert "done" not in stderr
    assert error == "smtpproto: interrupted"


# -- usage errors ------------------------------------------------------------------------------

USAGE_ERRORS = {
    "missing --to": ["send", "--from", "a@x.test", "--server", "127.0.0.1"],
    "no route": ["send", "--from", "a@x.test", "--to", "b@x.test"],
    "two routes": ["send", "--from", "a@x.test", "--to", "b@x.test", "--server", "h", "--direct"],
    "bad notify": ["send", "--from", "a@x.test", "--to", "b@x.test", "--direct",
                   "--dsn-notify", "NEVER,SUCCESS"],
    "bad header": ["send", "--from", "a@x.test", "--to", "b@x.test", "--direct",
                   "--header", "no colon"],
    "auth direct": ["send", "--from", "a@x.test", "--to", "b@x.test", "--direct",
                    "--auth-user", "u"],
    "not an address": ["send", "--from", "alice", "--to", "b@x.test", "--direct"],
    "no body file": ["send", "--from", "a@x.test", "--to", "b@x.test", "--direct",
                     "--body", "/nonexistent/body.txt"],
    "bad port": ["send", "--from", "a@x.test", "--to", "b@x.test", "--server", "h:99999"],
    "bcc header": ["send", "--from", "a@x.test", "--to", "b@x.test", "--server", "h",
                   "--header", "Bcc: c@x.test"],
    "binary body": ["send", "--from", "a@x.test", "--to", "b@x.test", "--server", "h",
                    "--body", sys.executable],
    "bad literal": ["send", "--from", "a@x.test", "--to", "b@[300.1.1.1]", "--direct"],
    "direct tls none": ["send", "--from", "a@x.test", "--to", "b@x.test", "--direct",
                        "--tls", "none"],
    "direct insecure": ["send", "--from", "a@x.test", "--to", "b@x.test", "--direct",
                        "--insecure"],
    "server resolver": ["send", "--from", "a@x.test", "--to", "b@x.test", "--server", "h",
                        "--resolver", "127.0.0.1"],
    "bad timeout": ["mx", "x.test", "--timeout", "0"],
    "timeout text": ["mx", "x.test", "--timeout", "soon"],
    "infinite timeout": ["mx", "x.test", "--timeout", "inf"],
    "nan timeout": ["send", "--from", "a@x.test", "--to", "b@x.test", "--direct",
                    "--timeout", "nan"],
    "unknown phase": ["send", "--from", "a@x.test", "--to", "b@x.test", "--direct",
                      "--phase-timeout", "dns=3"],
    "bad phase value": ["mx", "x.test", "--phase-timeout", "greeting=-1"],
    "phase no value": ["mx", "x.test", "--phase-timeout", "greeting"],
    "empty envid": ["send", "--from", "a@x.test", "--to", "b@x.test", "--direct",
                    "--dsn-envid", ""],
    "port with server": ["send", "--from", "a@x.test", "--to", "b@x.test", "--server", "h",
                         "--port", "2525"],
    "own header": ["send", "--from", "a@x.test", "--to", "b@x.test", "--server", "h",
                   "--header", "Subject: twice"],
    "unparsable header": ["send", "--from", "a@x.test", "--to", "b@x.test", "--server", "h",
                          "--header", "Cc: a@x.test, <"],
    "no attachment": ["send", "--from", "a@x.test", "--to", "b@x.test", "--server", "h",
                      "--attach", "/nonexistent/file.pdf"],
    "no cafile": ["send", "--from", "a@x.test", "--to", "b@x.test", "--server", "h",
                  "--cafile", "/nonexistent/ca.pem"],
    "ipv6 no port": ["send", "--from", "a@x.test", "--to", "b@x.test", "--server", "[::1]x"],
    "no command": [],
    "mx no domain": ["mx"],
}  # fmt: skip


@pytest.mark.parametrize("case", USAGE_ERRORS)
def test_usage_errors_exit_64_with_one_line(case: str) -> None:
    result = run_cli(*USAGE_ERRORS[case])
    assert result.returncode == EXIT_USAGE, result.stderr
    assert_one_line_error(result)
    assert result.stdout == ""


def test_debug_shows_the_traceback() -> None:
    result = run_cli("send", "--from", "alice", "--to", "b@x.test", "--direct", "--debug")
    assert result.returncode == EXIT_USAGE
    assert "Traceback" in result.stderr


@pytest.mark.parametrize(
    ("option", "value"),
    [("--header", "X-Note: a\r\nBcc: victim@x.test"), ("--subject", "hi\nBcc: victim@x.test"),
     ("--to", "b@x.test\r\nRCPT TO:<victim@x.test>"), ("--from", "a@x.test\0")],
)  # fmt: skip
def test_header_injection_is_a_usage_error_s1(
    smtp_server: RunningSMTPServer, option: str, value: str
) -> None:
    """S1: a CR, LF or NUL in a header or address: exit 64 before connecting."""
    args = {"--from": "a@x.test", "--to": "b@x.test", option: value}
    if "\0" in value:  # a NUL cannot be passed in argv at all: the OS refuses it
        with pytest.raises(ValueError, match="null"):
            run_cli("send", *[x for item in args.items() for x in item])
        return
    result = run_cli(
        "send", *[x for item in args.items() for x in item],
        "--server", f"{smtp_server.host}:{smtp_server.port}", "--tls", "none",
    )  # fmt: skip
    assert result.returncode == EXIT_USAGE
    assert_one_line_error(result)
    assert "line break" in result.stderr
    assert smtp_server.connections == []


def test_missing_password_without_terminal_is_a_usage_error(
    smtp_server: RunningSMTPServer,
) -> None:
    """With no terminal to prompt on and no SMTPPROTO_PASSWORD, refuse rather than read stdin."""
    result = run_cli(*send_args(smtp_server, "--auth-user", USER))
    assert result.returncode == EXIT_USAGE
    assert_one_line_error(result)
    assert PASSWORD_ENV in result.stderr
    assert smtp_server.connections == []


def test_an_internal_error_is_one_sentence(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bug shows as one line and exit 70, with a pointer to --debug."""

    def broken(args: object) -> int:
        raise RuntimeError("something unexpected")

    monkeypatch.setattr(cli, "_demo", broken)
    assert cli.main(["demo"]) == 70
    captured = capsys.readouterr()
    assert captured.err == (
        "smtpproto: internal error: RuntimeError('something unexpected') "
        "(run with --debug for the traceback)\n"
    )


@pytest.mark.parametrize(
    ("text", "endpoint"),
    [
        ("mail.example", Endpoint("mail.example", None)),
        ("mail.example:2525", Endpoint("mail.example", 2525)),
        ("[2001:db8::1]", Endpoint("2001:db8::1", None)),
        ("[::1]:587", Endpoint("::1", 587)),
        ("2001:db8::1", Endpoint("2001:db8::1", None)),  # bare IPv6: no port
        ("127.0.0.1", Endpoint("127.0.0.1", None)),
    ],
)
def test_parse_endpoint(text: str, endpoint: Endpoint) -> None:
    assert parse_endpoint(text, "--server") == endpoint


@pytest.mark.parametrize("text", ["", ":25", "[]:25", "[::1]25", "h:0", "h:65536", "h:x"])
def test_parse_endpoint_refuses(text: str) -> None:
    with pytest.raises(UsageError, match="--server"):
        parse_endpoint(text, "--server")


def test_colours_follow_the_terminal_and_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert use_color(True, "auto") and not use_color(False, "auto")
    assert use_color(False, "always") and not use_color(True, "never")
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_color(True, "auto") and use_color(False, "always")


# -- direct delivery and mx --------------------------------------------------------------------


def resolver_arg(dns_server: DNSServer) -> str:
    return f"{dns_server.host}:{dns_server.port}"


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_direct_delivery_through_the_mx(
    smtp_server_factory: SMTPServerFactory,
    dns_server: DNSServer,
    tls_material: TLSMaterial,
    adapter: str,
) -> None:
    """--direct: MX lookup at the dnsmasq zone, then mx1.ordered.test (127.0.0.11) on port 25."""
    server = smtp_server_factory(
        host=DEFAULT_ZONE.address("mx1.ordered.test"), port=25, starttls="offer"
    )
    args = [
        "send", "--from", "a@x.test", "--to", "bob@ordered.test", "--direct", "--tls", "starttls",
        "--resolver", resolver_arg(dns_server), "--cafile", str(tls_material.ca_cert),
        "--adapter", adapter, "--json",
    ]  # fmt: skip
    result = run_cli(*args)
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    (outcome,) = json.loads(result.stdout)["recipients"]
    assert outcome["status"] == "delivered"
    assert (outcome["server_host"], outcome["server_address"]) == ("mx1.ordered.test", "127.0.0.11")
    assert outcome["tls"] and outcome["tls_verified"]
    received = server.wait_for_messages(1)
    assert ("bob@ordered.test",) in [message.rcpt_tos for message in received]
    if adapter == "blocking":  # and the table names the MX host and its address
        text = run_cli(*args[:-1])
        assert text.returncode == EXIT_OK
        assert re.search(
            r"delivered .* mx1\.ordered\.test \[127\.0\.0\.11\], TLS verified", text.stdout
        )


def test_direct_delivery_to_nobody_listening_explains_port_25(dns_server: DNSServer) -> None:
    """Three MX addresses refuse port 25: the advice, in command-line words (--server)."""
    result = run_cli(
        "send", "--from", "a@x.test", "--to", "bob@ordered.test", "--direct",
        "--resolver", resolver_arg(dns_server), "--timeout", "2",
    )  # fmt: skip
    assert result.returncode == EXIT_TEMPFAIL
    assert re.search(r"bob@ordered\.test\s+temporary", result.stdout)
    assert "block outgoing connections to port 25" in result.stdout
    assert "at any of 3 addresses" in result.stdout
    assert "smtpproto send --server HOST:587" in result.stdout
    assert "Relay(" not in result.stdout and "deliver(" not in result.stdout
    as_json = run_cli(
        "send", "--from", "a@x.test", "--to", "bob@ordered.test", "--direct", "--json",
        "--resolver", resolver_arg(dns_server), "--timeout", "2",
    )  # fmt: skip
    report = json.loads(as_json.stdout)
    assert report["port_25_blocked"] and "--server" in report["diagnosis"]


def test_one_refused_mx_gives_no_port_25_advice(dns_server: DNSServer) -> None:
    """Issue 14: a single domain with a single refused MX says nothing about the network."""
    result = run_cli(
        "send", "--from", "a@x.test", "--to", "bob@implicit.test", "--direct",
        "--resolver", resolver_arg(dns_server), "--timeout", "2",
    )  # fmt: skip
    assert result.returncode == EXIT_TEMPFAIL
    assert re.search(r"bob@implicit\.test\s+temporary\s+no mail server", result.stdout)
    assert "block outgoing" not in result.stdout and "--server" not in result.stdout


def test_mx_prints_the_plan_in_preference_order(dns_server: DNSServer) -> None:
    result = run_cli("mx", "ordered.test", "--resolver", resolver_arg(dns_server), "--no-probe")
    assert result.returncode == EXIT_OK, result.stderr
    out = result.stdout
    positions = [out.index(f"mx{n}.ordered.test") for n in (1, 2, 3)]
    assert positions == sorted(positions)
    assert re.search(r"1\. mx1\.ordered\.test \[127\.0\.0\.11\] \(preference 10\)", out)
    assert re.search(r"3\. mx3\.ordered\.test \[127\.0\.0\.13\] \(preference 30\)", out)


def test_mx_probes_greeting_ehlo_and_certificate(
    smtp_server_factory: SMTPServerFactory,
    dns_server: DNSServer,
    tls_material: TLSMaterial,
    tmp_path: Path,
) -> None:
    """The probe reads the greeting, EHLO before and after STARTTLS, the certificate; no MAIL."""
    server = smtp_server_factory(
        host=DEFAULT_ZONE.address("mx1.ordered.test"), port=25, starttls="offer"
    )
    smtp_server_factory(host=DEFAULT_ZONE.address("mx2.ordered.test"), port=25)  # no STARTTLS
    args = ["mx", "ordered.test", "--resolver", resolver_arg(dns_server), "--timeout", "2",
            "--ehlo", "probe.client.test"]  # fmt: skip
    verified = run_cli(*args, "--cafile", str(tls_material.ca_cert))
    assert verified.returncode == EXIT_OK, verified.stderr
    out = verified.stdout
    assert "greeting: 220 mx.aiosmtpd.test" in out
    assert re.search(r"EHLO before STARTTLS: .*STARTTLS", out)
    assert "certificate verified" in out
    assert "issuer: " in out and "smtpproto test CA" in out and "expires: " in out
    assert re.search(r"mx2\.ordered\.test \[127\.0\.0\.12\] port 25\n.*\n.*\n.*not offered", out)
    assert "mx3.ordered.test [127.0.0.13] port 25\n  failed: " in out
    unverified = run_cli(*args)  # the system's CAs do not know the test CA
    assert unverified.returncode == EXIT_OK
    assert "certificate NOT verified" in unverified.stdout
    assert "EHLO after STARTTLS" in unverified.stdout
    assert "smtpproto test CA" in unverified.stdout
    (tmp_path / "cryptography.py").write_text("raise ImportError('hidden')\n")
    bare = run_cli(*args, env={"PYTHONPATH": str(tmp_path)})  # without it: the fingerprint
    assert bare.returncode == EXIT_OK
    assert re.search(r"sha256: [0-9a-f]{64}\n", bare.stdout) and "issuer: " not in bare.stdout
    verbs = {verb for connection in server.connections for verb in connection.verbs}
    assert "MAIL" not in verbs and "QUIT" in verbs
    assert server.connections[0].lines[0] == b"EHLO probe.client.test\r\n"


def test_mx_shows_hosts_without_address_and_literals(dns_server: DNSServer) -> None:
    resolver = resolver_arg(dns_server)
    result = run_cli("mx", "noaddress.test", "--resolver", resolver, "--no-probe")
    assert result.returncode == EXIT_OK
    assert re.search(r"10  ghost\.noaddress\.test  \(no address: nxdomain\)", result.stdout)
    assert "1. mx.noaddress.test [127.0.0.42] (preference 20)" in result.stdout
    literal = run_cli("mx", "[127.0.0.11]", "--no-probe")
    assert literal.returncode == EXIT_OK
    assert literal.stdout == (
        "Delivery order:\n  1. [127.0.0.11] [127.0.0.11] (preference 0)\n"
        "TLS policy per MX host:\n  [127.0.0.11]: opportunistic\n"
    )


def test_mx_reports_port_25_when_nothing_answers(dns_server: DNSServer) -> None:
    result = run_cli("mx", "ordered.test", "--resolver", resolver_arg(dns_server), "--timeout", "2")
    assert result.returncode == EXIT_TEMPFAIL
    assert "block outgoing connections to port 25" in result.stdout
    assert "smtpproto send --server HOST:587" in result.stdout
    single = run_cli(
        "mx", "implicit.test", "--resolver", resolver_arg(dns_server), "--timeout", "2"
    )
    assert single.returncode == EXIT_TEMPFAIL
    assert "implicit.test has no MX record: its own address is used" in single.stdout
    assert "block outgoing" not in single.stdout  # one dead address proves nothing


@pytest.mark.parametrize(
    ("domain", "text"),
    [("nullmx.test", "accepts no mail"), ("nxdomain.test", "does not exist")],
)
def test_mx_for_a_domain_without_mail(dns_server: DNSServer, domain: str, text: str) -> None:
    result = run_cli("mx", domain, "--resolver", resolver_arg(dns_server))
    assert result.returncode == EXIT_UNAVAILABLE
    assert "cannot receive mail for good" in result.stdout and text in result.stdout
    # Issue 14: no "has no MX record: its own address is used" before saying it does not exist.
    assert "has no MX record" not in result.stdout and "own address" not in result.stdout


def test_mx_dns_timeout_is_one_line(dns_server: DNSServer) -> None:
    """A DNS time-out: only "cannot receive mail for now ... 451 4.4.3", no implicit-MX line;
    --timeout bounds the lookup too."""
    result = run_cli(
        "mx", "timeout.test", "--resolver", resolver_arg(dns_server), "--timeout", "1",
        timeout=20,
    )  # fmt: skip
    assert result.returncode == EXIT_TEMPFAIL
    assert result.stdout.startswith("timeout.test cannot receive mail for now: ")
    assert "451 4.4.3" in result.stdout
    assert "has no MX record" not in result.stdout and len(result.stdout.splitlines()) == 1


# -- Postfix -----------------------------------------------------------------------------------


@pytest.mark.postfix
def test_send_through_postfix_per_recipient_results(
    postfix_server: PostfixInstance, tls_material: TLSMaterial
) -> None:
    """A real MTA: one delivered, one deferred (450), one rejected (550) -> 69, and JSON says so."""
    postfix_server.clear_mailboxes()
    host, port = postfix_server.address
    result = run_cli(
        "send", "--from", "a@x.test", "--to", "alice@postfix.test", "--to", "defer@postfix.test",
        "--to", "reject@postfix.test", "--server", f"{host}:{port}", "--tls", "starttls",
        "--cafile", str(tls_material.ca_cert), "--json",
    )  # fmt: skip
    assert result.returncode == EXIT_UNAVAILABLE, result.stderr
    statuses: dict[str, Any] = {
        r["recipient"]: (r["status"], r["reply"]["code"], r["tls_verified"])
        for r in json.loads(result.stdout)["recipients"]
    }
    assert statuses == {
        "alice@postfix.test": ("delivered", 250, True),
        "defer@postfix.test": ("temporary", 450, True),
        "reject@postfix.test": ("permanent", 550, True),
    }
    (message,) = postfix_server.wait_for_messages("alice")
    assert b"Subject: smtpproto test message" in message


def test_python_dash_m_smtpproto_cli_runs_the_command_line() -> None:
    """The command line is a package of its own, above the adapters: ``python -m smtpproto.cli``
    (the core has no ``__main__``, which would make it import the command line).  In a process
    of its own: pytest rewrites the modules of a distribution that ships a pytest plugin (the
    testing kit's), and its import hook cannot serve ``runpy``."""
    done = subprocess.run(
        [sys.executable, "-m", "smtpproto.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "demo" in done.stdout
