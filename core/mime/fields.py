"""Message-level fields from a root header list: the decoded headers, subject, date, ids and address lists."""

from __future__ import annotations

from typing import Any

from mailpipe.core.mime.addresses import parse_addresses
from mailpipe.core.mime.dates import parse_date
from mailpipe.core.mime.headers import msg_ids, unstructured
from mailpipe.core.model import Address, Header

_ADDRESS_FIELDS = {
    "from": "from_",
    "sender": "sender",
    "reply-to": "reply_to",
    "to": "to",
    "cc": "cc",
    "bcc": "bcc",
}
_ALL_INSTANCES = ("to", "cc", "bcc")  # every To/Cc/Bcc header counts; From/Sender/Reply-To: the first one


def message_fields(
    fields: list[tuple[str, str]], path: str, problems: list[tuple[str, str, str]]
) -> dict[str, Any]:
    """Keyword arguments for ``ParsedMessage`` derived from the root header fields; problems are appended."""
    decode_problems: list[str] = []
    headers = tuple(Header(n, unstructured(v, decode_problems)) for n, v in fields)
    problems.extend((path, "bad_encoded_word", x) for x in decode_problems)
    first: dict[str, int] = {}
    addrs: dict[str, list[Address]] = {k: [] for k in _ADDRESS_FIELDS}
    for i, (name, value) in enumerate(fields):
        low = name.lower()
        first.setdefault(low, i)
        if low in addrs and (low in _ALL_INSTANCES or first[low] == i):
            addrs[low].extend(parse_addresses(value))

    def raw(name: str) -> str | None:
        return fields[first[name]][1] if name in first else None

    date_value = raw("date")
    date = parse_date(date_value)
    if date is None and date_value:
        problems.append((path, "bad_date", f"unparseable Date {date_value[:60]!r}"))
    return {
        "headers": headers,
        "subject": headers[first["subject"]].value if "subject" in first else None,
        "date": date,
        "message_id": next(iter(msg_ids(raw("message-id"))), None),
        "in_reply_to": next(iter(msg_ids(raw("in-reply-to"))), None),
        "references": tuple(msg_ids(raw("references"))),
        **{attr: tuple(addrs[name]) for name, attr in _ADDRESS_FIELDS.items()},
    }
