"""The MIME tree over one buffer: header/body split, multipart boundaries found with ``bytes.find``.

No line loops over bodies: a part is a pair of offsets into the buffer; nothing is copied or decoded here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailpipe.core.mime.headers import content_type, split_fields

if TYPE_CHECKING:
    from mailpipe.core.model import Limits

_HEND = re.compile(rb"\n\r?\n")
MAX_DEPTH = 100  # hard cap whatever Limits says: the tree is built recursively (Python's stack)


@dataclass(slots=True)
class Part:
    """One MIME entity: parsed content headers plus the body span ``buf[start:end]``."""

    path: str
    fields: list[tuple[str, str]]
    ctype: str
    sub: str
    params: dict[str, str]
    disposition: str | None
    dparams: dict[str, str]
    cte: str
    start: int
    end: int
    children: list[Part] = field(default_factory=list)

    @property
    def mime(self) -> str:
        return f"{self.ctype}/{self.sub}"

    @property
    def filename(self) -> str | None:
        return self.dparams.get("filename") or self.params.get("name") or None

    def first(self, name: str) -> str | None:
        name = name.lower()
        return next((v for n, v in self.fields if n.lower() == name), None)


class Tree:
    """Builds the part tree under the limits; problems are collected as (part, kind, detail)."""

    def __init__(self, buf: bytes, limits: Limits, problems: list[tuple[str, str, str]]) -> None:
        self.buf, self.limits, self.problems = buf, limits, problems
        self.count = 0

    def part(self, start: int, end: int, path: str, depth: int, default: str = "text/plain") -> Part:
        hend, bstart = self._header_end(start, end, path)
        fields, probs = split_fields(self.buf[start:hend])
        self.problems.extend(
            (path, "charset_fallback" if p[:5] == "8-bit" else "malformed_header", p) for p in probs
        )
        fmap: dict[str, str] = {}
        for n, v in fields:
            fmap.setdefault(n.lower(), v)
        ctype, sub, params = content_type(fmap.get("content-type") or default)
        if not sub:  # RFC 2045 5.2: an invalid type is read as text/plain (a bare "multipart" as mixed)
            ctype, sub = ("multipart", "mixed") if ctype == "multipart" else ("text", "plain")
        disp, _, dparams = content_type(fmap.get("content-disposition"))
        cte = (fmap.get("content-transfer-encoding") or "").strip().lower()[:40]
        p = Part(path, fields, ctype, sub, params, disp or None, dparams, cte, bstart, end)
        self.count += 1
        if ctype == "multipart":
            self._children(p, depth)
        return p

    def _header_end(self, start: int, end: int, path: str) -> tuple[int, int]:
        buf = self.buf
        if buf.startswith(b"\n", start) or buf.startswith(b"\r\n", start):
            return start, buf.index(b"\n", start) + 1
        m = _HEND.search(buf, start, end)
        hend, bstart = (m.start() + 1, m.end()) if m else (end, end)
        if hend - start > self.limits.max_header_bytes:
            self.problems.append(
                (path, "limit_header_bytes", f"header block over {self.limits.max_header_bytes}")
            )
            hend = start + self.limits.max_header_bytes
        return hend, bstart

    def _children(self, p: Part, depth: int) -> None:
        boundary = p.params.get("boundary", "").encode("utf-8", "replace")
        if not boundary:
            self.problems.append((p.path, "no_boundary", "multipart without boundary; read as text/plain"))
            p.ctype, p.sub = "text", "plain"
            return
        if depth >= min(self.limits.max_depth, MAX_DEPTH):
            self.problems.append(
                (p.path, "limit_depth", f"nesting deeper than {min(self.limits.max_depth, MAX_DEPTH)}")
            )
            p.ctype, p.sub = "application", "octet-stream"
            return
        spans, closed = self._split(p.start, p.end, b"--" + boundary)
        if not spans:
            self.problems.append((p.path, "boundary_not_found", "no delimiter line; read as text/plain"))
            p.ctype, p.sub = "text", "plain"
            return
        if not closed:
            self.problems.append((p.path, "no_close_boundary", "closing delimiter missing"))
        default = "message/rfc822" if p.sub == "digest" else "text/plain"
        prefix = f"{p.path}." if p.path else ""
        for i, (s, e) in enumerate(spans, 1):
            if self.count >= self.limits.max_parts:
                self.problems.append((p.path, "limit_parts", f"more than {self.limits.max_parts} parts"))
                break
            p.children.append(self.part(s, e, f"{prefix}{i}", depth + 1, default))

    def _split(self, start: int, end: int, delim: bytes) -> tuple[list[tuple[int, int]], bool]:
        buf, cur, pos = self.buf, -1, start
        spans: list[tuple[int, int]] = []
        cap = self.limits.max_parts + 1
        while len(spans) < cap:
            i = buf.find(delim, pos, end)
            if i < 0:
                break
            pos = i + 1
            if i != start and buf[i - 1] != 0x0A:
                continue
            j = i + len(delim)
            close = buf.startswith(b"--", j)
            nl = buf.find(b"\n", j, end)
            line_end = end if nl < 0 else nl + 1
            if buf[j + 2 * close : line_end].strip():
                continue  # a longer boundary sharing this prefix, or text that merely starts with it
            if cur >= 0:
                spans.append((cur, _trim_eol(buf, cur, i)))
            if close:
                return spans, True
            cur = pos = line_end
        if cur >= 0:
            spans.append((cur, end))
        return spans, False


def _trim_eol(buf: bytes, cur: int, i: int) -> int:
    """The CRLF (or LF) before a delimiter belongs to the delimiter (RFC 2046 5.1.1)."""
    e = i
    if e > cur and buf[e - 1] == 0x0A:
        e -= 1
        if e > cur and buf[e - 1] == 0x0D:
            e -= 1
    return e


def _get(fields: list[tuple[str, str]], name: str) -> str | None:
    return next((v for n, v in fields if n.lower() == name), None)
