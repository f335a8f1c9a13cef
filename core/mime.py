"""MIME parsing entry point: raw RFC 5322 bytes -> ParseResult. Never raises (thin first version)."""

from __future__ import annotations

import hashlib
import re

from core.keys import message_id
from core.model import Defect, Envelope, Header, Limits, ParsedMessage, ParseResult

_FIELD = re.compile(rb"^([^:\s]+)[ \t]*:(.*(?:\r?\n[ \t].*)*)", re.M)


def parse(
    raw: bytes, *, limits: Limits = Limits(), envelope: Envelope | None = None, mid: str | None = None
) -> ParseResult:
    """Parse ``raw``; never raises. Problems become ``defects``."""
    mid = mid or message_id(raw, envelope)
    end = raw.find(b"\n\n")
    block = raw if end < 0 else raw[:end]
    headers = tuple(
        Header(m.group(1).decode("latin-1"), re.sub(rb"\r?\n", b"", m.group(2)).strip().decode("utf-8", "replace"))
        for m in _FIELD.finditer(block[: limits.max_header_bytes])
    )
    subject = next((h.value for h in headers if h.name.lower() == "subject"), None)
    msg = ParsedMessage(
        id=mid, size=len(raw), sha256=hashlib.sha256(raw).hexdigest(), envelope=envelope, headers=headers,
        subject=subject, date=None, message_id=None, in_reply_to=None, references=(), from_=(), sender=(),
        reply_to=(), to=(), cc=(), bcc=(), text=None, html=None, attachments=(), messages=(),
        defects=(Defect("", "not_implemented", "thin parser"),),
    )
    return ParseResult(msg, {})
