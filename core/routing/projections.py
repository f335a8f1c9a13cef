"""Compatibility projections: the canonical parsed dict -> what existing inbound-mail consumers accept.

* ``postmark``  Postmark inbound webhook JSON (no RawEmail; Return-Path first in Headers, as Postmark does)
* ``mailgun``   Mailgun route ``forward()`` "fully parsed" multipart form, signed with the webhook signing key
* ``sendgrid``  SendGrid Inbound Parse default (parsed, not raw) multipart form

Input is a customer's view of the parsed dict (its envelope recipients only) plus ``content(att) -> bytes``,
which reads a stored attachment (None when it was not stored; such attachments are left out). Verified
against django-anymail's inbound views in tests/test_projections.py.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from email.utils import formataddr
from typing import Any

from mailpipe.core.routing.formdata import FilePart, Form

Content = Callable[[dict[str, Any]], bytes | None]

# Headers the consumers rebuild themselves; repeating them would duplicate or contradict the new MIME tree.
_STRUCTURAL = frozenset({"content-type", "content-transfer-encoding", "mime-version", "return-path"})
_POSTMARK_FIELDS = frozenset({"from", "to", "cc", "bcc", "subject", "date", "reply-to"})


def _addr(a: dict[str, Any]) -> str:
    return formataddr((a.get("name") or "", a.get("address") or ""))


def _addrs(xs: list[dict[str, Any]]) -> str:
    return ", ".join(_addr(a) for a in xs)


def _mailbox_hash(address: str | None) -> str:
    local = (address or "").rpartition("@")[0]
    return local.partition("+")[2]


def _envelope(view: dict[str, Any]) -> tuple[str, list[str]]:
    env = view.get("envelope") or {}
    return str(env.get("mail_from") or ""), [str(r) for r in env.get("rcpt_to") or ()]


def _files(view: dict[str, Any], content: Content) -> list[tuple[dict[str, Any], bytes, str]]:
    out = []
    for i, att in enumerate(view.get("attachments") or (), start=1):
        data = content(att)
        if data is not None:
            out.append((att, data, att.get("filename") or f"attachment-{i}"))
    return out


def _headers(view: dict[str, Any], skip: frozenset[str]) -> list[tuple[str, str]]:
    return [(h["name"], h["value"]) for h in view.get("headers") or () if h["name"].lower() not in skip]


def postmark(view: dict[str, Any], content: Content) -> dict[str, Any]:
    """Postmark inbound JSON. ``MessageID`` is the mailpipe message id (Postmark's is its own uuid too)."""
    sender, rcpts = _envelope(view)
    frm = (view.get("from") or [{}])[0]

    def full(xs: list[dict[str, Any]]) -> list[dict[str, str]]:
        return [{"Email": a.get("address") or "", "Name": a.get("name") or "",
                 "MailboxHash": _mailbox_hash(a.get("address"))} for a in xs]

    headers = [{"Name": "Return-Path", "Value": f"<{sender}>"}]
    headers += [{"Name": n, "Value": v} for n, v in _headers(view, _STRUCTURAL | _POSTMARK_FIELDS)]
    return {
        "FromName": frm.get("name") or "", "MessageStream": "inbound", "From": frm.get("address") or "",
        "FromFull": full([frm])[0], "To": _addrs(view.get("to") or []), "ToFull": full(view.get("to") or []),
        "Cc": _addrs(view.get("cc") or []), "CcFull": full(view.get("cc") or []),
        "Bcc": _addrs(view.get("bcc") or []), "BccFull": full(view.get("bcc") or []),
        "OriginalRecipient": rcpts[0] if rcpts else "", "ReplyTo": _addrs(view.get("reply_to") or []),
        "Subject": view.get("subject") or "", "MessageID": view.get("id") or "",
        "Date": view.get("date") or "",
        "MailboxHash": _mailbox_hash(rcpts[0] if rcpts else None), "TextBody": view.get("text") or "",
        "HtmlBody": view.get("html") or "", "StrippedTextReply": "", "Tag": "", "Headers": headers,
        "Attachments": [
            {"Name": name, "Content": base64.b64encode(data).decode(), "ContentType": att["content_type"],
             "ContentLength": len(data), **({"ContentID": cid} if (cid := att.get("content_id")) else {})}
            for att, data, name in _files(view, content)
        ],
    }


def mailgun_signature(signing_key: str, timestamp: str, token: str) -> str:
    """Mailgun's webhook signature: hex HMAC-SHA256(signing key, timestamp + token)."""
    return hmac.new(signing_key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()


def mailgun(view: dict[str, Any], content: Content, *, signing_key: str, timestamp: int) -> Form:
    """Mailgun forward() parsed form. The token is derived from the message id (stable across retries)."""
    sender, rcpts = _envelope(view)
    token = hashlib.sha256(f"mailgun-token:{view.get('id')}".encode()).hexdigest()[:50]
    files = _files(view, content)
    form = Form()
    for name, value in (
        ("recipient", ", ".join(rcpts)), ("sender", sender), ("from", _addrs(view.get("from") or [])),
        ("subject", view.get("subject") or ""), ("body-plain", view.get("text") or ""),
        ("stripped-text", view.get("text") or ""), ("stripped-signature", ""),
        ("body-html", view.get("html") or ""), ("stripped-html", view.get("html") or ""),
        ("attachment-count", str(len(files))), ("timestamp", str(timestamp)), ("token", token),
        ("signature", mailgun_signature(signing_key, str(timestamp), token)),
        ("message-headers", json.dumps([list(h) for h in _headers(view, _STRUCTURAL)], ensure_ascii=False)),
        ("content-id-map", json.dumps({
            f"<{att['content_id'].strip('<>')}>": f"attachment-{i}"
            for i, (att, _, _) in enumerate(files, start=1) if att.get("content_id")
        })),
    ):
        form.add(name, value)
    for i, (att, data, name) in enumerate(files, start=1):
        form.files.append(FilePart(f"attachment-{i}", name, att["content_type"], data))
    return form


def sendgrid(view: dict[str, Any], content: Content) -> Form:
    """SendGrid Inbound Parse (default, parsed) form; ``envelope`` carries the envelope sender/recipients."""
    sender, rcpts = _envelope(view)
    files = _files(view, content)
    raw_headers = "".join(f"{n}: {v}\n" for n, v in _headers(view, _STRUCTURAL))
    info = {
        f"attachment{i}": {"filename": name, "name": name, "type": att["content_type"],
                           **({"content-id": att["content_id"].strip("<>")} if att.get("content_id") else {})}
        for i, (att, _, name) in enumerate(files, start=1)
    }
    form = Form()
    for name, value in (
        ("headers", raw_headers), ("dkim", "{}"), ("to", _addrs(view.get("to") or [])),
        ("from", _addrs(view.get("from") or [])), ("cc", _addrs(view.get("cc") or []) or None),
        ("subject", view.get("subject") or ""), ("text", view.get("text")), ("html", view.get("html")),
        ("sender_ip", (view.get("envelope") or {}).get("client_ip") or ""),
        ("envelope", json.dumps({"to": rcpts, "from": sender})), ("attachments", str(len(files))),
        ("attachment-info", json.dumps(info, ensure_ascii=False)),
        ("charsets", json.dumps(dict.fromkeys(("to", "from", "cc", "subject", "text", "html"), "UTF-8"))),
    ):
        form.add(name, value)
    for i, (att, data, name) in enumerate(files, start=1):
        form.files.append(FilePart(f"attachment{i}", name, att["content_type"], data))
    return form


def render(fmt: str, doc: dict[str, Any], payloads: dict[str, bytes]) -> bytes:
    """What ``mailpipe parse --format FMT`` prints: canonical JSON, Postmark JSON, or for the multipart forms
    ``{"fields": [[name, value], ...], "files": [{name, filename, content_type, size, content_base64}]}``.
    The Mailgun preview is signed with an empty key (real webhooks use the configured signing key)."""
    from mailpipe.core.model import dumps

    def content(att: dict[str, Any]) -> bytes | None:
        return payloads.get(att.get("key") or "")

    if fmt == "postmark":
        return dumps(postmark(doc, content))
    if fmt == "mailgun":
        return dumps(mailgun(doc, content, signing_key="", timestamp=0).to_json())
    if fmt == "sendgrid":
        return dumps(sendgrid(doc, content).to_json())
    return dumps(doc)
