"""``smtpproto probe`` against Postfix (its defaults, and ``smtpd_forbid_bare_newline``), and
against scripted servers that break one rule each: every finding the probe reports is one a
server really earned, and no transaction is completed unless ``--deliver-to`` asks for it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # mypy knows cli/ and testing/ by their own names (package-dir mapping)
    from cli.commands import main
    from cli.probe import Finding, Prober, ProbeSettings
    from testing import Peer, ScriptedServer, TLSMaterial
    from testing.plugin import ScriptedSMTPFactory
    from tests.servers.aiosmtpd_server import RunningSMTPServer
    from tests.servers.postfix import PostfixInstance
else:
    from smtpproto.cli.commands import main
    from smtpproto.cli.probe import Finding, Prober, ProbeSettings
    from smtpproto.testing import Peer, ScriptedServer, TLSMaterial
    from smtpproto.testing.plugin import ScriptedSMTPFactory

#: How long the probe waits for a reply that must not come (1.5 s by default).
QUIET = 0.5


def probe(
    server: tuple[str, int],
    tls: TLSMaterial | None,
    deliver_to: str | None = None,
    quiet: float = QUIET,
) -> tuple[dict[str, Finding], int]:
    prober = Prober(
        ProbeSettings(
            host=server[0],
            port=server[1],
            context=tls.client_context() if tls else None,
            quiet_wait=quiet,
            timeout=5.0,
            deliver_to=deliver_to,
        )
    )
    findings = prober.run()
    assert len({f.check for f in findings}) == len(findings)
    assert all(f.rfc and f.summary for f in findings)
    return {f.check: f for f in findings}, prober.delivered


def statuses(findings: dict[str, Finding], *checks: str) -> dict[str, str]:
    return {check: findings[check].status for check in checks}


def answer_every_line(peer: Peer) -> None:
    """A careless server: 250 to whatever line comes, until QUIT or EOF."""
    while (line := peer.readline()) is not None:
        if line.upper().startswith(b"QUIT"):
            peer.send(b"221 2.0.0 bye\r\n")
            return
        peer.send(b"250 2.0.0 ok\r\n")


def answers_what_was_injected(peer: Peer) -> None:
    """CVE-2011-0411: commands buffered behind STARTTLS answered after the handshake."""
    pending = peer.record.behind_starttls or b""
    peer.send(b"220 2.0.0 go ahead\r\n")
    if peer.start_tls():
        peer.send(b"250 2.0.0 ok\r\n" * pending.count(b"\r\n"))
        answer_every_line(peer)


def ends_data_at_bare_lf_dot(peer: Peer) -> None:
    """CVE-2023-51764: ``<LF>.<LF>`` taken for the end of data."""
    peer.send(b"354 go ahead\r\n")
    data = b""
    while b"\n.\n" not in data and b"\r\n.\r\n" not in data:
        chunk = peer.receive()
        if not chunk:
            return
        data += chunk
    peer.send(b"250 2.0.0 queued\r\n")
    answer_every_line(peer)


def careless_after_mail(peer: Peer) -> None:
    """Reads lines only, so a BDAT chunk's content is answered as commands (RFC 3030 §2)."""
    peer.send(b"250 2.1.0 ok\r\n")
    answer_every_line(peer)


def answers_half_a_command(peer: Peer) -> None:
    """Answers as soon as octets arrive, line end or not."""
    peer.send(b"220 scripted.test ESMTP\r\n")
    while data := peer.receive():
        if data.upper().startswith(b"EHLO"):
            peer.send(b"250-scripted.test\r\n250 PIPELINING\r\n")
        elif data.upper().startswith(b"QUIT"):
            return
        else:
            peer.send(b"250 2.0.0 ok\r\n")


def no_transaction_completed(server: ScriptedServer) -> None:
    records = server.finish()
    assert records
    for record in records:
        assert not record.delivered
        assert "DOT" not in record.steps
        # Every MAIL is followed by RSET, or the connection ends before anything else.
        for index, verb in enumerate(record.verbs):
            if verb == "MAIL":
                assert record.verbs[index + 1 : index + 2] in ([], ["RSET"], ["BDAT"])


def test_a_well_behaved_server_completes_no_transaction(
    scripted_smtp: ScriptedSMTPFactory, smtp_certificates: TLSMaterial
) -> None:
    server = scripted_smtp(tls="starttls", chunking=True, extensions=["SIZE 1000", "SMTPUTF8"])
    findings, delivered = probe(server.address, smtp_certificates)
    assert delivered == 0
    no_transaction_completed(server)
    assert statuses(
        findings,
        "pipelining",
        "chunking",
        "smtputf8",
        "starttls",
        "certificate",
        "starttls-injection",
        "auth-cleartext",
        "bare-lf-command",
        "bare-cr-command",
        "end-of-data",
    ) == {
        "pipelining": "pass",
        "chunking": "pass",
        "smtputf8": "pass",
        "starttls": "pass",
        "certificate": "pass",
        "starttls-injection": "pass",
        "auth-cleartext": "warn",  # AUTH PLAIN LOGIN before TLS
        "bare-lf-command": "pass",
        "bare-cr-command": "pass",
        "end-of-data": "skip",  # needs --deliver-to
    }
    # The scripted server does not enforce its SIZE at MAIL.
    assert findings["size"].status == "fail"
    assert "--deliver-to" in findings["end-of-data"].summary


@pytest.mark.parametrize(
    ("rules", "check", "says"),
    [
        ({"STARTTLS": answers_what_was_injected}, "starttls-injection", "after the handshake"),
        ({"RSET": b"250 ok\r\n250 and one more\r\n"}, "pipelining", "unexpected"),
        ({"GREETING": answers_half_a_command}, "pipelining", "before the command line ended"),
        ({"MAIL": careless_after_mail}, "chunking", "answered as commands"),
    ],
    ids=["starttls-injection", "extra-reply", "early-reply", "chunk-read-as-commands"],
)
def test_a_server_that_breaks_a_rule_fails_its_check(
    scripted_smtp: ScriptedSMTPFactory,
    smtp_certificates: TLSMaterial,
    rules: dict[str, bytes | Callable[[Peer], None]],
    check: str,
    says: str,
) -> None:
    server = scripted_smtp(rules, tls="starttls", chunking=True)
    # Generous where a reply that comes late would be another failure than the one asserted.
    quiet = 2.0 if "before the command line ended" in says else QUIET
    findings, _ = probe(server.address, smtp_certificates, quiet=quiet)
    assert findings[check].status == "fail", findings[check]
    assert says in findings[check].summary
    assert findings[check].severity in ("medium", "high")


def test_smuggling_is_found_and_reported_with_deliver_to(
    scripted_smtp: ScriptedSMTPFactory,
) -> None:
    server = scripted_smtp({"DATA": ends_data_at_bare_lf_dot})
    findings, delivered = probe(server.address, None, deliver_to="postmaster@example.org")
    lf = findings["end-of-data-LF.LF"]
    assert (lf.status, lf.severity) == ("fail", "high")
    assert "CVE-2023-51764" in lf.rfc
    assert findings["end-of-data-CR.CR"].status == "pass"  # that server reads CR.CR as content
    assert delivered == len([f for f in findings if f.startswith("end-of-data-")])


@pytest.mark.postfix
@pytest.mark.parametrize("forbid_bare_newline", [False, True], ids=["defaults", "forbid-bare-LF"])
def test_postfix(
    postfix_factory: Callable[..., PostfixInstance],
    tls_material: TLSMaterial,
    forbid_bare_newline: bool,
) -> None:
    """Debian's Postfix 3.7 ends the data at ``<LF>.<LF>`` (and two siblings) unless
    ``smtpd_forbid_bare_newline`` is on — for loopback clients too, which its default
    exclusions ($mynetworks) would spare."""
    main_cf = (
        {"smtpd_forbid_bare_newline": "yes", "smtpd_forbid_bare_newline_exclusions": ""}
        if forbid_bare_newline
        else {}
    )
    postfix = postfix_factory(main_cf=main_cf)
    findings, delivered = probe(postfix.address, tls_material, deliver_to="probe@postfix.test")
    passed = ["pipelining", "size", "8bitmime", "smtputf8", "chunking", "starttls"]
    passed += ["certificate", "starttls-injection", "auth-cleartext", "bare-cr-command"]
    assert statuses(findings, *passed) == dict.fromkeys(passed, "pass")
    smuggled = {f.removeprefix("end-of-data-") for f, v in findings.items()
                if f.startswith("end-of-data-") and v.status == "fail"}  # fmt: skip
    assert smuggled == (set() if forbid_bare_newline else {"LF.LF", "CRLF.LF", "LF.CRLF"})
    assert delivered == 7


def test_command_line_json_and_exit_codes(
    scripted_smtp: ScriptedSMTPFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    server = scripted_smtp(extensions=["SIZE 1000"])
    host, port = server.address
    assert main(["probe", f"{host}:{port}", "--json", "--timeout", "5"]) == 1  # SIZE
    document = json.loads(capsys.readouterr().out)
    assert document["server"] == f"{host}:{port}"
    assert document["transactions_completed"] == 0
    size = next(f for f in document["findings"] if f["check"] == "size")
    assert size == {
        "check": "size",
        "status": "fail",
        "severity": "low",
        "rfc": "RFC 1870 §6.1",
        "summary": "SIZE=1001 above the limit: 250 2.1.0 sender ok",
    }
    no_transaction_completed(server)


def test_command_line_table_and_an_unreachable_server(
    scripted_smtp: ScriptedSMTPFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    server = scripted_smtp(extensions=[])
    host, port = server.address
    assert main(["probe", f"{host}:{port}", "--timeout", "5"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["STATUS", "SEVERITY", "CHECK", "RULE", "FINDING"]
    assert "0 transaction(s) completed (none without --deliver-to)" in out
    server.finish()
    assert main(["probe", f"{host}:{port}", "--timeout", "2"]) == 69  # nobody listens now
    assert "cannot connect" in capsys.readouterr().err


def test_aiosmtpd(
    smtp_server_factory: Callable[..., RunningSMTPServer], tls_material: TLSMaterial
) -> None:
    """aiosmtpd with STARTTLS, and AUTH after TLS only (its default): it answers a command
    ended by a bare LF, yet reads every end-of-data look-alike as content."""
    server = smtp_server_factory(starttls="offer", auth=("user", "secret"), smtputf8=True)
    findings, delivered = probe(server.address, tls_material, deliver_to="someone@example.org")
    verdicts = {check: finding.status for check, finding in findings.items()}
    assert {k: v for k, v in verdicts.items() if v in ("fail", "warn")} == {
        "bare-lf-command": "warn"
    }
    assert verdicts["starttls-injection"] == verdicts["auth-cleartext"] == "pass"
    assert verdicts["chunking"] == "info"  # not offered
    lookalikes = [v for k, v in verdicts.items() if k.startswith("end-of-data-")]
    assert lookalikes == ["pass"] * 7
    assert delivered == 7


def test_implicit_tls_through_the_command_line(
    scripted_smtp: ScriptedSMTPFactory,
    smtp_certificates: TLSMaterial,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = scripted_smtp(tls="implicit", extensions=["SIZE 1000"])
    host, port = server.address
    argv = ["probe", f"{host}:{port}", "--implicit-tls", "--json", "--timeout", "5"]
    assert main([*argv, "--cafile", str(smtp_certificates.ca_cert)]) == 1  # SIZE, as above
    findings = {f["check"]: f for f in json.loads(capsys.readouterr().out)["findings"]}
    assert findings["certificate"]["status"] == "pass"
    assert findings["certificate"]["rfc"] == "RFC 8314 §3"
    assert findings["auth-cleartext"]["summary"] == "the session is TLS throughout"
    assert "starttls-injection" not in findings  # no STARTTLS on a TLS port
    no_transaction_completed(server)
    assert all(record.tls for record in server.connections)


def test_a_refused_greeting_is_exit_69(
    scripted_smtp: ScriptedSMTPFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    server = scripted_smtp({"GREETING": b"554 5.3.2 no service here\r\n"})
    host, port = server.address
    assert main(["probe", f"{host}:{port}", "--timeout", "5"]) == 69
    assert "no 220 greeting: 554 5.3.2 no service here" in capsys.readouterr().err
