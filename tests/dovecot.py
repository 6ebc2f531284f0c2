"""A real Dovecot IMAP server for tests, run from a throwaway configuration under a temp dir.

Nothing from /etc/dovecot is read and nothing outside the temp dir is written: the config, the
users file, a self-signed certificate, the maildirs, Dovecot's sockets, state and log all live
under it. The server listens on 127.0.0.1 only, on two free ports: plain IMAP (`port`) and IMAP
over TLS (`ssl_port`), whose certificate `ssl_context()` trusts.

Dovecot refuses to run its login processes or to access mail as root. When the tests run as root,
login processes run as Debian's `dovenull` and mail is accessed as `nobody`, chrooted into the
mail directory: the chroot is entered while still root, so the temp dir's private (0700) parents
need not be opened to those users. Run as anyone else, everything runs as the current user.
"""

from __future__ import annotations

import grp
import imaplib
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import pytest

from switchboard.processes import die_with_parent_hook

LOOPBACK = "127.0.0.1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
USER = "support"
_POLL_INTERVAL = 0.05
_LOG_TAIL_LINES = 20
_APPENDUID = re.compile(rb"\[APPENDUID \d+ (\d+)\]")
# Dovecot's log lines for a session's start and end, e.g.
# "imap-login: Info: Login: user=<support>, method=PLAIN, …" and
# "imap(support)<28314><Vx9dAAthHNN/AAAB>: Info: Disconnected: Logged out in=125 out=960 …".
_LOGIN = re.compile(rf"imap-login: Info: Login: user=<{USER}>")
_SESSION_END = re.compile(rf"imap\({USER}\)\S*: Info: Disconnected: (.*?) in=\d+")

# Used only when running as root; both come with Debian's dovecot-core.
_ROOT_LOGIN_USER = "dovenull"
_ROOT_MAIL_USER = "nobody"


def _dovecot_program() -> str:
    # /usr/sbin is not on every non-root user's PATH.
    program = shutil.which("dovecot") or shutil.which("dovecot", path="/usr/sbin:/usr/local/sbin")
    if program is None:
        pytest.skip("Dovecot is not installed (Debian: apt-get install dovecot-imapd)")
    return program


@dataclass(frozen=True)
class _Accounts:
    """Who Dovecot's processes run as, and where mail processes are chrooted (None: nowhere)."""

    internal_user: str
    internal_group: str
    login_user: str
    mail_uid: int
    mail_gid: int
    chroot_dir: Path | None

    @classmethod
    def for_current_user(cls, mail_dir: Path) -> _Accounts:
        if os.geteuid() == 0:
            mail_account = pwd.getpwnam(_ROOT_MAIL_USER)
            return cls("root", "root", _ROOT_LOGIN_USER, mail_account.pw_uid, mail_account.pw_gid, mail_dir)
        user = pwd.getpwuid(os.geteuid()).pw_name
        group = grp.getgrgid(os.getegid()).gr_name
        return cls(user, group, user, os.geteuid(), os.getegid(), None)


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        # All bound at once, so the kernel cannot hand out the same port twice.
        for probe in sockets:
            probe.bind((LOOPBACK, 0))
        return [probe.getsockname()[1] for probe in sockets]
    finally:
        for probe in sockets:
            probe.close()


class DovecotServer:
    """`with DovecotServer(tmp_path) as dovecot:` serves the mailbox of `dovecot.user` until the block ends."""

    host = LOOPBACK
    user = USER

    def __init__(self, tmp_dir: Path, password: str = "support-password") -> None:
        self.program = _dovecot_program()
        self.root = Path(tmp_dir) / "dovecot"
        self.password = password
        self.port, self.ssl_port = _free_ports(2)
        self.cert_file = self.root / "tls" / "cert.pem"
        self.log_file = self.root / "dovecot.log"
        self._config_file = self.root / "dovecot.conf"
        self._users_file = self.root / "users"
        self._accounts = _Accounts.for_current_user(self.root / "mail")
        self._process: subprocess.Popen | None = None
        self._prepare()

    # --- lifecycle -----------------------------------------------------------

    def start(self) -> DovecotServer:
        """Start Dovecot and return once both ports greet IMAP clients."""
        # -F keeps the master in the foreground, so it is our child and stop() can wait for it.
        with self.log_file.open("ab") as early_log:  # Dovecot's own log goes to log_path once it is configured
            self._process = subprocess.Popen(
                [self.program, "-F", "-c", str(self._config_file)],
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=early_log,
                stderr=subprocess.STDOUT,
                # A group of its own holds the master and all its children, so stop() can wait for them all.
                start_new_session=True,
                preexec_fn=die_with_parent_hook(),
            )
        deadline = time.monotonic() + START_TIMEOUT
        for port in (self.port, self.ssl_port):
            while not self._greets(port):
                if self._process.poll() is not None or time.monotonic() > deadline:
                    problem = (
                        f"exited with code {self._process.returncode}"
                        if self._process.returncode is not None
                        else f"did not greet on port {port} in time"
                    )
                    self.stop()
                    raise RuntimeError(f"Dovecot {problem} while starting:\n{self.log_tail()}")
                time.sleep(_POLL_INTERVAL)
        return self

    def stop(self) -> None:
        """Stop the master and every process it started; safe to call again."""
        if self._process is None:
            return
        group = self._process.pid
        _signal_group(group, signal.SIGTERM)
        try:
            self._process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            _signal_group(group, signal.SIGKILL)
            self._process.wait()
        # Login processes hold the listening sockets: the ports are free only once they are gone too.
        if not _wait_until_group_gone(group, STOP_TIMEOUT):
            _signal_group(group, signal.SIGKILL)
            if not _wait_until_group_gone(group, STOP_TIMEOUT):
                raise RuntimeError(f"Dovecot's processes (group {group}) survived SIGKILL")
        self._process = None

    def restart(self) -> None:
        """Stop the server and start it again on the same ports with the same mail, dropping every connection."""
        self.stop()
        self.start()

    def __enter__(self) -> DovecotServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    # --- test controls ---------------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's self-signed certificate (and nothing else)."""
        return ssl.create_default_context(cafile=str(self.cert_file))

    def set_password(self, password: str) -> None:
        """Change the user's password; Dovecot rereads the users file at the next login."""
        previous_mtime = int(self._users_file.stat().st_mtime)
        self.password = password
        self._write_users_file()
        # Dovecot rereads the file when its size or its mtime in whole seconds changed: a password of
        # the same length written within the same second would go unnoticed.
        os.utime(self._users_file, (previous_mtime + 1, previous_mtime + 1))

    def deliver(self, raw: bytes, *, seen: bool = False, mailbox: str = "INBOX") -> int:
        """Append a message to `mailbox` and return its UID."""
        with self._client() as client:
            status, data = client.append(mailbox, "(\\Seen)" if seen else None, None, raw)
            if status != "OK" or not (match := _APPENDUID.search(data[0])):
                raise RuntimeError(f"APPEND failed: {status} {data}")
            return int(match[1])

    def flags(self, uid: int, mailbox: str = "INBOX") -> set[str]:
        """The flags of message `uid`, e.g. {"\\Seen"}; LookupError when the mailbox has no such message."""
        with self._client(mailbox) as client:
            status, data = client.uid("FETCH", str(uid), "(FLAGS)")
            if status != "OK" or data == [None]:
                raise LookupError(f"no message with UID {uid} in {mailbox}")
            return {flag.decode() for flag in imaplib.ParseFlags(data[0])}

    def list_uids(self, criteria: str = "ALL", mailbox: str = "INBOX") -> list[int]:
        """The UIDs of the messages in `mailbox` matching the IMAP search `criteria` ("UNSEEN", "SEEN", …)."""
        with self._client(mailbox) as client:
            status, data = client.uid("SEARCH", criteria)
            if status != "OK":
                raise RuntimeError(f"UID SEARCH {criteria} failed: {status} {data}")
            return sorted(int(uid) for uid in data[0].split())

    def session_endings(self) -> list[str]:
        """How each finished IMAP session of the user ended, oldest first: "Logged out", "Connection closed (…)", …"""
        return _SESSION_END.findall(self._log_text())

    def open_sessions(self) -> int:
        """How many IMAP sessions of the user have logged in and not yet ended, by Dovecot's log."""
        return len(_LOGIN.findall(self._log_text())) - len(self.session_endings())

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        return "\n".join(self._log_text().splitlines()[-lines:]) or "(no log written)"

    # --- internals -------------------------------------------------------------

    def _log_text(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    @contextmanager
    def _client(self, mailbox: str | None = None) -> Iterator[imaplib.IMAP4]:
        client = imaplib.IMAP4(self.host, self.port, timeout=STOP_TIMEOUT)
        try:
            client.login(self.user, self.password)
            if mailbox is not None:
                # Read-only, so that looking does not change what the code under test sees.
                status, data = client.select(mailbox, readonly=True)
                if status != "OK":
                    raise RuntimeError(f"SELECT {mailbox} failed: {data}")
            yield client
        finally:
            client.logout()

    def _greets(self, port: int) -> bool:
        try:
            with socket.create_connection((self.host, port), timeout=1) as connection:
                if port == self.ssl_port:
                    with self.ssl_context().wrap_socket(connection, server_hostname=self.host) as tls:
                        return tls.recv(4).startswith(b"* OK")
                return connection.recv(4).startswith(b"* OK")
        except OSError:
            return False

    def _prepare(self) -> None:
        for directory in ("run", "state", "tls", "mail"):
            (self.root / directory).mkdir(parents=True, exist_ok=True)
        self._write_certificate()
        home = self.root / "mail" / self.user
        home.mkdir(exist_ok=True)
        os.chown(home, self._accounts.mail_uid, self._accounts.mail_gid)
        self._write_users_file()
        self._config_file.write_text(self._config())

    def _config(self) -> str:
        root, accounts = self.root, self._accounts
        # Unprivileged, Dovecot cannot chroot the services that it chroots by default.
        no_chroot = "  chroot =\n" if accounts.chroot_dir is None else ""
        chroot_dirs = f"valid_chroot_dirs = {accounts.chroot_dir}" if accounts.chroot_dir is not None else ""
        return f"""\
# Throwaway test server written by tests/dovecot.py for {self._version()}.
base_dir = {root}/run
state_dir = {root}/state
log_path = {self.log_file}
protocols = imap
listen = {LOOPBACK}
ssl = yes
ssl_cert = <{self.cert_file}
ssl_key = <{root}/tls/key.pem
# Tests log in over the plain port as well (Dovecot 2.3's name; 2.4 calls it auth_allow_cleartext).
disable_plaintext_auth = no
auth_mechanisms = plain login
# Wrong-password tests need not wait out the 2 s delay after each failure.
auth_failure_delay = 0
mail_location = maildir:~/Maildir
mail_fsync = never
default_internal_user = {accounts.internal_user}
default_internal_group = {accounts.internal_group}
default_login_user = {accounts.login_user}
first_valid_uid = {accounts.mail_uid}
first_valid_gid = {accounts.mail_gid}
{chroot_dirs}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self._users_file}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {self._users_file}
}}
service imap-login {{
{no_chroot}  inet_listener imap {{
    address = {LOOPBACK}
    port = {self.port}
  }}
  inet_listener imaps {{
    address = {LOOPBACK}
    port = {self.ssl_port}
    ssl = yes
  }}
}}
service anvil {{
{no_chroot}}}
"""

    def _write_users_file(self) -> None:
        # Written aside and renamed, so that Dovecot never reads half a file.
        partial = self._users_file.with_suffix(".partial")
        accounts = self._accounts
        mail_dir = self.root / "mail"
        # In Dovecot's home syntax "/./" marks the chroot: the mail process then sees its home as /<user>.
        home = f"{mail_dir}/./{self.user}" if accounts.chroot_dir is not None else f"{mail_dir}/{self.user}"
        partial.write_text(f"{self.user}:{{PLAIN}}{self.password}:{accounts.mail_uid}:{accounts.mail_gid}::{home}\n")
        partial.replace(self._users_file)

    def _write_certificate(self) -> None:
        tls_dir = self.root / "tls"
        # openssl comes with Dovecot on Debian (dovecot-core depends on it).
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-days", "2", "-subj", "/CN=localhost", "-addext", f"subjectAltName=IP:{LOOPBACK},DNS:localhost",
             "-keyout", str(tls_dir / "key.pem"), "-out", str(self.cert_file)],
            check=True,
            capture_output=True,
        )  # fmt: skip

    def _version(self) -> str:
        return subprocess.run([self.program, "--version"], capture_output=True, text=True, check=True).stdout.strip()


def _signal_group(group: int, signum: signal.Signals) -> None:
    try:
        os.killpg(group, signum)
    except ProcessLookupError:
        pass  # all gone already


def _wait_until_group_gone(group: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _group_has_live_processes(group):
        if time.monotonic() > deadline:
            return False
        time.sleep(_POLL_INTERVAL)
    return True


def _group_has_live_processes(group: int) -> bool:
    """Whether a process of `group` still runs; zombies hold no sockets and may never be reaped here."""
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            stat = stat_file.read_text()
        except OSError:
            continue  # exited meanwhile
        # The command name, in parentheses, may contain spaces: the fields that follow are what counts.
        state, _parent, process_group = stat.rpartition(")")[2].split()[:3]
        if int(process_group) == group and state != "Z":
            return True
    return False
