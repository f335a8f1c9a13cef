"""Derived attachments: winmail.dat contents (tnefparse) and uuencoded blocks become stored attachments under
``att/<id>/<parent>.<n>-<name>``, listed in the enricher's result and in the notification's
``derived_attachment_keys``; idempotent, bounded, and never left behind by a failed step.

The TNEF streams are built here by hand (MS-OXTNEF: signature 0x223E9F78, attributes with checksums, MAPI
properties for the HTML and compressed-RTF bodies): no PyPI package ships a sample winmail.dat (the tnefparse
wheel carries no test data)."""

from __future__ import annotations

import binascii
import json
import os
import shutil
import struct
import subprocess
import uuid
from typing import TYPE_CHECKING, Any

import pytest
from emulators_aws import aws_env, bucket, moto_endpoint  # noqa: F401 - fixtures
from emulators_azure import ACCOUNT, CONTAINER
from emulators_gcp import GCS_BUCKET
from jsonschema import Draft202012Validator

from mailpipe.core.edge.ingest import accept
from mailpipe.core.enrich import registry
from mailpipe.core.enrich.run import enrich_message, run_enrichers
from mailpipe.core.keys import attachment_index, derived_key, parsed_key, raw_key
from mailpipe.core.model import Envelope
from mailpipe.core.pipeline import Outcome, Pipeline
from mailpipe.core.settings import Settings
from mailpipe.providers import open_store
from mailpipe.providers.local.memory import MemoryQueue, MemoryStore
from tests.enrich_mail import message, raw
from tests.test_schema import SCHEMA

if TYPE_CHECKING:
    from pathlib import Path

    from mailpipe.core.enrich.contract import Context
    from mailpipe.core.enrich.view import MessageView

ENV = Envelope(mail_from="a@sender.example", rcpt_to=("b@example.com",))
DERIVED = Draft202012Validator({**SCHEMA, "$ref": "#/$defs/derivedAttachment", "required": []})
RTF = b"{\\rtf1\\ansi\\deff0 {\\fonttbl {\\f0 Calibri;}} Quarterly report attached.\\par }"


def _attr(level: int, attr_id: int, data: bytes) -> bytes:
    """One TNEF attribute: level, id (type << 16 | name), length, data, 16-bit additive checksum."""
    return struct.pack("<BII", level, attr_id, len(data)) + data + struct.pack("<H", sum(data) & 0xFFFF)


def _mapi_binary(prop_id: int, data: bytes, prop_type: int = 0x0102) -> bytes:
    """One MAPI property of a variable-length type (binary, unicode string): 1 value, length, 4-byte padding."""
    return struct.pack("<HHII", prop_type, prop_id, 1, len(data)) + data + bytes(-len(data) % 4)


def tnef_stream(
    files: dict[str, bytes], *, body: bytes | None = None, html: bytes | None = None, rtf: bytes | None = None
) -> bytes:
    """A winmail.dat: attTnefVersion, attBody, attMAPIProps (PR_BODY_HTML, PR_RTF_COMPRESSED) and per file
    attAttachRendData + attAttachTitle (8.3 name) + attAttachData + attAttachment (PR_ATTACH_LONG_FILENAME)."""
    out = struct.pack("<IH", 0x223E9F78, 0x0001) + _attr(1, 0x00089006, struct.pack("<I", 0x00010000))
    if body is not None:
        out += _attr(1, 0x0002800C, body)
    props = []
    if html is not None:
        props.append(_mapi_binary(0x1013, html))
    if rtf is not None:
        from compressed_rtf import compress

        props.append(_mapi_binary(0x1009, compress(rtf, compressed=True)))
    if props:
        out += _attr(1, 0x00069003, struct.pack("<I", len(props)) + b"".join(props))
    for name, data in files.items():
        short = (name.rsplit(".", 1)[0][:8] + "." + name.rsplit(".", 1)[-1][:3]).upper()
        out += _attr(2, 0x00069002, bytes(14)) + _attr(2, 0x00018010, short.encode() + b"\0")
        out += _attr(2, 0x0006800F, data)
        long_name = _mapi_binary(0x3707, (name + "\0").encode("utf-16-le"), prop_type=0x001F)
        out += _attr(2, 0x00069005, struct.pack("<I", 1) + long_name)
    return out


FILES = {"Quarterly Report 2024.pdf": b"%PDF-1.4 " + os.urandom(3000), "notes.txt": b"n" * 100}


def uu_block(name: str, data: bytes) -> str:
    lines = "".join(binascii.b2a_uu(data[i : i + 45]).decode() for i in range(0, len(data), 45))
    return f"begin 644 {name}\n{lines}`\nend\n"


def test_hand_built_winmail_dat_is_valid_tnef() -> None:
    from tnefparse import TNEF

    tnef = TNEF(tnef_stream(FILES, body=b"plain", html=b"<p>hi</p>", rtf=RTF), do_checksum=True)
    assert all(obj.good_checksum for obj in tnef.objects) and tnef.key == 1
    assert [(a.long_filename().rstrip("\0"), a.data) for a in tnef.attachments] == list(FILES.items())
    assert tnef.body == b"plain" and tnef.htmlbody.rstrip(b"\0") == b"<p>hi</p>"
    assert tnef.rtfbody.rstrip(b"\0") == RTF


@pytest.mark.skipif(shutil.which("tnef") is None, reason="Debian tnef not installed (deps/apt-test.txt: tnef)")
def test_hand_built_winmail_dat_is_read_by_an_independent_decoder(tmp_path: Path) -> None:
    """Mark Simpson's tnef (C, Debian) unpacks the same files and decompresses the same RTF body."""
    (tmp_path / "winmail.dat").write_bytes(tnef_stream(FILES, body=b"plain", rtf=RTF))
    (tmp_path / "out").mkdir()
    cmd = ["tnef", "-f", "winmail.dat", "-C", "out", "--save-body=body", "--body-pref=r", "--number-backups"]
    subprocess.run(cmd, cwd=tmp_path, check=True, capture_output=True, timeout=60)
    out = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    assert out == {**FILES, "body.rtf": RTF}


def test_key_helpers_and_schema_pattern() -> None:
    mid = "0" * 32
    assert derived_key(mid, 3, 2, "../../etc/pass wd") == f"att/{mid}/3.2-pass_wd"
    assert derived_key(mid, None, 1, None) == f"att/{mid}/body.1-file-1.bin"
    assert attachment_index(f"att/{mid}/12-a.pdf") == 12
    assert attachment_index(f"att/{mid}/3.2-x") is None and attachment_index(None) is None
    entry = {"key": derived_key(mid, 0, 1, "a.pdf"), "filename": "a.pdf", "content_type": "application/pdf",
             "size": 1, "sha256": "0" * 64, "derived_from": f"att/{mid}/0-winmail.dat"}  # fmt: skip
    DERIVED.validate(entry)
    assert not DERIVED.is_valid({**entry, "key": f"att/{mid}/../x"})


def _run(store: MemoryStore, queue: MemoryQueue, data: bytes, **settings: Any) -> tuple[str, dict[str, Any]]:
    mid = accept(store, data, ENV)
    pipeline = Pipeline(store, queue, Settings(**settings))
    assert pipeline.process_key(raw_key(mid)) is Outcome.DONE
    return mid, json.loads(store.get(parsed_key(mid)))


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore(f"derived-{uuid.uuid4().hex}")


@pytest.fixture
def queue() -> MemoryQueue:
    return MemoryQueue(f"derived-{uuid.uuid4().hex}")


def test_winmail_dat_and_uuencoded_body_become_stored_attachments(store: MemoryStore, queue: MemoryQueue) -> None:
    dat = tnef_stream(FILES, body=b"Please find the report.", html=b"<p>Please find</p>", rtf=RTF)
    exe = b"MZ\x90\x00" + os.urandom(1000)
    body = "See attached.\n\n" + uu_block("tool.exe", exe)
    data = raw(message(body, attachments=(("winmail.dat", "application/ms-tnef", dat),)))
    mid, doc = _run(store, queue, data, enrichers=("tnef", "uuencode"))
    parent = doc["attachments"][0]["key"]
    t = doc["enrichments"]["tnef"]["result"]["tnef"][0]
    assert t["body_text"] == "Please find the report." and t["body_html"] == "<p>Please find</p>"
    assert [(a["key"], a["filename"], a["content_type"]) for a in t["attachments"]] == [
        (f"att/{mid}/0.1-Quarterly_Report_2024.pdf", "Quarterly Report 2024.pdf", "application/pdf"),
        (f"att/{mid}/0.2-notes.txt", "notes.txt", "text/plain"),
    ]
    assert t["body_rtf"]["key"] == f"att/{mid}/0.3-body.rtf" and store.get(t["body_rtf"]["key"]) == RTF
    uu = doc["enrichments"]["uuencode"]["result"]
    assert uu["truncated"] is False and [f["key"] for f in uu["files"]] == [f"att/{mid}/body.1-tool.exe"]
    entries = [*t["attachments"], t["body_rtf"], *uu["files"]]
    for entry, expected in zip(entries, [*FILES.values(), RTF, exe], strict=True):
        DERIVED.validate(entry)
        assert store.get(entry["key"]) == expected and entry["size"] == len(expected)
        assert entry["derived_from"] == (None if entry["key"].endswith("tool.exe") else parent)
    note = json.loads(queue.messages[mid])
    assert note["attachment_keys"] == [parent]
    assert note["derived_attachment_keys"] == sorted(e["key"] for e in entries)


def test_reprocessing_gives_the_same_keys_bytes_and_notification(store: MemoryStore, queue: MemoryQueue) -> None:
    data = raw(message(uu_block("a.bin", os.urandom(500)), attachments=(("winmail.dat", "application/ms-tnef",
                                                                          tnef_stream(FILES)),)))  # fmt: skip
    mid, first = _run(store, queue, data, enrichers=("tnef", "uuencode"))
    objects = {k: store.get(k) for k in store.list(f"att/{mid}/")}
    note = queue.messages[mid]
    _, second = _run(store, queue, data, enrichers=("tnef", "uuencode"))
    assert {k: store.get(k) for k in store.list(f"att/{mid}/")} == objects and len(objects) == 4
    assert queue.messages[mid] == note
    strip = lambda d: {k: v["result"] for k, v in d["enrichments"].items()}  # noqa: E731 - duration_ms varies
    assert strip(first) == strip(second)
    stale = json.loads(note)["derived_attachment_keys"][0]  # as a run with other enrichers left it
    store.put(stale, b"other bytes", content_type="application/octet-stream")
    _run(store, queue, data, enrichers=("tnef", "uuencode"))
    assert store.get(stale) == objects[stale]


@pytest.mark.parametrize("size", [0, 1, 44, 45, 46, 90, 4096])
def test_uuencode_round_trips_exact_bytes_from_body_and_text_parts(size: int) -> None:
    payload, other = os.urandom(size), os.urandom(size + 7)
    text_part = ("readme.txt", "text/plain", ("intro\n" + uu_block("inner.dat", other)).encode())
    data = raw(message("hello\n" + uu_block("x y.bin", payload) + "bye\n", attachments=(text_part,)))
    from mailpipe.core.mime.parser import parse

    result = parse(data)
    doc = result.message.to_dict()
    out, files = enrich_message(doc, result.payloads, data, ["uuencode"])
    listed = out["uuencode"]["result"]["files"]
    assert [f.data for f in files] == [payload, other]
    parent = doc["attachments"][0]["key"]
    assert [(e["filename"], e["derived_from"]) for e in listed] == [("x y.bin", None), ("inner.dat", parent)]
    assert [e["key"] for e in listed] == [f.key for f in files]
    assert files[1].key == f"att/{doc['id']}/0.1-inner.dat"


def _derived_outputs(store: Any) -> tuple[dict[str, bytes], bytes]:
    """Run a winmail.dat + uuencode message through the pipeline on ``store``: derived objects, notification,
    with the message id (the edge stamps the arrival time, so it differs per run) replaced by ``<id>``."""
    dat = tnef_stream({"a.pdf": b"%PDF-1.4 " + bytes(range(256)) * 9, "b c.txt": b"x" * 70}, html=b"<b>hi</b>")
    data = raw(message(uu_block("u.bin", bytes(range(200))), attachments=(("winmail.dat", "application/ms-tnef",
                                                                           dat),)))  # fmt: skip
    queue = MemoryQueue(f"derived-{uuid.uuid4().hex}")
    mid, _ = _run(store, queue, data, enrichers=("tnef", "uuencode"))
    keys = json.loads(queue.messages[mid])["derived_attachment_keys"]
    return {k.replace(mid, "<id>"): store.get(k) for k in keys}, queue.messages[mid].replace(mid.encode(), b"<id>")


@pytest.fixture
def any_store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    prefix = f"derived-{uuid.uuid4().hex[:8]}"
    if request.param == "file":
        return open_store(f"file://{tmp_path}/store")
    if request.param == "gcs":
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", request.getfixturevalue("gcs_emulator"))
        return open_store(f"gs://{GCS_BUCKET}/{prefix}")
    if request.param == "azure":
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", request.getfixturevalue("azurite"))
        return open_store(f"azblob://{ACCOUNT}/{CONTAINER}/{prefix}")
    return open_store(f"s3://{request.getfixturevalue('bucket')}/{prefix}")


@pytest.mark.parametrize(
    "any_store",
    ["file", pytest.param("gcs", marks=pytest.mark.emulator), pytest.param("azure", marks=pytest.mark.emulator),
     pytest.param("s3", marks=pytest.mark.emulator)],
    indirect=True,
)  # fmt: skip
def test_derived_objects_and_notification_identical_across_stores(any_store: Any) -> None:
    local, note = _derived_outputs(MemoryStore(f"derived-{uuid.uuid4().hex}"))
    assert len(local) == 3
    assert _derived_outputs(any_store) == (local, note)


def test_caps_truncate_instead_of_storing(store: MemoryStore, queue: MemoryQueue, tmp_path: Path) -> None:
    conf = tmp_path / "enrich.json"
    conf.write_text(json.dumps({"derived": {"max_files": 2, "max_file_bytes": 1000}}))
    body = uu_block("a", b"1" * 10) + uu_block("big", b"2" * 1001) + uu_block("b", b"3") + uu_block("c", b"4")
    mid, doc = _run(store, queue, raw(message(body)), enrichers=("uuencode",), enrich_config_file=str(conf))
    res = doc["enrichments"]["uuencode"]["result"]
    assert res["truncated"] is True and [f["filename"] for f in res["files"]] == ["a", "b"]
    assert sorted(store.list(f"att/{mid}/")) == [f"att/{mid}/body.1-a", f"att/{mid}/body.2-b"]
    assert json.loads(queue.messages[mid])["derived_attachment_keys"] == sorted(store.list(f"att/{mid}/"))


def test_bad_derived_config_fails_at_construction(store: MemoryStore, queue: MemoryQueue, tmp_path: Path) -> None:
    from mailpipe.core.errors import ConfigError

    conf = tmp_path / "enrich.json"
    conf.write_text(json.dumps({"derived": {"max_filez": 2}}))
    with pytest.raises(ConfigError, match="max_filez"):
        Pipeline(store, queue, Settings(enrichers=("uuencode",), enrich_config_file=str(conf)))


class Deriving:
    """A plug-in that derives one file from the body, then fails (``fail``) or returns."""

    name, version, wants, timeout, max_bytes = "deriving", "1", frozenset({"text"}), 5.0, 1000
    fail = False

    def run(self, view: MessageView, ctx: Context) -> dict[str, Any]:
        entry = ctx.derive(None, "plug.bin", "application/octet-stream", b"from a plug-in")
        if self.fail:
            raise RuntimeError("after deriving")
        return {"files": [entry], "truncated": ctx.truncated}


class Failing(Deriving):
    name, fail = "deriving_fails", True


class Reader(Deriving):
    name = "derived_reader"

    def run(self, view: MessageView, ctx: Context) -> dict[str, Any]:
        return {"seen": [[f.key, f.enricher, f.data.decode()] for f in ctx.derived]}


def test_failed_step_leaves_nothing_and_later_steps_see_derived_files(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, attr in (("deriving", "Deriving"), ("deriving_fails", "Failing"), ("derived_reader", "Reader")):
        monkeypatch.setitem(registry.BUILTIN, name, (f"tests.test_enrich_derived:{attr}", ""))
    data = raw(message("body"))
    doc = {"id": "a" * 32, "text": "body", "headers": []}
    out, files = enrich_message(doc, {}, data, ["deriving_fails", "deriving", "derived_reader"])
    assert out["deriving_fails"]["status"] == "error" and out["deriving"]["status"] == "ok"
    assert [f.key for f in files] == [f"att/{'a' * 32}/body.1-plug.bin"]  # the failed step's file is gone
    assert out["derived_reader"]["result"]["seen"] == [[files[0].key, "deriving", "from a plug-in"]]
    assert run_enrichers({}, {}, data, ["deriving"])["deriving"]["result"]["files"][0]["key"] is None  # no id
