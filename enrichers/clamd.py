"""A clamd client speaking the INSTREAM protocol over a unix or TCP socket, and a private clamd.

Protocol (clamd(8)): send ``zINSTREAM\\0``, then chunks each prefixed by a 4-byte big-endian length, then a
zero length; clamd answers ``stream: OK\\0``, ``stream: <signature> FOUND\\0`` or ``... ERROR\\0``.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mailpipe.core.errors import BackendUnavailable

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

CHUNK = 64 * 1024
DATA_DIR = Path(__file__).parent / "data"
TEST_DATABASE = DATA_DIR / "mailpipe-test.ndb"


class ClamdError(Exception):
    """clamd answered ERROR for this input (size limit, unreadable stream): permanent for the input."""


@dataclass(frozen=True, slots=True)
class Clamd:
    """``address``: ``unix:/run/clamav/clamd.ctl``, a bare path, ``tcp://127.0.0.1:3310`` or ``host:port``."""

    address: str
    timeout: float = 30.0

    def _connect(self) -> socket.socket:
        addr = self.address.removeprefix("unix:")
        try:
            if addr.startswith("tcp://") or ("/" not in addr and ":" in addr):
                host, _, port = addr.removeprefix("tcp://").rpartition(":")
                return socket.create_connection((host, int(port)), timeout=self.timeout)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            sock.connect(addr)
            return sock
        except OSError as exc:
            raise BackendUnavailable(f"clamd unreachable at {self.address}: {exc}") from exc

    def _call(self, command: bytes, body: Iterable[bytes] = ()) -> str:
        with self._connect() as sock:
            try:
                sock.sendall(b"z" + command + b"\0")
                for chunk in body:
                    sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError) as exc:
                # clamd stops reading a stream over StreamMaxLength, answers "... size limit exceeded. ERROR"
                # and closes: that answer is a verdict on this input, not an outage to retry forever.
                reply = _read_reply(sock)
                if not reply:
                    raise BackendUnavailable(f"clamd {command.decode()} failed: {exc}") from exc
                return reply
            except OSError as exc:  # includes timeouts: the daemon is overloaded or died mid-scan
                raise BackendUnavailable(f"clamd {command.decode()} failed: {exc}") from exc
            return _read_reply(sock, strict=True)

    def ping(self) -> bool:
        """True when clamd answers PONG. Raises BackendUnavailable when it cannot be reached."""
        return self._call(b"PING") == "PONG"

    def instream(self, data: bytes) -> str | None:
        """Scan ``data``; return the signature, or None when clean. Raises ClamdError, BackendUnavailable."""
        reply = self._call(b"INSTREAM", _chunks(data))
        if reply.endswith("FOUND"):
            return reply.removeprefix("stream:").removesuffix("FOUND").strip()
        if reply.endswith("OK"):
            return None
        if not reply:
            raise BackendUnavailable("clamd closed the connection without a verdict")
        raise ClamdError(reply)


def _read_reply(sock: socket.socket, strict: bool = False) -> str:
    reply = b""
    try:
        while not reply.endswith(b"\0"):
            got = sock.recv(4096)
            if not got:
                break
            reply += got
    except OSError as exc:
        if strict:
            raise BackendUnavailable(f"clamd reply failed: {exc}") from exc
    return reply.rstrip(b"\0").decode("utf-8", "replace").strip()


def _chunks(data: bytes) -> Iterator[bytes]:
    view = memoryview(data)
    for i in range(0, len(view), CHUNK):
        piece = view[i : i + CHUNK]
        yield struct.pack(">I", len(piece)) + piece.tobytes()
    yield struct.pack(">I", 0)


_CONF = """Foreground yes
{listen}
DatabaseDirectory {db}
TemporaryDirectory {tmp}
LogFile {log}
PidFile {pid}
StreamMaxLength {stream_max}
MaxThreads 4
Bytecode no
DisableCache yes
"""


@contextlib.contextmanager
def private_clamd(
    workdir: Path,
    databases: Sequence[Path] = (TEST_DATABASE,),
    start_timeout: float = 60,
    tcp_port: int = 0,
    stream_max: str = "100M",
) -> Iterator[Clamd]:
    """Run a clamd of our own (own config, socket and signature directory; no system service, no freshclam)
    for tests, benchmarks and embedded mode: a unix socket in ``workdir`` or TCP on 127.0.0.1:``tcp_port``.
    Yields a connected client; stops the daemon on exit."""
    binary = shutil.which("clamd") or "/usr/sbin/clamd"
    listen = (
        f"TCPSocket {tcp_port}\nTCPAddr 127.0.0.1" if tcp_port else f"LocalSocket {workdir / 'clamd.sock'}"
    )
    conf = _write_config(workdir, databases, listen, stream_max)
    proc = subprocess.Popen(
        [binary, "--config-file", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    address = f"tcp://127.0.0.1:{tcp_port}" if tcp_port else f"unix:{workdir / 'clamd.sock'}"
    client = Clamd(address, timeout=30)
    try:
        _wait_ready(proc, client, start_timeout, workdir / "clamd.log")
        yield client
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _write_config(workdir: Path, databases: Sequence[Path], listen: str, stream_max: str) -> Path:
    db, tmp = workdir / "db", workdir / "tmp"
    db.mkdir(parents=True, exist_ok=True)
    tmp.mkdir(exist_ok=True)
    for sig in databases:
        shutil.copy(sig, db / Path(sig).name)
    conf = workdir / "clamd.conf"
    log, pid = workdir / "clamd.log", workdir / "clamd.pid"
    conf.write_text(_CONF.format(listen=listen, stream_max=stream_max, db=db, tmp=tmp, log=log, pid=pid))
    return conf


def _wait_ready(proc: subprocess.Popen[bytes], client: Clamd, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-800:] if log.exists() else ""
            raise RuntimeError(f"clamd exited with {proc.returncode}: {tail}")
        with contextlib.suppress(BackendUnavailable):
            if client.ping():
                return
        time.sleep(0.05)
    raise RuntimeError(f"clamd did not answer PING within {timeout:g} s")
