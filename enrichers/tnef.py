"""``tnef``: Outlook's ``winmail.dat`` (application/ms-tnef) unpacked with tnefparse into its real attachments and
its body. The attachments (and an RTF body, decompressed with compressed-rtf) become derived attachments, stored
by the pipeline under ``att/<id>/<parent>.<n>-<name>`` (core/enrich/derived.py); the text and HTML bodies land in
the result as ``body_text`` / ``body_html`` (at most ``MAX_BODY`` characters each, else ``truncated``)."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

from mailpipe.core.enrich.contract import Context, Skip
from mailpipe.core.enrich.derived import guess_type

if TYPE_CHECKING:
    from mailpipe.core.enrich.view import MessageView, Part

MAX_BODY = 1_000_000  # characters of body_text / body_html kept in the JSON
MAX_RTF_COMPRESSED = 2 * 1024 * 1024  # compressed-rtf decodes in pure Python, byte by byte: bound its time


def is_tnef(part: Part) -> bool:
    return (
        part.content_type in ("application/ms-tnef", "application/vnd.ms-tnef")
        or (part.filename or "").lower() == "winmail.dat"
        or part.data[:4] == b"\x78\x9f\x3e\x22"
    )


class TnefEnricher:
    name = "tnef"
    requires = ("tnefparse",)
    version = "2"
    wants = frozenset({"attachments"})
    timeout = 30.0
    max_bytes = 50 * 1024 * 1024

    def run(self, view: MessageView, ctx: Context) -> dict[str, Any]:
        parts = [p for p in view.parts if is_tnef(p) and len(p.data) <= self.max_bytes]
        if not parts:
            raise Skip("no winmail.dat")
        from tnefparse import TNEF

        out = []
        for part in parts:
            try:
                tnef = TNEF(part.data, do_checksum=False)
            except Exception as exc:  # tnefparse raises ValueError/IndexError/struct.error on broken files
                out.append({"object": part.path, "error": f"{type(exc).__name__}: {exc}"[:200]})
                continue
            out.append(_unpack(part, tnef, ctx))
        truncated = ctx.truncated or any(o.get("body_truncated") for o in out)
        return {"tnef": out, "truncated": truncated}


def _unpack(part: Part, tnef: Any, ctx: Context) -> dict[str, Any]:
    text, html = _text(tnef.body, tnef.codepage), _text(tnef.htmlbody, tnef.codepage)
    rtf = _rtf(getattr(tnef, "_rtfbody", None))
    files = []
    for att in tnef.attachments:
        name = _name(att)
        ctype = guess_type(name)
        entry = ctx.derive(part, name, ctype, bytes(att.data or b""))
        if entry is not None:
            files.append(entry)
    return {
        "object": part.path,
        "error": None,
        "body_text": text[:MAX_BODY] if text is not None else None,
        "body_html": html[:MAX_BODY] if html is not None else None,
        "body_rtf": ctx.derive(part, "body.rtf", "application/rtf", rtf) if rtf else None,
        "body_truncated": max(len(text or ""), len(html or "")) > MAX_BODY,
        "attachments": files,
    }


def _name(att: Any) -> str | None:
    try:
        name = att.long_filename() or att.name or None
    except (UnicodeDecodeError, AttributeError):  # a name in an undeclared codepage
        name = att._name or None
    return (name.decode("utf-8", "replace") if isinstance(name, bytes) else name or "").rstrip("\x00") or None


def _rtf(data: bytes | None) -> bytes | None:
    """The decompressed RTF body (MS-OXRTFCP), or None when absent, broken or over the budget."""
    if not data or len(data) < 16 or len(data) > MAX_RTF_COMPRESSED:
        return None
    try:
        from compressed_rtf import decompress
    except ImportError:  # optional part of the messy extra: the text/HTML bodies still work
        return None
    (raw_size,) = struct.unpack_from("<I", data, 4)
    try:
        rtf = bytes(decompress(data + b"\x00"))
    except Exception:  # compressed-rtf raises bare Exception on a bad CRC or header
        return None
    return rtf[:raw_size] if raw_size else rtf


def _text(value: Any, codepage: str | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):  # attBody is in the stream's OEM codepage (attOemCodepage), else assume UTF-8
        try:
            value = value.decode(codepage or "utf-8", "replace")
        except LookupError:
            value = value.decode("utf-8", "replace")
    return str(value).rstrip("\x00")
