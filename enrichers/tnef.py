"""``tnef``: Outlook's ``winmail.dat`` (application/ms-tnef) unpacked with tnefparse into its real attachments
(name, size, sha256, and the bytes' content type guessed from the name) and its body (text, or HTML)."""

from __future__ import annotations

import hashlib
import mimetypes
from typing import TYPE_CHECKING, Any

from core.enrich import Context, Skip

if TYPE_CHECKING:
    from core.enrich_view import MessageView, Part


def is_tnef(part: Part) -> bool:
    return (
        part.content_type in ("application/ms-tnef", "application/vnd.ms-tnef")
        or (part.filename or "").lower() == "winmail.dat"
        or part.data[:4] == b"\x78\x9f\x3e\x22"
    )


class TnefEnricher:
    name = "tnef"
    requires = ("tnefparse",)
    version = "1"
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
            out.append(
                {
                    "object": part.path,
                    "error": None,
                    "body": _text(tnef.body),
                    "html": _text(tnef.htmlbody),
                    "attachments": [_attachment(a) for a in tnef.attachments],
                }
            )
        return {"tnef": out}


def _attachment(att: Any) -> dict[str, Any]:
    name = att.long_filename() or att.name or None
    name = name.decode("utf-8", "replace") if isinstance(name, bytes) else name
    data = att.data or b""
    return {
        "filename": name,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "content_type": (mimetypes.guess_type(name or "")[0] or "application/octet-stream"),
    }


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return text.rstrip("\x00")
