"""``auth``: the ``Authentication-Results`` and ARC headers as data, and — where the client IP and HELO are
known (the edge's envelope) — our own SPF/DKIM/DMARC verdict.

Config::

    auth: {authserv_id: "mx.example.com",   # A-R headers from this id are marked trusted (others listed too)
           verify: true,                     # compute SPF/DKIM/DMARC when the envelope has client_ip and helo
           dns: {"example.com TXT": ["v=spf1 -all"], ...}}   # fixed answers (tests); else system DNS

Header claims are reported as received; only the ``verdict`` is computed here.
"""

from __future__ import annotations

from email.utils import getaddresses
from typing import TYPE_CHECKING, Any

from mailpipe.enrichers.authresults import arc_summary, parse_authentication_results
from mailpipe.enrichers.dns import DictResolver, Resolver, SystemResolver
from mailpipe.enrichers.verify import check_arc, check_dkim, check_dmarc, check_spf

if TYPE_CHECKING:
    from mailpipe.core.enrich.contract import Context
    from mailpipe.core.enrich.view import MessageView


class AuthEnricher:
    name = "auth"
    requires = ("spf", "dkim", "dns")
    version = "1"
    wants = frozenset({"headers", "raw", "envelope"})
    timeout = 30.0
    max_bytes = 50 * 1024 * 1024

    def __init__(self, resolver: Resolver | None = None) -> None:
        self.resolver = resolver

    def run(self, view: MessageView, ctx: Context) -> dict[str, Any]:
        conf = ctx.config
        trusted_id = (conf.get("authserv_id") or "").lower()
        headers = [parse_authentication_results(v) for v in view.header_values("Authentication-Results")]
        for h in headers:
            h["trusted"] = bool(trusted_id) and (h["authserv_id"] or "").lower() == trusted_id
        arc = arc_summary(
            view.header_values("ARC-Seal"),
            view.header_values("ARC-Message-Signature"),
            view.header_values("ARC-Authentication-Results"),
        )
        envelope = view.envelope or {}
        verdict = None
        if conf.get("verify", True) and envelope.get("client_ip") and envelope.get("helo"):
            verdict = self._verdict(view, envelope, self._resolver(conf))
        return {"authentication_results": headers, "arc": arc, "verdict": verdict}

    def _resolver(self, conf: Any) -> Resolver:
        if self.resolver is not None:
            return self.resolver
        if conf.get("dns") is not None:
            return DictResolver({tuple(k.rsplit(" ", 1)): v for k, v in conf["dns"].items()})
        return SystemResolver()

    def _verdict(self, view: MessageView, envelope: Any, resolver: Resolver) -> dict[str, Any]:
        spf = check_spf(resolver, envelope["client_ip"], envelope.get("mail_from") or "", envelope["helo"])
        dkim = check_dkim(resolver, view.raw, view.header_values("DKIM-Signature"))
        from_domain = _from_domain(view.header_values("From"))
        dmarc = check_dmarc(resolver, from_domain, spf, dkim)
        arc = check_arc(resolver, view.raw) if view.header_values("ARC-Seal") else None
        return {"spf": spf, "dkim": dkim, "dmarc": {**dmarc, "from_domain": from_domain}, "arc": arc}


def _from_domain(values: list[str]) -> str | None:
    addrs = [a for _, a in getaddresses(values) if "@" in a]
    return addrs[0].rpartition("@")[2].lower().rstrip(">") if len(addrs) == 1 else None
