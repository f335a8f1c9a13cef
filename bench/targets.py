"""The SMTP servers ``bench.ingest`` measures, each started fresh on a free loopback port in its own temp dir.

- ``mailpipe``: ``mailpipe serve`` with the folder store (fsync'd before 250) and the folder queue; its
  parsing worker runs in the same process, as in production on one machine.
- ``postfix``: a private Postfix instance (own config dir, own queue dir) that accepts mail for ``bench.test``
  and puts it on HOLD: cleanup writes and fsyncs the queue file before smtpd answers 250 (the durable accept),
  and nothing is delivered afterwards. ``in_flow_delay = 0``: held mail never returns qmgr "tokens", which
  would otherwise pace every smtpd by up to 1 s per message -- a throttle, not the cost of a durable write.
- ``smtp-sink``: Postfix's protocol-only sink (answers 250 without storing): the ceiling for the client and
  the loopback.
Every ``stop()`` kills what ``start()`` started (by pid / ``postfix stop``) and removes the temp dir, unless
told to keep it: bench.ingest removes all of them after the last cell, because ext4 makes every file created
in the minute after mass deletions pay for skipping the freed inodes (``recently_deleted`` in the inode
allocator, measured at up to ~0.5 ms per create here), which would tax whichever target runs next.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import REPO_DIR

RCPT_DOMAIN = "bench.test"
POSTFIX_MASTER = """\
{listen} inet n - n - 250 smtpd
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
proxymap unix - - n - - proxymap
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
smtp unix - - n - - smtp
relay unix - - n - - smtp
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""
POSTFIX_MAIN = """\
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = bench-postfix.localhost
mydomain = localhost
myorigin = localhost
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relay_domains = {domain}
alias_maps =
alias_database =
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions = check_recipient_access static:HOLD
in_flow_delay = 0
message_size_limit = 100000000
default_process_limit = 250
maillog_file_prefixes = {dir}
maillog_file = {dir}/maillog
smtputf8_enable = no
biff = no
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_banner(port: int, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Block until the server on ``port`` answers 220; raise TimeoutError after ``timeout`` s, RuntimeError
    as soon as ``proc`` (the server, when we started it directly) has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with rc={proc.returncode} before answering")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            if s.recv(512).startswith(b"220"):
                s.sendall(b"QUIT\r\n")
                return
        time.sleep(0.1)
    raise TimeoutError(f"no SMTP banner on 127.0.0.1:{port} within {timeout:.0f}s")


def _count_files(root: Path, suffix: str = "") -> int:
    return sum(1 for p in root.rglob(f"*{suffix}") if p.is_file()) if root.exists() else 0


class Target:
    """One server under test; ``start()`` returns its port, ``stored()`` counts what it holds durably."""

    name = "?"

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"mailpipe-bench-{self.name}-"))
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> int:
        raise NotImplementedError

    def stored(self) -> int | None:
        return None

    def stop(self, keep_files: bool = False) -> None:
        """Stop the server; remove its directory unless ``keep_files`` (the caller removes it later)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not keep_files:
            shutil.rmtree(self.dir, ignore_errors=True)


class Mailpipe(Target):
    name = "mailpipe"

    def start(self) -> int:
        cmd = [
            sys.executable,
            "-m",
            "mailpipe.handlers.cli",
            "serve",
            "--listen",
            f"127.0.0.1:{self.port}",
            "--store",
            f"file://{self.dir}/store",
            "--queue",
            f"file://{self.dir}/queue",
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPIPE_")}
        env |= {"MAILPIPE_FSYNC": "1", "MAILPIPE_LOG_LEVEL": "WARNING"}
        with open(self.dir / "serve.log", "wb") as log:
            self.proc = subprocess.Popen(cmd, cwd=REPO_DIR, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            wait_banner(self.port, proc=self.proc)
        except (RuntimeError, TimeoutError) as exc:
            tail = (self.dir / "serve.log").read_text(errors="replace")[-400:]
            raise RuntimeError(f"mailpipe serve did not start ({exc}): {tail}") from exc
        return self.port

    def stored(self) -> int | None:
        return _count_files(self.dir / "store", ".eml")


class Postfix(Target):
    name = "postfix"

    def _postfix(self, action: str) -> None:
        # `script` gives postfix(1) a tty, so its fatal errors reach us instead of an absent syslog.
        cmd = ["script", "-qec", f"postfix -c {self.dir} {action}", "/dev/null"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        if out.returncode != 0:
            raise RuntimeError(f"postfix {action} failed: {out.stdout[-500:]}{out.stderr[-500:]}")

    def start(self) -> int:
        if shutil.which("postfix") is None:
            raise FileNotFoundError("postfix is not installed (make bench installs deps/apt-bench.txt)")
        self.dir.chmod(0o755)
        (self.dir / "queue").mkdir()
        (self.dir / "data").mkdir()
        shutil.chown(self.dir / "data", user="postfix")
        (self.dir / "main.cf").write_text(POSTFIX_MAIN.format(dir=self.dir, domain=RCPT_DOMAIN))
        (self.dir / "master.cf").write_text(POSTFIX_MASTER.format(listen=f"127.0.0.1:{self.port}"))
        self._postfix("start")
        wait_banner(self.port)
        return self.port

    def stored(self) -> int | None:
        q = self.dir / "queue"
        return sum(_count_files(q / d) for d in ("incoming", "active", "hold", "deferred"))

    def stop(self, keep_files: bool = False) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self._postfix("stop")
        super().stop(keep_files)


class SmtpSink(Target):
    name = "smtp-sink"

    def start(self) -> int:
        sink = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        self.proc = subprocess.Popen(
            [sink, *user, f"127.0.0.1:{self.port}", "1024"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_banner(self.port, proc=self.proc)
        return self.port


TARGETS: dict[str, type[Target]] = {"mailpipe": Mailpipe, "postfix": Postfix, "smtp-sink": SmtpSink}
