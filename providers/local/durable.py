"""Durable, atomic file writes for the folder store and queue: temp file, fsync, link/rename, directory sync.

A name becomes visible only after its bytes are fsynced; the new names are durable once their directory is
synced. Directory syncs are group-committed across threads, and the temp files of one batch are fsynced
concurrently, so the journal commits them together.
"""

from __future__ import annotations

import contextlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from providers.local.spares import SparePool


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


class DurableWriter:
    """The write path of one FolderStore; ``fsync=False`` skips every sync (tests, throw-away data)."""

    def __init__(self, fsync: bool) -> None:
        self.fsync = fsync
        self.spares: SparePool | None = None
        self._dirs: set[Path] = set()
        self._dir_sync = GroupSync()
        self._pool: ThreadPoolExecutor | None = None

    def _open_temp(self, tmp: Path) -> int:
        spare = self.spares.take(tmp.parent) if self.spares is not None else None
        if spare is not None:
            with contextlib.suppress(OSError):  # a vanished spare: create the file instead
                spare.rename(tmp)
                return os.open(tmp, os.O_WRONLY)
        return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)

    def write_temps(self, pairs: list[tuple[Path, bytes]]) -> None:
        fds: list[int] = []
        try:
            for tmp, data in pairs:
                fds.append(self._open_temp(tmp))
                with memoryview(data) as view:
                    done = 0
                    while done < len(view):
                        done += os.write(fds[-1], view[done:])
            if self.fsync and fds:  # concurrent fsyncs share one journal commit: ~1 fsync of latency, not n
                others = [self._fsync_pool().submit(os.fsync, fd) for fd in fds[:-1]]
                os.fsync(fds[-1])
                for future in others:
                    future.result()
        finally:
            for fd in fds:
                os.close(fd)

    def _fsync_pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(32, "mailpipe-fsync")
        return self._pool

    def link(self, tmp: Path, path: Path, if_absent: bool) -> bool:
        if not if_absent:
            tmp.replace(path)
            return True
        try:  # link() is an atomic create-if-absent: two racing writers cannot both win
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True

    def sync_dirs(self, created: list[Path]) -> None:
        if not self.fsync:
            return
        try:
            for directory in dict.fromkeys(p.parent for p in created):
                self._dir_sync.sync(directory)
        except OSError:  # not durable: take the names back so nothing unsynced is ever seen as stored
            for path in created:
                with contextlib.suppress(OSError):
                    path.unlink()
            raise

    def mkdirs(self, directory: Path) -> None:
        if directory in self._dirs:
            return
        missing = [d for d in (directory, *directory.parents) if not d.is_dir()]
        directory.mkdir(parents=True, exist_ok=True)
        if self.fsync:  # a new directory entry is durable only once its parent is synced
            for d in missing:
                fsync_dir(d.parent)
        self._dirs.add(directory)
