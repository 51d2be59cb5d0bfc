"""A private Postfix instance on loopback, and the smtp-sink benchmark server.

The instance has its own main.cf/master.cf, queue and Maildirs in a fresh directory, runs
``postfix -c DIR start-fg`` in its own process group and never touches /etc/postfix or the
package's default instance. It cannot send mail anywhere: relaying is refused and every
non-local transport is ``error:``.

Recipients at :data:`DOMAIN` (``postfix.test``), by local part:

==================  =====================================================================
``reject…``         ``550 5.1.1`` at RCPT (``check_recipient_access``)
``defer…``          ``450 4.2.0`` at RCPT
``unknown…``        ``550 5.1.1 … User unknown in virtual mailbox table`` (Postfix's own)
one of MAILBOXES    delivered to the Maildir ``<maildir_root>/<local part>/`` (case-folded)
anything else       delivered to the catch-all Maildir ``<maildir_root>/_other/``
==================  =====================================================================

Other domains get ``554 5.7.1 Relay access denied``. PIPELINING, SIZE, 8BITMIME, SMTPUTF8,
DSN, CHUNKING, ENHANCEDSTATUSCODES and STARTTLS (with the test CA's certificate) are offered.
No SASL: Postfix needs Dovecot or Cyrus for it; aiosmtpd covers AUTH.
"""

from __future__ import annotations

import contextlib
import os
import pty
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .net import ServerStartError, check_loopback, pick_free_port, wait_for_banner
from .tls import TLSMaterial

DOMAIN = "postfix.test"
POSTFIX = "/usr/sbin/postfix"
SMTP_SINK = "/usr/sbin/smtp-sink"
#: Mailboxes are owned by this account (virtual(8) refuses root).
MAILBOX_USER = "nobody"


def postfix_available() -> bool:
    return os.access(POSTFIX, os.X_OK) and os.geteuid() == 0


def smtp_sink_available() -> bool:
    return os.access(SMTP_SINK, os.X_OK)


def _main_cf(base: Path, host: str, tls: TLSMaterial | None, extra: Mapping[str, str]) -> str:
    mailbox_owner = pwd.getpwnam(MAILBOX_USER)
    settings: dict[str, str] = {
        "compatibility_level": "3.6",
        "queue_directory": str(base / "queue"),
        "data_directory": str(base / "data"),
        "maillog_file": str(base / "maillog"),
        "maillog_file_prefixes": str(base),
        "myhostname": f"mx.{DOMAIN}",
        "mydomain": DOMAIN,
        "myorigin": DOMAIN,
        "mydestination": "",
        # Postfix wants inet_interfaces to be interface addresses, which 127.0.0.25 is not;
        # the listener's own address is in master.cf, and proxy_interfaces makes it "ours".
        "inet_interfaces": "[::1]" if ":" in host else "127.0.0.1",
        "proxy_interfaces": f"[{host}]" if ":" in host else host,
        "inet_protocols": "ipv6" if ":" in host else "ipv4",
        "mynetworks": "127.0.0.0/8 [::1]/128",
        "smtputf8_enable": "yes",
        "smtpd_peername_lookup": "no",
        "smtpd_banner": "$myhostname ESMTP Postfix (smtpproto tests)",
        # Nothing leaves this machine: no relaying, no DNS, every outbound transport fails.
        "relayhost": "",
        "smtp_dns_support_level": "disabled",
        "default_transport": "error:outbound mail disabled in the test instance",
        "relay_transport": "error:outbound mail disabled in the test instance",
        "local_transport": "error:no local delivery in the test instance",
        "smtpd_relay_restrictions": "reject_unauth_destination",
        "smtpd_recipient_restrictions": (
            f"check_recipient_access regexp:{base / 'config' / 'recipient_access'}"
        ),
        "virtual_mailbox_domains": DOMAIN,
        "virtual_mailbox_base": str(base / "mail"),
        # Postfix forbids regexp substitution in mailbox paths: named boxes, then a catch-all.
        "virtual_mailbox_maps": (
            f"texthash:{base / 'config' / 'mailboxes'}, regexp:{base / 'config' / 'catch_all'}"
        ),
        "virtual_uid_maps": f"static:{mailbox_owner.pw_uid}",
        "virtual_gid_maps": f"static:{mailbox_owner.pw_gid}",
        "virtual_minimum_uid": "1",
        # Keep each test quick: no greet pause, and errors do not slow the session down.
        "smtpd_error_sleep_time": "0",
        "smtpd_soft_error_limit": "100",
        "smtpd_hard_error_limit": "200",
        "biff": "no",
        "alias_maps": "",
        "alias_database": "",
        "append_dot_mydomain": "no",
    }
    if tls is not None:
        settings |= {
            "smtpd_tls_security_level": "may",
            "smtpd_tls_cert_file": str(tls.cert),
            "smtpd_tls_key_file": str(tls.key),
            "smtpd_tls_loglevel": "1",
        }
    settings |= extra
    return "".join(f"{name} = {value}\n" for name, value in settings.items())


def _master_cf(host: str, port: int) -> str:
    listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    # Columns: service type private unpriv chroot wakeup maxproc command. Nothing is chrooted:
    # the instance lives in a temp dir without the files a chroot would need.
    services = [
        f"{listen} inet n - n - - smtpd",
        "pickup unix n - n 60 1 pickup",
        "cleanup unix n - n - 0 cleanup",
        "qmgr unix n - n 300 1 qmgr",
        "tlsmgr unix - - n 1000? 1 tlsmgr",
        "rewrite unix - - n - - trivial-rewrite",
        "bounce unix - - n - 0 bounce",
        "defer unix - - n - 0 bounce",
        "trace unix - - n - 0 bounce",
        "verify unix - - n - 1 verify",
        "flush unix n - n 1000? 0 flush",
        "proxymap unix - - n - - proxymap",
        "proxywrite unix - - n - 1 proxymap",
        "smtp unix - - n - - smtp",
        "relay unix - - n - - smtp",
        "showq unix n - n - - showq",
        "error unix - - n - - error",
        "retry unix - - n - - error",
        "discard unix - - n - - discard",
        "local unix - n n - - local",
        "virtual unix - n n - - virtual",
        "lmtp unix - - n - - lmtp",
        "anvil unix - - n - 1 anvil",
        "scache unix - - n - 1 scache",
        "postlog unix-dgram n - n - 1 postlogd",
    ]
    return "\n".join(services) + "\n"


_DOMAIN_RE = DOMAIN.replace(".", "\\.")

_RECIPIENT_ACCESS = f"""\
/^reject[^@]*@{_DOMAIN_RE}$/ 550 5.1.1 Recipient rejected by the test instance
/^defer[^@]*@{_DOMAIN_RE}$/ 450 4.2.0 Recipient deferred by the test instance
"""

#: Local parts that have their own Maildir (``<maildir_root>/<name>/``).
MAILBOXES: tuple[str, ...] = (
    "alice",
    "bob",
    "carol",
    "dave",
    "erin",
    "frank",
    "grace",
    "postmaster",
    "bench",
    "jösé",
)
#: The Maildir that every other accepted local part is delivered to.
CATCH_ALL = "_other"

_CATCH_ALL_MAP = f"""\
if !/^unknown/
/@{_DOMAIN_RE}$/ {CATCH_ALL}/
endif
"""


def _mailboxes_map() -> str:
    return "".join(f"{name}@{DOMAIN} {name}/\n" for name in MAILBOXES)


def _spawn_with_pty_log(command: Sequence[str], log_path: Path) -> subprocess.Popen[bytes]:
    """Run ``command`` in its own session with a pty as stdout/stderr, copied to ``log_path``.

    Postfix commands write their errors to stderr only when it is a terminal (else to syslog,
    which this machine does not have), so a pty is how a failed start explains itself.
    """
    controller_fd, terminal_fd = pty.openpty()
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=terminal_fd,
        stderr=terminal_fd,
        start_new_session=True,
        env={**os.environ, "MAIL_CONFIG": command[2]},
    )
    os.close(terminal_fd)

    def copy_output() -> None:
        with log_path.open("ab", buffering=0) as log:
            while True:
                try:
                    chunk = os.read(controller_fd, 4096)
                except OSError:  # EIO once every writer has closed the terminal
                    break
                if not chunk:
                    break
                log.write(chunk)
        os.close(controller_fd)

    threading.Thread(target=copy_output, name="postfix-output", daemon=True).start()
    return process


class PostfixInstance:
    """A running private Postfix; see the module docstring for how it treats recipients."""

    def __init__(self, base: Path, host: str, port: int, process: subprocess.Popen[bytes]):
        self.base = base
        self.host = host
        self.port = port
        self.domain = DOMAIN
        self.config_dir = base / "config"
        self.maildir_root = base / "mail"
        self._process = process

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def log(self) -> str:
        try:
            return (self.base / "maillog").read_text(errors="replace")
        except FileNotFoundError:
            return "(no maillog written)"

    def mailbox(self, local_part: str) -> Path:
        """The Maildir that mail for ``local_part@postfix.test`` is delivered to."""
        name = local_part.lower()
        return self.maildir_root / (name if name in MAILBOXES else CATCH_ALL)

    def messages(self, local_part: str) -> list[bytes]:
        """The delivered messages of one mailbox, oldest first (Postfix adds its headers)."""
        new = self.mailbox(local_part) / "new"
        if not new.is_dir():
            return []
        files = sorted(new.iterdir(), key=lambda path: (path.stat().st_mtime_ns, path.name))
        return [path.read_bytes() for path in files]

    def wait_for_messages(
        self, local_part: str, count: int = 1, timeout: float = 10.0
    ) -> list[bytes]:
        """Poll until the mailbox holds ``count`` messages (delivery follows the 250 later)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.messages(local_part)
            if len(found) >= count or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if len(found) < count:
            raise AssertionError(
                f"{local_part}@{DOMAIN}: expected {count} messages, found {len(found)}\n"
                f"--- maillog ---\n{self.log()}"
            )
        return found

    def clear_mailboxes(self) -> None:
        """Delete every delivered message (the instance is shared by a whole session)."""
        for message in self.maildir_root.glob("*/new/*"):
            message.unlink()

    def stop(self, timeout: float = 15.0) -> None:
        if self._process.poll() is None:
            subprocess.run(
                [POSTFIX, "-c", str(self.config_dir), "stop"],
                capture_output=True,
                timeout=timeout,
                check=False,
            )
            try:
                self._process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                # Our own process group (start_new_session): the start-fg script and its children.
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait(timeout=timeout)
        self._kill_master()

    def _kill_master(self) -> None:
        """master(8) runs in a process group of its own: make sure it is gone, or it keeps the
        port (with SO_REUSEPORT) after this instance's files are deleted."""
        try:
            pid = int((self.base / "queue" / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return
        try:  # a stale pid file could name a recycled pid: only ever kill a Postfix master
            if b"postfix" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                return
        except OSError:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(os.getpgid(pid), signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def __repr__(self) -> str:
        return f"<PostfixInstance {self.host}:{self.port} in {self.base}>"


def _refuse_if_taken(host: str, port: int) -> None:
    """Postfix binds with SO_REUSEPORT, so a second instance (a stale one from a killed test
    run, or a concurrent run) would silently share the port and answer half the connections."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            pass
    except OSError:
        return
    raise ServerStartError(
        f"something already listens on {host}:{port}; stop it (a stale Postfix: "
        f"`pkill -f 'postfix/sbin/master'`) and run the tests again"
    )


def start_postfix(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    tls: TLSMaterial | None = None,
    main_cf: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> PostfixInstance:
    """Write a private instance under a new temp dir, start it and wait for its banner.

    ``main_cf`` overrides or adds main.cf settings (e.g. ``{"message_size_limit": "1000"}``).
    Raises :class:`ServerStartError` with the log if the banner does not come in ``timeout``.
    """
    check_loopback(host)
    port = port or pick_free_port(host)
    _refuse_if_taken(host, port)
    # Not under pytest's 0700 tmp dir: virtual(8) runs as MAILBOX_USER and must reach the Maildirs.
    base = Path(tempfile.mkdtemp(prefix="smtpproto-postfix-"))
    base.chmod(0o755)
    config = base / "config"
    config.mkdir()
    (config / "main.cf").write_text(_main_cf(base, host, tls, main_cf or {}))
    (config / "master.cf").write_text(_master_cf(host, port))
    (config / "recipient_access").write_text(_RECIPIENT_ACCESS)
    (config / "mailboxes").write_text(_mailboxes_map())
    (config / "catch_all").write_text(_CATCH_ALL_MAP)
    (base / "mail").mkdir()
    owner = pwd.getpwnam(MAILBOX_USER)
    os.chown(base / "mail", owner.pw_uid, owner.pw_gid)
    (base / "maillog").touch()

    (base / "queue").mkdir()  # root-owned; `postfix start` creates what is inside
    process = _spawn_with_pty_log([POSTFIX, "-c", str(config), "start-fg"], base / "postfix.out")
    instance = PostfixInstance(base, host, port, process)
    banner = wait_for_banner(host, port, timeout)
    if banner is None or not banner.startswith(b"220"):
        instance.stop()
        startup = (
            (base / "postfix.out").read_text(errors="replace")
            if (base / "postfix.out").exists()
            else ""
        )
        log = instance.log()
        shutil.rmtree(base, ignore_errors=True)
        raise ServerStartError(
            f"Postfix did not answer on {host}:{port} within {timeout}s (banner {banner!r})\n"
            f"--- postfix start-fg output ---\n{startup}\n--- maillog ---\n{log}"
        )
    return instance


@dataclass
class SmtpSink:
    """A running smtp-sink: accepts everything, stores nothing (for benchmarks)."""

    host: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def stop(self, timeout: float = 5.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)


def start_smtp_sink(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    args: Sequence[str] = ("-c",),
    backlog: int = 256,
    timeout: float = 10.0,
) -> SmtpSink:
    """Start ``smtp-sink [args] HOST:PORT BACKLOG`` (see smtp-sink(1) for ``args``).

    The default ``-c`` only counts; add e.g. ``"-8"`` (no 8BITMIME) or ``"-L"`` (LMTP-style).
    smtp-sink offers PIPELINING, 8BITMIME, DSN, XCLIENT, etc. but no STARTTLS or SMTPUTF8.
    """
    check_loopback(host)
    port = port or pick_free_port(host)
    listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    command = [SMTP_SINK, *args]
    if os.geteuid() == 0:
        command += ["-u", MAILBOX_USER]  # smtp-sink refuses to keep running as root
    command += [listen, str(backlog)]
    process = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    sink = SmtpSink(host, port, process)
    banner = wait_for_banner(host, port, timeout)
    if banner is None:
        sink.stop()
        error = process.stderr.read().decode(errors="replace") if process.stderr else ""
        raise ServerStartError(f"smtp-sink did not answer on {listen}: {error}")
    return sink
