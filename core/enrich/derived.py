"""Derived attachments: files an enricher finds inside the message (winmail.dat contents, uuencoded blocks)
and hands back as bytes, so the pipeline stores them next to the real attachments.

An enricher calls ``ctx.derive(parent, filename, content_type, data)``; it gets the entry to list in its result
(``key``, ``filename``, ``content_type``, ``size``, ``sha256``, ``derived_from``) or None when the message's
budget (``DerivedLimits``) is spent, and then reports ``"truncated": ctx.truncated``. The bytes are kept only
when the step ends ``ok``: a timed-out or failed step never leaves a file that no result lists.
"""

from __future__ import annotations

import functools
import hashlib
import mimetypes
import threading
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from mailpipe.core.errors import ConfigError
from mailpipe.core.keys import attachment_index, derived_key

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mailpipe.core.enrich.view import Part

CONFIG_SECTION = "derived"  # the enrichment-config section read here (not an enricher name)


def guess_type(filename: str | None) -> str:
    """Content type from the file name, from Python's built-in table only: the host's /etc/mime.types would
    make the same message give different JSON on Debian and on a Lambda image."""
    return _builtin_types().guess_type(filename or "", strict=False)[0] or "application/octet-stream"


@functools.cache
def _builtin_types() -> mimetypes.MimeTypes:
    return mimetypes.MimeTypes()


@dataclass(frozen=True, slots=True)
class DerivedLimits:
    """Per-message caps on derived files; what is over a cap is not stored and the step reports truncated."""

    max_files: int = 100
    max_bytes: int = 100 * 1024 * 1024  # all derived files of one message together
    max_file_bytes: int = 25 * 1024 * 1024

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> DerivedLimits:
        """``config["derived"]`` (``{"max_files": 10}``) over the defaults. Raises ConfigError."""
        section = dict(config.get(CONFIG_SECTION) or {})
        unknown = set(section) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"enrichment config derived: unknown keys {sorted(unknown)}")
        try:
            return cls(**{k: int(v) for k, v in section.items()})
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"enrichment config derived: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Derived:
    """One derived file: where it goes (``key``), its bytes, and the step that found it."""

    key: str
    filename: str | None
    content_type: str
    data: bytes
    derived_from: str | None  # the parent attachment's key; None for the text body
    enricher: str


class Derivations:
    """The derived files of one message across its enrichers, within ``limits``. Keys are numbered per parent
    in the order the steps run (same config, same keys). Without a message id nothing is kept (key None)."""

    def __init__(self, mid: str | None, limits: DerivedLimits) -> None:
        self.mid, self.limits = mid, limits
        self.files: list[Derived] = []
        self.count = 0  # entries listed so far, kept or not (a message without id still has a cap)
        self.size = 0
        self._lock = threading.Lock()

    def stage(self, enricher: str) -> Stage:
        """A pending batch for one step; ``commit`` it when the step ended ok."""
        return Stage(self, enricher)

    def commit(self, stage: Stage) -> None:
        with self._lock:
            self.files.extend(stage.files)
            self.count += stage.count
            self.size += stage.size


class Stage:
    """The files one step derived so far. Used from the step's worker thread only."""

    def __init__(self, owner: Derivations, enricher: str) -> None:
        self.owner, self.enricher = owner, enricher
        self.files: list[Derived] = []
        self.count = self.size = 0
        self.truncated = False

    def add(
        self, parent: Part | None, filename: str | None, content_type: str, data: bytes
    ) -> dict[str, Any] | None:
        """Record one file; return its result entry, or None (and set ``truncated``) when over a cap."""
        owner, limits = self.owner, self.owner.limits
        if (
            owner.count + self.count >= limits.max_files
            or len(data) > limits.max_file_bytes
            or owner.size + self.size + len(data) > limits.max_bytes
        ):
            self.truncated = True
            return None
        self.count, self.size = self.count + 1, self.size + len(data)
        parent_key = parent.key if parent is not None else None
        index = attachment_index(parent_key)
        key = None
        if owner.mid is not None and (parent is None or index is not None):
            siblings = [d for d in owner.files + self.files if d.derived_from == parent_key]
            key = derived_key(owner.mid, index, len(siblings) + 1, filename)
            self.files.append(Derived(key, filename, content_type, data, parent_key, self.enricher))
        return {
            "key": key,
            "filename": filename,
            "content_type": content_type,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "derived_from": parent_key,
        }
