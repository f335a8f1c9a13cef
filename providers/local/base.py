"""Shared by the local adapters: the key guard and the object-created notifier."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

from core.errors import InvalidKey
from core.keys import RAW_SUFFIX

if TYPE_CHECKING:
    from pathlib import Path

    from core.ports import ObjectCreatedListener

TMP_PREFIX = ".tmp-"


def check_key(key: str) -> list[str]:
    """The key's path segments. Raises InvalidKey for empty, absolute, dot or temp-file segments."""
    parts = key.split("/")
    if not key or "\0" in key or "\\" in key or any(p in ("", ".", "..") for p in parts):
        raise InvalidKey(f"invalid key {key!r}")
    if parts[-1].startswith(TMP_PREFIX):
        raise InvalidKey(f"reserved key name {key!r}")
    return parts


class Notifier:
    """Listeners for the object-created event of ``.eml`` keys (a bucket notification stand-in)."""

    def __init__(self) -> None:
        self.listeners: list[ObjectCreatedListener] = []

    def add_listener(self, listener: ObjectCreatedListener) -> None:
        """Call ``listener(key)`` after each newly created ``.eml`` object (not on if_absent no-ops)."""
        self.listeners.append(listener)

    def notify_created(self, key: str) -> None:
        if key.endswith(RAW_SUFFIX):
            for listener in list(self.listeners):
                listener(key)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class GroupSync:
    """Group commit of directory fsyncs: one fsync covers every entry created before it started.

    Concurrent writers that linked their files while a sync was running share the next one, so at
    concurrency N a directory is synced about once per round instead of N times.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._requested: dict[Path, int] = {}
        self._done: dict[Path, int] = {}
        self._running: set[Path] = set()

    def sync(self, path: Path) -> None:
        """Return once ``path`` was fsynced after this call began. Raises OSError from the fsync."""
        with self._cond:
            ticket = self._requested[path] = self._requested.get(path, 0) + 1
            while self._done.get(path, 0) < ticket:
                if path in self._running:
                    self._cond.wait()
                    continue
                self._running.add(path)
                covered = self._requested[path]
                self._cond.release()
                try:
                    fsync_dir(path)
                finally:
                    self._cond.acquire()
                    self._running.discard(path)
                    self._cond.notify_all()
                self._done[path] = max(self._done.get(path, 0), covered)
