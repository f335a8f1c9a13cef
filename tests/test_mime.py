"""mailpipe.core.mime.parser.parse over golden .eml fixtures (tests/fixtures/mail): fields, bodies, attachments, nested
messages, defects, limits, storage-key safety, the CLI. No mocks: real bytes in, the JSON contract out."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from mailpipe.core.keys import message_id
from mailpipe.core.mime.parser import parse
from mailpipe.core.model import Envelope, Limits, dumps

ROOT = Path(__file__).resolve().parents[1]
MAIL = ROOT / "tests/fixtures/mail"
VALIDATOR = Draft202012Validator(json.loads((ROOT / "schema/parsed-message.json").read_text()))
KEY_RE = re.compile(r"^att/[0-9a-f]{32}/[0-9]+-[A-Za-z0-9._-]{1,100}$")


def load(name: str) -> bytes:
    return (MAIL / name).read_bytes()


def check(raw: bytes, **kw: object) -> dict:
    """Parse, validate against the schema, check payloads match the attachment records; return the dict."""
    result = parse(raw, **kw)  # type: ignore[arg-type]
    doc = json.loads(dumps(result.message.to_dict()))  # the canonical UTF-8 encoding
    VALIDATOR.validate(doc)
    assert not [d for d in doc["defects"] if d["kind"] == "internal_error"]
    for att in _all_attachments(doc):
        data = result.payloads[att["key"]]
        assert len(data) == att["size"] and hashlib.sha256(data).hexdigest() == att["sha256"]
    return doc


def _all_attachments(doc: dict) -> list[dict]:
    out = list(doc["attachments"])
    for m in doc["messages"]:
        out.extend(_all_attachments(m))
    return out


def to_crlf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def test_plain_message() -> None:
    doc = check(load("plain.eml"))
    assert doc["schema"] == "mailpipe/parsed-message@1"
    assert doc["subject"] == "hello"
    assert doc["from"] == [{"name": "A", "address": "a@example.com"}]
    assert doc["date"] == "2003-07-01T10:52:37+02:00"
    assert doc["message_id"] == "x1@example.com"
    assert doc["text"] == "Hello world\n" and doc["html"] is None
    assert doc["envelope"] is None and doc["defects"] == []
    raw = load("plain.eml")
    assert doc["id"] == message_id(raw, None) and doc["size"] == len(raw)
    assert doc["sha256"] == hashlib.sha256(raw).hexdigest()


def test_alternative_headers_and_bodies() -> None:
    doc = check(load("alternative.eml"))
    assert doc["subject"] == "Grüße aus München"
    assert doc["from"] == [{"name": "Jörg Müller", "address": "joerg@example.de"}]
    assert [a["address"] for a in doc["to"]] == [
        "alice@example.com",
        "bob@example.com",
        "carol@xn--mnchen-3ya.example",
    ]
    assert doc["to"][1]["name"] == "Bob, Jr."
    assert doc["cc"] == [{"name": "Dave (ops) (on call)", "address": "dave@example.net"}]
    assert doc["reply_to"] == [{"name": None, "address": "replies@example.de"}]
    assert doc["in_reply_to"] == "prev-1@example.com"
    assert doc["references"] == ["root-1@example.com", "prev-1@example.com"]
    assert doc["text"] == "Grüße aus München,\neine lange Zeile, die weich umbrochen wird."
    assert doc["html"] == "<p>Grüße aus <b>München</b></p>"
    assert doc["attachments"] == []
    subject = next(h for h in doc["headers"] if h["name"] == "Subject")
    assert subject["value"] == "Grüße aus München"
    assert [h["name"] for h in doc["headers"]][:3] == ["From", "To", "Cc"]


def test_mixed_attachments_inline_image_and_nested_message() -> None:
    raw = load("mixed.eml")
    result = parse(raw)
    doc = check(raw)
    mid = doc["id"]
    assert doc["text"] == "See the report." and doc["html"].startswith("<p>See the report.")
    atts = doc["attachments"]
    assert [a["content_type"] for a in atts] == ["image/png", "application/pdf", "message/rfc822"]
    png, pdf, fwd = atts
    assert png["disposition"] == "inline" and png["content_id"] == "logo@x" and png["size"] == 1024
    assert result.payloads[png["key"]] == bytes(range(256)) * 4
    assert pdf["filename"] == "Rapport d'été.pdf" and pdf["disposition"] == "attachment"
    assert result.payloads[pdf["key"]].startswith(b"%PDF-1.4")
    assert fwd["filename"] == "fwd.eml"
    assert all(KEY_RE.match(a["key"]) and a["key"].startswith(f"att/{mid}/") for a in _all_attachments(doc))
    (inner,) = doc["messages"]
    assert inner["id"] == f"{mid}.m1" and inner["envelope"] is None
    assert inner["subject"] == "Inner message" and inner["text"] == "Inner body."
    assert [a["filename"] for a in inner["attachments"]] == ["data.csv"]
    assert inner["attachments"][0]["key"].startswith(f"att/{mid}/3-")  # indexes continue across nesting
    assert result.payloads[inner["attachments"][0]["key"]] == b"a,b\n1,2"
    assert inner["size"] == fwd["size"]


def test_html_only_keeps_text_null() -> None:
    doc = check(load("html_only.eml"))
    assert doc["text"] is None and doc["html"] == "<p>Olá</p>\n"


def test_lying_charset_is_readable_with_defect() -> None:
    doc = check(load("invalid_utf.eml"))
    assert doc["text"] == "Café crème brûlée\n"
    assert doc["subject"] == "café crème"
    kinds = [(d["kind"], d["detail"]) for d in doc["defects"]]
    assert ("charset_fallback", "declared 'utf-8'; decoded as windows-1252 with replacement") in kinds


def test_iso2022jp_message() -> None:
    doc = check(load("iso2022jp.eml"))
    assert doc["subject"] == "日本語のテスト"
    assert doc["from"][0]["name"] == "山田"
    assert doc["text"] == "日本語のテストです。\n"


def test_missing_message_id_and_bad_date() -> None:
    doc = check(load("no_message_id.eml"))
    assert doc["message_id"] is None and doc["date"] is None
    assert [d["kind"] for d in doc["defects"]] == ["bad_date"]


def test_broken_message_yields_defects_not_errors() -> None:
    doc = check(load("broken.eml"))
    kinds = {d["kind"] for d in doc["defects"]}
    assert {"boundary_not_found", "bad_transfer_encoding", "bad_date"} <= kinds


@pytest.mark.parametrize("name", sorted(p.name for p in MAIL.glob("*.eml")))
def test_crlf_and_lf_forms_parse_to_the_same_content(name: str) -> None:
    raw = load(name).replace(b"\r\n", b"\n")
    a, b = check(raw), check(to_crlf(raw))
    for doc in (a, b):
        for k in ("id", "size", "sha256"):
            doc.pop(k)
        for att in _all_attachments(doc):
            att.pop("key")
        for m in doc["messages"]:
            for k in ("id", "size", "sha256"):
                m.pop(k)
    for att_a, att_b in zip(_all_attachments(a), _all_attachments(b), strict=True):
        if att_a["content_type"].startswith(("text/", "message/")):  # their bytes keep the line ends
            for k in ("size", "sha256"):
                att_a.pop(k), att_b.pop(k)
    assert a == b


def test_envelope_and_explicit_id() -> None:
    env = Envelope(
        mail_from="s@example.com",
        rcpt_to=("r@example.org",),
        client_ip="192.0.2.1",
        helo="mx",
        tls=True,
        received_at="2026-03-03T10:00:00Z",
    )
    doc = check(load("plain.eml"), envelope=env, mid="0" * 32)
    assert doc["id"] == "0" * 32
    assert doc["envelope"] == env.to_dict()
    doc = check(load("plain.eml"), envelope=env)
    assert doc["id"] == message_id(load("plain.eml"), env)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\n",
        b"\r\n\r\n",
        b"\x00" * 64,
        bytes(range(256)) * 8,
        b"no colon here",
        b":::\n\n",
        b"From:\n\n",
        b"Content-Type: multipart/mixed\n\n--x\n",
        b'Content-Type: multipart/mixed; boundary=""\n\n--\n--\n',
        b"Content-Type: message/rfc822\n\n",
        b"Content-Transfer-Encoding: base64\n\n====",
        b"Subject: =?x?B?===?=\n\n",
    ],
)
def test_never_raises_on_junk(raw: bytes) -> None:
    check(raw)


def test_bad_base64_and_quoted_printable_are_lenient() -> None:
    raw = (
        b"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: application/octet-stream\n"
        b"Content-Transfer-Encoding: base64\n\naGVsbG8\n--b\nContent-Type: text/plain; charset=utf-8\n"
        b"Content-Transfer-Encoding: quoted-printable\n\nbad =ZZ escape=\n and soft break\n--b--\n"
    )
    result = parse(raw)
    doc = check(raw)
    assert result.payloads[doc["attachments"][0]["key"]] == b"hello"  # missing padding repaired
    assert doc["text"] == "bad =ZZ escape and soft break"
    assert any(d["kind"] == "bad_transfer_encoding" and d["part"] == "1" for d in doc["defects"])


def test_missing_close_boundary_keeps_last_part() -> None:
    doc = check(b"Content-Type: multipart/mixed; boundary=b\n\n--b\n\none\n--b\n\ntwo\n")
    assert doc["text"] == "one\ntwo\n"
    assert [d["kind"] for d in doc["defects"]] == ["no_close_boundary"]


def test_text_parts_with_filename_are_attachments() -> None:
    raw = (
        b"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nbody\n--b\n"
        b"Content-Type: text/plain; name=notes.txt\n\nnotes\n--b\nContent-Type: text/plain\n\nfooter\n--b--\n"
    )
    doc = check(raw)
    assert doc["text"] == "body\nfooter"
    assert [(a["filename"], a["charset"]) for a in doc["attachments"]] == [("notes.txt", None)]


@pytest.mark.parametrize(
    "filename",
    ["../../x", "/etc/passwd", "..\\..\\win.ini", "a\x00b", "a\r\nX-Evil: 1", "x" * 5000, "....", ""],
)
def test_attachment_filenames_cannot_escape_the_prefix(filename: str) -> None:
    encoded = base64.b64encode(filename.encode()).decode()
    raw = (
        f"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: application/octet-stream\n"
        f'Content-Disposition: attachment; filename="=?utf-8?B?{encoded}?="\n\ndata\n--b--\n'
    ).encode()
    doc = check(raw)
    (att,) = doc["attachments"]
    assert att["filename"] == (filename or None)
    key = att["key"]
    assert KEY_RE.match(key), key
    assert key.startswith(f"att/{doc['id']}/") and key.count("/") == 2
    assert "\x00" not in key and "\r" not in key and "\n" not in key and "/../" not in key


def _defect_kinds(doc: dict) -> set[str]:
    return {d["kind"] for d in doc["defects"]}


def test_limit_message_bytes() -> None:
    raw = load("mixed.eml")
    doc = check(raw, limits=Limits(max_message_bytes=600))
    assert "limit_message_bytes" in _defect_kinds(doc)
    assert doc["size"] == len(raw) and doc["subject"] == "Report with attachments"


def test_limit_parts() -> None:
    raw = b"Content-Type: multipart/mixed; boundary=b\n\n" + b"--b\n\nx\n" * 5000 + b"--b--\n"
    doc = check(raw, limits=Limits(max_parts=10))
    assert "limit_parts" in _defect_kinds(doc)
    assert len(doc["text"].split("\n")) <= 10


def test_limit_depth() -> None:
    raw = (
        b"".join(b"Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n" % (i, i) for i in range(50))
        + b"\nleaf\n"
    )
    doc = check(raw, limits=Limits(max_depth=5))
    assert "limit_depth" in _defect_kinds(doc)


def test_limit_depth_nested_messages() -> None:
    raw = b"Content-Type: message/rfc822\n\n" * 40 + b"Subject: deep\n\nbody\n"
    doc = check(raw, limits=Limits(max_depth=4))
    assert "limit_depth" in json.dumps(doc)


def test_limit_header_bytes_and_a_5mb_header_line() -> None:
    raw = b"Subject: " + b"a " * 2_500_000 + b"\nFrom: x@example.com\n\nbody\n"
    doc = check(raw, limits=Limits(max_header_bytes=64 * 1024))
    assert "limit_header_bytes" in _defect_kinds(doc)
    assert doc["text"] == "body\n" and len(doc["subject"]) < 64 * 1024
    doc = check(b"To: " + b"<a@b>, " * 800_000 + b"\n\nbody\n")  # default limit: still fast and bounded
    assert "limit_header_bytes" in _defect_kinds(doc)


def test_limit_decoded_bytes() -> None:
    blob = base64.encodebytes(b"\xab" * 100_000)
    raw = (
        b"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: application/octet-stream\n"
        b"Content-Transfer-Encoding: base64\n\n"
        + blob
        + b"--b\nContent-Type: application/octet-stream\n\n"
        + b"y" * 100_000
        + b"\n--b--\n"
    )
    result = parse(raw, limits=Limits(max_decoded_bytes=120_000))
    doc = check(raw, limits=Limits(max_decoded_bytes=120_000))
    assert "limit_decoded_bytes" in _defect_kinds(doc)
    assert sum(len(v) for v in result.payloads.values()) <= 120_000
    assert doc["attachments"][0]["size"] == 100_000


def test_cli_parse_prints_one_json_line_per_file() -> None:
    files = [str(MAIL / "plain.eml"), str(MAIL / "mixed.eml")]
    proc = subprocess.run(
        [sys.executable, "-m", "mailpipe.handlers.cli", "parse", *files],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=60,
    )
    lines = proc.stdout.decode().splitlines()
    assert len(lines) == 2
    docs = [json.loads(line) for line in lines]
    for doc in docs:
        VALIDATOR.validate(doc)
    assert docs[1]["subject"] == "Report with attachments"


def test_depth_is_capped_even_when_the_limit_is_huge() -> None:
    raw = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n" % (i, i) for i in range(3000))
    doc = check(raw + b"\nleaf\n", limits=Limits(max_depth=10**6))
    assert "limit_depth" in _defect_kinds(doc)
    doc = check(
        b"Content-Type: message/rfc822\n\n" * 3000 + b"Subject: deep\n\nbody\n",
        limits=Limits(max_depth=10**6),
    )
    assert "limit_depth" in json.dumps(doc)


def test_internal_error_catch_all_returns_a_valid_minimal_result() -> None:
    # A misconfigured Limits (None where an int belongs) is a real way to break the parser's internals.
    broken = Limits(max_parts=None)  # type: ignore[arg-type]
    result = parse(load("mixed.eml"), limits=broken)
    doc = json.loads(dumps(result.message.to_dict()))
    VALIDATOR.validate(doc)
    assert [d["kind"] for d in doc["defects"]] == ["internal_error"]
    assert doc["sha256"] == hashlib.sha256(load("mixed.eml")).hexdigest() and result.payloads == {}


@pytest.mark.parametrize("zone", ["+\t\t4", "+\x1d4", "-\t\t", "+ 0 2 0 0"])
def test_dates_with_odd_whitespace_in_the_zone(zone: str) -> None:
    doc = check(f"Date: 1 Jan 2020 10:00 {zone}\n\nx\n".encode())
    assert doc["date"] is None or doc["date"].startswith("2020-01-01T10:00:00")


def test_base64_attached_message_and_digest_defaults() -> None:
    inner = b"Subject: inner\nFrom: a@example.com\n\nhello\n"
    raw = (
        b"Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: message/rfc822\n"
        b"Content-Transfer-Encoding: base64\n\n" + base64.encodebytes(inner) + b"--b\n"
        b"Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: digest one\n\none\n--d\n\n"
        b"Subject: digest two\n\ntwo\n--d--\n--b--\n"
    )
    doc = check(raw)
    assert [m["subject"] for m in doc["messages"]] == ["inner", "digest one", "digest two"]
    assert [m["id"].rsplit(".", 1)[1] for m in doc["messages"]] == ["m1", "m2", "m3"]
    assert doc["messages"][0]["text"] == "hello\n" and doc["messages"][0]["size"] == len(inner)
