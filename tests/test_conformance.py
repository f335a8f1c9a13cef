"""Conformance against the Stalwart mail-parser corpus (shared/corpus/stalwart-mail-parser; PROVENANCE.md).

Every message is parsed in its LF form (every CR removed; expected NNN.json) and its CRLF form (CR added
before every bare LF; expected NNN.crlf.json). Compared per message: subject, from/to/cc, date, message-id,
text and html bodies (whitespace runs collapsed), attachment names and sizes, number of attached messages.
Agreement per suite is printed at the end of the run and written to ``.pytest_cache/conformance.txt``; a floor
per suite fails
regressions. Deliberate differences are listed in ``DELIBERATE`` with the reason (also in docs/parser.md) and
must still differ, so the list cannot go stale silently.

Also: the header-field vectors (fields/*.json) against our header parsers, and every CPython test_email data
message (no exception, schema-valid).
"""

from __future__ import annotations

import email
import json
import re
from pathlib import Path
from typing import Any

import pytest

from mailpipe.core.mime.addresses import parse_addresses
from mailpipe.core.mime.dates import parse_date
from mailpipe.core.mime.headers import content_type, msg_ids, split_fields, unstructured
from mailpipe.core.mime.parser import parse

CORPUS = Path(__file__).resolve().parents[2] / "shared/corpus/stalwart-mail-parser"
CPYTHON_DATA = Path(email.__file__).parent.parent / "test/test_email/data"
SCHEMA = Path(__file__).resolve().parents[1] / "schema/parsed-message.json"
AGREEMENT_TABLE = pytest.StashKey[list[str]]()
REPORT = Path(__file__).resolve().parents[1] / ".pytest_cache/conformance.txt"
SUITES = ("rfc", "legacy", "thirdparty", "malformed")
# Minimum agreement (%) per suite; raise these when the parser improves, never lower them silently.
FLOORS = {"rfc": 100.0, "legacy": 99.0, "thirdparty": 99.0, "malformed": 97.0}
FIELD_FLOORS = {"address": 95.0, "date": 95.0, "id": 100.0, "unstructured": 95.0, "content_type": 93.0}

_LATIN1 = (
    "raw 8-bit non-UTF-8 bytes (headers, filenames, text with a wrong/absent charset): Stalwart yields "
    "U+FFFD, we decode windows-1252 and record a charset_fallback defect, so the text stays readable"
)
_UUENCODE = "x-uuencode bodies: we decode them (real attachment bytes); Stalwart stores the encoded text"
_OUTER = (
    "an unclosed inner multipart/message ends at its parent's next delimiter (RFC 2046 5.1.2, like "
    "Dovecot); Stalwart lets it swallow the parent's later parts"
)
_PREFIX = (
    "a delimiter line must be '--boundary' plus only whitespace or '--' (RFC 2046 5.1.1); Stalwart also "
    "accepts lines that merely start with it ('--ab' for boundary 'a'), which breaks nested boundaries "
    "sharing a prefix"
)
_NO_BOUNDARY = (
    "a multipart whose delimiter never appears is read as text/plain (content shown, boundary_not_found "
    "defect); Stalwart turns it into an attachment or drops its empty parts"
)
_DUP_CT = (
    "duplicate Content-Type: the first one wins (RFC 5322 allows one; Dovecot agrees); Stalwart uses the last"
)
_EMPTY_DISP = "'Content-Disposition: ;' with a filename parameter: we keep the filename, Stalwart drops it"
_B64_GARBAGE = "base64 with garbage after the padding: we stop at the padding and record a defect"
_CASE = "boundaries are case-sensitive (RFC 2046); Stalwart matched '--Boundary42' for boundary 'boundary42'"
_MIDLINE = "a close delimiter in the middle of a line ('invalid--1--') is text, not a delimiter (RFC 2046)"

# (suite, file stem, field) -> why we deliberately differ from Stalwart. Applies to both LF and CRLF forms.
DELIBERATE: dict[tuple[str, str, str], str] = {
    **{
        ("legacy", stem, f): _LATIN1
        for stem in ("010", "020", "022", "027", "052")
        for f in ("subject", "to")
    },
    ("legacy", "017", "to"): _LATIN1,
    ("legacy", "016", "attachments"): _LATIN1,
    ("legacy", "023", "attachments"): _LATIN1,
    ("legacy", "026", "attachments"): _LATIN1,
    ("legacy", "033", "text"): _LATIN1,
    ("legacy", "052", "text"): _LATIN1,
    ("legacy", "017", "attachments"): _UUENCODE,
    ("legacy", "048", "attachments"): _UUENCODE,
    ("thirdparty", "002", "text"): _B64_GARBAGE,
    ("thirdparty", "002", "attachments"): _B64_GARBAGE,
    ("thirdparty", "005", "text"): _MIDLINE,
    ("thirdparty", "015", "attachments"): _OUTER,
    ("thirdparty", "015", "messages"): _OUTER,
    ("malformed", "000", "text"): _NO_BOUNDARY,
    ("malformed", "000", "html"): _NO_BOUNDARY,
    **{
        ("malformed", stem, f): _PREFIX
        for stem in ("001", "004", "007", "016")
        for f in ("text", "attachments")
    },
    ("malformed", "008", "html"): _PREFIX,
    ("malformed", "008", "attachments"): _PREFIX,
    ("malformed", "005", "text"): _PREFIX,
    **{
        ("malformed", stem, f): _NO_BOUNDARY
        for stem in ("002", "003", "006")
        for f in ("text", "attachments")
    },
    **{("malformed", stem, f): _OUTER for stem in ("009", "011") for f in ("text", "attachments")},
    ("malformed", "012", "attachments"): _OUTER,
    ("malformed", "012", "messages"): _OUTER,
    ("malformed", "017", "attachments"): _EMPTY_DISP,
    ("malformed", "019", "text"): _CASE,
    **{("malformed", stem, f): _DUP_CT for stem in ("020", "021") for f in ("text", "html")},
}

# (fields file, case index) -> why our header parser deliberately differs from Stalwart's on that vector.
FIELD_DELIBERATE: dict[tuple[str, int], str] = {
    ("address", 13): "addr-spec is normalised: whitespace removed, obsolete source route '@node:' dropped",
    ("address", 14): "addr-spec is normalised: whitespace and comments removed inside the address",
    ("address", 33): "display names have their whitespace runs collapsed and trimmed",
    (
        "address",
        42,
    ): "a bare word without '@' is a display name (as Stalwart itself does for 'From: Whomever')",
    ("content_type", 29): "RFC 2231 language tags are dropped, not exposed as '<name>-language'",
    ("content_type", 30): "RFC 2231 language tags are dropped, not exposed as '<name>-language'",
    ("content_type", 31): "RFC 2231 language tags are dropped, not exposed as '<name>-language'",
    ("content_type", 34): "whitespace between adjacent encoded words is dropped (RFC 2047 6.2)",
    ("unstructured", 21): "no space is invented before an encoded word glued to text (RFC 2047 5)",
    ("unstructured", 27): "no space is invented before an encoded word glued to text (RFC 2047 5)",
    ("unstructured", 28): "no space is invented before an encoded word glued to text (RFC 2047 5)",
}

_RESULTS: dict[str, list[int]] = {}
pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"Stalwart corpus not found at {CORPUS}")


def lf(raw: bytes) -> bytes:
    return raw.replace(b"\r", b"")


def crlf(raw: bytes) -> bytes:
    return re.sub(rb"(?<!\r)\n", b"\r\n", raw)


def _ws(s: str | None) -> str | None:
    return None if s is None else " ".join(s.split())


def _header(part: dict[str, Any], name: str) -> list[Any]:
    return [h["value"] for h in part["headers"] if h["name"] == name]


def _addresses(values: list[Any]) -> list[tuple[str | None, str | None]]:
    out = []
    for v in values:
        addr = v.get("Address", {}) if isinstance(v, dict) else {}
        for a in addr.get("List", []):
            out.append((a["name"], a["address"]))
        for g in addr.get("Group", []):
            out.extend((a["name"], a["address"]) for a in g["addresses"])
    return out


def _iso(dt: dict[str, int] | None) -> str | None:
    if not dt:
        return None
    sign = "-" if dt["tz_before_gmt"] else "+"
    return (
        f"{dt['year']:04d}-{dt['month']:02d}-{dt['day']:02d}T{dt['hour']:02d}:{dt['minute']:02d}:"
        f"{dt['second']:02d}{sign}{dt['tz_hour']:02d}:{dt['tz_minute']:02d}"
    )


def _text_of(value: Any) -> str | None:
    if isinstance(value, dict) and "Text" in value:
        return value["Text"]
    if isinstance(value, dict) and "TextList" in value:
        return value["TextList"][0] if value["TextList"] else None
    return None


def _filename(part: dict[str, Any]) -> str | None:
    for hname, attr in (("content_disposition", "filename"), ("content_type", "name")):
        for v in _header(part, hname):
            ctype = v.get("ContentType") if isinstance(v, dict) else None
            for a in (ctype or {}).get("attributes") or []:
                if a["name"] == attr:
                    return a["value"]
    return None


def _size(part: dict[str, Any]) -> int | None:
    body = part["body"]
    for kind in ("Binary", "InlineBinary"):
        if kind in body:
            return len(body[kind])
    return None


def expected(doc: dict[str, Any]) -> dict[str, Any]:
    """The fields we compare, extracted from Stalwart's serde JSON of a Message."""
    parts, root = doc["parts"], doc["parts"][0]
    subj = _header(root, "subject")
    date = _header(root, "date")
    mid = _header(root, "message_id")
    body_ids = {
        i
        for i in doc["text_body"] + doc["html_body"]
        if "Text" in parts[i]["body"] or "Html" in parts[i]["body"]
    }
    att_ids = sorted(set(doc["attachments"]) | (set(doc["text_body"] + doc["html_body"]) - body_ids))
    texts = [parts[i]["body"]["Text"] for i in doc["text_body"] if "Text" in parts[i]["body"]]
    htmls = [parts[i]["body"]["Html"] for i in doc["html_body"] if "Html" in parts[i]["body"]]
    return {
        "subject": _ws(_text_of(subj[0])) if subj else None,
        "from": _addresses(_header(root, "from")[:1]),
        "to": _addresses(_header(root, "to")),
        "cc": _addresses(_header(root, "cc")),
        "date": _iso(date[0].get("DateTime")) if date and isinstance(date[0], dict) else None,
        "message_id": _text_of(mid[0]) if mid else None,
        "text": _ws("\n".join(texts)) if texts else None,
        "html": _ws("\n".join(htmls)) if htmls else None,
        "attachments": [(_filename(parts[i]), _size(parts[i])) for i in att_ids],
        "messages": sum(1 for i in att_ids if "Message" in parts[i]["body"]),
    }


def actual(raw: bytes) -> dict[str, Any]:
    m = parse(raw).message
    sizes = {a.key: a.size for a in m.attachments}

    def pairs(xs: tuple[Any, ...]) -> list[tuple[str | None, str | None]]:
        return [(a.name, a.address) for a in xs]

    return {
        "subject": _ws(m.subject),
        "from": pairs(m.from_[:1]),
        "to": pairs(m.to),
        "cc": pairs(m.cc),
        "date": m.date,
        "message_id": m.message_id,
        "text": _ws(m.text),
        "html": _ws(m.html),
        "attachments": [(a.filename, sizes[a.key]) for a in m.attachments],
        "messages": len(m.messages),
    }


def _same(field: str, exp: Any, got: Any) -> bool:
    if field == "attachments":  # sizes of text/message attachments are not in Stalwart's output
        return len(exp) == len(got) and all(
            en == gn and (es is None or es == gs) for (en, es), (gn, gs) in zip(exp, got, strict=True)
        )
    return bool(exp == got)


def compare_suite(suite: str) -> tuple[int, int, int, list[str]]:
    """(compared, agreed, deliberate, mismatch descriptions) over both forms of every message of a suite."""
    compared = agreed = deliberate = 0
    misses: list[str] = []
    for eml in sorted((CORPUS / "eml" / suite).glob("*.eml")):
        raw = eml.read_bytes()
        for form, data, exp_path in (
            ("lf", lf(raw), eml.with_suffix(".json")),
            ("crlf", crlf(raw), eml.with_suffix(".crlf.json")),
        ):
            exp = expected(json.loads(exp_path.read_text()))
            got = actual(data)
            for field, value in exp.items():
                same = _same(field, value, got[field])
                reason = DELIBERATE.get((suite, eml.stem, field))
                if reason is not None:
                    assert not same, f"{suite}/{eml.stem} {field} now agrees: remove it from DELIBERATE"
                    deliberate += 1
                    continue
                compared += 1
                agreed += same
                if not same:
                    misses.append(
                        f"{suite}/{eml.stem}.{form} {field}: expected {value!r} got {got[field]!r}"[:400]
                    )
    return compared, agreed, deliberate, misses


@pytest.fixture(scope="module", autouse=True)
def _agreement_table(request: pytest.FixtureRequest) -> Any:
    yield
    lines = [
        "conformance vs stalwart-mail-parser (LF + CRLF forms)",
        f"  {'suite':<22} {'compared':>8} {'agreed':>7} {'%':>6}   {'deliberate':>10}"
        f"  {'raw % incl. deliberate':>22}",
    ]
    for name, (n, ok, dl) in _RESULTS.items():
        raw_pct = 100 * ok / max(n + dl, 1)
        lines.append(
            f"  {name:<22} {n:>8} {ok:>7} {100 * ok / max(n, 1):5.1f}%   {dl:>10}  {raw_pct:>21.1f}%"
        )
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text("\n".join(lines) + "\n")
    request.config.stash[AGREEMENT_TABLE] = lines  # printed in the terminal summary (tests/conftest.py)


@pytest.mark.parametrize("suite", SUITES)
def test_suite_agreement(suite: str) -> None:
    compared, agreed, deliberate, misses = compare_suite(suite)
    _RESULTS[f"eml/{suite}"] = [compared, agreed, deliberate]
    pct = 100 * agreed / max(compared, 1)
    assert pct >= FLOORS[suite], f"{suite}: {pct:.1f}% < {FLOORS[suite]}%\n" + "\n".join(misses[:40])


def _field_case(kind: str, header: str) -> Any:
    fields, _ = split_fields(b"X: " + header.encode())
    header = fields[0][1] if fields else ""
    if kind == "address":
        return [(a.name, a.address) for a in parse_addresses(header)]
    if kind == "date":
        return parse_date(header)
    if kind == "id":
        return msg_ids(header) or None
    if kind == "unstructured":
        return unstructured(header)
    ctype, sub, params = content_type(header)
    return (ctype, sub or None, params or None) if ctype else None


def _field_expected(kind: str, exp: Any) -> Any:
    if kind == "address":
        return _addresses([{"Address": exp}]) if exp else []
    if kind == "date":
        return _iso(exp)
    if kind == "content_type":
        if not exp:
            return None
        pairs = [
            (a["name"], a["value"]) if isinstance(a, dict) else tuple(a) for a in exp.get("attributes") or []
        ]
        attrs = {k.lower(): v for k, v in pairs} or None
        return (exp["c_type"], exp.get("c_subtype"), attrs)
    return exp


@pytest.mark.parametrize("kind", sorted(FIELD_FLOORS))
def test_field_vectors(kind: str) -> None:
    cases = json.loads((CORPUS / "fields" / f"{kind}.json").read_text())
    misses, deliberate = [], 0
    for i, case in enumerate(cases):
        exp, got = _field_expected(kind, case["expected"]), _field_case(kind, case["header"])
        if (kind, i) in FIELD_DELIBERATE:
            assert exp != got, f"{kind}[{i}] now agrees: remove it from FIELD_DELIBERATE"
            deliberate += 1
        elif exp != got:
            misses.append(f"[{i}] {case['header']!r}: expected {exp!r} got {got!r}"[:300])
    compared = len(cases) - deliberate
    agreed = compared - len(misses)
    _RESULTS[f"fields/{kind}"] = [compared, agreed, deliberate]
    pct = 100 * agreed / max(compared, 1)
    assert pct >= FIELD_FLOORS[kind], f"{kind}: {pct:.1f}%\n" + "\n".join(misses[:40])


@pytest.mark.skipif(not CPYTHON_DATA.is_dir(), reason=f"CPython test_email data not found at {CPYTHON_DATA}")
def test_cpython_email_corpus() -> None:
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(json.loads(SCHEMA.read_text()))
    files = sorted(p for p in CPYTHON_DATA.iterdir() if p.is_file())
    assert files
    for path in files:
        result = parse(path.read_bytes())
        doc = json.loads(json.dumps(result.message.to_dict()))
        validator.validate(doc)
        assert not [d for d in result.message.defects if d.kind == "internal_error"], path.name
