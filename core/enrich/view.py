"""The read-only view an enricher gets of one message: bodies, headers, envelope and every attachment's bytes.

Built from the parsed document and the decoded payloads (``ParseResult.payloads``). When the document carries
no body and no attachment although the raw bytes are MIME (a truncated or minimal parse), the view is rebuilt
from the raw bytes with the stdlib ``email`` package, so a scanner never trusts the parser alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email.message import Message
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping


@dataclass(frozen=True, slots=True)
class Part:
    """One attachment (or nested-message attachment). ``path`` is the MIME path ("1.2"); ``key`` its storage
    key (None in the raw-bytes fallback view)."""

    path: str
    filename: str | None
    content_type: str
    data: bytes
    key: str | None = None


@dataclass(frozen=True, slots=True)
class MessageView:
    """What enrichers read. ``headers`` keep order and duplicates; names are as written."""

    raw: bytes
    text: str | None
    html: str | None
    headers: tuple[tuple[str, str], ...]
    parts: tuple[Part, ...]
    envelope: Mapping[str, Any] | None = None
    document: Mapping[str, Any] = field(default_factory=dict)

    def header_values(self, name: str) -> list[str]:
        """Every value of header ``name`` (case-insensitive), top to bottom."""
        low = name.lower()
        return [v for n, v in self.headers if n.lower() == low]


def build_view(document: Mapping[str, Any], payloads: Mapping[str, bytes], raw: bytes) -> MessageView:
    """The view of a parsed message; falls back to the raw bytes when the document is empty."""
    parts = tuple(_document_parts(document, payloads))
    headers = tuple((h["name"], h["value"]) for h in document.get("headers") or ())
    text, html = document.get("text"), document.get("html")
    if not (parts or text or html) and raw:
        fallback = _raw_view(raw)
        text, html, parts = fallback.text, fallback.html, fallback.parts
        headers = headers or fallback.headers
    return MessageView(raw, text, html, headers, parts, document.get("envelope"), document)


def _document_parts(document: Mapping[str, Any], payloads: Mapping[str, bytes]) -> Iterator[Part]:
    for att in document.get("attachments") or ():
        data = payloads.get(att.get("key") or "")
        if data is not None:
            yield Part(
                att.get("part") or "", att.get("filename"), att.get("content_type") or "", data, att.get("key")
            )
    for nested in document.get("messages") or ():
        yield from _document_parts(nested, payloads)


def _raw_view(raw: bytes) -> MessageView:
    from email import message_from_bytes  # compat32, imported only when the fallback is needed

    msg = message_from_bytes(raw)
    text: str | None = None
    html: str | None = None
    parts: list[Part] = []
    for path, part in _walk(msg, ""):
        ctype = part.get_content_type()
        filename = _safe(part.get_filename)
        is_attachment = (
            filename is not None or "attachment" in str(part.get("Content-Disposition", "")).lower()
        )
        data = _payload(part)
        if ctype == "text/plain" and not is_attachment and text is None:
            text = _decode(data, part)
        elif ctype == "text/html" and not is_attachment and html is None:
            html = _decode(data, part)
        else:  # every other leaf (calendar, delivery-status, a second text part) is a part, as in core/mime
            parts.append(Part(path, filename, ctype, data))
    headers = tuple((k, str(v)) for k, v in msg.items())
    return MessageView(raw, text, html, headers, tuple(parts))


def _walk(msg: Message, path: str) -> Iterator[tuple[str, Message]]:
    if msg.is_multipart() and msg.get_content_type() != "message/delivery-status":
        for i, sub in enumerate(msg.get_payload() or (), 1):
            if hasattr(sub, "is_multipart"):
                yield from _walk(sub, f"{path}.{i}" if path else str(i))
    else:
        yield path, msg


def _payload(part: Message) -> bytes:
    if part.is_multipart():  # compat32 parses message/delivery-status into header blocks: rejoin them
        return b"\n".join(b.as_bytes() for b in part.get_payload() or () if isinstance(b, Message))
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _safe(getter: Any) -> Any:
    try:
        return getter()
    except Exception:  # malformed RFC 2231 parameters: treat as absent
        return None


def _decode(data: bytes, part: Message) -> str:
    charset = _safe(part.get_content_charset) or "utf-8"
    try:
        text = data.decode(charset, "replace")
    except LookupError:
        text = data.decode("utf-8", "replace")
    return text.replace("\r\n", "\n")
