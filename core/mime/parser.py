"""MIME parsing entry point: raw RFC 5322 bytes -> ``ParseResult`` (the parsed-message JSON contract).

A bytes-level parser (no ``email.parser``): header/body split with one regex search, boundaries with
``bytes.find``, transfer decoding with ``binascii`` over whole parts. Body selection follows RFC 8621 4.1.4
(core/mime/body.py). ``parse`` never raises: every problem becomes a ``defects`` entry. See docs/parser.md.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from mailpipe.core.keys import attachment_key, message_id
from mailpipe.core.mime import body
from mailpipe.core.mime.charsets import decode, meta_charset
from mailpipe.core.mime.encodings import transfer_decode
from mailpipe.core.mime.fields import message_fields
from mailpipe.core.mime.parts import MAX_DEPTH, Part, Tree
from mailpipe.core.model import Attachment, Defect, Envelope, Limits, ParsedMessage, ParseResult

DEFAULT_LIMITS = Limits()
_MESSAGE_TYPES = ("message/rfc822", "message/global")


@dataclass(slots=True)
class _Ctx:
    """Per-parse state shared by a message and its nested messages."""

    limits: Limits
    mid: str
    digest: str | None = None  # sha256 of the top-level raw bytes, when already computed
    parts: int = 0
    decoded: int = 0
    index: int = 0
    payloads: dict[str, bytes] = field(default_factory=dict)


def parse(
    raw: bytes, *, limits: Limits = DEFAULT_LIMITS, envelope: Envelope | None = None, mid: str | None = None
) -> ParseResult:
    """Parse ``raw`` into the parsed-message model plus decoded attachment bytes keyed by storage key.

    ``mid`` defaults to ``mailpipe.core.keys.message_id(raw, envelope)``. Never raises for any bytes input: limits hit,
    malformed structure and charset fallbacks are recorded as defects; an unexpected internal error yields a
    minimal valid result with an ``internal_error`` defect.
    """
    raw = bytes(raw) if not isinstance(raw, bytes) else raw
    digest = None
    if (
        mid is None and envelope is None
    ):  # then the id is the raw sha256 prefix: hash the bytes once, not twice
        digest = hashlib.sha256(raw).hexdigest()
        mid = digest[:32]
    mid = mid or message_id(raw, envelope)
    ctx = _Ctx(limits, mid, digest)
    try:
        return ParseResult(_message(raw, ctx, mid, envelope, "", 0), ctx.payloads)
    except Exception as exc:  # the last line of defence; the fuzz tests show it is not reached
        defect = Defect("", "internal_error", f"{type(exc).__name__}: {str(exc)[:200]}")
        return ParseResult(_empty(raw, mid, envelope, (defect,)), {})


def _message(
    raw: bytes, ctx: _Ctx, mid: str, envelope: Envelope | None, path: str, depth: int
) -> ParsedMessage:
    problems: list[tuple[str, str, str]] = []
    buf = raw
    if len(raw) > ctx.limits.max_message_bytes:
        problems.append(
            (path, "limit_message_bytes", f"parsed the first {ctx.limits.max_message_bytes} bytes")
        )
        buf = raw[: ctx.limits.max_message_bytes]
    tree = Tree(buf, ctx.limits, problems)
    tree.count = ctx.parts
    root = tree.part(0, len(buf), path, depth)
    ctx.parts = tree.count
    text_parts, html_parts, att_parts = body.select(root)
    text = _text(buf, text_parts, ctx, problems)
    html = _text(buf, html_parts, ctx, problems)
    atts, messages = _attachments(buf, att_parts, ctx, problems, mid, depth)
    digest = ctx.digest if depth == 0 and ctx.digest else hashlib.sha256(raw).hexdigest()
    return _assemble(raw, digest, mid, envelope, root, problems, (text, html), atts, messages)


def _assemble(
    raw: bytes,
    digest: str,
    mid: str,
    envelope: Envelope | None,
    root: Part,
    problems: list[tuple[str, str, str]],
    bodies: tuple[str | None, str | None],
    atts: list[Attachment],
    messages: list[ParsedMessage],
) -> ParsedMessage:
    top = message_fields(root.fields, root.path, problems)
    return ParsedMessage(
        id=mid,
        size=len(raw),
        sha256=digest,
        envelope=envelope,
        text=bodies[0],
        html=bodies[1],
        attachments=tuple(atts),
        messages=tuple(messages),
        defects=tuple(Defect(*x) for x in problems),
        **top,
    )


def _payload(buf: bytes, part: Part, ctx: _Ctx, problems: list[tuple[str, str, str]]) -> bytes:
    """The transfer-decoded bytes of a leaf, within the decoded-bytes budget."""
    # binascii reads memoryviews, so base64/QP parts are decoded without copying the encoded bytes first
    view = part.cte in ("base64", "quoted-printable")
    data: bytes | memoryview = memoryview(buf)[part.start : part.end] if view else buf[part.start : part.end]
    room = ctx.limits.max_decoded_bytes - ctx.decoded
    estimate = len(data) * 3 // 4 if part.cte == "base64" else len(data)
    if estimate > room:
        problems.append(
            (part.path, "limit_decoded_bytes", f"decoded output capped at {ctx.limits.max_decoded_bytes}")
        )
        data = data[: max(room, 0) * 4 // 3 if part.cte == "base64" else max(room, 0)]
    out, problem = transfer_decode(data, part.cte)
    if problem:
        problems.append((part.path, "bad_transfer_encoding", problem))
    out = bytes(out)[: max(room, 0)]
    ctx.decoded += len(out)
    return out


def _text(buf: bytes, parts: list[Part], ctx: _Ctx, problems: list[tuple[str, str, str]]) -> str | None:
    if not parts:
        return None
    chunks = []
    for part in parts:
        data = _payload(buf, part, ctx, problems)
        declared = part.params.get("charset") or (part.sub == "html" and meta_charset(data)) or "us-ascii"
        text, fallback = decode(data, declared)
        if fallback:
            problems.append((part.path, "charset_fallback", fallback))
        chunks.append(text.replace("\r\n", "\n"))
    return "".join(c if c.endswith("\n") or i == len(chunks) - 1 else c + "\n" for i, c in enumerate(chunks))


def _attachments(
    buf: bytes, parts: list[Part], ctx: _Ctx, problems: list[tuple[str, str, str]], mid: str, depth: int
) -> tuple[list[Attachment], list[ParsedMessage]]:
    atts: list[Attachment] = []
    messages: list[ParsedMessage] = []
    for part in parts:
        data = _payload(buf, part, ctx, problems)
        key = attachment_key(ctx.mid, ctx.index, part.filename)
        ctx.index += 1
        ctx.payloads[key] = data
        cid = part.first("content-id")
        atts.append(
            Attachment(
                filename=part.filename,
                content_type=part.mime,
                disposition=part.disposition,
                content_id=cid.strip().strip("<>") or None if cid else None,
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                key=key,
                part=part.path,
                charset=part.params.get("charset") if part.ctype == "text" else None,
            )
        )
        if part.mime in _MESSAGE_TYPES:
            if depth + 1 >= min(ctx.limits.max_depth, MAX_DEPTH):
                problems.append((part.path, "limit_depth", "attached message not parsed: too deep"))
                continue
            sub_id = f"{mid}.m{len(messages) + 1}"
            nested = _message(data, ctx, sub_id, None, part.path, depth + 1)
            if nested.headers:
                messages.append(nested)
            else:  # not a message at all (no header field): keep it as a plain attachment
                problems.append((part.path, "malformed_header", "attached message has no header fields"))
    return atts, messages


def _empty(raw: bytes, mid: str, envelope: Envelope | None, defects: tuple[Defect, ...]) -> ParsedMessage:
    return ParsedMessage(
        id=mid,
        size=len(raw),
        sha256=hashlib.sha256(raw).hexdigest(),
        envelope=envelope,
        headers=(),
        subject=None,
        date=None,
        message_id=None,
        in_reply_to=None,
        references=(),
        from_=(),
        sender=(),
        reply_to=(),
        to=(),
        cc=(),
        bcc=(),
        text=None,
        html=None,
        attachments=(),
        messages=(),
        defects=defects,
    )
