"""SPF (pyspf), DKIM (dkimpy) and DMARC (RFC 7489, evaluated here) against a ``Resolver``.

Only meaningful where the connecting client's IP and HELO are known: at the edge, or in the parse function for
messages the edge stored with their envelope.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from mailpipe.core.errors import BackendUnavailable
from mailpipe.enrichers.authresults import parse_tags

if TYPE_CHECKING:
    from mailpipe.enrichers.dns import Resolver


def check_spf(resolver: Resolver, ip: str, mail_from: str, helo: str) -> dict[str, Any]:
    """``{"result", "domain", "explanation"}``; result is pass, fail, softfail, neutral, none, permerror or
    temperror."""
    import spf

    # pyspf has no types, so spf.query is Any to mypy and subclassing it is [misc]: ignored on this line only.
    class Query(spf.query):  # type: ignore[misc]  # every lookup goes to our resolver, never to the host's DNS
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


def check_dkim(resolver: Resolver, raw: bytes, signatures: list[str], max_signatures: int = 5) -> list[dict[str, Any]]:
    """One entry per ``DKIM-Signature`` value (top first): ``{"result", "d", "s", "error"}``; result is pass,
    fail, permerror (no key published: RFC 6376 6.1.2), temperror (DNS down)."""
    out: list[dict[str, Any]] = []
    keys: dict[tuple[str, str], list[str]] = {}
    for sig in signatures[:max_signatures]:
        tags = parse_tags(sig)
        d, sel = tags.get("d", "").lower().rstrip("."), tags.get("s", "")
        entry = {"d": d or None, "s": sel or None, "result": "fail", "error": None}
        try:  # the key first: without one the signature is permerror and the body need not be hashed
            keys[sel, d] = keys.get((sel, d)) or resolver.query(f"{sel}._domainkey.{d}", "TXT")
        except BackendUnavailable as exc:
            entry["result"], entry["error"] = "temperror", str(exc)
        else:
            if not keys[sel, d]:
                entry["result"], entry["error"] = "permerror", f"no key at {sel}._domainkey.{d}"
        out.append(entry)
    if any(e["result"] == "fail" for e in out):
        _dkimpy_verify(raw, out, keys)
    return out


def _dkimpy_verify(raw: bytes, entries: list[dict[str, Any]], keys: dict[tuple[str, str], list[str]]) -> None:
    import dkim

    def txt(name: bytes | str, timeout: float = 5) -> bytes | None:
        sel, _, d = (name.decode() if isinstance(name, bytes) else name).rstrip(".").partition("._domainkey.")
        found = keys.get((sel, d.lower()))
        return found[0].encode() if found else None

    checker = dkim.DKIM(raw)
    for idx, entry in enumerate(entries):
        if entry["result"] != "fail":
            continue
        try:
            entry["result"] = "pass" if checker.verify(idx=idx, dnsfunc=txt) else "fail"
        except Exception as exc:  # dkim.DKIMException and malformed signatures: a failed signature
            entry["error"] = f"{type(exc).__name__}: {exc}"[:200]


def check_arc(resolver: Resolver, raw: bytes) -> dict[str, Any]:
    """Validate the ARC chain (RFC 8617) with dkimpy: ``{"cv": "pass"|"fail"|"none", "reason"}``."""
    import dkim

    def txt(name: bytes | str, timeout: float = 5) -> bytes | None:
        values = resolver.query((name.decode() if isinstance(name, bytes) else name).rstrip("."), "TXT")
        return values[0].encode() if values else None

    try:
        cv, _results, reason = dkim.arc_verify(raw, dnsfunc=txt)
    except BackendUnavailable as exc:
        return {"cv": "temperror", "reason": str(exc)}
    except Exception as exc:  # a malformed ARC set is a failed chain
        return {"cv": "fail", "reason": f"{type(exc).__name__}: {exc}"[:200]}
    cv = cv.decode() if isinstance(cv, bytes) else str(cv)
    return {"cv": cv.lower(), "reason": reason.decode() if isinstance(reason, bytes) else reason}


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
    if any(d["result"] == "pass" and _aligned(d["d"] or "", from_domain, tags.get("adkim", "r")) for d in dkim):
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
    psl = _public_suffix_list()
    if psl is None:
        return ".".join(domain.lower().split(".")[-2:])
    return str(psl.get_public_suffix(domain.lower())).lower()


@functools.lru_cache(maxsize=1)
def _public_suffix_list() -> Any:
    """Loaded once per process (authheaders' own get_org_domain re-reads the 230 KB file on every call)."""
    try:
        from importlib.resources import as_file, files

        from publicsuffix2 import PublicSuffixList

        with (
            as_file(files("authheaders") / "public_suffix_list.txt") as path,
            open(path, encoding="utf-8") as fh,
        ):
            return PublicSuffixList(fh)
    except ImportError:
        return None
