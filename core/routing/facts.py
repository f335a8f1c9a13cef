"""What a routing rule sees: message facts (computed once) and the per-recipient context. Stdlib only."""

from __future__ import annotations

from typing import Any


class Facts:
    """Message-level facts, computed once per message from the canonical parsed dict."""

    __slots__ = ("_values", "att_count", "att_names", "att_size", "att_types", "enrich", "headers",
                 "null_sender", "sender", "sender_domain", "subject")

    def __init__(self, doc: dict[str, Any]) -> None:
        env = doc.get("envelope") or {}
        frm = doc.get("from") or [{}]
        self.sender = str(env.get("mail_from") or frm[0].get("address") or "").lower()
        self.null_sender = bool(env) and not env.get("mail_from")  # MAIL FROM:<> (bounces, auto-replies)
        self.sender_domain = domain_of(self.sender)
        self.subject = doc.get("subject") or ""
        self.headers: dict[str, list[str]] = {}
        for h in doc.get("headers") or ():
            self.headers.setdefault(h["name"].lower(), []).append(h["value"])
        atts = list(_attachments(doc))
        self.att_types = [str(a.get("content_type") or "").lower() for a in atts]
        self.att_names = [str(a.get("filename") or "").lower() for a in atts]
        self.att_count, self.att_size = len(atts), sum(int(a.get("size") or 0) for a in atts)
        self.enrich: dict[str, Any] = doc.get("enrichments") or {}
        self._values: dict[str, Any] = {}

    def value(self, dotted_path: str) -> Any:
        """``enrichments`` lookup, memoised per message (many rules read the same few paths)."""
        try:
            return self._values[dotted_path]
        except KeyError:
            v = self._values[dotted_path] = lookup(self.enrich, dotted_path)
            return v

    def autoreply(self) -> bool:
        """The autoreply enricher's verdict if it ran, else RFC 3834 headers (Auto-Submitted, ...)."""
        verdict = self.value("autoreply.result.autoreply")
        if verdict is not None:
            return bool(verdict)
        auto = self._first("auto-submitted") or "no"
        precedence = self._first("precedence")
        return auto != "no" or precedence == "auto_reply" or any(
            h in self.headers for h in ("x-autoreply", "x-autorespond", "x-auto-response-suppress"))

    def bounce(self) -> bool:
        """The bounce enricher's verdict if it ran, else a delivery-status report or a null-sender daemon."""
        verdict = self.value("bounce.result.bounce")
        if verdict is not None:
            return bool(verdict)
        ctype = self._first("content-type")
        daemon = self.sender.partition("@")[0] in ("mailer-daemon", "postmaster")
        return ("multipart/report" in ctype and "delivery-status" in ctype) or (self.null_sender and daemon)

    def _first(self, name: str) -> str:
        values = self.headers.get(name)
        return values[0].strip().lower() if values else ""


def _attachments(doc: dict[str, Any]) -> Any:
    yield from doc.get("attachments") or ()
    for m in doc.get("messages") or ():
        yield from _attachments(m)


class Ctx:
    """What one rule sees: the message facts plus one envelope recipient (lower-cased) and regex captures."""

    __slots__ = ("captures", "domain", "facts", "local", "recipient", "tag")

    def __init__(self, facts: Facts, recipient: str) -> None:
        self.facts, self.recipient = facts, recipient.lower()
        local, _, self.domain = self.recipient.rpartition("@")
        self.local, _, self.tag = local.partition("+")
        self.captures: dict[str, str] = {}


def domain_of(address: str) -> str:
    return address.rpartition("@")[2]


def lookup(data: Any, dotted_path: str) -> Any:
    """``enrichments`` lookup: ``"malware.result.verdict"`` -> value or None (never raises)."""
    for part in dotted_path.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data
