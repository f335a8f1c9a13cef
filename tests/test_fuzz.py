"""Property tests: thousands of mutated real messages never crash the parser, never reach the internal-error
catch-all, always produce schema-valid JSON; well-formed messages parse the same in LF and CRLF form."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from mailpipe.core.mime.parser import parse
from mailpipe.core.model import Limits, dumps

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared/corpus/stalwart-mail-parser/eml"
VALIDATOR = Draft202012Validator(json.loads((ROOT / "schema/parsed-message.json").read_text()))
SEEDS = sorted(p.read_bytes() for p in (ROOT / "tests/fixtures/mail").glob("*.eml"))
if CORPUS.is_dir():
    SEEDS += sorted(p.read_bytes() for p in CORPUS.glob("*/*.eml"))
CHARSETS = [
    "utf-8",
    "iso-2022-jp",
    "shift_jis",
    "gb2312",
    "big5",
    "euc-kr",
    "koi8-r",
    "utf-7",
    "utf-16",
    "x-unknown",
    "",
    '"',
    "base64",
    "unicode_escape",
    "iso-8859-8-i",
    "a" * 300,
]
FAST = Limits(
    max_message_bytes=2_000_000,
    max_parts=200,
    max_depth=8,
    max_header_bytes=200_000,
    max_decoded_bytes=4_000_000,
)


def check(raw: bytes, limits: Limits = FAST) -> dict:
    result = parse(raw, limits=limits)
    doc = json.loads(dumps(result.message.to_dict()))  # the canonical UTF-8 encoding
    VALIDATOR.validate(doc)
    assert not [d for d in doc["defects"] if d["kind"] == "internal_error"], doc["defects"]
    return doc


def _mutate(raw: bytes, op: str, pos: float, blob: bytes, charset: str) -> bytes:
    i = int(pos * len(raw))
    if op == "flip":
        return raw[:i] + bytes([(raw[i] if i < len(raw) else 0) ^ 0xFF]) + raw[i + 1 :]
    if op == "truncate":
        return raw[:i]
    if op == "insert":
        return raw[:i] + blob + raw[i:]
    if op == "delete":
        return raw[:i] + raw[i + len(blob) :]
    if op == "no_boundaries":
        return raw.replace(b"\n--", b"\n-")
    if op == "huge_header":
        return b"X-Huge: " + blob * (200_000 // max(len(blob), 1) + 1) + b"\n" + raw
    if op == "nul":
        return raw[:i] + b"\x00" * (len(blob) + 1) + raw[i:]
    if op == "charset":
        return raw.replace(b"charset=", b"charset=" + charset.encode() + b";x=", 3)
    if op == "crlf":
        return raw.replace(b"\n", b"\r\n")
    if op == "cr_only":
        return raw.replace(b"\r\n", b"\r").replace(b"\n", b"\r")
    if op == "base64_junk":
        return raw.replace(b"base64\n\n", b"base64\n\n" + blob + b"=", 2)
    return raw


OPS = st.sampled_from(
    [
        "flip",
        "truncate",
        "insert",
        "delete",
        "no_boundaries",
        "huge_header",
        "nul",
        "charset",
        "crlf",
        "cr_only",
        "base64_junk",
    ]
)
MUTATION = st.tuples(OPS, st.floats(0, 1), st.binary(max_size=40), st.sampled_from(CHARSETS))


@settings(
    max_examples=4000, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(seed=st.sampled_from(SEEDS), mutations=st.lists(MUTATION, min_size=1, max_size=5))
def test_mutated_messages_never_crash(seed: bytes, mutations: list[tuple[str, float, bytes, str]]) -> None:
    raw = seed
    for op, pos, blob, charset in mutations:
        raw = _mutate(raw, op, pos, blob, charset)
    check(raw)


@settings(max_examples=600, deadline=None)
@given(raw=st.binary(max_size=4000))
def test_random_bytes_never_crash(raw: bytes) -> None:
    check(raw)


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=2000), limit=st.integers(0, 300))
def test_tiny_limits_still_give_valid_results(raw: bytes, limit: int) -> None:
    seed = SEEDS[limit % len(SEEDS)]
    tiny = Limits(
        max_message_bytes=limit * 10,
        max_parts=limit % 5,
        max_depth=limit % 4,
        max_header_bytes=limit,
        max_decoded_bytes=limit * 3,
    )
    check(seed + raw, tiny)


SAFE_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=60)


@st.composite
def well_formed(draw: st.DrawFn) -> bytes:
    """A multipart message with random words, names, charsets and structure (LF line ends)."""
    subject = draw(SAFE_TEXT).replace("=?", "")
    name = draw(SAFE_TEXT).replace('"', "").replace("\\", "")
    body_lines = draw(st.lists(SAFE_TEXT, max_size=6))
    enc = draw(st.sampled_from(["7bit", "8bit", "base64", "quoted-printable"]))
    payload = ("\n".join(body_lines) + "\n").encode()
    if enc == "base64":
        import base64

        payload = base64.encodebytes(payload)
    elif enc == "quoted-printable":
        import quopri

        payload = quopri.encodestring(payload)
    attachment = draw(st.binary(max_size=300))
    import base64 as b64

    return (
        (
            f'From: "{name}" <a@example.com>\nTo: b@example.org, c@example.net\nSubject: {subject}\n'
            "Date: Tue, 1 Jul 2003 10:52:37 +0200\nMIME-Version: 1.0\n"
            "Content-Type: multipart/mixed; boundary=zz\n\n"
            f"--zz\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: {enc}\n\n"
        ).encode()
        + payload
        + (
            b"\n--zz\nContent-Type: application/octet-stream; name=a.bin\n"
            b"Content-Transfer-Encoding: base64\n\n" + b64.encodebytes(attachment) + b"--zz--\n"
        )
    )


def _content(doc: dict) -> dict:
    doc = dict(doc)
    for k in ("id", "size", "sha256"):
        doc.pop(k)
    doc["attachments"] = [{k: v for k, v in a.items() if k != "key"} for a in doc["attachments"]]
    return doc


@settings(max_examples=400, deadline=None)
@given(raw=well_formed())
def test_crlf_and_lf_equivalence(raw: bytes) -> None:
    lf = check(raw)
    crlf = check(raw.replace(b"\n", b"\r\n"))
    assert _content(lf) == _content(crlf)
    assert lf["to"] == [
        {"name": None, "address": "b@example.org"},
        {"name": None, "address": "c@example.net"},
    ]


@settings(max_examples=100, deadline=None)
@given(seed=st.sampled_from(SEEDS))
def test_corpus_lf_crlf_equivalence(seed: bytes) -> None:
    assume(b"\x00" not in seed)  # UTF-16 text in binary transfer encoding: adding CRs changes its content
    lf_raw = seed.replace(b"\r\n", b"\n")
    lf, crlf = check(lf_raw), check(lf_raw.replace(b"\n", b"\r\n"))
    for key in ("subject", "from", "to", "cc", "date", "message_id", "text", "html"):
        assert lf[key] == crlf[key], key
    assert [a["filename"] for a in lf["attachments"]] == [a["filename"] for a in crlf["attachments"]]
