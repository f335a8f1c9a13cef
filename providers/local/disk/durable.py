"""Durable, atomic file writes for the folder store and queue.

New objects (``create_many``, the edge's hot path): each file is written as an unnamed inode (``O_TMPFILE``;
a hidden temp name where the filesystem lacks it) and linked under its final name only if that name is free.
Where an fsync of a file after its link also makes the new name durable (ext3/ext4 with or without a journal,
XFS, btrfs: ``names_durable_with_file``) the files are linked first and then fsynced: one journal commit (or
one parent-directory write) carries data and names, no directory fsync. Elsewhere the data is fsynced, then
linked, then the directories are synced (group-committed). The writeback of all files of a
batch is started together (sync_file_range), so their fsyncs cost about one. Nobody is told of a name before
it is durable; if a sync fails the new names are removed again. A name that was already taken is checked: a
torn write of the same data (a strict prefix, what a power cut between link and fsync can leave) is
replaced, any other object is kept (fsynced first: its writer may have died before its own fsync).
Overwrites (``replace``): temp file, fsync, rename, then the directory sync.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
from pathlib import Path
from typing import TYPE_CHECKING

from mailpipe.providers.local.base import TMP_PREFIX
from mailpipe.providers.local.disk.syncs import GroupSync, fsync_dir, names_durable_with_file, start_writeback

if TYPE_CHECKING:
    from mailpipe.providers.local.disk.inodes import InodePool

_SEQ = itertools.count()  # temp names: pid + sequence, unique without a random syscall
ENVELOPE_XATTR = "user.mailpipe.envelope"  # a .eml's copy of its envelope sidecar (create_many ``carriers``)


class DurableWriter:
    """The write path of one folder; ``fsync=False`` skips every sync (tests, throw-away data)."""

    def __init__(self, root: Path, fsync: bool) -> None:
        self.fsync = fsync
        # link before the fsync (one journal commit for data and names) only where that fsync covers the names;
        # elsewhere the data is fsynced before it is linked, and the directories are synced after
        self._link_first = names_durable_with_file(root)
        self._dir_syncs = fsync and not self._link_first
        # unnamed inodes get their name through /proc/self/fd; off after the first refusal of O_TMPFILE
        self.unnamed = hasattr(os, "O_TMPFILE") and Path("/proc/self/fd").is_dir()
        self._dirs: set[Path] = set()
        self._dir_sync = GroupSync()
        self.inodes: InodePool | None = None  # unnamed files opened ahead of time (FolderStore.preallocate)
        self.xattrs = hasattr(os, "setxattr")  # off after the first refusal

    def create_many(self, targets: list[tuple[Path, bytes]], carriers: dict[int, int] | None = None) -> list[bool]:
        """Create each file durably unless an intact one is there; per target: True if this call created it.

        ``carriers`` maps a sidecar's index to its object's (an envelope to its ``.eml``): the object's file then
        carries the sidecar's bytes as the extended attribute ``ENVELOPE_XATTR``, made durable by the object's
        fsync, and the sidecar itself is not fsynced (``restore_sidecar`` rewrites it after a power cut). Only
        where links are durable with the file (link-then-fsync) and the filesystem takes the attribute."""
        for path, _ in targets:
            self.mkdirs(path.parent)
        files: list[tuple[int, Path | None]] = []
        created: list[Path] = []
        try:
            for path, data in targets:
                files.append(self._new_file(path.parent))
                _write_all(files[-1][0], data)
            carried = self._carry(files, targets, carriers or {})
            if not self._link_first:
                self._sync_files([fd for fd, _ in files])
            linked = [self._link(f, path) for f, (path, _) in zip(files, targets, strict=True)]
            created = [path for (path, _), new in zip(targets, linked, strict=True) if new]
            if self._link_first:  # a carried sidecar is durable with its object, if that object is this call's file
                skip = {i for i, carrier in carried.items() if linked[carrier]}
                self._sync_files([fd for i, (fd, _) in enumerate(files) if i not in skip])
            for i, ((path, data), new) in enumerate(zip(targets, linked, strict=True)):
                if not new and not self._keep_existing(path, data):
                    self._replace_with(files[i], path)
                    linked[i] = True
                    created.append(path)
            self.sync_dirs(created, always=False)
        except OSError:
            for path in created:  # not durable: nothing unsynced may stay visible as stored
                with contextlib.suppress(OSError):
                    path.unlink()
            raise
        finally:
            for fd, tmp in files:
                os.close(fd)
                if tmp is not None:
                    with contextlib.suppress(OSError):
                        tmp.unlink()
        return linked

    def _carry(
        self, files: list[tuple[int, Path | None]], targets: list[tuple[Path, bytes]], carriers: dict[int, int]
    ) -> dict[int, int]:
        """Put each sidecar's bytes on its object's file as ``ENVELOPE_XATTR``; the carried ones."""
        if not (self.fsync and self._link_first and self.xattrs):
            return {}
        carried = {}
        for sidecar, carrier in carriers.items():
            try:
                os.setxattr(files[carrier][0], ENVELOPE_XATTR, targets[sidecar][1])
            except OSError as exc:
                if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
                    self.xattrs = False  # no user attributes on this filesystem: sidecars are fsynced
                    return {}
                continue  # E2BIG / ENOSPC: too big for an attribute here; this sidecar is fsynced itself
            carried[sidecar] = carrier
        return carried

    def replace(self, path: Path, data: bytes) -> None:
        """Write ``path`` atomically, replacing any previous version: temp file, fsync, rename, directory sync."""
        self.mkdirs(path.parent)
        tmp = path.with_name(f"{TMP_PREFIX}{path.name}.{os.getpid()}.{next(_SEQ)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            _write_all(fd, data)
            if self.fsync:
                os.fsync(fd)
            tmp.replace(path)
        finally:
            os.close(fd)
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
        self.sync_dirs([path], always=True)

    def _new_file(self, directory: Path) -> tuple[int, Path | None]:
        if self.unnamed:
            fd = self.inodes.take(directory) if self.inodes is not None else None
            if fd is not None:
                return fd, None
            try:
                return os.open(directory, os.O_TMPFILE | os.O_WRONLY, 0o644), None
            except OSError:  # EOPNOTSUPP / EISDIR: this filesystem has no O_TMPFILE
                self.unnamed = False
        tmp = directory / f"{TMP_PREFIX}{os.getpid()}.{next(_SEQ)}"
        return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644), tmp

    def _link(self, file: tuple[int, Path | None], path: Path) -> bool:
        """Give the file ``path`` as its name if that is free (link() is an atomic create-if-absent)."""
        try:
            _link_from(file, path)
        except FileExistsError:
            return False
        return True

    def _replace_with(self, file: tuple[int, Path | None], path: Path) -> None:
        named = path.with_name(f"{TMP_PREFIX}{os.getpid()}.{next(_SEQ)}")
        _link_from(file, named)
        named.replace(path)
        if self.fsync:
            os.fsync(file[0])

    def _keep_existing(self, path: Path, data: bytes) -> bool:
        """The name was taken: keep that object (fsynced) unless it is a torn write of ``data``.

        Torn means a strict prefix of ``data`` (incl. empty): what a power cut between link and fsync leaves of
        this very write (ext4 never exposes stale blocks). Anything else is another, intact object: kept."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            existing = _read_all(fd, len(data) + 1)
            if len(existing) < len(data) and data.startswith(existing):
                return False
            if self.fsync:
                os.fsync(fd)  # its writer may have died between link and fsync: make it durable now
            return True
        finally:
            os.close(fd)

    def _sync_files(self, fds: list[int]) -> None:
        """fsync every file with about one fsync of latency: their writeback is started together first, so
        the data goes to the disk concurrently and the first fsync's journal commit covers all of them (the
        later fsyncs find nothing left to do). Without sync_file_range (not Linux), one fsync after another."""
        if not self.fsync:
            return
        if start_writeback is not None:
            for fd in fds:
                start_writeback(fd)
        for fd in reversed(fds):
            os.fsync(fd)

    def sync_dirs(self, created: list[Path], *, always: bool) -> None:
        """Sync the directories of ``created`` names (``always``: also where file fsyncs cover the names)."""
        if not self.fsync or not (always or self._dir_syncs):
            return
        for directory in dict.fromkeys(p.parent for p in created):
            self._dir_sync.sync(directory)

    def mkdirs(self, directory: Path) -> None:
        if directory in self._dirs:
            return
        missing = [d for d in (directory, *directory.parents) if not d.is_dir()]
        directory.mkdir(parents=True, exist_ok=True)
        if self.fsync:  # a new directory entry is durable only once its parent is synced
            for d in missing:
                fsync_dir(d.parent)
        self._dirs.add(directory)


def _link_from(file: tuple[int, Path | None], name: Path) -> None:
    """Link ``name`` to the file: from its temp name, or from the unnamed inode's /proc/self/fd entry.

    ``src_dir_fd`` makes CPython call linkat(AT_SYMLINK_FOLLOW) instead of link(), which would try to link the
    /proc symlink itself (EXDEV); the source path is absolute, so the descriptor itself is not used."""
    fd, tmp = file
    os.link(tmp if tmp is not None else f"/proc/self/fd/{fd}", name, src_dir_fd=fd, follow_symlinks=True)


def _write_all(fd: int, data: bytes) -> None:
    with memoryview(data) as view:
        done = 0
        while done < len(view):
            done += os.write(fd, view[done:])


def _read_all(fd: int, limit: int) -> bytes:
    chunks, size = [], 0
    while size < limit and (chunk := os.read(fd, min(1 << 20, limit - size))):
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
