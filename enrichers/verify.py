"""SPF (pyspf), DKIM (dkimpy) and DMARC (RFC 7489, evaluated here) against a ``Resolver``.

Only meaningful where the connecting client's IP and HELO are known: at the edge, or in the parse function for
messages the edge stored with their envelope.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from core.errors import BackendUnavailable
from enrichers.authresults import parse_tags

if TYPE_CHECKING:
    from enrichers.dns import Resolver


def check_spf(resolver: Resolver, ip: str, mail_from: str, helo: str) -> dict[str, Any]:
    """``{"result", "domain", "explanation"}``; result is pass, fail, softfail, neutral, none, permerror or
    temperror."""
    import spf

    class Query(spf.query):  # every lookup goes to our resolver, never to the host's DNS
        def dns(self, name: str, qtype: str, cnames: Any = None, ignore_void: bool = False) -> list[Any]:
            values = resolver.query(str(name).rstrip("."), qtype)
            if qtype in ("TXT", "SPF"):
                return [[v.encode()] for v in values]
            if qtype == "MX":
                return [(int(p), h) for p, _, h in (v.partition(" ") for v in values)]
            return values

    sender = mail_from or f"postmaster@{helo}"
    try:
        result, _code, explanation = Query(i=ip, s=sender, h=helo, timeout=20).check()
    except BackendUnavailable:
        result, explanation = "temperror", "dns unavailable"
    return {"result": result, "domain": sender.rpartition("@")[2].lower(), "explanation": explanation}


def check_dkim(resolver: Resolver, raw: bytes, max_signatures: int = 5) -> list[dict[str, Any]]:
    """One entry per ``DKIM-Signature``: ``{"result": "pass"|"fail"|"temperror", "d", "s", "error"}``."""
    import dkim

    def txt(name: bytes | str, timeout: float = 5) -> bytes | None:
        name = name.decode() if isinstance(name, bytes) else name
        values = resolver.query(name.rstrip("."), "TXT")
        return values[0].encode() if values else None

    checker = dkim.DKIM(raw)
    sigs = [v for k, v in checker.headers if k.lower() == b"dkim-signature"][:max_signatures]
    out = []
    for idx, sig in enumerate(sigs):
        tags = parse_tags(sig.decode("ascii", "replace"))
        entry = {"d": tags.get("d", "").lower() or None, "s": tags.get("s"), "result": "fail", "error": None}
        try:
            entry["result"] = "pass" if checker.verify(idx=idx, dnsfunc=txt) else "fail"
        except BackendUnavailable as exc:
            entry["result"], entry["error"] = "temperror", str(exc)
        except Exception as exc:  # dkim.DKIMException and malformed signatures: a failed signature
            entry["error"] = f"{type(exc).__name__}: {exc}"[:200]
        out.append(entry)
    return out


def check_dmarc(
    resolver: Resolver, from_domain: str | None, spf: dict[str, Any] | None, dkim: list[dict[str, Any]]
) -> dict[str, Any]:
    """DMARC verdict: ``{"result": "pass"|"fail"|"none", "policy", "record_domain", "aligned": [...]}``."""
    if not from_domain:
        return {"result": "none", "policy": None, "record_domain": None, "aligned": []}
    org = org_domain(from_domain)
    record_domain, tags = from_domain, _dmarc_record(resolver, from_domain)
    if tags is None and org != from_domain:
        record_domain, tags = org, _dmarc_record(resolver, org)
    if tags is None:
        return {"result": "none", "policy": None, "record_domain": None, "aligned": []}
    aligned = []
    if spf and spf["result"] == "pass" and _aligned(spf["domain"], from_domain, tags.get("aspf", "r")):
        aligned.append("spf")
    if any(
        d["result"] == "pass" and _aligned(d["d"] or "", from_domain, tags.get("adkim", "r")) for d in dkim
    ):
        aligned.append("dkim")
    policy = tags.get("sp") if record_domain != from_domain and "sp" in tags else tags.get("p", "none")
    return {
        "result": "pass" if aligned else "fail",
        "policy": policy,
        "record_domain": record_domain,
        "aligned": aligned,
    }


def _dmarc_record(resolver: Resolver, domain: str) -> dict[str, str] | None:
    for txt in resolver.query(f"_dmarc.{domain}", "TXT"):
        if txt.strip().lower().startswith("v=dmarc1"):
            return parse_tags(txt)
    return None


def _aligned(domain: str, from_domain: str, mode: str) -> bool:
    domain, from_domain = domain.lower().rstrip("."), from_domain.lower().rstrip(".")
    if mode.lower().startswith("s"):
        return domain == from_domain
    return org_domain(domain) == org_domain(from_domain)


@functools.lru_cache(maxsize=4096)
def org_domain(domain: str) -> str:
    """The organizational domain via the Public Suffix List shipped with authheaders (``a.b.example.co.uk`` ->
    ``example.co.uk``); without it, the last two labels."""
    try:
        from authheaders.dmarc_lookup import get_org_domain

        return str(get_org_domain(domain.lower())).lower()
    except ImportError:
        return ".".join(domain.lower().split(".")[-2:])
