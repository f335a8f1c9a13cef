"""The parsed-message model: the product's public JSON contract (schema/parsed-message.json).

Frozen, slotted stdlib dataclasses with explicit ``to_dict``; no engine object ever leaves ``core/mime``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SCHEMA = "mailpipe/parsed-message@1"
NOTIFICATION_SCHEMA = "mailpipe/notification@1"


@dataclass(frozen=True, slots=True)
class Envelope:
    """The SMTP envelope as the edge saw it. ``received_at`` is ISO 8601 UTC."""

    mail_from: str
    rcpt_to: tuple[str, ...]
    client_ip: str | None = None
    helo: str | None = None
    tls: bool = False
    received_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "mail_from": self.mail_from,
            "rcpt_to": list(self.rcpt_to),
            "client_ip": self.client_ip,
            "helo": self.helo,
            "tls": self.tls,
            "received_at": self.received_at,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Envelope:
        """Build from the stored sidecar JSON. Raises KeyError/TypeError on a malformed document."""
        return cls(
            mail_from=str(d["mail_from"]),
            rcpt_to=tuple(str(r) for r in d["rcpt_to"]),
            client_ip=d.get("client_ip"),
            helo=d.get("helo"),
            tls=bool(d.get("tls", False)),
            received_at=d.get("received_at"),
        )


@dataclass(frozen=True, slots=True)
class Limits:
    """Parser limits, enforced before the work. Hitting one yields a defect and a truncated result."""

    max_message_bytes: int = 50 * 1024 * 1024
    max_parts: int = 1000
    max_depth: int = 20
    max_header_bytes: int = 1024 * 1024
    max_decoded_bytes: int = 100 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Address:
    name: str | None
    address: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "address": self.address}


@dataclass(frozen=True, slots=True)
class Header:
    name: str
    value: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value}


@dataclass(frozen=True, slots=True)
class Defect:
    """A problem met while parsing. ``part`` is the MIME path ("" root, "1.2" ...); ``kind`` a stable code."""

    part: str
    kind: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"part": self.part, "kind": self.kind, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str | None
    content_type: str
    disposition: str | None
    content_id: str | None
    size: int
    sha256: str
    key: str | None
    part: str = ""
    charset: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "filename": self.filename,
            "content_type": self.content_type,
            "disposition": self.disposition,
            "content_id": self.content_id,
            "size": self.size,
            "sha256": self.sha256,
            "key": self.key,
            "part": self.part,
            "charset": self.charset,
        }


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """One parsed message; nested ``message/rfc822`` parts have the same shape (``envelope`` None)."""

    id: str
    size: int
    sha256: str
    envelope: Envelope | None
    headers: tuple[Header, ...]
    subject: str | None
    date: str | None
    message_id: str | None
    in_reply_to: str | None
    references: tuple[str, ...]
    from_: tuple[Address, ...]
    sender: tuple[Address, ...]
    reply_to: tuple[Address, ...]
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    bcc: tuple[Address, ...]
    text: str | None
    html: str | None
    attachments: tuple[Attachment, ...]
    messages: tuple[ParsedMessage, ...]
    defects: tuple[Defect, ...]
    extra: dict[str, Any] = field(default_factory=dict)  # added fields (raw_key, enrichments, routing, ...)

    def to_dict(self) -> dict[str, Any]:
        def addrs(xs: tuple[Address, ...]) -> list[dict[str, Any]]:
            return [a.to_dict() for a in xs]

        d: dict[str, Any] = {
            "schema": SCHEMA,
            "id": self.id,
            "size": self.size,
            "sha256": self.sha256,
            "envelope": self.envelope.to_dict() if self.envelope else None,
            "headers": [h.to_dict() for h in self.headers],
            "subject": self.subject,
            "date": self.date,
            "message_id": self.message_id,
            "in_reply_to": self.in_reply_to,
            "references": list(self.references),
            "from": addrs(self.from_),
            "sender": addrs(self.sender),
            "reply_to": addrs(self.reply_to),
            "to": addrs(self.to),
            "cc": addrs(self.cc),
            "bcc": addrs(self.bcc),
            "text": self.text,
            "html": self.html,
            "attachments": [a.to_dict() for a in self.attachments],
            "messages": [m.to_dict() for m in self.messages],
            "defects": [x.to_dict() for x in self.defects],
        }
        d.update(self.extra)
        return d


@dataclass(frozen=True, slots=True)
class ParseResult:
    """What ``mime.parser.parse`` returns: the model plus the decoded attachment bytes, keyed by storage key."""

    message: ParsedMessage
    payloads: dict[str, bytes]


def dumps(document: dict[str, Any]) -> bytes:
    """The canonical compact JSON encoding used for every stored document and notification (UTF-8)."""
    import json

    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
