"""Local publishers: ``FolderQueue`` (file://DIR, one ``<key>.json`` per notification), ``MemoryQueue``.

A folder queue is durable like the folder store (temp file, fsync, os.replace, fsync of the directory), and
republishing a key rewrites the same file with the same content: a consumer never sees a duplicate.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from mailpipe.core.errors import InvalidKey
from mailpipe.providers.local.memory import MemoryQueue
from mailpipe.providers.local.store import FolderStore

if TYPE_CHECKING:
    from mailpipe.core.settings import Settings

__all__ = ["FolderQueue", "MemoryQueue"]

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,200}$")


class FolderQueue:
    """Notifications as files ``DIR/<key>.json``; a consumer lists the folder and deletes what it handled."""

    def __init__(self, directory: str, *, fsync: bool = True) -> None:
        self._files = FolderStore(directory, fsync=fsync)
        self.directory = self._files.root

    @classmethod
    def from_url(cls, url: str, settings: Settings | None = None) -> FolderQueue:
        """``file://./rel/dir`` (relative to cwd) or ``file:///abs/dir``."""
        store = FolderStore.from_url(url, settings)
        return cls(str(store.root), fsync=store.fsync)

    def probe(self) -> None:
        self._files.probe()

    def publish(self, body: bytes, *, key: str) -> None:
        """Write ``<key>.json`` atomically. Raises InvalidKey for a key that is not a plain file name,
        BackendUnavailable when the disk refuses the write."""
        if not _KEY.match(key):
            raise InvalidKey(f"queue key must be a plain name: {key!r}")
        self._files.put(f"{key}.json", body, content_type="application/json")
