"""A private Dovecot IMAP server for the inbound IMAP tests (Debian's dovecot-imapd).

Its own config in a temporary directory: 127.0.0.1 on a free port, no TLS, PLAIN auth
against a passwd-file with one plaintext test password, Maildir storage. Mail is
"delivered" by writing files into the Maildir's new/ folder, as a local MDA would.
Dovecot will not serve mail as root, so when the tests run as root the mail belongs to
`nobody`. When dovecot is not installed the tests skip loudly (tests/conftest.py's
`unavailable`), or fail under DISTRIBUTOR_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import unavailable
from tests.fakes.processes import free_port, wait_for

USER = "bounces"
PASSWORD = "imap-Test-pa55"


class Dovecot:
    def __init__(self, root: Path, port: int, uid: int, gid: int, process: subprocess.Popen) -> None:
        self.root = root
        self.port = port
        self.uid = uid
        self.gid = gid
        self.process = process
        self.maildir = root / "mail" / USER
        self._n = 0

    @property
    def url(self) -> str:
        return f"imap://{USER}:{PASSWORD}@127.0.0.1:{self.port}/INBOX"

    def deliver(self, raw: bytes) -> None:
        """Put one message in INBOX, the way a local delivery agent does (tmp/ then new/)."""
        self._n += 1
        name = f"{int(time.time())}.M{self._n}P{os.getpid()}.test"
        tmp = self.maildir / "tmp" / name
        tmp.write_bytes(raw)
        os.chown(tmp, self.uid, self.gid)
        tmp.rename(self.maildir / "new" / name)

    def folder_count(self, folder: str) -> int:
        """Messages in a folder, counted on disk (Maildir++: subfolders are .Name)."""
        base = self.maildir if folder == "INBOX" else self.maildir / f".{folder}"
        return sum(len(os.listdir(base / sub)) for sub in ("new", "cur") if (base / sub).is_dir())


def _config(root: Path, port: int, uid: int, gid: int) -> str:
    return f"""
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{root}/mail/%u
first_valid_uid = {uid}
last_valid_uid = {uid}
first_valid_gid = {gid}
last_valid_gid = {gid}
default_internal_user = {"dovecot" if os.geteuid() == 0 else os.environ.get("USER", "root")}
default_login_user = {"dovenull" if os.geteuid() == 0 else os.environ.get("USER", "root")}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
"""


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            return sock.recv(100).startswith(b"* OK")
    except OSError:
        return False


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    binary = shutil.which("dovecot") or ("/usr/sbin/dovecot" if os.path.exists("/usr/sbin/dovecot") else None)
    if binary is None:
        unavailable("Dovecot", "PATH", "dovecot is not installed (Debian: dovecot-imapd)", "IMAP mode tests")
    root = Path(tempfile.mkdtemp(prefix="distributor-dovecot-"))
    os.chmod(root, 0o755)  # the mail user and dovecot's own users must reach their files
    if os.geteuid() == 0:
        uid, gid = 65534, 65534  # nobody: dovecot serves no mail as root
    else:
        uid, gid = os.geteuid(), os.getegid()
    port = free_port()
    for sub in ("run", "state", "home"):
        (root / sub).mkdir()
    maildir = root / "mail" / USER
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    for path in (root / "mail", maildir, *(maildir / s for s in ("cur", "new", "tmp")), root / "home"):
        os.chown(path, uid, gid)
    (root / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n")
    conf = root / "dovecot.conf"
    conf.write_text(_config(root, port, uid, gid))
    process = subprocess.Popen([binary, "-F", "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        try:
            wait_for(lambda: _answers(port) or process.poll() is not None, timeout=30, what="dovecot to answer")
        except AssertionError:
            pass
        if process.poll() is not None or not _answers(port):
            log = (root / "dovecot.log").read_text(errors="replace") if (root / "dovecot.log").exists() else ""
            output = process.stdout.read().decode(errors="replace") if process.poll() is not None and process.stdout else ""
            unavailable("Dovecot", f"127.0.0.1:{port}", f"did not start: {(output + log)[-600:]}", "IMAP mode tests")
        yield Dovecot(root, port, uid, gid, process)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(root, ignore_errors=True)
