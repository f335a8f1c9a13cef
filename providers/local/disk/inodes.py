"""Unnamed files opened ahead of time, so the accept path does not wait for inode allocation.

On ext4 without a journal the inode allocator skips every inode freed in the last minutes (``recently_deleted``);
after a mass deletion one create was measured at ~0.3-0.5 ms here, twice per accepted message. A background thread
keeps ``count`` ``O_TMPFILE`` descriptors open per hot directory; the write path takes one (``take``) and links it
under its final name. An unused one costs nothing to throw away: the kernel frees an unnamed inode when its last
descriptor closes, also when the process dies.
"""

from __future__ import annotations

import collections
import os
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


class InodePool:
    """Pre-opened ``O_TMPFILE`` descriptors per directory; ``take`` returns one or None (then open your own)."""

    def __init__(self, directories: list[Path], count: int) -> None:
        self._count = count
        self._fds: dict[Path, collections.deque[int]] = {d: collections.deque() for d in directories}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        threading.Thread(target=self._fill, name="mailpipe-inodes", daemon=True).start()

    def take(self, directory: Path) -> int | None:
        fds = self._fds.get(directory)
        if fds is None:
            return None
        with self._lock:
            fd = fds.popleft() if fds else None  # oldest first
            low = len(fds) < self._count // 2
        if low:
            self._wake.set()
        return fd

    def _fill(self) -> None:
        while True:
            for directory, fds in self._fds.items():
                while len(fds) < self._count:
                    try:
                        fd = os.open(directory, os.O_TMPFILE | os.O_WRONLY, 0o644)
                    except OSError:  # not there yet, full, read-only: the write path opens its own (and reports)
                        break
                    with self._lock:
                        fds.append(fd)
            # a directory not created yet (or no inode to be had): look again soon instead of waiting for a take
            missing = any(not fds for fds in self._fds.values())
            self._wake.wait(0.2 if missing else None)
            self._wake.clear()
