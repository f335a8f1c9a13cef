"""``bounce``: delivery status notifications (RFC 3464 ``message/delivery-status``) and feedback reports
(RFC 5965 ``message/feedback-report``) -> per-recipient action/status/diagnostic code and the original
Message-ID. ``bounce`` is true when a recipient failed or is delayed (core/routing/facts.py reads
``bounce.result.bounce``). Stdlib only."""

from __future__ import annotations

import re
from email.parser import HeaderParser
from typing import TYPE_CHECKING, Any

from mailpipe.core.enrich.contract import Context, Skip

if TYPE_CHECKING:
    from mailpipe.core.enrich.view import MessageView

FEEDBACK_FIELDS = (
    "feedback-type",
    "user-agent",
    "version",
    "original-mail-from",
    "original-rcpt-to",
    "arrival-date",
    "source-ip",
    "reported-domain",
)


def _blocks(data: bytes) -> list[dict[str, str]]:
    """An RFC 3464/5965 body: header blocks separated by blank lines -> lower-cased field dicts."""
    text = data.decode("utf-8", "replace").replace("\r\n", "\n")
    out = []
    for chunk in re.split(r"\n\s*\n", text):
        if chunk.strip():
            msg = HeaderParser().parsestr(chunk.strip() + "\n")
            out.append({k.lower(): " ".join(str(v).split()) for k, v in msg.items()})
    return out


def _typed(value: str | None) -> str | None:
    """``rfc822; bob@example.org`` -> ``bob@example.org``."""
    return value.partition(";")[2].strip() if value and ";" in value else value


class BounceEnricher:
    name = "bounce"
    version = "1"
    timeout = 10.0
    max_bytes = 5 * 1024 * 1024
    wants = frozenset({"attachments", "headers"})

    def run(self, view: MessageView, ctx: Context) -> dict[str, Any]:
        out: dict[str, Any] = {
            "bounce": False,
            "type": None,
            "recipients": [],
            "original_message_id": None,
            "feedback": None,
        }
        for part in view.parts:
            if part.content_type == "message/delivery-status":
                blocks = _blocks(part.data)
                out["type"] = "dsn"
                out["reporting_mta"] = _typed(blocks[0].get("reporting-mta")) if blocks else None
                out["recipients"] += [
                    _recipient(b) for b in blocks[1:] if "final-recipient" in b or "action" in b
                ]
            elif part.content_type == "message/feedback-report":
                fields = (_blocks(part.data) or [{}])[0]
                out["type"], out["feedback"] = "feedback", {k: fields.get(k) for k in FEEDBACK_FIELDS}
            elif part.content_type in ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers"):
                out["original_message_id"] = out["original_message_id"] or _message_id(part.data)
        if out["type"] is None:
            raise Skip("no delivery-status or feedback report")
        out["bounce"] = out["type"] == "dsn" and any(
            r["action"] in ("failed", "delayed") for r in out["recipients"]
        )
        return out


def _recipient(block: dict[str, str]) -> dict[str, Any]:
    return {
        "recipient": _typed(block.get("final-recipient")),
        "original_recipient": _typed(block.get("original-recipient")),
        "action": (block.get("action") or "").lower() or None,
        "status": block.get("status"),
        "diagnostic_code": _typed(block.get("diagnostic-code")),
        "remote_mta": _typed(block.get("remote-mta")),
    }


def _message_id(data: bytes) -> str | None:
    found = re.search(rb"(?im)^message-id:\s*(<[^>\r\n]+>)", data[:65536])
    return found.group(1).decode("ascii", "replace") if found else None
