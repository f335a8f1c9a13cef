"""``mailpipe backfill``, run as a user runs it: an archive (Maildir, mbox, a folder of .eml files) becomes raw
messages in any store, deduplicated by content, and the pipeline then parses them like new mail."""

from __future__ import annotations

import json
import mailbox
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from emulators_aws import aws_env, bucket, client, moto_endpoint  # noqa: F401 - fixtures

ROOT = Path(__file__).resolve().parent.parent
ONE = b"From: a@example.org\nSubject: one\n\nbody one\n"


def archive(base: Path) -> list[Path]:
    """A Maildir (2 messages), an mbox (2, one the Maildir's first again) and a folder (1 + an empty file)."""
    md = mailbox.Maildir(base / "Maildir", create=True)
    md.add(ONE)
    md.add(b"From: a@example.org\nSubject: two\n\nbody two\n")
    mbox = mailbox.mbox(base / "archive.mbox")
    mbox.add(b"From: b@example.org\nSubject: three\n\nFrom here on, body three\n")
    mbox.add(ONE)
    mbox.flush()
    mbox.close()
    (base / "eml" / "2019").mkdir(parents=True)
    (base / "eml" / "2019" / "four.eml").write_bytes(b"From: c@example.org\r\nSubject: four\r\n\r\nbody four\r\n")
    (base / "eml" / "empty.eml").write_bytes(b"")
    (base / "eml" / ".DS_Store").write_bytes(b"\0\0")
    return [base / "Maildir", base / "archive.mbox", base / "eml"]


def backfill(*args: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    proc = subprocess.run([sys.executable, "-m", "mailpipe", "backfill", *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env={k: v for k, v in os.environ.items() if not k.startswith("MAILPIPE_")})  # noqa: E501
    return proc, json.loads(proc.stdout) if proc.stdout else {}


def test_an_archive_is_stored_once_and_parsed_by_serve(tmp_path: Path, serve_process: Any) -> None:
    sources = [str(p) for p in archive(tmp_path)]
    store = tmp_path / "mail"  # the folder serve_process uses
    proc, summary = backfill(*sources, "--store", f"file://{store}", "--progress", "2")
    assert proc.returncode == 0, proc.stderr
    assert {k: summary[k] for k in ("read", "stored", "duplicates", "empty", "failed")} == {
        "read": 6, "stored": 4, "duplicates": 1, "empty": 1, "failed": 0}  # fmt: skip
    assert [json.loads(ln)["progress"]["read"] for ln in proc.stderr.splitlines()] == [2, 4, 6]
    again, summary = backfill(*sources, "--store", f"file://{store}")
    assert again.returncode == 0 and (summary["stored"], summary["duplicates"]) == (0, 5)
    raws = sorted(store.glob("raw/*.eml"))
    assert len(raws) == 4 and not list(store.glob("raw/*.envelope.json"))  # the envelope is unknown
    serve_process()  # its start-up scan queues every raw message not done yet
    deadline = time.monotonic() + 30
    while len(list(store.glob("parsed/*.json"))) < 4:
        assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()[-2000:]
        time.sleep(0.1)
    docs = [json.loads(p.read_bytes()) for p in store.glob("parsed/*.json")]
    assert sorted(d["subject"] for d in docs) == ["four", "one", "three", "two"]
    assert all(d["envelope"] is None for d in docs)


def test_backfill_into_s3(tmp_path: Path, bucket: str) -> None:  # noqa: F811
    proc, summary = backfill(*map(str, archive(tmp_path)), "--store", f"s3://{bucket}/tenant")
    assert proc.returncode == 0 and summary["stored"] == 4, proc.stderr
    keys = [o["Key"] for o in client("s3").list_objects_v2(Bucket=bucket)["Contents"]]
    assert len(keys) == 4 and all(k.startswith("tenant/raw/") and k.endswith(".eml") for k in keys)


@pytest.mark.emulator
@pytest.mark.parametrize("cloud", ["gcs", "azure"])
def test_backfill_into_gcs_and_blob(tmp_path: Path, cloud: str, request: pytest.FixtureRequest) -> None:
    import uuid

    from emulators_azure import ACCOUNT, CONTAINER
    from emulators_gcp import GCS_BUCKET

    from mailpipe.providers import open_store

    prefix = f"bf-{uuid.uuid4().hex[:8]}"
    request.getfixturevalue("gcs_env" if cloud == "gcs" else "azure_env")
    url = f"gs://{GCS_BUCKET}/{prefix}" if cloud == "gcs" else f"azblob://{ACCOUNT}/{CONTAINER}/{prefix}"
    proc, summary = backfill(*map(str, archive(tmp_path)), "--store", url)
    assert proc.returncode == 0 and summary["stored"] + summary["duplicates"] == 5, proc.stderr
    keys = sorted(open_store(url).list("raw/"))
    assert len(keys) == 4 and all(k.endswith(".eml") for k in keys)  # one key per content
    (tmp_path / "again").mkdir()
    again, second = backfill(*map(str, archive(tmp_path / "again")), "--store", url)
    assert again.returncode == 0 and sorted(open_store(url).list("raw/")) == keys
    if cloud == "azure":  # gcp-storage-emulator ignores ifGenerationMatch=0 (it overwrites): no count there
        assert (summary["stored"], summary["duplicates"], second["stored"], second["duplicates"]) == (4, 1, 0, 5)


def test_unreadable_sources_and_oversized_messages(tmp_path: Path) -> None:
    (tmp_path / "big.eml").write_bytes(b"Subject: big\n\n" + b"x" * 5000)
    proc = subprocess.run([sys.executable, "-m", "mailpipe", "backfill", str(tmp_path / "big.eml"),
                           str(tmp_path / "missing"), "--store", f"file://{tmp_path}/m"],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "MAILPIPE_MAX_MESSAGE_BYTES": "1000"})  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert json.loads(proc.stdout)["too_large"] == 1
    assert "over the 1000-byte limit" in proc.stderr and f"cannot read {tmp_path / 'missing'}" in proc.stderr
    bad = subprocess.run([sys.executable, "-m", "mailpipe", "backfill", str(tmp_path), "--store", "nope://x"],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1


@pytest.mark.parametrize("n", [3])
def test_an_mbox_is_read_one_message_at_a_time(tmp_path: Path, n: int) -> None:
    from mailpipe.handlers.backfill import messages

    box = mailbox.mbox(tmp_path / "a.mbox")
    for i in range(n):
        box.add(f"Subject: {i}\n\nFrom the body {i}\n".encode())
    box.flush()
    box.close()
    got = messages(tmp_path / "a.mbox")
    where, raw = next(got)  # a generator: nothing beyond the first message is read yet
    assert where.endswith("a.mbox#1") and raw.startswith(b"Subject: 0")
    assert [w.rsplit("#", 1)[1] for w, _ in got] == ["2", "3"]
