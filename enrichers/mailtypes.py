"""The messy mail every inbox gets, as typed results (stdlib only):

- ``autoreply``: RFC 3834 ``Auto-Submitted``, ``X-Autoreply``/``X-Autorespond``, ``Precedence``, out-of-office
  subjects -> ``{"autoreply": bool, "kind", "signals"}`` (core/routing/facts.py reads ``autoreply.result.autoreply``).
- ``bounce``: delivery status notifications and feedback reports, in enrichers/reports.py.
- ``reply``: ``stripped_text``, the reply without the quoted history and the signature.
- ``crypto``: S/MIME and PGP signed/encrypted, detected and reported (never decrypted).
- ``uuencode``: uuencoded files inside text bodies, decoded into derived attachments (core/enrich/derived.py).
"""

from __future__ import annotations

import binascii
import re
from typing import TYPE_CHECKING, Any

from mailpipe.core.enrich.contract import Context, Skip
from mailpipe.core.enrich.derived import guess_type

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mailpipe.core.enrich.view import MessageView, Part

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


_UU_BEGIN = re.compile(r"begin [0-7]{3,4} (.+?)\s*$")


def uu_files(view: MessageView, max_bytes: int) -> Iterator[tuple[Part | None, str, bytes]]:
    """(parent, filename, bytes) for each ``begin <mode> <name>`` ... ``end`` block of the text body (parent
    None) and of text/* parts; each source is read up to ``max_bytes``. Shared with the malware scanner."""
    sources: list[tuple[Part | None, str]] = [(None, view.text or "")]
    sources += [
        (p, p.data[:max_bytes].decode("latin-1")) for p in view.parts if p.content_type.startswith("text/")
    ]
    for parent, src in sources:
        if "begin " in src:
            for name, block in _uu_blocks(src[:max_bytes]):
                yield parent, name, _uudecode(block)


def _uu_blocks(text: str) -> Iterator[tuple[str, str]]:
    """One pass over the lines (a regex over a body full of unterminated ``begin`` lines would be quadratic);
    a block without its ``end`` line is ignored."""
    name: str | None = None
    lines: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if name is None:
            match = _UU_BEGIN.match(line)
            if match:
                name, lines = match.group(1), []
        elif line.rstrip() == "end":
            yield name, "\n".join(lines)
            name = None
        else:
            lines.append(line)


class UuencodeEnricher(_Base):
    name = "uuencode"
    version = "2"
    wants = frozenset({"text", "attachments"})

    def run(self, view: MessageView, ctx: Context) -> dict[str, Any]:
        files, found = [], 0
        for parent, filename, data in uu_files(view, self.max_bytes):
            found += 1
            ctype = guess_type(filename)
            entry = ctx.derive(parent, filename, ctype, data)
            if entry is not None:
                files.append(entry)
        if not found:
            raise Skip("no uuencoded content")
        return {"files": files, "truncated": ctx.truncated}


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
