"""The messy mail every inbox gets, as typed results (stdlib only):

- ``autoreply``: RFC 3834 ``Auto-Submitted``, ``X-Autoreply``/``X-Autorespond``, ``Precedence``, out-of-office
  subjects -> ``{"autoreply": bool, "kind", "signals"}`` (core/facts.py reads ``autoreply.result.autoreply``).
- ``bounce``: delivery status notifications (RFC 3464 ``message/delivery-status``) and feedback reports
  (RFC 5965 ``message/feedback-report``) -> per-recipient action/status/diagnostic and the original Message-ID
  (core/facts.py reads ``bounce.result.bounce``).
- ``reply``: ``stripped_text``, the reply without the quoted history and the signature.
- ``crypto``: S/MIME and PGP signed/encrypted, detected and reported (never decrypted).
- ``uuencode``: uuencoded files inside text bodies, decoded and listed (name, size, sha256).
"""

from __future__ import annotations

import binascii
import hashlib
import re
from email.parser import HeaderParser
from typing import TYPE_CHECKING, Any

from core.enrich import Context, Skip

if TYPE_CHECKING:
    from core.enrich_view import MessageView

_OOO = re.compile(
    r"^(auto(matic)?[ -]?(reply|response|antwort)|out of (the )?office|abwesenheitsnotiz|absence|"
    r"r[ée]ponse automatique|vacation|away from (the )?office|on leave)\b",
    re.I,
)


class _Base:
    version = "1"
    timeout = 10.0
    max_bytes = 5 * 1024 * 1024


class AutoreplyEnricher(_Base):
    name = "autoreply"
    wants = frozenset({"headers"})

    def run(self, view: MessageView, ctx: Context) -> dict[str, Any]:
        first = {
            n: (view.header_values(n) or [""])[0].strip().lower()
            for n in (
                "auto-submitted",
                "precedence",
                "x-autoreply",
                "x-autorespond",
                "x-auto-response-suppress",
                "subject",
            )
        }
        signals = []
        if first["auto-submitted"] not in ("", "no"):
            signals.append(f"auto-submitted: {first['auto-submitted']}")
        if first["precedence"] in ("auto_reply", "bulk", "junk", "list"):
            signals.append(f"precedence: {first['precedence']}")
        signals += [h for h in ("x-autoreply", "x-autorespond") if first[h]]
        subject = (view.header_values("Subject") or [""])[0].strip()
        if _OOO.match(subject):
            signals.append("out-of-office subject")
        kind = (
            "out-of-office"
            if "out-of-office subject" in signals
            else first["auto-submitted"]
            if first["auto-submitted"] not in ("", "no")
            else "bulk"
            if first["precedence"] in ("bulk", "junk", "list")
            else "auto-reply"
            if signals
            else None
        )
        # Bulk/list mail is a signal but no auto-reply (RFC 3834 section 5: do not answer it either).
        return {"autoreply": kind not in (None, "bulk"), "kind": kind, "signals": signals}


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


class BounceEnricher(_Base):
    name = "bounce"
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
                out["type"], out["bounce"] = "dsn", True
                out["reporting_mta"] = _typed(blocks[0].get("reporting-mta")) if blocks else None
                out["recipients"] += [
                    _recipient(b) for b in blocks[1:] if "final-recipient" in b or "action" in b
                ]
            elif part.content_type == "message/feedback-report":
                fields = (_blocks(part.data) or [{}])[0]
                out["type"] = "feedback"
                out["feedback"] = {
                    k: fields.get(k)
                    for k in (
                        "feedback-type",
                        "user-agent",
                        "version",
                        "original-mail-from",
                        "original-rcpt-to",
                        "arrival-date",
                        "source-ip",
                        "reported-domain",
                    )
                }
            elif part.content_type in ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers"):
                found = re.search(rb"(?im)^message-id:\s*(<[^>\r\n]+>)", part.data[:65536])
                out["original_message_id"] = out["original_message_id"] or (found and found.group(1).decode())
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


_QUOTE_HEAD = re.compile(
    r"^(on .{0,200}(wrote|schrieb|a écrit|escribió)\s*:?\s*$|-{2,}\s*original message\s*-{2,}|"
    r"_{10,}\s*$|from:\s.+\n(sent|date):\s)",
    re.I | re.M,
)
_SIGNATURE = re.compile(r"^(-- ?|__+|sent from my \w+.*|get outlook for \w+.*)$", re.I | re.M)


class ReplyEnricher(_Base):
    name = "reply"
    wants = frozenset({"text"})

    def run(self, view: MessageView, ctx: Context) -> dict[str, Any]:
        text = (view.text or "").replace("\r\n", "\n")[: self.max_bytes]
        if not text.strip():
            raise Skip("no text body")
        head = _QUOTE_HEAD.search(text)
        body = text[: head.start()] if head else text
        lines = body.split("\n")
        quoted = [i for i, ln in enumerate(lines) if ln.lstrip().startswith(">")]
        if quoted:  # a bottom-quoted reply: drop the quoted block and the "On ... wrote:" line before it
            lines = lines[: quoted[0]]
        body = "\n".join(lines)
        sig = _SIGNATURE.search(body)
        signature = body[sig.start() :].strip() if sig else None
        stripped = (body[: sig.start()] if sig else body).strip()
        return {"stripped_text": stripped, "signature": signature, "quoted": bool(head or quoted)}


class CryptoEnricher(_Base):
    name = "crypto"
    wants = frozenset({"headers", "attachments", "text"})

    def run(self, view: MessageView, ctx: Context) -> dict[str, Any]:
        ctype = (view.header_values("Content-Type") or [""])[0].lower()
        types = {p.content_type.lower() for p in view.parts}
        text = view.text or ""
        found = {
            "smime_signed": "application/pkcs7-signature" in ctype + " ".join(types)
            or "application/x-pkcs7-signature" in ctype + " ".join(types)
            or "smime-type=signed-data" in ctype,
            "smime_encrypted": "smime-type=enveloped-data" in ctype
            or "smime-type=authenveloped-data" in ctype,
            "pgp_signed": "application/pgp-signature" in ctype + " ".join(types)
            or "-----BEGIN PGP SIGNED MESSAGE-----" in text,
            "pgp_encrypted": "application/pgp-encrypted" in ctype + " ".join(types)
            or "-----BEGIN PGP MESSAGE-----" in text,
        }
        return {
            "signed": found["smime_signed"] or found["pgp_signed"],
            "encrypted": found["smime_encrypted"] or found["pgp_encrypted"],
            "scheme": "smime"
            if found["smime_signed"] or found["smime_encrypted"]
            else "pgp"
            if found["pgp_signed"] or found["pgp_encrypted"]
            else None,
            **found,
        }


_UU = re.compile(r"^begin [0-7]{3,4} (.+?)\s*\n(.*?)^end\s*$", re.M | re.S)


class UuencodeEnricher(_Base):
    name = "uuencode"
    wants = frozenset({"text", "attachments"})

    def run(self, view: MessageView, ctx: Context) -> dict[str, Any]:
        sources = [view.text or ""] + [
            p.data.decode("latin-1")
            for p in view.parts
            if p.content_type.startswith("text/") and len(p.data) <= self.max_bytes
        ]
        files = []
        for src in sources:
            for m in _UU.finditer(src.replace("\r\n", "\n")[: self.max_bytes]):
                data = _uudecode(m.group(2))
                files.append(
                    {"filename": m.group(1), "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                )
        if not files:
            raise Skip("no uuencoded content")
        return {"files": files}


def _uudecode(block: str) -> bytes:
    out = bytearray()
    for line in block.split("\n"):
        if not line or line in ("`", " "):
            continue
        n = (ord(line[0]) - 32) & 63
        for candidate in (line, line[: ((n + 2) // 3) * 4 + 1]):  # some encoders pad lines badly
            try:
                out += binascii.a2b_uu(candidate)
                break
            except (binascii.Error, ValueError):
                continue  # a damaged line decodes to nothing rather than failing the whole file
    return bytes(out)
