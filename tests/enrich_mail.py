"""Builders of test messages for the enrichment tests (stdlib ``email``), and the parse+enrich round trip."""

from __future__ import annotations

import io
import zipfile
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any

from mailpipe.core.enrich.run import run_enrichers
from mailpipe.core.mime.parser import parse

# Built at run time so this source file itself is not a 68-byte EICAR file to any scanner.
EICAR = ("X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*").encode()


def message(
    text: str = "Hello, see attached.",
    *,
    subject: str = "test",
    html: str | None = None,
    attachments: tuple[tuple[str, str, bytes], ...] = (),
    headers: tuple[tuple[str, str], ...] = (),
    nested: EmailMessage | None = None,
) -> EmailMessage:
    """A message with a text body, optional HTML, (filename, content type, bytes) attachments (base64)."""
    msg = EmailMessage()
    for name, value in headers:
        msg[name] = value
    msg["From"] = "Alice <alice@example.com>"
    msg["To"] = "bob@example.net"
    msg["Subject"] = subject
    msg["Message-ID"] = "<test-1@example.com>"
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    for filename, ctype, data in attachments:
        main, _, sub = ctype.partition("/")
        msg.add_attachment(data, maintype=main, subtype=sub, filename=filename)
    if nested is not None:
        msg.add_attachment(nested)
    return msg


def raw(msg: EmailMessage) -> bytes:
    return msg.as_bytes(policy=SMTP)


def zipped(entries: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def enrich(data: bytes, names: list[str], config: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Parse with mailpipe.core.mime.parser exactly as the pipeline does, then run the enrichers on the result."""
    result = parse(data)
    return run_enrichers(result.message.to_dict(), result.payloads, data, names, config)
