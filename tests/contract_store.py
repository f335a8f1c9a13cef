"""The ObjectStore contract, written once and reused by every backend (Active Storage's SharedServiceTests).

Use it by subclassing ``StoreContract`` in a test module and providing a ``store`` fixture; each test writes
under a unique prefix, so a shared bucket is fine::

    class TestS3Store(StoreContract):
        @pytest.fixture
        def store(self, s3_store):
            return s3_store

Class attributes let a backend declare a known, documented gap (``atomic_if_absent = False`` for an
emulator that ignores conditional writes); prefer xfail(strict=True) in the subclass when possible.
"""

from __future__ import annotations

import copy
import os
import threading
import uuid
from typing import Any

import pytest

from mailpipe.core.errors import InvalidKey, MessageTooLarge, ObjectNotFound
from mailpipe.core.ports import DeletableStore, Probe

BINARY = bytes(range(256)) * 64 + b"\r\n.\r\n\0"


class StoreContract:
    """ObjectStore behaviour every adapter must show (core/ports.py)."""

    atomic_if_absent = True

    @pytest.fixture
    def prefix(self) -> str:
        return f"contract-{uuid.uuid4().hex[:12]}/"

    def test_put_then_get_returns_exact_bytes(self, store: Any, prefix: str) -> None:
        assert store.put(prefix + "raw/a.eml", BINARY, content_type="message/rfc822") is True
        assert store.get(prefix + "raw/a.eml") == BINARY

    def test_empty_object(self, store: Any, prefix: str) -> None:
        store.put(prefix + "empty", b"", content_type="application/octet-stream")
        assert store.get(prefix + "empty") == b""
        assert store.exists(prefix + "empty")

    def test_large_object(self, store: Any, prefix: str) -> None:
        data = os.urandom(3 * 1024 * 1024 + 7)
        store.put(prefix + "big.bin", data, content_type="application/octet-stream")
        assert store.get(prefix + "big.bin") == data

    def test_get_missing_raises_object_not_found(self, store: Any, prefix: str) -> None:
        with pytest.raises(ObjectNotFound):
            store.get(prefix + "nope.eml")

    def test_exists(self, store: Any, prefix: str) -> None:
        assert store.exists(prefix + "x") is False
        store.put(prefix + "x", b"1", content_type="text/plain")
        assert store.exists(prefix + "x") is True

    def test_put_overwrites_without_if_absent(self, store: Any, prefix: str) -> None:
        store.put(prefix + "k", b"one", content_type="text/plain")
        assert store.put(prefix + "k", b"two", content_type="text/plain") is True
        assert store.get(prefix + "k") == b"two"

    def test_if_absent_never_overwrites(self, store: Any, prefix: str) -> None:
        assert store.put(prefix + "k", b"first", content_type="text/plain", if_absent=True) is True
        assert store.put(prefix + "k", b"second", content_type="text/plain", if_absent=True) is False
        assert store.get(prefix + "k") == b"first"

    def test_concurrent_if_absent_has_one_winner(self, store: Any, prefix: str) -> None:
        if not self.atomic_if_absent:
            pytest.skip("backend documents non-atomic if_absent")
        results: list[bool] = []
        barrier = threading.Barrier(8)

        def race(n: int) -> None:
            barrier.wait()
            results.append(store.put(prefix + "race", b"%d" % n, content_type="text/plain", if_absent=True))

        threads = [threading.Thread(target=race, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == [False] * 7 + [True]
        assert store.get(prefix + "race") in {b"%d" % n for n in range(8)}

    def test_list_by_prefix(self, store: Any, prefix: str) -> None:
        for key in ("raw/a.eml", "raw/a.envelope.json", "raw/b.eml", "parsed/a.json", "att/a/0-x.pdf"):
            store.put(prefix + key, b"x", content_type="application/octet-stream")
        assert sorted(store.list(prefix + "raw/")) == [
            prefix + k for k in ("raw/a.eml", "raw/a.envelope.json", "raw/b.eml")
        ]
        assert sorted(store.list(prefix + "raw/a")) == [prefix + "raw/a.eml", prefix + "raw/a.envelope.json"]
        assert sorted(store.list(prefix + "att/")) == [prefix + "att/a/0-x.pdf"]
        assert list(store.list(prefix + "none/")) == []

    def test_list_nested_keys_beside_a_same_named_object(self, store: Any, prefix: str) -> None:
        for key in ("parsed/a.json", "parsed/a/0.1.0.json", "parsed/a/0.2.0.json", "parsed/ab.json"):
            store.put(prefix + key, b"{}", content_type="application/json")
        assert sorted(store.list(prefix + "parsed/a")) == [
            prefix + k for k in ("parsed/a.json", "parsed/a/0.1.0.json", "parsed/a/0.2.0.json", "parsed/ab.json")
        ]
        versions = [prefix + "parsed/a/0.1.0.json", prefix + "parsed/a/0.2.0.json"]
        assert sorted(store.list(prefix + "parsed/a/")) == versions

    def test_probe_answers_for_a_working_store(self, store: Any) -> None:
        if not isinstance(store, Probe):
            pytest.skip("an in-process store has nothing to reach")
        store.probe()

    def test_delete(self, store: Any, prefix: str) -> None:
        assert isinstance(store, DeletableStore)
        store.put(prefix + "parsed/x/1.json", b"{}", content_type="application/json")
        store.put(prefix + "parsed/x.json", b"{}", content_type="application/json")
        assert store.delete(prefix + "parsed/x/1.json") is True
        assert not store.exists(prefix + "parsed/x/1.json") and store.exists(prefix + "parsed/x.json")
        assert store.delete(prefix + "parsed/x/1.json") is False  # gone: nothing to do, no error
        assert list(store.list(prefix + "parsed/x/")) == []
        with pytest.raises(InvalidKey):
            store.delete(prefix + "../x")

    @pytest.mark.parametrize("bad", ["", "/etc/passwd", "../escape", "a/../../escape", "a//b", "a/./b"])
    def test_invalid_keys_are_rejected(self, store: Any, bad: str) -> None:
        with pytest.raises(InvalidKey):
            store.put(bad, b"x", content_type="text/plain")
        with pytest.raises(InvalidKey):
            store.get(bad)


class BoundedStoreContract(StoreContract):
    """A cloud store: ``get`` refuses an object over ``max_bytes`` (2 x the message limit from the settings), so a
    function is never run out of memory by an object someone else wrote; local stores read what their edge bounded."""

    def test_get_refuses_an_object_over_the_size_bound(self, store: Any, prefix: str) -> None:
        bounded = copy.copy(store)
        bounded.max_bytes = 2000
        store.put(prefix + "raw/huge.eml", b"x" * 3000, content_type="message/rfc822")
        store.put(prefix + "raw/fits.eml", b"y" * 2000, content_type="message/rfc822")
        store.put(prefix + "raw/empty.eml", b"", content_type="message/rfc822")
        with pytest.raises(MessageTooLarge):  # permanent: quarantined, instead of an out-of-memory function
            bounded.get(prefix + "raw/huge.eml")
        assert bounded.get(prefix + "raw/fits.eml") == b"y" * 2000
        assert bounded.get(prefix + "raw/empty.eml") == b""
        with pytest.raises(ObjectNotFound):
            bounded.get(prefix + "raw/none.eml")
        assert store.get(prefix + "raw/huge.eml") == b"x" * 3000  # unbounded
