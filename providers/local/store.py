"""Local stores: ``FolderStore`` (file://DIR, the embedded default) and ``MemoryStore`` (memory://NAME).

Both raise the object-created event themselves for ``.eml`` keys (the stand-in for a bucket notification):
``add_listener(callback)`` registers a callable that gets the key after the object is durably visible.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from mailpipe.core.errors import BackendUnavailable, InvalidKey, ObjectNotFound
from mailpipe.core.keys import ENVELOPE_SUFFIX, RAW_SUFFIX
from mailpipe.providers.local.base import TMP_PREFIX, Notifier, check_key
from mailpipe.providers.local.disk.durable import ENVELOPE_XATTR, DurableWriter
from mailpipe.providers.local.disk.inodes import InodePool
from mailpipe.providers.local.memory import MemoryStore

__all__ = ["FolderStore", "MemoryStore", "check_key"]

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mailpipe.core.settings import Settings


class FolderStore(Notifier):
    """Objects as files under ``root``, written by ``durable.DurableWriter`` (fsync before anyone is told)."""

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True) -> None:
        super().__init__()
        self.root = Path(root).absolute()
        self._real_root = self.root.resolve()
        self._safe_dirs: set[Path] = set()
        self.fsync = fsync
        self._io = DurableWriter(self.root, fsync)

    @classmethod
    def from_url(cls, url: str, settings: Settings | None = None) -> FolderStore:
        """``file://./rel/dir`` (relative to cwd) or ``file:///abs/dir``."""
        parts = urlsplit(url)
        return cls(parts.netloc + parts.path, fsync=settings.fsync if settings else True)

    def _path(self, key: str) -> Path:
        """The file of ``key``; its directory must resolve inside the root (symlink guard, cached per dir)."""
        path = self.root.joinpath(*check_key(key))
        parent = path.parent
        if parent not in self._safe_dirs:
            if not parent.resolve().is_relative_to(self._real_root):
                raise InvalidKey(f"key escapes the store: {key!r}")
            if len(self._safe_dirs) > 10_000:
                self._safe_dirs.clear()
            self._safe_dirs.add(parent)
        return path

    def _read_path(self, key: str) -> Path:
        path = self._path(key)
        if path.is_symlink() and not path.resolve().is_relative_to(self._real_root):
            raise InvalidKey(f"key escapes the store: {key!r}")
        return path

    def get(self, key: str) -> bytes:
        path = self._read_path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise ObjectNotFound(key) from exc
        except OSError as exc:
            raise BackendUnavailable(f"read {key}: {errno.errorcode.get(exc.errno or 0, exc)}") from exc

    def exists(self, key: str) -> bool:
        try:
            return self._path(key).is_file()
        except OSError as exc:
            raise BackendUnavailable(f"stat {key}: {exc.strerror}") from exc

    def put(self, key: str, data: bytes, *, content_type: str = "", if_absent: bool = False) -> bool:
        return self.put_many([(key, data, content_type)], if_absent=if_absent)[0]

    def put_many(self, items: list[tuple[str, bytes, str]], *, if_absent: bool = False) -> list[bool]:
        """Write ``(key, data, content_type)`` items durably; listeners fire once every item is durable.

        ``if_absent``: create only (an intact object already there is kept; see durable.py), every item made
        durable by one journal commit; else each item replaces its key atomically. Returns, per item, whether
        this call wrote it. Raises InvalidKey, BackendUnavailable.
        """
        paths = [self._path(key) for key, _, _ in items]
        try:
            if if_absent:
                targets = [(p, data) for p, (_, data, _) in zip(paths, items, strict=True)]
                done = self._io.create_many(targets, _carriers([key for key, _, _ in items]))
            else:
                for path, (_, data, _) in zip(paths, items, strict=True):
                    self._io.replace(path, data)
                done = [True] * len(items)
        except OSError as exc:
            raise BackendUnavailable(f"write {items[0][0]}: {errno.errorcode.get(exc.errno or 0, exc)}") from exc
        # a message whose envelope this call (re)wrote is announced even if its .eml was already there intact:
        # a torn envelope repaired by the sender's retry (durable.py), else it would wait for a restart
        envelopes = {key.removesuffix(ENVELOPE_SUFFIX) for (key, _, _), w in zip(items, done, strict=True) if w}
        for (key, _, _), written in zip(items, done, strict=True):
            if written or key.removesuffix(RAW_SUFFIX) in envelopes:
                self.notify_created(key)
        return done

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys under ``prefix``, streamed (``os.scandir``: a folder of a million files is never one list)."""
        base = self.root.joinpath(*prefix.rpartition("/")[0].split("/")) if "/" in prefix else self.root
        rel = base.relative_to(self.root).as_posix()
        try:
            yield from self._walk(base, "" if rel == "." else rel + "/", prefix)
        except OSError as exc:
            raise BackendUnavailable(f"list {prefix}: {exc.strerror}") from exc

    def _walk(self, folder: Path, rel: str, prefix: str) -> Iterator[str]:
        try:
            entries = os.scandir(folder)
        except (FileNotFoundError, NotADirectoryError):
            return
        with entries:
            for entry in entries:
                key = rel + entry.name
                if entry.is_dir():  # a link to a folder is neither walked nor listed (as os.walk)
                    if not entry.is_symlink() and (prefix.startswith(key + "/") or key.startswith(prefix)):
                        yield from self._walk(Path(entry.path), key + "/", prefix)
                elif key.startswith(prefix) and not entry.name.startswith(TMP_PREFIX):
                    yield key

    def probe(self) -> None:
        """The root exists (created if need be) and takes a file (a read-only or full disk does not)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=self.root, prefix=TMP_PREFIX)
            os.close(fd)
            Path(name).unlink()
        except OSError as exc:
            raise BackendUnavailable(f"folder {self.root}: {exc.strerror or exc}") from exc

    def delete(self, key: str) -> bool:
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise BackendUnavailable(f"delete {key}: {errno.errorcode.get(exc.errno or 0, exc)}") from exc
        return True

    def restore_sidecar(self, key: str, sidecar_key: str) -> bool:
        """Rewrite ``sidecar_key`` from the copy the object ``key`` carries, if they differ (after a power cut
        the sidecar, which is not fsynced when its object carries it, can be empty). True if it was rewritten."""
        try:
            carried = os.getxattr(self._path(key), ENVELOPE_XATTR)
        except OSError:  # no copy (written without one, or no attributes here), or no object
            return False
        path = self._path(sidecar_key)
        try:
            if path.read_bytes() == carried:
                return False
        except OSError:
            pass
        self._io.replace(path, carried)
        return True

    def preallocate(self, *subdirs: str, count: int = 32) -> None:
        """Keep ``count`` unnamed files open in each of ``subdirs`` for new objects (inodes.InodePool)."""
        if self._io.unnamed:
            self._io.inodes = InodePool([self.root.joinpath(*s.split("/")) for s in subdirs], count)

    def remove_stale_temp(self, older_than: float = 60.0) -> int:
        """Delete temp files a killed writer left behind (where O_TMPFILE is missing); return how many."""
        removed, cutoff = 0, time.time() - older_than
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                path = Path(dirpath, name)
                with contextlib.suppress(OSError):
                    if name.startswith(TMP_PREFIX) and path.stat().st_mtime < cutoff:
                        path.unlink()
                        removed += 1
        return removed


def _carriers(keys: list[str]) -> dict[int, int]:
    """Envelope sidecar index -> index of its ``.eml`` in the same batch (the .eml carries the envelope)."""
    index = {key: i for i, key in enumerate(keys)}
    pairs = ((i, key.removesuffix(ENVELOPE_SUFFIX) + RAW_SUFFIX) for i, key in enumerate(keys))
    return {i: index[raw] for i, raw in pairs if keys[i].endswith(ENVELOPE_SUFFIX) and raw in index}
