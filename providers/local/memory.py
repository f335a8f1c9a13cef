"""In-process adapters for tests and demos: ``MemoryStore`` (memory://NAME) and ``MemoryQueue``.

Instances built with the same name share state within a process (like two clients of one bucket).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import urlsplit

from mailpipe.core.errors import ObjectNotFound
from mailpipe.providers.local.base import Notifier, check_key

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mailpipe.core.ports import ObjectCreatedListener
    from mailpipe.core.settings import Settings


class _Bucket(Notifier):
    def __init__(self) -> None:
        super().__init__()
        self.objects: dict[str, bytes] = {}
        self.lock = threading.Lock()


class MemoryStore:
    """An in-process store. Instances built with the same ``name`` share objects and listeners."""

    _buckets: ClassVar[dict[str, _Bucket]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, name: str = "default") -> None:
        with self._registry_lock:
            self._bucket = self._buckets.setdefault(name, _Bucket())
        self.name = name

    @classmethod
    def from_url(cls, url: str, settings: Settings | None = None) -> MemoryStore:
        parts = urlsplit(url)
        return cls((parts.netloc + parts.path).strip("/") or "default")

    def add_listener(self, listener: ObjectCreatedListener) -> None:
        """Call ``listener(key)`` after each newly created ``.eml`` object."""
        self._bucket.add_listener(listener)

    def get(self, key: str) -> bytes:
        check_key(key)
        try:
            return self._bucket.objects[key]
        except KeyError:
            raise ObjectNotFound(key) from None

    def exists(self, key: str) -> bool:
        check_key(key)
        return key in self._bucket.objects

    def put(self, key: str, data: bytes, *, content_type: str = "", if_absent: bool = False) -> bool:
        check_key(key)
        with self._bucket.lock:
            if if_absent and key in self._bucket.objects:
                return False
            self._bucket.objects[key] = bytes(data)
        self._bucket.notify_created(key)
        return True

    def delete(self, key: str) -> bool:
        check_key(key)
        with self._bucket.lock:
            return self._bucket.objects.pop(key, None) is not None

    def list(self, prefix: str = "") -> Iterator[str]:
        with self._bucket.lock:
            keys = [k for k in self._bucket.objects if k.startswith(prefix)]
        yield from keys


class MemoryQueue:
    """An in-process publisher. ``messages`` maps key -> body; a republished key replaces its body."""

    _queues: ClassVar[dict[str, dict[str, bytes]]] = {}

    def __init__(self, name: str = "default") -> None:
        self.messages = self._queues.setdefault(name, {})
        self.name = name

    @classmethod
    def from_url(cls, url: str, settings: Settings | None = None) -> MemoryQueue:
        parts = urlsplit(url)
        return cls((parts.netloc + parts.path).strip("/") or "default")

    def publish(self, body: bytes, *, key: str) -> None:
        self.messages[key] = bytes(body)
