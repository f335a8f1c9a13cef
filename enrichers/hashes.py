"""``attachment_hashes``: md5, sha1 and sha256 of every attachment and of every zip entry (within the zip-bomb
limits), the identifiers threat-intelligence services are queried with. Stdlib only."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from mailpipe.core.enrich.contract import Context, Skip
from mailpipe.enrichers.archive import ZipLimits, expand

if TYPE_CHECKING:
    from mailpipe.core.enrich.view import MessageView


class AttachmentHashesEnricher:
    name = "attachment_hashes"
    version = "1"
    wants = frozenset({"attachments"})
    timeout = 30.0
    max_bytes = 100 * 1024 * 1024

    def run(self, view: MessageView, ctx: Context) -> dict[str, Any]:
        limits = ZipLimits(**(ctx.config.get("zip") or {}))
        out = []
        for part in view.parts:
            label = f"{part.path} {part.filename}".strip() if part.filename else part.path
            for item in expand(label, part.data[: self.max_bytes], limits):
                if item.problem is None:
                    out.append(
                        {
                            "object": item.path,
                            "size": len(item.data),
                            **{
                                alg: hashlib.new(alg, item.data).hexdigest()
                                for alg in ("md5", "sha1", "sha256")
                            },
                        }
                    )
        if not out:
            raise Skip("no attachment")
        return {"files": out}
