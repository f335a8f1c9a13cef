"""The ``Received`` chain (RFC 5321 4.4): hops with from/by/with/id/for/time, and the client IP our edge saw.

Headers are listed top (newest, added by the last receiver) to bottom (oldest). The *trusted* hops are the top
ones whose ``by`` host matches a configured trusted name (our MX and relays); the client IP is the address in
the ``from`` clause of the lowest trusted hop — the only one nobody outside could have forged.
"""

from __future__ import annotations

import ipaddress
import re
from email.utils import parsedate_to_datetime
from typing import Any

_CLAUSE = re.compile(r"\b(from|by|via|with|id|for)\s+", re.I)
_IP = re.compile(r"\[(?:IPv6:)?([0-9A-Fa-f:.]+)\]|\(([0-9A-Fa-f:.]{7,})\)|\b(\d{1,3}(?:\.\d{1,3}){3})\b")


def parse_hop(value: str) -> dict[str, Any]:
    """One ``Received`` value -> ``{"from", "from_ip", "by", "with", "id", "for", "time"}`` (None: absent)."""
    clauses, _, date = value.rpartition(";") if ";" in value else (value, "", "")
    hop: dict[str, Any] = dict.fromkeys(("from", "from_ip", "by", "with", "id", "for", "time"))
    masked = _mask_comments(clauses)  # "(using TLSv1.3 with cipher ...)" must not read as a "with" clause
    marks = list(_CLAUSE.finditer(masked))
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(clauses)
        key, word = m.group(1).lower(), masked[m.end() : end].split()
        if key == "from" and hop["from"] is None:
            hop["from"] = word[0] if word else None
            hop["from_ip"] = _first_ip(clauses[m.end() : end])
        elif key in hop and hop[key] is None and word:
            hop[key] = word[0].strip("<>;")
    hop["time"] = _iso(date.strip())
    return hop


def chain(values: list[str], trusted: tuple[str, ...] = ()) -> dict[str, Any]:
    """The parsed hops (top first) plus ``client_ip``/``trusted_hops``. Without ``trusted`` names only the top
    hop (the one our own edge or provider added) is trusted."""
    hops = [parse_hop(" ".join(v.split())) for v in values]
    count = 1 if hops and not trusted else 0
    for hop in hops if trusted else ():
        if not _matches(hop.get("by"), trusted):
            break
        count += 1
    edge = hops[count - 1] if count else None
    return {
        "hops": hops,
        "trusted_hops": count,
        "client_ip": edge["from_ip"] if edge else None,
        "client_helo": edge["from"] if edge else None,
    }


def _mask_comments(text: str) -> str:
    out, depth = [], 0
    for ch in text:
        depth += ch == "("
        out.append(" " if depth else ch)
        depth -= ch == ")" and depth > 0
    return "".join(out)


def _matches(host: str | None, trusted: tuple[str, ...]) -> bool:
    host = (host or "").lower().rstrip(".")
    return any(host == t or host.endswith("." + t.lstrip(".")) for t in (x.lower() for x in trusted))


def _first_ip(text: str) -> str | None:
    for m in _IP.finditer(text):
        candidate = next(g for g in m.groups() if g)
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            continue
    return None


def _iso(date: str) -> str | None:
    if not date:
        return None
    try:
        return parsedate_to_datetime(date).isoformat()
    except (TypeError, ValueError, IndexError):
        return None
