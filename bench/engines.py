"""The Python engines ``bench.parse`` compares, each doing the same "full extraction" of one raw message.

Full extraction = every header value decoded, From/To/Cc/Reply-To parsed into (name, address), subject, date
parsed to a datetime, text/html bodies decoded to str, every other leaf part's bytes transfer-decoded and
sha256-hashed, and message/rfc822 parts recursed into (their headers extracted too). Each function returns
``(attachments, decoded_bytes)`` so the harness can show that the engines found comparable content.
What each peer does exactly (and where a library decides differently) is in bench/README.md.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from email import policy
from email.header import decode_header, make_header
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from email.message import Message

Extract = Callable[[bytes], tuple[int, int]]
ADDRESS_HEADERS = ("from", "to", "cc", "reply-to")


def _is_body(part: Message) -> bool:
    return part.get_content_maintype() == "text" and part.get_content_disposition() != "attachment"


def _walk(
    msg: Message, on_headers: Callable[[Message], None], on_text: Callable[[Message], None]
) -> tuple[int, int]:
    """Shared stdlib walk: headers of the root and of each embedded message; text decoded, rest hashed."""
    on_headers(msg)
    n = size = 0
    for part in msg.walk():
        if part.get_content_type() == "message/rfc822":
            for inner in part.get_payload():
                on_headers(inner)
            continue
        if part.is_multipart():
            continue
        if _is_body(part):
            on_text(part)
            continue
        data = part.get_payload(decode=True) or b""
        hashlib.sha256(data).hexdigest()
        n, size = n + 1, size + len(data)
    return n, size


def _headers_default(msg: Message) -> None:
    for _name, value in msg.items():
        str(value)
    for name in ADDRESS_HEADERS:
        h = msg[name]
        if h is not None:
            [(a.display_name, a.addr_spec) for a in h.addresses]
    date = msg["date"]
    if date is not None and date.datetime is not None:
        date.datetime.isoformat()


def stdlib_default(raw: bytes) -> tuple[int, int]:
    """CPython email, ``policy.default``: header objects, ``get_content()`` for text."""
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    return _walk(msg, _headers_default, lambda p: p.get_content())


def _headers_compat32(msg: Message) -> None:
    for _name, value in msg.items():
        str(make_header(decode_header(value)))
    for name in ADDRESS_HEADERS:
        getaddresses(msg.get_all(name, []))
    date = msg["date"]
    if date:
        try:
            parsedate_to_datetime(date).isoformat()
        except (TypeError, ValueError):
            pass


def _text_compat32(part: Message) -> None:
    data = part.get_payload(decode=True) or b""
    try:
        data.decode(part.get_content_charset() or "us-ascii", "replace")
    except LookupError:
        data.decode("utf-8", "replace")


def stdlib_compat32(raw: bytes) -> tuple[int, int]:
    """CPython email, ``policy.compat32``: decode_header/getaddresses/parsedate by hand."""
    msg = BytesParser(policy=policy.compat32).parsebytes(raw)
    return _walk(msg, _headers_compat32, _text_compat32)


def mail_parser(raw: bytes) -> tuple[int, int]:
    """PyPI ``mail-parser`` (SpamScope): its own walk; attachments come back base64 text -> decode + hash."""
    import mailparser

    mail = mailparser.parse_from_bytes(raw)
    mail.headers, mail.from_, mail.to, mail.cc, mail.subject, mail.date, mail.text_plain, mail.text_html  # noqa: B018
    n = size = 0
    for att in mail.attachments:
        payload: Any = att["payload"]
        data = base64.b64decode(payload) if att["binary"] else str(payload).encode("utf-8", "surrogateescape")
        hashlib.sha256(data).hexdigest()
        n, size = n + 1, size + len(data)
    return n, size


def fast_mail_parser(raw: bytes) -> tuple[int, int]:
    """PyPI ``fast-mail-parser`` (Rust): ``parse_email``; message/rfc822 attachments re-parsed (recursed)."""
    import fast_mail_parser as fmp

    mail = fmp.parse_email(raw)
    mail.headers, mail.subject, mail.text_plain, mail.text_html, mail.date_parsed  # noqa: B018
    [(a.display_name, a.address) for a in [mail.from_, *mail.to, *mail.cc, *mail.reply_to] if a is not None]
    n = size = 0
    for att in mail.attachments:
        if att.mimetype == "message/rfc822":
            k, s = fast_mail_parser(att.content)
            n, size = n + k, size + s
            continue
        hashlib.sha256(att.content).hexdigest()
        n, size = n + 1, size + len(att.content)
    return n, size


def mailpipe(raw: bytes) -> tuple[int, int]:
    """mailpipe ``mailpipe.core.mime.parser.parse``: the canonical JSON dict plus every decoded payload.

    ``parse`` already sha256-hashes each attachment (``Attachment.sha256`` in the model), so hashing the
    payloads again here would count that work twice.
    """
    from mailpipe.core.mime.parser import parse

    result = parse(raw)
    result.message.to_dict()
    sizes = [len(data) for data in result.payloads.values()]
    return len(sizes), sum(sizes)


PYTHON_ENGINES: dict[str, Extract] = {
    "mailpipe": mailpipe,
    "stdlib-default": stdlib_default,
    "stdlib-compat32": stdlib_compat32,
    "mail-parser": mail_parser,
    "fast-mail-parser": fast_mail_parser,
}
