"""RFC 5322 dates, leniently (obsolete zones, 2-digit years, no seconds/weekday) -> ISO 8601 with offset."""

from __future__ import annotations

import re

_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTHS = {m: i for i, m in enumerate(_MONTH_NAMES, 1)}
_ZONES = {
    "ut": 0,
    "utc": 0,
    "gmt": 0,
    "z": 0,
    "est": -5,
    "edt": -4,
    "cst": -6,
    "cdt": -5,
    "mst": -7,
    "mdt": -6,
    "pst": -8,
    "pdt": -7,
}
_COMMENT = re.compile(r"\([^()]*\)")
_DATE = re.compile(
    r"(?:[A-Za-z]+\s*,?\s*)?(\d{1,2})[\s\-/]*([A-Za-z]{3})[A-Za-z]*\.?[\s\-/]*(\d{2,4})\s+"
    r"(\d{1,2})\s*:\s*(\d{1,2})(?:\s*:\s*(\d{1,2}))?(?:\.\d+)?\s*([+-]\s*\d{1,4}|[A-Za-z]{1,5})?"
)
# Also seen in the wild: "Jul 1 2003 10:52:37" (month first) and "20 11 79 05:34:27" (numeric month).
_DATE_NUM = re.compile(
    r"(\d{1,2})[\s\-/.]+(\d{1,2})[\s\-/.]+(\d{2,4})\s+"
    r"(\d{1,2})\s*:\s*(\d{1,2})(?:\s*:\s*(\d{1,2}))?\s*([+-]\s*\d{1,4}|[A-Za-z]{1,5})?"
)
_DATE_MDY = re.compile(
    r"(?:[A-Za-z]+\s*,?\s*)?([A-Za-z]{3})[A-Za-z]*\s+(\d{1,2})\s*,?\s+(\d{2,4})\s+"
    r"(\d{1,2})\s*:\s*(\d{1,2})(?:\s*:\s*(\d{1,2}))?\s*([+-]\s*\d{1,4}|[A-Za-z]{1,5})?"
)


def parse_date(value: str | None) -> str | None:
    """ISO 8601 ``YYYY-MM-DDTHH:MM:SS+HH:MM``, or None when absent or unparseable. Never raises."""
    if not value:
        return None
    v = value[:200]
    for _ in range(4):  # comments may nest: (a (b) c); an unclosed one runs to the end
        if "(" not in v:
            break
        v = _COMMENT.sub(" ", v) if ")" in v else v[: v.index("(")]
    found = _find(v)
    if found is None:
        return None
    day, mon, year, hh, mm, ss, zone = found
    month = int(mon) if mon.isdigit() else _MONTHS.get(mon.lower())
    y = int(year)
    y += (2000 if y < 50 else 1900) if len(year) <= 2 else (1900 if len(year) == 3 else 0)
    d, h, mi, s = int(day), int(hh), int(mm), int(ss or 0)
    if month is None or not (1 <= month <= 12 and 1 <= d <= 31 and h <= 23 and mi <= 59 and s <= 60):
        return None
    off = _offset(zone)
    sign = "-" if off < 0 else "+"
    zone_text = f"{sign}{abs(off) // 60:02d}:{abs(off) % 60:02d}"
    return f"{y:04d}-{month:02d}-{d:02d}T{h:02d}:{mi:02d}:{min(s, 59):02d}{zone_text}"


def _find(v: str) -> tuple[str, ...] | None:
    """(day, month, year, hour, minute, second, zone) from the first date shape that matches."""
    if (m := _DATE.search(v)) is not None:
        return m.groups()
    if (m := _DATE_MDY.search(v)) is not None:
        mon, day, *rest = m.groups()
        return (day, mon, *rest)
    if (m := _DATE_NUM.search(v)) is not None:
        return m.groups()
    return None


def _offset(zone: str | None) -> int:
    """Minutes east of UTC; unknown or military zones count as +00:00 (RFC 5322 4.3)."""
    if not zone:
        return 0
    z = "".join(zone.split())
    if z[0] in "+-":
        digits = z[1:].rjust(4, "0") if len(z) > 3 else z[1:].rjust(2, "0") + "00"
        hh, mm = int(digits[:2]), int(digits[2:4])
        if hh > 23 or mm > 59:
            return 0
        return (hh * 60 + mm) * (-1 if z[0] == "-" else 1)
    return _ZONES.get(z.lower(), 0) * 60
