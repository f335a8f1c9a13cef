"""FolderStore and MemoryStore pass the shared store contract, plus the folder-specific guarantees."""

from __future__ import annotations

import contextlib
import json
import os
from typing import TYPE_CHECKING

import pytest
from conftest import wait_for
from contract_store import StoreContract

from mailpipe.core.errors import InvalidKey
from mailpipe.providers import open_publisher, open_store
from mailpipe.providers.local.queue import FolderQueue
from mailpipe.providers.local.store import FolderStore, MemoryStore

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path


class TestFolderStore(StoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> FolderStore:
        return FolderStore(tmp_path / "store")


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store(self, memory_url: str) -> MemoryStore:
        return MemoryStore.from_url(memory_url)


def test_file_url_relative_to_cwd_and_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    rel = open_store("file://./var/mail")
    assert isinstance(rel, FolderStore) and rel.root == tmp_path / "var" / "mail"
    assert open_store(f"file://{tmp_path}/abs").root == tmp_path / "abs"  # type: ignore[attr-defined]


def test_memory_stores_with_same_name_share_state(memory_url: str) -> None:
    open_store(memory_url).put("k", b"v", content_type="text/plain")
    assert open_store(memory_url).get("k") == b"v"
    assert not open_store(memory_url + "-other").exists("k")


def test_symlink_escape_is_rejected(tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "store")
    store.put("raw/x", b"1", content_type="text/plain")
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "store" / "link").symlink_to(outside)
    with pytest.raises(InvalidKey):
        store.put("link/evil", b"x", content_type="text/plain")
    assert list(outside.iterdir()) == []


def test_temp_file_names_are_reserved_and_hidden(tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "s")
    with pytest.raises(InvalidKey):
        store.put("raw/.tmp-x", b"1", content_type="text/plain")
    (tmp_path / "s" / "raw").mkdir(parents=True)
    (tmp_path / "s" / "raw" / ".tmp-half-written").write_bytes(b"partial")
    assert list(store.list("raw/")) == []


def test_failed_write_leaves_no_temp_file(tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "s")
    store.put("raw/a.eml", b"x", content_type="message/rfc822")
    with pytest.raises(TypeError):  # a failure in the middle of the write: no temp file remains
        store.put("raw/b.eml", None, content_type="message/rfc822")  # type: ignore[arg-type]
    assert sorted(p.name for p in (tmp_path / "s" / "raw").iterdir()) == ["a.eml"]


@pytest.mark.parametrize("make", ["folder", "memory"])
def test_listener_fires_once_for_new_eml_only(make: str, tmp_path: Path, memory_url: str) -> None:
    store = FolderStore(tmp_path / "s") if make == "folder" else MemoryStore.from_url(memory_url)
    seen: list[str] = []
    store.add_listener(seen.append)
    store.put("raw/a.envelope.json", b"{}", content_type="application/json")
    store.put("raw/a.eml", b"x", content_type="message/rfc822", if_absent=True)
    store.put("raw/a.eml", b"x", content_type="message/rfc822", if_absent=True)
    store.put("parsed/a.json", b"{}", content_type="application/json")
    assert seen == ["raw/a.eml"]


def test_folder_queue_one_atomic_file_per_key(tmp_path: Path) -> None:
    queue = open_publisher(f"file://{tmp_path}/q")
    assert isinstance(queue, FolderQueue)
    queue.publish(b'{"id":"1"}', key="abc")
    queue.publish(b'{"id":"1"}', key="abc")
    queue.publish(b'{"id":"2"}', key="def")
    assert sorted(p.name for p in (tmp_path / "q").iterdir()) == ["abc.json", "def.json"]
    assert (tmp_path / "q" / "abc.json").read_bytes() == b'{"id":"1"}'
    with pytest.raises(InvalidKey):
        queue.publish(b"{}", key="../x")


def test_memory_queue_dedupes_by_key(memory_url: str) -> None:
    queue = open_publisher(memory_url)
    queue.publish(b"1", key="a")
    queue.publish(b"1", key="a")
    assert open_publisher(memory_url).messages == {"a": b"1"}  # type: ignore[attr-defined]


def test_folder_put_many_is_ordered_and_if_absent(tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "s")
    seen: list[str] = []
    store.add_listener(seen.append)
    store.put("raw/a.envelope.json", b"old", content_type="application/json")
    items = [("raw/a.envelope.json", b"new", "application/json"), ("raw/a.eml", b"mail", "message/rfc822")]
    assert store.put_many(items, if_absent=True) == [False, True]
    assert store.get("raw/a.envelope.json") == b"old" and store.get("raw/a.eml") == b"mail"
    assert store.put_many(items, if_absent=True) == [False, False]
    assert seen == ["raw/a.eml"]
    assert [p.name for p in (tmp_path / "s" / "raw").iterdir() if p.name.startswith(".tmp-")] == []


def test_symlinked_object_pointing_outside_is_not_read(tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "s")
    store.put("raw/a.eml", b"x", content_type="message/rfc822")
    (tmp_path / "secret").write_bytes(b"outside")
    (tmp_path / "s" / "raw" / "b.eml").symlink_to(tmp_path / "secret")
    with pytest.raises(InvalidKey):
        store.get("raw/b.eml")


def test_done_log_decides_what_a_restart_reprocesses(tmp_path: Path) -> None:
    from mailpipe.core.edge.ingest import accept
    from mailpipe.core.keys import parsed_key, raw_key
    from mailpipe.core.model import Envelope
    from mailpipe.providers.local.runner.journal import DoneLog
    from mailpipe.providers.local.runner.worker import pending

    store = FolderStore(tmp_path / "s")
    a, b = sorted(accept(store, raw, Envelope(mail_from="", rcpt_to=("x@y.org",))) for raw in (b"x\r\n", b"y\r\n"))
    store.put(parsed_key(a), b"{}", content_type="application/json")  # parsed, but killed before publishing
    assert list(pending(store)) == [raw_key(a), raw_key(b)]
    DoneLog(store).add(raw_key(a))
    assert list(pending(store)) == [raw_key(b)]


def test_torn_write_is_repaired_and_an_intact_object_is_kept(tmp_path: Path) -> None:
    """if_absent links before fsync: what a power cut can leave is a strict prefix of the data (or empty)."""
    store, raw = FolderStore(tmp_path / "s"), tmp_path / "s" / "raw"
    created: list[str] = []
    store.add_listener(created.append)
    raw.mkdir(parents=True)
    (raw / "torn.eml").write_bytes(b"Subject: x\r\n")  # prefix of the data below: a torn write of it
    (raw / "empty.envelope.json").write_bytes(b"")
    (raw / "other.eml").write_bytes(b"another message")  # not a prefix: an object of its own, kept
    data = b"Subject: x\r\n\r\nbody\r\n"
    items = [(k, data, "message/rfc822") for k in ("raw/torn.eml", "raw/empty.envelope.json", "raw/other.eml")]
    assert store.put_many(items, if_absent=True) == [True, True, False]
    assert [store.get(k) for k, _, _ in items] == [data, data, b"another message"]
    assert created == ["raw/torn.eml"]  # the repaired message is announced; the kept one is not
    assert not [p.name for p in raw.iterdir() if p.name.startswith(".tmp-")]


@pytest.mark.parametrize("unnamed", [True, False], ids=["O_TMPFILE", "named-temp"])
@pytest.mark.parametrize("link_first", [True, False], ids=["link-then-fsync", "fsync-then-link"])
def test_every_write_path_creates_replaces_and_cleans_up(tmp_path: Path, unnamed: bool, link_first: bool) -> None:
    store = FolderStore(tmp_path / "s")
    store._io.unnamed = unnamed  # the named-temp path is what a filesystem without O_TMPFILE gets
    store._io._link_first = link_first  # link-then-fsync is what journalled ext4, XFS and btrfs get
    assert store.put_many([("raw/a.eml", b"A", ""), ("raw/b.eml", b"B", "")], if_absent=True) == [True, True]
    assert store.put("raw/a.eml", b"other", content_type="", if_absent=True) is False
    store.put("parsed/a.json", b"1", content_type="")
    store.put("parsed/a.json", b"2", content_type="")  # overwrite: temp, fsync, rename
    assert (store.get("raw/a.eml"), store.get("raw/b.eml"), store.get("parsed/a.json")) == (b"A", b"B", b"2")
    leftovers = list((tmp_path / "s").rglob(".tmp-*"))
    assert leftovers == []


def test_mount_and_journal_detection_match_the_system(tmp_path: Path) -> None:
    import shutil
    import subprocess

    from mailpipe.providers.local.disk.syncs import mount_of, names_durable_with_file

    if shutil.which("findmnt") is None:
        pytest.skip("findmnt (util-linux) is not installed")
    cmd = ["findmnt", "-n", "-o", "FSTYPE,MAJ:MIN", "--target", str(tmp_path)]
    fstype, device = subprocess.run(cmd, capture_output=True, text=True).stdout.split()
    assert mount_of(tmp_path) == (fstype, device)
    expected = fstype in ("ext3", "ext4", "xfs", "btrfs")
    assert names_durable_with_file(tmp_path) is expected


def test_a_retry_that_repairs_a_torn_envelope_announces_the_message(tmp_path: Path) -> None:
    from mailpipe.core.edge.ingest import accept
    from mailpipe.core.keys import envelope_key
    from mailpipe.core.model import Envelope

    store = FolderStore(tmp_path / "s")
    env = Envelope(mail_from="a@b.org", rcpt_to=("c@d.org",))
    mid = accept(store, b"Subject: x\r\n\r\nx\r\n", env)
    (tmp_path / "s" / envelope_key(mid)).write_bytes(b"")  # torn by a power cut; the .eml made it
    created: list[str] = []
    store.add_listener(created.append)
    assert accept(store, b"Subject: x\r\n\r\nx\r\n", env) == mid  # the sender's retry
    assert created == [f"raw/{mid}.eml"]
    assert Envelope.from_dict(json.loads(store.get(envelope_key(mid)))) == env
    accept(store, b"Subject: x\r\n\r\nx\r\n", env)  # an ordinary retry: nothing new, nothing announced
    assert created == [f"raw/{mid}.eml"]


def test_restart_scan_skips_torn_messages(tmp_path: Path) -> None:
    from mailpipe.core.edge.ingest import accept
    from mailpipe.core.keys import envelope_key, raw_key
    from mailpipe.core.model import Envelope
    from mailpipe.providers.local.disk.durable import ENVELOPE_XATTR
    from mailpipe.providers.local.runner.worker import pending

    store = FolderStore(tmp_path / "s")
    env = Envelope(mail_from="a@b.org", rcpt_to=("c@d.org",), received_at="2026-11-29T00:00:00Z")
    good = accept(store, b"Subject: good\r\n\r\nx\r\n", env)
    torn_raw = accept(store, b"Subject: torn raw\r\n\r\nlong body\r\n", env)
    torn_env = accept(store, b"Subject: torn envelope\r\n\r\ny\r\n", env)
    (tmp_path / "s" / raw_key(torn_raw)).write_bytes(b"Subject: torn")  # what a power cut leaves
    (tmp_path / "s" / envelope_key(torn_env)).write_bytes(b"")
    with contextlib.suppress(OSError):  # an envelope its .eml does not carry (see the next test for one it does)
        os.removexattr(tmp_path / "s" / raw_key(torn_env), ENVELOPE_XATTR)
    assert list(pending(store)) == [raw_key(good)]


def record_keys(path: str, keys: Iterator[str], settled: Callable[[], None]) -> None:
    """A parse-worker stand-in for WorkerProcess (runs in the spawned child): appends each key to ``path``."""
    with open(path, "a") as out:
        for key in keys:
            out.write(key + "\n")
            out.flush()
            settled()


def test_worker_process_gets_every_key_even_past_the_pipe_capacity(tmp_path: Path) -> None:
    import time

    from mailpipe.providers.local.runner.process import WorkerProcess

    seen = tmp_path / "seen.txt"
    backlog = [f"raw/{n:032x}.eml" for n in range(3)]
    worker = WorkerProcess(record_keys, str(seen), backlog=lambda: backlog, scan_first=True).start()
    try:
        keys = [f"raw/{n:032x}.eml" for n in range(100, 4100)]  # ~170 KB of lines: the 64 KB pipe overflows
        started = time.monotonic()
        for key in keys:
            worker.submit(key)
        assert time.monotonic() - started < 2  # submit never waits for the child
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(_lines(seen)) < len(backlog) + len(keys):
            time.sleep(0.05)
        assert sorted(_lines(seen)) == sorted(backlog + keys)
        wait_for(lambda: worker.waiting == 0, 10, "every key settled")  # the edge's back-pressure gauge
    finally:
        worker.stop()


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_preallocated_unnamed_files_are_used_and_leave_nothing_behind(tmp_path: Path) -> None:
    import time

    store = FolderStore(tmp_path / "s")
    store.put("raw/first.eml", b"1", content_type="", if_absent=True)  # creates raw/
    store.preallocate("raw", count=4)
    pool = store._io.inodes
    assert pool is not None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(pool._fds[tmp_path / "s" / "raw"]) < 4:
        time.sleep(0.02)
    ready = {os.fstat(fd).st_ino for fd in pool._fds[tmp_path / "s" / "raw"]}
    assert len(ready) == 4
    for n in range(6):  # more than the pool holds: it refills, or the write path opens its own
        assert store.put(f"raw/{n}.eml", b"x%d" % n, content_type="", if_absent=True) is True
    written = {(tmp_path / "s" / "raw" / f"{n}.eml").stat().st_ino for n in range(6)}
    assert ready <= written  # the pre-opened files became the new objects
    assert sorted(p.name for p in (tmp_path / "s" / "raw").iterdir()) == sorted(
        ["first.eml", *(f"{n}.eml" for n in range(6))]
    )  # unnamed files never show up as entries


def test_the_eml_carries_its_envelope_and_a_lost_sidecar_is_restored(tmp_path: Path) -> None:
    from mailpipe.core.edge.ingest import accept
    from mailpipe.core.keys import envelope_key, raw_key
    from mailpipe.core.model import Envelope
    from mailpipe.providers.local.disk.durable import ENVELOPE_XATTR
    from mailpipe.providers.local.runner.worker import pending

    store = FolderStore(tmp_path / "s")
    if not (store._io._link_first and store._io.xattrs):
        pytest.skip("this filesystem makes links durable only with a directory fsync, or has no user xattrs")
    env = Envelope(mail_from="a@b.org", rcpt_to=("c@d.org",), client_ip="192.0.2.1", received_at="2026-11-29T00:00:00Z")
    mid = accept(store, b"Subject: carried\r\n\r\nx\r\n", env)
    sidecar = tmp_path / "s" / envelope_key(mid)
    copy = os.getxattr(tmp_path / "s" / raw_key(mid), ENVELOPE_XATTR)
    assert copy == sidecar.read_bytes()
    sidecar.write_bytes(b"")  # a power cut before the (unsynced) sidecar reached the disk
    assert list(pending(store)) == [raw_key(mid)]  # restored, not skipped as torn
    assert sidecar.read_bytes() == copy


def test_an_envelope_too_big_for_an_attribute_is_synced_as_its_own_file(tmp_path: Path) -> None:
    from mailpipe.core.edge.ingest import accept
    from mailpipe.core.keys import envelope_key, raw_key
    from mailpipe.core.model import Envelope
    from mailpipe.providers.local.disk.durable import ENVELOPE_XATTR
    from mailpipe.providers.local.runner.worker import pending

    store = FolderStore(tmp_path / "s")
    env = Envelope(mail_from="a@b.org", rcpt_to=tuple(f"recipient-{n:04d}@example.com" for n in range(400)))
    mid = accept(store, b"Subject: many\r\n\r\nx\r\n", env)
    assert Envelope.from_dict(json.loads(store.get(envelope_key(mid)))) == env
    with pytest.raises(OSError):  # 16 KB of JSON is beyond an ext4 attribute (one block)
        os.getxattr(tmp_path / "s" / raw_key(mid), ENVELOPE_XATTR)
    assert list(pending(store)) == [raw_key(mid)]
