"""Header block splitting and structured field values (Content-Type params incl. RFC 2231, msg-ids).

Works on ``str`` values that ``split_fields`` produced from bytes: one regex pass over the whole block.
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import unquote_to_bytes

from mailpipe.core.mime.charsets import decode, decode_header_bytes
from mailpipe.core.mime.encodings import decode_words

_FOLD = re.compile(r"[ \t]*\r?\n[ \t]+|\r(?=\n)")
_OPEN_WORD = re.compile(r"=\?[^?\s]+\?[QqBb]\?[^?\s]*\Z")
# Possessive quantifiers (3.11+) keep these linear on megabyte-long lines.
_FIELDS = re.compile(r"^([^\s:][^:\n]*+):[ \t]*+([^\n]*+(?:\n[ \t][^\n]*+)*+)", re.M)
_NOT_FIELD = re.compile(r"^[^\s:][^:\n]*+$", re.M)
# An unquoted value runs to ";" or to whitespace before the next "name=" (mailers that forget the ";").
_PARAM = re.compile(
    r"""\s*;?\s*([^=;\s"]*)\s*(?:=\s*("(?:[^"\\]|\\.)*"?|[^;\s]*+(?:\s++(?![^\s;="]++\s*=)[^;\s]*+)*+))?""",
    re.S,
)
_SECTION = re.compile(r"^(.*?)\*(\d+)(\*?)$|^(.*?)(\*)$")
_CT_COMMENT = re.compile(r'("(?:[^"\\]|\\.)*")|\([^()]*\)')
_PARAM_SPECIALS = ('"', "*", "=?", "\\", "\n")
_ESCAPED = re.compile(r"\\(.)", re.S)
_MSGID = re.compile(r"<([^<>]*)>")
_RAW_BYTE = re.compile("[\udc80-\udcff]")
_TYPE = re.compile(r"\s*([^/;\s]+)\s*(?:/\s*([^;\s]*))?")


def split_fields(block: bytes) -> tuple[list[tuple[str, str]], list[str]]:
    """Split a header block into (name, raw value) pairs in order, values unfolded and stripped.

    Lines that are not fields (no colon) are reported as problems and skipped. 8-bit bytes are read as UTF-8
    (RFC 6532), falling back to windows-1252 per field.
    """
    problems: list[str] = []
    try:
        return _fields_of(block.decode("utf-8"), problems), problems
    except UnicodeError:
        pass
    # Invalid bytes ride along as lone surrogates; only the fields that carry some are re-decoded.
    fields = _fields_of(block.decode("utf-8", "surrogateescape"), problems)
    for i, (name, value) in enumerate(fields):
        if _RAW_BYTE.search(name) or _RAW_BYTE.search(value):
            name, _ = decode_header_bytes(name.encode("utf-8", "surrogateescape"))
            value, fallback = decode_header_bytes(value.encode("utf-8", "surrogateescape"))
            fields[i] = (name, value)
            problems.append(fallback or "8-bit header is not utf-8; decoded as windows-1252")
    return fields, problems


def _fields_of(text: str, problems: list[str]) -> list[tuple[str, str]]:
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    out = [(n.rstrip(), _unfold(v) if "\n" in v else v.strip()) for n, v in _FIELDS.findall(text)]
    bad = _NOT_FIELD.search(text)
    if bad is not None:
        problems.append(f"not a header field: {bad.group()[:40]!r}")
    return out


def _unfold(value: str) -> str:
    """Folding whitespace becomes one space, except inside an encoded word split by a fold, where it goes."""
    if "\n" not in value:
        return value.strip()
    if "=?" not in value:
        return _FOLD.sub(" ", value).strip()
    pieces = _FOLD.split(value)
    out = [pieces[0]]
    for piece in pieces[1:]:
        out.append("" if _OPEN_WORD.search(out[-1]) else " ")
        out.append(piece)
    return "".join(out).strip()


def unstructured(value: str, problems: list[str] | None = None) -> str:
    """An unstructured value (Subject, ...): RFC 2047 decoded; runs of folding whitespace kept as given."""
    return decode_words(value, problems)


def content_type(value: str | None) -> tuple[str, str, dict[str, str]]:
    """Parse Content-Type-like values. Returns (type, subtype, params) lowercased type/subtype and names;
    ("", "", {}) when absent or unparseable. Params are RFC 2231 and RFC 2047 decoded."""
    if not value:
        return "", "", {}
    if len(value) > 200:
        return _content_type(value)
    ctype, sub, found = _cached_content_type(value)  # parts of one mailer repeat the same values
    return ctype, sub, dict(found)


@lru_cache(maxsize=2048)
def _cached_content_type(value: str) -> tuple[str, str, dict[str, str]]:
    return _content_type(value)


def _content_type(value: str) -> tuple[str, str, dict[str, str]]:
    if "(" in value:
        value = _CT_COMMENT.sub(lambda m: m.group(1) or " ", value)
    m = _TYPE.match(value)
    if m is None:
        return "", "", params(value)
    ctype = m.group(1).lower().strip("\"'")
    sub = (m.group(2) or "").lower().strip("\"'")
    return ctype, sub, params(value[m.end() :])


def params(text: str) -> dict[str, str]:
    """``; name=value`` parameters, RFC 2231 continuations and charsets joined and decoded."""
    if not any(c in text for c in _PARAM_SPECIALS) and text.count("=") <= text.count(";"):
        return _simple_params(text)
    plain: dict[str, str] = {}
    sections: dict[str, list[tuple[int, str, bool]]] = {}
    for m in _PARAM.finditer(text):
        if not m.group(1):
            continue
        if m.group(2) is None:
            continue
        name, val = m.group(1).lower(), m.group(2).strip()
        if not val:  # "name=" with nothing: no value to keep (a quoted "" is kept)
            continue
        if val.startswith('"'):
            val = val[1:-1] if val.endswith('"') and len(val) > 1 else val[1:]
            val = _ESCAPED.sub(r"\1", val) if "\\" in val else val
        s = _SECTION.match(name) if "*" in name else None
        if s is not None and not (s.group(1) or s.group(4)):
            continue
        if s is None:
            plain.setdefault(name, val)
        elif s.group(1) is not None:
            sections.setdefault(s.group(1), []).append((int(s.group(2)[:6]), val, bool(s.group(3))))
        else:
            sections.setdefault(s.group(4), []).append((0, val, True))
        if len(plain) + len(sections) > 64:
            break
    for name, parts in sections.items():
        plain[name] = _join_2231(sorted(parts, key=lambda p: p[0]))
    return {k: decode_words(v) if "=?" in v else v for k, v in plain.items()}


def _simple_params(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in text.split(";")[:64]:
        name, eq, val = item.partition("=")
        name = name.strip().lower()
        val = val.strip()
        if eq and name and val and " " not in name and "\t" not in name:
            out.setdefault(name, val)
    return out


def _join_2231(parts: list[tuple[int, str, bool]]) -> str:
    charset = ""
    if parts and parts[0][2] and parts[0][1].count("'") >= 2:
        charset, _lang, first = parts[0][1].split("'", 2)
        parts = [(0, first, True), *parts[1:]]
    raw = b"".join(unquote_to_bytes(v) if enc else v.encode("utf-8") for _, v, enc in parts)
    return decode(raw, charset or "utf-8")[0]


def msg_ids(value: str | None) -> list[str]:
    """Message ids without angle brackets, in order; bare tokens when no brackets are used."""
    if not value:
        return []
    ids = [i.strip() for i in _MSGID.findall(value)]
    if not ids:
        ids = [t.strip("<>") for t in value.replace(",", " ").split()]
    return [i for i in ids if i]
