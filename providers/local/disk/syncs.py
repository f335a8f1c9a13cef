"""Filesystem facts and sync primitives for the folder store (durable.py uses them).

- ``names_durable_with_file``: whether a file's fsync after linking also makes the new name durable.
- ``start_writeback``: Linux sync_file_range(SYNC_FILE_RANGE_WRITE), so several files' data go out together.
- ``GroupSync``: group commit of directory fsyncs across threads.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def mount_of(path: Path) -> tuple[str, str]:
    """(filesystem type, "major:minor") of the mount ``path`` is on, from /proc/self/mountinfo ("" if unknown)."""
    best, found, target = -1, ("", ""), str(path.resolve())
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            fields = line.split(" - ")
            head = fields[0].split()
            mount = head[4].replace("\\040", " ")
            inside = target == mount or target.startswith(mount.rstrip("/") + "/")
            if len(fields) == 2 and inside and len(mount) > best:
                best, found = len(mount), (fields[1].split()[0], head[2])
    return found


def names_durable_with_file(path: Path) -> bool:
    """True where an fsync of a file after linking it also makes the new name durable.

    ext3/ext4 mark an inode on every new directory entry (EXT4_STATE_NEWENTRY, set by ext4_add_entry) and its
    fsync then commits the journal transaction holding the link, or, without a journal, syncs the parent
    directory itself (ext4_sync_parent); XFS and btrfs log the link with the inode the fsync forces out."""
    return mount_of(path)[0] in ("ext3", "ext4", "xfs", "btrfs")


class GroupSync:
    """Group commit of directory fsyncs: one fsync covers every entry created before it started."""

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


SYNC_FILE_RANGE_WRITE = 2  # <fcntl.h>


def _writeback_starter() -> Callable[[int], None] | None:
    """Linux sync_file_range(SYNC_FILE_RANGE_WRITE): start writing a file's dirty pages, do not wait."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        call = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]

    def start(fd: int) -> None:
        call(fd, 0, 0, SYNC_FILE_RANGE_WRITE)  # only a hint (result ignored): the fsync after it is what counts

    return start


start_writeback = _writeback_starter()
