"""Local stores: ``FolderStore`` (file://DIR, the embedded default) and ``MemoryStore`` (memory://NAME).

Both raise the object-created event themselves for ``.eml`` keys (the stand-in for a bucket notification):
``add_listener(callback)`` registers a callable that gets the key after the object is durably visible.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from core.errors import BackendUnavailable, InvalidKey, ObjectNotFound
from providers.local.base import TMP_PREFIX, Notifier, check_key
from providers.local.durable import DurableWriter
from providers.local.memory import MemoryStore
from providers.local.spares import SPARE_PREFIX, SparePool

__all__ = ["FolderStore", "MemoryStore", "check_key"]

if TYPE_CHECKING:
    from collections.abc import Iterator

    from core.settings import Settings


_SEQ = itertools.count()  # temp names: pid + sequence, unique without a random syscall


class FolderStore(Notifier):
    """Objects as files under ``root``. Writes: temp file, fsync, rename/link, fsync of the directory."""

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = True) -> None:
        super().__init__()
        self.root = Path(root).absolute()
        self._real_root = self.root.resolve()
        self._safe_dirs: set[Path] = set()
        self.fsync = fsync
        self._io = DurableWriter(fsync)

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
        """Write ``(key, data, content_type)`` items durably, made visible in order, one sync per directory.

        Every temp file is written and fsynced, then linked in order, then the directories are synced (group
        commit); listeners fire after that. If the directory sync fails the new names are removed again.
        Raises InvalidKey, BackendUnavailable.
        """
        paths = [self._path(key) for key, _, _ in items]
        tmps = [p.with_name(f"{TMP_PREFIX}{p.name}.{os.getpid()}.{next(_SEQ)}") for p in paths]
        todo = [not (if_absent and p.exists()) for p in paths]
        try:
            for path, go in zip(paths, todo, strict=True):
                if go:
                    self._io.mkdirs(path.parent)
            self._io.write_temps([(t, d) for (_, d, _), t, go in zip(items, tmps, todo, strict=True) if go])
            done = [
                go and self._io.link(tmp, path, if_absent)
                for path, tmp, go in zip(paths, tmps, todo, strict=True)
            ]
            self._io.sync_dirs([p for p, d in zip(paths, done, strict=True) if d])
        except OSError as exc:
            raise BackendUnavailable(
                f"write {items[0][0]}: {errno.errorcode.get(exc.errno or 0, exc)}"
            ) from exc
        finally:
            for tmp in tmps:
                with contextlib.suppress(OSError):
                    tmp.unlink(missing_ok=True)
        for (key, _, _), written in zip(items, done, strict=True):
            if written:
                self.notify_created(key)
        return done

    def list(self, prefix: str = "") -> Iterator[str]:
        base = self.root.joinpath(*prefix.rpartition("/")[0].split("/")) if "/" in prefix else self.root
        try:
            for dirpath, _dirs, files in os.walk(base):
                rel = Path(dirpath).relative_to(self.root).as_posix()
                for name in files:
                    key = name if rel == "." else f"{rel}/{name}"
                    if key.startswith(prefix) and not name.startswith(TMP_PREFIX):
                        yield key
        except OSError as exc:
            raise BackendUnavailable(f"list {prefix}: {exc.strerror}") from exc

    def enable_spares(self, *subdirs: str, count: int = 32) -> None:
        """Keep ``count`` pre-created empty files in each of ``subdirs`` (the hot write path, SparePool)."""
        self._io.spares = SparePool([self.root.joinpath(*s.split("/")) for s in subdirs], count)

    def remove_stale_temp(self, older_than: float = 60.0) -> int:
        """Delete temp files a killed writer left behind and spares of dead processes; return how many."""
        removed, cutoff = 0, time.time() - older_than
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                path = Path(dirpath, name)
                spare = name.startswith(SPARE_PREFIX)
                with contextlib.suppress(OSError):
                    if (spare and not _alive(name)) or (
                        not spare and name.startswith(TMP_PREFIX) and path.stat().st_mtime < cutoff
                    ):
                        path.unlink()
                        removed += 1
        return removed


def _alive(spare_name: str) -> bool:
    try:
        os.kill(int(spare_name[len(SPARE_PREFIX) :].partition(".")[0]), 0)
    except (ValueError, ProcessLookupError):
        return False
    return True  # (PermissionError: alive, someone else's; the caller skips it)
