"""RFC 5322 address lists, leniently: groups flattened, comments as fallback names, RFC 2047 names decoded.

One regex tokenizer pass (linear time, no backtracking) plus a small state machine over the tokens.
"""

from __future__ import annotations

import re

from mailpipe.core.mime.encodings import decode_words
from mailpipe.core.model import Address

_TOKEN = re.compile(
    r"""(?P<q>"(?:[^"\\]|\\.)*"?)|(?P<a><[^<>]*>?)|(?P<c>[()])|(?P<s>[,;:])|(?P<w>[ \t\r\n]+)"""
    r"""|(?P<t>[^\s"<>(),;:\\]+|\\.?|>)""",
    re.S,
)
_COMMENT = re.compile(r"\(([^()]*)\)")
_UNQUOTE = re.compile(r"\\(.)", re.S)
_SPECIALS = '"():;\\'
MAX_ADDRESSES = 1000
MAX_CHARS = 256 * 1024  # ~2 us per token: bounds the worst case of a hostile megabyte header


class _Box:
    __slots__ = ("angle", "comment", "words")

    def __init__(self) -> None:
        self.words: list[str] = []
        self.comment: list[str] = []
        self.angle: str | None = None

    def build(self) -> Address | None:
        words = " ".join("".join(self.words).split())
        comment = " ".join(" ".join(self.comment).split()) or None
        if self.angle is not None:
            addr = _clean_addr(self.angle)
            name = f"{words} ({comment})" if words and comment else words or comment
            if not addr and not name:
                return None
            return Address(_name(name), addr or None)
        if not words:
            return Address(_name(comment), None) if comment else None
        if "@" in words:
            return Address(_name(comment), _clean_addr(words))
        return Address(_name(words), None)


def _clean_addr(text: str) -> str:
    if "(" in text:
        text = _COMMENT.sub("", text)
    text = "".join(text.split())
    if text.startswith("@") and ":" in text:  # obsolete source route: <@a,@b:user@host>
        text = text.rsplit(":", 1)[1]
    return text


def _name(text: str | None) -> str | None:
    if not text:
        return None
    return decode_words(text).strip() or None


def _simple(value: str) -> list[Address] | None:
    """Fast path for the common ``Name <a@b>, c@d`` lists (no quotes, comments, groups); None otherwise."""
    out: list[Address] = []
    for raw in value.split(",", MAX_ADDRESSES)[:MAX_ADDRESSES]:
        item = raw.strip()
        lt = item.find("<")
        if lt < 0:
            if not item:
                continue
            if "@" not in item or ">" in item or len(item.split()) != 1:
                return None
            out.append(Address(None, item))
            continue
        if not item.endswith(">") or item.count("<") != 1 or item.count(">") != 1:
            return None
        name = " ".join(item[:lt].split())
        addr = "".join(item[lt + 1 : -1].split())
        if name or addr:
            out.append(Address(_name(name) if "=?" in name else name or None, addr or None))
    return out


def parse_addresses(value: str | None) -> list[Address]:
    """Every mailbox in an address-list header, in order; never raises."""
    if not value:
        return []
    value = value[:MAX_CHARS]
    if not any(c in value for c in _SPECIALS) and (fast := _simple(value)) is not None:
        return fast
    out: list[Address] = []
    box, depth, cstart = _Box(), 0, 0
    for m in _TOKEN.finditer(value):
        kind, tok = m.lastgroup, m.group()
        if depth:
            depth += 1 if tok == "(" else -1 if tok == ")" else 0
            if not depth:
                box.comment.append(_UNQUOTE.sub(r"\1", value[cstart : m.start()]))
        elif kind == "c":
            depth, cstart = (1, m.end()) if tok == "(" else (0, 0)
        elif kind == "s":
            box = _special(tok, box, out)
            if len(out) >= MAX_ADDRESSES:
                break
        else:
            box = _word(kind, tok, box, out)
    if depth:
        box.comment.append(value[cstart:])
    _emit(out, box)
    return out


def _special(tok: str, box: _Box, out: list[Address]) -> _Box:
    """``,`` / ``;`` end a mailbox; ``:`` opens a group (name dropped) unless it is inside an address."""
    if tok == ":":
        if box.angle is None and "@" not in "".join(box.words):
            return _Box()
        box.words.append(tok)
        return box
    _emit(out, box)
    return _Box()


def _word(kind: str | None, tok: str, box: _Box, out: list[Address]) -> _Box:
    if kind == "q":
        body = tok[1:-1] if len(tok) > 1 and tok.endswith('"') else tok[1:]
        box.words.append(_UNQUOTE.sub(r"\1", body) if "\\" in body else body)
    elif kind == "a":
        box.angle = tok[1:-1] if tok.endswith(">") else tok[1:]
        box.comment.extend(_UNQUOTE.sub(r"\1", c) for c in _COMMENT.findall(box.angle))
    elif kind == "w":
        if box.words:
            box.words.append(" ")
    elif box.angle is None and "@" in tok and box.words[-1:] == [" "] and "@" in "".join(box.words):
        _emit(out, box)  # two bare addresses separated only by whitespace (a missing comma)
        box = _Box()
        box.words.append(tok)
    else:
        box.words.append(tok)
    return box


def _emit(out: list[Address], box: _Box) -> None:
    addr = box.build()
    if addr is not None:
        out.append(addr)
