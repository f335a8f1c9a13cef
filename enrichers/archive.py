"""Bounded unpacking of zip archives and winmail.dat (recursively) for scanners: a bomb costs at most the
limits.

Limits are checked before any byte is inflated (declared sizes) and again while reading (a lying header cannot
make a read exceed the per-entry cap).
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator


@dataclass(frozen=True, slots=True)
class ZipLimits:
    max_entries: int = 1000  # per archive
    max_total_bytes: int = 100 * 1024 * 1024  # inflated, all archives of one attachment together
    max_entry_bytes: int = 25 * 1024 * 1024
    max_ratio: float = 100.0  # inflated/compressed per entry
    max_depth: int = 3  # zip inside zip inside zip


@dataclass(frozen=True, slots=True)
class Item:
    """One scannable object: ``path`` like ``invoice.zip/docs/a.exe``; ``problem`` set if not read."""

    path: str
    data: bytes
    problem: str | None = None


TNEF_MAGIC = b"\x78\x9f\x3e\x22"


def is_zip(data: bytes) -> bool:
    return data[:4] in (b"PK\x03\x04", b"PK\x05\x06")


def expand(path: str, data: bytes, limits: ZipLimits = ZipLimits()) -> Iterator[Item]:
    """Yield ``data`` itself and, if it is a zip, every entry within the limits (depth-first)."""
    budget = [limits.max_total_bytes]
    yield from _expand(path, data, limits, 0, budget)


def _expand(path: str, data: bytes, limits: ZipLimits, depth: int, budget: list[int]) -> Iterator[Item]:
    yield Item(path, data)
    if data[:4] == TNEF_MAGIC and depth < limits.max_depth:
        for name, body in _tnef_files(data, limits.max_entries):
            if len(body) <= min(limits.max_entry_bytes, budget[0]):
                budget[0] -= len(body)
                yield from _expand(f"{path}/{name}", body, limits, depth + 1, budget)
    elif is_zip(data) and depth >= limits.max_depth:
        yield Item(path, b"", "zip_depth_limit")
    elif is_zip(data):
        for child, body, problem in _zip_entries(path, data, limits, budget):
            if problem:
                yield Item(child, b"", problem)
            else:
                yield from _expand(child, body, limits, depth + 1, budget)


def _zip_entries(
    path: str, data: bytes, limits: ZipLimits, budget: list[int]
) -> Iterator[tuple[str, bytes, str | None]]:
    """(entry path, inflated bytes, problem) for each file entry of one archive, within the limits."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = [i for i in archive.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        yield path, b"", f"bad_zip: {exc}"[:200]
        return
    if len(infos) > limits.max_entries:
        yield path, b"", f"zip_entries_limit: {len(infos)} > {limits.max_entries}"
    for info in infos[: limits.max_entries]:
        child = f"{path}/{info.filename}"
        if problem := _check(info, limits, budget[0]):
            yield child, b"", problem
            continue
        try:
            with archive.open(info) as fh:
                body = fh.read(limits.max_entry_bytes + 1)  # a lying header cannot make us read more
        except (RuntimeError, zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError) as exc:
            yield child, b"", ("encrypted" if "encrypted" in str(exc) else "unreadable") + f": {exc}"[:200]
            continue
        if len(body) > min(limits.max_entry_bytes, budget[0]):
            yield (
                child,
                b"",
                "zip_entry_size_limit" if len(body) > limits.max_entry_bytes else "zip_total_size_limit",
            )
            continue
        budget[0] -= len(body)
        yield child, body, None


def _tnef_files(data: bytes, max_entries: int) -> list[tuple[str, bytes]]:
    """The files inside an Outlook winmail.dat, when tnefparse (the ``messy`` extra) is installed."""
    try:
        from tnefparse import TNEF

        attachments = TNEF(data, do_checksum=False).attachments[:max_entries]
        names = [a.long_filename() or a.name or "attachment" for a in attachments]
        return [(_str(n), a.data or b"") for n, a in zip(names, attachments, strict=True)]
    except Exception:  # not installed, or a broken stream: the container itself was still scanned
        return []


def _str(name: str | bytes) -> str:
    return name.decode("utf-8", "replace").rstrip("\x00") if isinstance(name, bytes) else name.rstrip("\x00")


def _check(info: zipfile.ZipInfo, limits: ZipLimits, remaining: int) -> str | None:
    if info.flag_bits & 0x1:
        return "encrypted"
    if info.file_size > limits.max_entry_bytes:
        return f"zip_entry_size_limit: {info.file_size}"
    if info.file_size > remaining:
        return "zip_total_size_limit"
    if info.file_size > 1024 and info.file_size / max(info.compress_size, 1) > limits.max_ratio:
        return f"zip_ratio_limit: {info.file_size / max(info.compress_size, 1):.0f}"
    return None
