"""Invoice fields from OCR'd or extracted text: number, date, total and currency. Regular expressions over the
common English/European layouts; a field that is not found is None."""

from __future__ import annotations

import re
from typing import Any

_NUMBER = re.compile(
    r"\binvoice\s*(?:no\.?|number|num\.?|nr\.?|#|id)\s*[:#.]?\s*([A-Z0-9][A-Z0-9\-/.]{2,30}[A-Z0-9])", re.I
)
_DATE_VALUE = (
    r"(\d{4}-\d{2}-\d{2}|\d{1,2}[./-]\d{1,2}[./-]\d{2,4}"
    r"|\d{1,2}\s+[A-Za-z]{3,9}\.?\s+\d{4}|[A-Za-z]{3,9}\.?\s+\d{1,2},?\s+\d{4})"
)
_DATE = re.compile(r"\b(?:invoice\s+date|date\s+of\s+issue|issue\s+date|date)\s*[:.]?\s*" + _DATE_VALUE, re.I)
_TOTAL = re.compile(
    r"(?<!sub)(?<!sub-)\b(?:grand\s+total|total\s+due|amount\s+due|balance\s+due|total)(?:\s*\([^)]*\))?"
    r"\s*[:.]?\s*([A-Z]{3}|[$€£])?\s*"
    r"(-?\d{1,3}(?:[ ,.']\d{3})*(?:[.,]\d{2})?|\d+(?:[.,]\d{2})?)\s*([A-Z]{3}|[$€£])?",
    re.I,
)
_SYMBOLS = {"$": "USD", "€": "EUR", "£": "GBP"}


def extract(text: str) -> dict[str, Any] | None:
    """The invoice fields found in ``text``, or None when neither a number nor a total is there."""
    number = _NUMBER.search(text)
    totals = list(_TOTAL.finditer(text))
    if not number and not totals:
        return None
    date = _DATE.search(text)
    total = totals[-1] if totals else None  # the last total on the page is the grand total
    currency = (total.group(1) or total.group(3)) if total else None
    return {
        "number": number.group(1) if number else None,
        "date": date.group(1) if date else None,
        "total": _amount(total.group(2)) if total else None,
        "currency": _SYMBOLS.get(currency or "", (currency or "").upper() or None),
    }


def _amount(value: str) -> str:
    """``1.234,50`` / ``1,234.50`` / ``1 234.50`` -> ``1234.50``."""
    digits = re.sub(r"[ ']", "", value)
    if re.search(r"[.,]\d{2}$", digits):
        whole, cents = digits[:-3], digits[-2:]
        return re.sub(r"[.,]", "", whole) + "." + cents
    return re.sub(r"[.,]", "", digits)
