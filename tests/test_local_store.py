"""FolderStore and MemoryStore pass the shared store contract, plus the folder-specific guarantees."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from conftest import wait_for
from contract_store import StoreContract

from core.errors import InvalidKey
from providers import open_publisher, open_store
from providers.local.queue import FolderQueue
from providers.local.store import FolderStore, MemoryStore

if TYPE_CHECKING:
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
    from core.keys import parsed_key, raw_key
    from providers.local.journal import DoneLog
    from providers.local.worker import pending

    store = FolderStore(tmp_path / "s")
    a, b = "a" * 32, "b" * 32
    for mid in (a, b):
        store.put(raw_key(mid), b"x", content_type="message/rfc822")
    store.put(parsed_key(a), b"{}", content_type="application/json")  # parsed, but killed before publishing
    assert list(pending(store)) == [raw_key(a), raw_key(b)]
    DoneLog(store).add(raw_key(a))
    assert list(pending(store)) == [raw_key(b)]


def test_spares_take_file_creation_off_the_write_path(tmp_path: Path) -> None:
    from providers.local.spares import SPARE_PREFIX

    store = FolderStore(tmp_path / "s")
    store.enable_spares("raw", count=4)
    raw = tmp_path / "s" / "raw"

    def spares() -> list[str]:
        return sorted(p.name for p in raw.iterdir() if p.name.startswith(SPARE_PREFIX))

    store.put("raw/0.eml", b"first", content_type="message/rfc822")  # creates raw/, wakes the filler
    wait_for(lambda: len(spares()) >= 2, 10, "spares")  # refilled whenever fewer than half are left
    used = spares()
    for n in range(1, 4):
        store.put(f"raw/{n}.eml", b"m%d" % n, content_type="message/rfc822")
    assert [store.get(f"raw/{n}.eml") for n in range(4)] == [b"first", b"m1", b"m2", b"m3"]
    assert sorted(store.list("raw/")) == [f"raw/{n}.eml" for n in range(4)]  # spares are never objects
    assert set(used) - set(spares())  # the writes consumed spares
    dead = raw / f"{SPARE_PREFIX}999999999.1"
    dead.write_bytes(b"")
    wait_for(lambda: len(spares()) >= 3, 10, "refilled spares")  # 2+ live ones and the dead one
    live = [s for s in spares() if s != dead.name]
    assert store.remove_stale_temp() == 1 and not dead.exists()  # a dead process's spare is swept
    assert live and all((raw / s).exists() for s in live)  # this process's spares are kept
