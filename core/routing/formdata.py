"""multipart/form-data bodies (RFC 7578) for the form-shaped webhook projections. Stdlib only.

The boundary is derived from a caller-given seed, so the same form always encodes to the same bytes (a
redelivered webhook never carries a different body).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class FilePart:
    name: str
    filename: str
    content_type: str
    data: bytes


@dataclass(slots=True)
class Form:
    """Ordered text fields and file parts, as a provider's inbound webhook would POST them."""

    fields: list[tuple[str, str]] = field(default_factory=list)
    files: list[FilePart] = field(default_factory=list)

    def add(self, name: str, value: str | None) -> None:
        if value is not None:
            self.fields.append((name, value))

    def encode(self, seed: str) -> tuple[bytes, str]:
        """(body, content-type value). Values are UTF-8; names and filenames quoted per RFC 7578."""
        boundary = "mailpipe-" + hashlib.sha256(seed.encode()).hexdigest()[:32]
        out: list[bytes] = []
        for name, value in self.fields:
            out.append(_head(boundary, name, None, None) + value.encode("utf-8") + b"\r\n")
        for f in self.files:
            out.append(_head(boundary, f.name, f.filename, f.content_type) + f.data + b"\r\n")
        out.append(f"--{boundary}--\r\n".encode())
        return b"".join(out), f"multipart/form-data; boundary={boundary}"

    def to_json(self) -> dict[str, Any]:
        """A JSON view for humans (``mailpipe parse --format mailgun``): files base64 with metadata."""
        doc: dict[str, Any] = {"fields": [[k, v] for k, v in self.fields]}
        doc["files"] = [
            {"name": f.name, "filename": f.filename, "content_type": f.content_type, "size": len(f.data),
             "content_base64": base64.b64encode(f.data).decode()}
            for f in self.files
        ]
        return doc


def _quote(value: str) -> str:
    # RFC 7578 4.2: percent-encode the quote and line breaks; browsers and Django read this back.
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def _head(boundary: str, name: str, filename: str | None, ctype: str | None) -> bytes:
    disp = f'form-data; name="{_quote(name)}"'
    if filename is not None:
        disp += f'; filename="{_quote(filename)}"'
    lines = [f"--{boundary}", f"Content-Disposition: {disp}"]
    if ctype:
        lines.append(f"Content-Type: {ctype}")
    else:
        lines.append("Content-Type: text/plain; charset=utf-8")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
