"""Tolerant parsers for ``Authentication-Results`` (RFC 8601) and the ARC header set (RFC 8617).

Real headers are sloppy; a field that cannot be read is skipped, never raised.
"""

from __future__ import annotations

import re
from typing import Any

_RESULT = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*=\s*([A-Za-z0-9_-]+)(.*)$", re.S)
_PROP = re.compile(r"""([A-Za-z0-9_.-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s;]+)""")


def _strip_comments(value: str) -> str:
    out, depth, quoted = [], 0, False
    for ch in value:
        if ch == '"' and not depth:
            quoted = not quoted
        if not quoted:
            depth += ch == "("
            if depth:
                depth -= ch == ")"
                continue
        out.append(ch)
    return "".join(out)


def _split(value: str) -> list[str]:
    """Split on ``;`` outside quoted strings."""
    parts: list[str] = []
    cur: list[str] = []
    quoted = False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        if ch == ";" and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def parse_authentication_results(value: str) -> dict[str, Any]:
    """``{"authserv_id", "results": [{"method", "result", "reason", "properties": {...}}]}``."""
    fields = _split(_strip_comments(" ".join(value.split())))
    instance = None
    if fields and re.fullmatch(r"i\s*=\s*\d+", fields[0]):  # ARC-Authentication-Results starts with i=N
        instance = int(fields.pop(0).split("=")[1])
    authserv = fields.pop(0).split()[0] if fields else None
    results = []
    for field in fields:
        m = _RESULT.match(field)
        if not m or m.group(1).lower() == "none":
            continue
        props = {k.lower(): v.strip('"') for k, v in _PROP.findall(m.group(3))}
        results.append(
            {
                "method": m.group(1).lower(),
                "result": m.group(2).lower(),
                "reason": props.pop("reason", None),
                "properties": props,
            }
        )
    out: dict[str, Any] = {"authserv_id": authserv, "results": results}
    if instance is not None:
        out["instance"] = instance
    return out


def parse_tags(value: str) -> dict[str, str]:
    """A tag=value list (DKIM-Signature, ARC-Seal, ARC-Message-Signature, DMARC records)."""
    tags = {}
    for item in " ".join(value.split()).split(";"):
        key, sep, val = item.partition("=")
        if sep and key.strip():
            tags[key.strip().lower()] = val.strip()
    return tags


def arc_summary(seals: list[str], signatures: list[str], results: list[str]) -> dict[str, Any] | None:
    """The ARC sets by instance, and the chain validation the newest sealer claimed (``cv``)."""
    if not (seals or signatures or results):
        return None
    sets: dict[int, dict[str, Any]] = {}
    for seal in seals:
        tags = parse_tags(seal)
        if tags.get("i", "").isdigit():
            sets.setdefault(int(tags["i"]), {})["seal"] = {"cv": tags.get("cv"), "d": tags.get("d")}
    for sig in signatures:
        tags = parse_tags(sig)
        if tags.get("i", "").isdigit():
            sets.setdefault(int(tags["i"]), {})["signature"] = {"d": tags.get("d"), "s": tags.get("s")}
    for res in results:
        parsed = parse_authentication_results(res)
        if "instance" in parsed:
            sets.setdefault(parsed["instance"], {})["results"] = parsed
    newest = max(sets) if sets else None
    claimed = sets.get(newest, {}).get("seal", {}).get("cv") if newest else None
    return {"instances": [{"i": i, **sets[i]} for i in sorted(sets)], "claimed_cv": claimed}
