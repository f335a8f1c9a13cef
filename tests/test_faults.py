"""Storage faults and crashes: full disk and read-only store answer 451 and lose nothing; kill -9 under load
loses no message that got 250 (restart re-processes the backlog).

Tests run as root, so chmod cannot make a directory unwritable: real faults come from a tiny tmpfs (full disk)
and a read-only remount. Skipped with the reason when mount is not permitted.
"""

from __future__ import annotations

import json
import os
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from conftest import wait_for

from mailpipe.core.errors import BackendUnavailable
from mailpipe.core.keys import raw_key
from mailpipe.providers.local.store import FolderStore

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from conftest import Edge, ServeProcess


def _mount(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["mount", *args], capture_output=True, check=False)


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs: a real disk that fills up and can be remounted read-only."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    res = _mount("-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt))
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def _send(port: int, body: bytes) -> tuple[int, str]:
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as c:
        c.ehlo("x")
        c.mail("a@sender.org")
        c.rcpt("b@example.com")
        code, reply = c.data(body)
    return code, reply.decode()


def _body(n: int, size: int) -> bytes:
    line = b"%06d " % n + b"z" * 70 + b"\r\n"
    return b"Subject: m%d\r\n\r\n" % n + line * (size // len(line))


def _temp_files(root: Path) -> list[str]:
    return [name for _, _, files in os.walk(root) for name in files if name.startswith(".tmp-")]


def test_full_disk_answers_451_and_keeps_nothing_partial(edge: Callable[..., Edge], tiny_fs: Path) -> None:
    filler = tiny_fs / "filler"
    filler.write_bytes(b"f" * 60_000)
    e = edge(store=FolderStore(tiny_fs / "mail"))
    accepted: dict[str, bytes] = {}
    refused: list[bytes] = []
    for n in range(30):
        body = _body(n, 30_000)
        code, reply = _send(e.port, body)
        if code == 250:
            accepted[reply.rsplit(" ", 1)[-1]] = body
        else:
            assert (code, reply[:5]) == (451, "4.3.0")
            refused.append(body)
            break
    assert accepted and refused, "the disk never filled up"
    assert _temp_files(tiny_fs) == []
    stored = {k[4:-4] for k in e.store.list("raw/") if k.endswith(".eml")}
    assert stored == set(accepted)  # nothing half-written became visible
    for mid, body in accepted.items():
        assert e.store.get(raw_key(mid)) == body
    filler.unlink()  # space comes back: the sender's retry is accepted
    code, reply = _send(e.port, refused[0])
    assert code == 250 and e.store.get(raw_key(reply.rsplit(" ", 1)[-1])) == refused[0]


def test_read_only_store_answers_451_then_recovers(edge: Callable[..., Edge], tiny_fs: Path) -> None:
    e = edge(store=FolderStore(tiny_fs / "mail"))
    code, reply = _send(e.port, _body(1, 1000))
    first = reply.rsplit(" ", 1)[-1]
    assert code == 250
    assert _mount("-o", "remount,ro", str(tiny_fs)).returncode == 0
    try:
        assert _send(e.port, _body(2, 1000))[0] == 451
        with pytest.raises(BackendUnavailable):
            e.store.put("raw/x.eml", b"x", content_type="message/rfc822")
        assert e.store.get(raw_key(first)) == _body(1, 1000)  # what was accepted stays readable
    finally:
        assert _mount("-o", "remount,rw", str(tiny_fs)).returncode == 0
    assert _send(e.port, _body(2, 1000))[0] == 250


def test_folder_store_full_disk_raises_backend_unavailable_without_temp(tiny_fs: Path) -> None:
    store = FolderStore(tiny_fs / "s")
    with pytest.raises(BackendUnavailable):
        store.put("raw/big.eml", b"x" * 400_000, content_type="message/rfc822")
    assert not store.exists("raw/big.eml") and _temp_files(tiny_fs) == []


def _port_closed(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def _load(port: int, ident: int, stop: threading.Event, accepted: dict[str, bytes]) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        body = _body(ident * 100_000 + n, 2_000 + (n % 7) * 9_000)
        try:
            code, reply = _send(port, body)
        except (OSError, smtplib.SMTPException):
            continue  # the server died mid-session: no 250, the sender would retry
        if code == 250:
            accepted[reply.rsplit(" ", 1)[-1]] = body


@pytest.mark.e2e
def test_kill_9_under_load_loses_no_accepted_message(serve_process: Callable[..., ServeProcess]) -> None:
    first = serve_process()
    accepted: dict[str, bytes] = {}
    stop = threading.Event()
    clients = [threading.Thread(target=_load, args=(first.port, i, stop, accepted)) for i in range(6)]
    for t in clients:
        t.start()
    wait_for(lambda: len(accepted) >= 40, 60, "40 accepted messages")
    stale = first.store_dir / "raw" / ".tmp-left-by-a-crash"
    stale.write_bytes(b"partial")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    first.kill9()  # clients are still sending
    stop.set()
    wait_for(lambda: _port_closed(first.port), 10, "no orphan edge process left on the shared socket")
    for t in clients:
        t.join(30)
    second = serve_process()  # same store and queue directories
    store = FolderStore(second.store_dir)

    def all_done() -> bool:
        return all((second.queue_dir / f"{mid}.json").exists() for mid in accepted)

    try:
        wait_for(all_done, 60, "every accepted message parsed and notified after restart")
    except AssertionError:
        missing = [m for m in accepted if not (second.queue_dir / f"{m}.json").exists()]
        state = [(m, store.exists(raw_key(m)), store.exists(f"parsed/{m}.json")) for m in missing]
        msg = f"{len(missing)} of {len(accepted)} not notified (id, raw, parsed): {state[:5]}"
        raise AssertionError(msg) from None
    for mid, body in accepted.items():
        assert store.get(raw_key(mid)) == body
        assert json.loads(store.get(f"parsed/{mid}.json"))["id"] == mid
    assert not stale.exists()  # the restart swept the dead writer's temp file
    assert second.stop() == 0


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@pytest.mark.e2e
def test_parse_worker_killed_is_restarted_and_catches_up(serve_process: Callable[..., ServeProcess]) -> None:
    proc = serve_process("--edge-processes", "1")
    assert proc.proc is not None
    workers = [c for c in _children(proc.proc.pid) if "multiprocessing.spawn" in _cmdline(c)]
    assert workers, "no parse worker child found"
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    mids = [_send(proc.port, _body(n, 500))[1].rsplit(" ", 1)[-1] for n in range(5)]
    wait_for(lambda: all((proc.queue_dir / f"{m}.json").exists() for m in mids), 30, "parsing after restart")
    assert any("parse worker died" in line for line in proc.log_lines())


_CRASHING_WORKER = """
import os, sys, time
from mailpipe.providers.local.store import FolderStore
from mailpipe.providers.local.runner.worker import pending, run_local

store = FolderStore(sys.argv[1])
def process(key):
    if key.endswith(sys.argv[2] + ".eml"):
        os._exit(9)  # a parse that kills the worker process (native crash, OOM kill)
    from mailpipe.core.pipeline import Outcome
    return Outcome.DONE
worker = run_local(store, process)
worker.wait_idle(10)
"""


def test_a_message_that_keeps_killing_the_worker_is_quarantined(tmp_path: Path) -> None:
    from mailpipe.core.edge.ingest import accept
    from mailpipe.core.keys import quarantine_key
    from mailpipe.core.model import Envelope
    from mailpipe.providers.local.runner.worker import MAX_CRASHES, pending

    store = FolderStore(tmp_path / "s")
    bad, good = (
        accept(store, b"Subject: %d\r\n\r\nx\r\n" % n, Envelope(mail_from="", rcpt_to=("a@b.org",))) for n in (1, 2)
    )
    exits = []
    for _ in range(MAX_CRASHES):
        run = subprocess.run(
            [sys.executable, "-c", _CRASHING_WORKER, str(tmp_path / "s"), bad],
            cwd=Path(__file__).resolve().parents[1],
            capture_output=True,
            timeout=60,
            check=False,
        )
        exits.append(run.returncode)
    assert exits == [9] * MAX_CRASHES  # each start crashed on the same message
    left = list(pending(store))  # the next start-up scan
    assert raw_key(bad) not in left
    assert raw_key(good) in left  # the rest of the backlog is still there
    record = json.loads(store.get(quarantine_key(bad)))
    assert record["reason"] == "worker_crash"
    assert store.exists(raw_key(bad))  # quarantined, never deleted
