"""Append-only journals of the local runner, kept in the folder store under ``local/``."""

from __future__ import annotations

import os
from collections import Counter
from typing import TYPE_CHECKING

from mailpipe.core.keys import id_from_raw_key
from mailpipe.providers.local.store import FolderStore

if TYPE_CHECKING:
    from mailpipe.core.ports import ObjectStore

DONE_LOG = "local/done.log"
ATTEMPTS_LOG = "local/attempts.log"


class _AppendLog:
    """One line per event in ``<store>/<name>`` (a folder store only; memory:// has no restart to recover from).

    Appends are single O_APPEND writes (atomic between processes) without fsync: a line lost in a crash only
    means one idempotent re-run. One file instead of a marker object per message saves an inode allocation.
    """

    def __init__(self, store: ObjectStore, name: str) -> None:
        self._path = store.root / name if isinstance(store, FolderStore) else None
        self._fd: int | None = None

    def _append(self, line: str) -> None:
        if self._path is None:
            return
        if self._fd is None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(self._fd, f"{line}\n".encode())

    def _lines(self) -> list[str] | None:
        if self._path is None:
            return None
        try:
            return self._path.read_text().splitlines()
        except FileNotFoundError:
            return []


class DoneLog(_AppendLog):
    """Ids of finished messages, one line each in ``<store>/local/done.log``."""

    def __init__(self, store: ObjectStore) -> None:
        super().__init__(store, DONE_LOG)

    def add(self, key: str) -> None:
        self._append(str(id_from_raw_key(key)))

    def ids(self) -> set[str] | None:
        """The finished ids; None without a log (then parsed/ objects count as finished)."""
        lines = self._lines()
        return None if lines is None else {line.strip() for line in lines if line.strip()}


class AttemptLog(_AppendLog):
    """``b <id>`` before and ``e <id>`` after each processing attempt: a begin without its end is a worker that
    died on that message (kill -9, out of memory, a crashing native library)."""

    def __init__(self, store: ObjectStore) -> None:
        super().__init__(store, ATTEMPTS_LOG)

    def record(self, key: str, mark: str) -> None:
        self._append(f"{mark} {id_from_raw_key(key)}")

    def crashes(self) -> Counter[str]:
        """Per id, the attempts that never ended."""
        count: Counter[str] = Counter()
        for line in self._lines() or ():
            mark, _, mid = line.partition(" ")
            count[mid] += 1 if mark == "b" else -1 if mark == "e" else 0
        return count
