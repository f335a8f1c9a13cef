"""``mailpipe replay``, run as a user runs it (the CLI in a subprocess): stored mail parsed again into a new
version beside the old one, the current document switched, nothing sent unless ``--emit``; an interrupted
(Ctrl-C) or killed replay resumed to the same result as a clean run; ``--since``/``--until``, ``--ids``,
``--dry-run`` and ``--prune``; on a folder store and on each cloud emulator (S3 on moto, GCS, Azurite)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import wait_for
from emulators_aws import aws_env, bucket, moto_endpoint  # noqa: F401 - fixtures
from emulators_azure import ACCOUNT, CONTAINER
from emulators_gcp import GCS_BUCKET
from jsonschema import Draft202012Validator

from mailpipe.core.keys import envelope_key, message_id, parsed_key, raw_key, version_key
from mailpipe.core.model import Envelope
from mailpipe.core.pipeline import Pipeline
from mailpipe.core.settings import Settings
from mailpipe.providers import open_store
from mailpipe.providers.local.memory import MemoryQueue

ROOT = Path(__file__).resolve().parent.parent
LINKS = "0.1.0.links-1"
SCHEMA = json.loads((ROOT / "schema" / "parsed-message.json").read_text())


def mailpipe(*args: str, env: dict[str, str] | None = None, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mailpipe", *args], cwd=ROOT, env=env or clean_env(),
                          capture_output=True, text=True, timeout=300, **kw)  # fmt: skip


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MAILPIPE_")}


def summary(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert proc.stdout, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def message(n: int, day: int = 1) -> tuple[bytes, Envelope]:
    raw = (f"From: sender{n}@example.org\r\nTo: billing@acme.example\r\nSubject: message {n}\r\n"
           f"Date: Tue, {day} Dec 2026 10:00:00 +0000\r\n\r\nsee https://example.com/{n}\r\n").encode()  # fmt: skip
    env = Envelope("sender@example.org", ("billing@acme.example",), received_at=f"2026-12-{day:02d}T10:00:00Z")
    return raw, env


def stored(url: str, count: int, *, parse: bool = True, days: int = 1) -> list[str]:
    """``count`` messages written as the edge writes them (envelope, then .eml), parsed once by the normal path
    unless ``parse`` is false; their ids."""
    store = open_store(url)
    pipeline = Pipeline(store, MemoryQueue(f"q-{uuid.uuid4().hex}"), Settings())
    ids = []
    for n in range(count):
        raw, env = message(n, day=1 + n % days)
        mid = message_id(raw, env)
        store.put(envelope_key(mid), json.dumps(env.to_dict()).encode(), content_type="application/json")
        store.put(raw_key(mid), raw, content_type="message/rfc822")
        if parse:
            pipeline.process_key(raw_key(mid))
        ids.append(mid)
    return ids


def doc(url: str, key: str) -> dict[str, Any]:
    return json.loads(open_store(url).get(key))  # type: ignore[no-any-return]


def without_durations(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_durations(v) for k, v in value.items() if k != "duration_ms"}
    if isinstance(value, list):
        return [without_durations(v) for v in value]
    return value


def test_a_new_version_goes_beside_the_old_and_becomes_current(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/store"
    ids = stored(url, 5)
    before = {mid: open_store(url).get(parsed_key(mid)) for mid in ids}
    assert doc(url, parsed_key(ids[0]))["processed_by"] == {"version": "0.1.0", "mailpipe": "0.1.0", "enrichers": {}}

    proc = mailpipe("replay", "--store", url, "--enrich", "links")
    assert proc.returncode == 0, proc.stderr
    assert summary(proc) | {"seconds": 0} == {"replayed": 5, "current": 0, "failed": 0, "ignored": 0, "filtered": 0,
                                              "version": LINKS, "store": url, "interrupted": False, "seconds": 0}
    for mid in ids:
        current = doc(url, parsed_key(mid))
        assert current["processed_by"]["version"] == LINKS and current["enrichments"]["links"]["status"] == "ok"
        assert open_store(url).get(version_key(mid, "0.1.0")) == before[mid]  # the old one is kept, byte for byte
        assert doc(url, version_key(mid, LINKS)) == current
        Draft202012Validator(SCHEMA).validate(current)
    assert not (tmp_path / "queue").exists() and not list((tmp_path / "store").glob("outbox/**/*"))  # nothing sent

    again = mailpipe("replay", "--store", url, "--enrich", "links")
    assert again.returncode == 0 and summary(again)["current"] == 5 and summary(again)["replayed"] == 0

    prune = mailpipe("replay", "--store", url, "--prune")
    assert prune.returncode == 0, prune.stderr
    assert json.loads(prune.stdout) == {"kept": 5, "pruned": 5, "failed": 0, "store": url}
    for mid in ids:
        assert not open_store(url).exists(version_key(mid, "0.1.0"))
        assert doc(url, parsed_key(mid))["processed_by"]["version"] == LINKS


def test_a_document_from_before_versions_is_kept_under_its_digest(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/store"
    (mid,) = stored(url, 1)
    store = open_store(url)
    old = json.loads(store.get(parsed_key(mid)))
    del old["processed_by"]
    old["routing"], old["tags"] = [{"customer": "acme", "rule": "r"}], ["vip"]
    store.put(parsed_key(mid), json.dumps(old).encode(), content_type="application/json")
    proc = mailpipe("replay", "--store", url)
    assert proc.returncode == 0 and summary(proc)["replayed"] == 1, proc.stderr
    (kept,) = [k for k in store.list(f"parsed/{mid}/") if "unversioned-" in k]
    assert json.loads(store.get(kept)) == old
    new = doc(url, parsed_key(mid))
    assert new["tags"] == ["vip"] and new["routing"] == old["routing"]  # routing is not re-run without --emit


def test_emit_routes_again_and_publishes(tmp_path: Path) -> None:
    url, queue = f"file://{tmp_path}/store", tmp_path / "queue"
    ids = stored(url, 3)
    rules = tmp_path / "rules.yml"
    rules.write_text("customers:\n  acme:\n    domains: [acme.example]\n    rules:\n      - name: all\n"
                     "        when: {subject: message}\n        actions: [{tag: replayed}]\n")  # fmt: skip
    proc = mailpipe("replay", "--store", url, "--emit", "--rules", str(rules), "--queue", f"file://{queue}")
    assert proc.returncode == 0 and summary(proc)["replayed"] == 3, proc.stderr
    notes = [json.loads(p.read_text()) for p in sorted(queue.glob("*.json"))]
    assert sorted(n["id"] for n in notes) == sorted(ids) and all(n["tags"] == ["replayed"] for n in notes)
    assert doc(url, parsed_key(ids[0]))["tags"] == ["replayed"]


def test_since_until_ids_and_dry_run(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/store"
    ids = stored(url, 9, days=3)  # received 2026-12-01, -02, -03 in turn
    dry = mailpipe("replay", "--store", url, "--enrich", "links", "--since", "2026-12-02", "--until",
                   "2026-12-03T00:00:00Z", "--dry-run")  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    lines = [json.loads(ln) for ln in dry.stdout.splitlines()[:-1]]
    assert sorted(ln["key"] for ln in lines) == sorted(raw_key(m) for m in ids[1::3])
    assert {ln["status"] for ln in lines} == {"would_replay"} and summary(dry)["filtered"] == 6
    assert not any(open_store(url).exists(version_key(m, LINKS)) for m in ids)  # a dry run writes nothing

    (tmp_path / "ids.txt").write_text(f"{ids[0]}\n\n{raw_key(ids[4])}\n")
    proc = mailpipe("replay", "--store", url, "--enrich", "links", "--ids", str(tmp_path / "ids.txt"))
    assert proc.returncode == 0 and summary(proc)["replayed"] == 2, proc.stderr
    assert [m for m in ids if open_store(url).exists(version_key(m, LINKS))] == [ids[0], ids[4]]


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL])
def test_an_interrupted_replay_resumes_to_the_same_result(tmp_path: Path, how: int) -> None:
    url, clean = f"file://{tmp_path}/store", f"file://{tmp_path}/clean"
    ids = stored(url, 400)
    stored(clean, 400)
    args = ("replay", "--enrich", "links", "--workers", "2", "--progress", "10")
    proc = subprocess.Popen([sys.executable, "-m", "mailpipe", *args, "--store", url], cwd=ROOT, env=clean_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    versions = tmp_path / "store" / "parsed"
    wait_for(lambda: len(list(versions.glob(f"*/{LINKS}.json"))) >= 40, 60, "a part of the replay")
    proc.send_signal(how)
    out, err = proc.communicate(timeout=60)
    first = len(list(versions.glob(f"*/{LINKS}.json")))
    assert first < 400, "the replay finished before it was interrupted: make the test set larger"
    if how == signal.SIGINT:
        assert proc.returncode == 130, err
        head = json.loads(out.splitlines()[-1])
        assert head["interrupted"] is True and head["replayed"] == first
    resumed = mailpipe(*args, "--store", url)
    assert resumed.returncode == 0, resumed.stderr
    assert summary(resumed)["current"] >= first - 2  # a message killed between the switch and its marker redoes
    assert summary(resumed)["current"] + summary(resumed)["replayed"] == 400
    assert mailpipe(*args, "--store", clean).returncode == 0
    for mid in ids:
        assert without_durations(doc(url, parsed_key(mid))) == without_durations(doc(clean, parsed_key(mid)))
        assert open_store(url).exists(version_key(mid, "0.1.0"))


def test_listing_is_streamed_not_loaded(tmp_path: Path) -> None:
    """The replay pulls keys from the listing as it goes: never the whole listing before the first message."""
    from mailpipe.handlers import replay

    url = f"memory://replay-{uuid.uuid4().hex}"
    stored(url, 50)
    store = open_store(url)
    pulled: list[str] = []
    done: list[int] = []

    def listing(prefix: str) -> Any:
        for key in type(store).list(store, prefix):
            pulled.append(key)
            yield key

    store.list = listing  # type: ignore[method-assign]
    pipeline = Pipeline(store, MemoryQueue("unused"), Settings())
    for key in replay.keys(store, "", None):
        pipeline.replay_key(key)
        done.append(len(pulled))
    assert len(done) == 50 and done[0] <= 2 and done == sorted(done)


def test_bad_options_are_one_line_and_exit_2(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/store"
    (tmp_path / "file").write_text("not a folder")
    for store, args, text in [
        (url, ("--since", "yesterday"), "--since/--until: 'yesterday' is not an ISO 8601 date"),
        (url, ("--enrich", "nosuch"), "nosuch"),
        (url, ("--emit", "--rules", str(tmp_path / "missing.yml")), "missing.yml"),
        (url, ("--ids", str(tmp_path / "missing.txt")), "--ids: cannot read"),
        (f"file://{tmp_path}/file/store", (), "cannot be reached"),
    ]:
        proc = mailpipe("replay", "--store", store, *args)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and text in proc.stderr and "Traceback" not in proc.stderr
    for bad in ("--progress", "--workers"):
        proc = mailpipe("replay", "--store", url, bad, "0")
        assert proc.returncode == 2 and "must be a whole number >= 1" in proc.stderr and "Traceback" not in proc.stderr


def test_a_rollback_or_a_live_reparse_is_not_taken_for_current(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/store"
    ids = stored(url, 2)
    assert summary(mailpipe("replay", "--store", url, "--enrich", "links"))["replayed"] == 2
    back = mailpipe("replay", "--store", url)  # back to the version without enrichers
    assert summary(back)["replayed"] == 2 and summary(back)["current"] == 0, back.stderr
    assert all(doc(url, parsed_key(m))["processed_by"]["version"] == "0.1.0" for m in ids)
    again = mailpipe("replay", "--store", url, "--enrich", "links")  # its marker exists, but it is not current
    assert summary(again)["replayed"] == 2
    assert all(doc(url, parsed_key(m))["processed_by"]["version"] == LINKS for m in ids)


def test_a_failed_emit_is_emitted_by_the_next_run(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/store"
    ids = stored(url, 2)
    (tmp_path / "file").write_text("not a folder")
    failed = mailpipe("replay", "--store", url, "--enrich", "links", "--emit", "--queue", f"file://{tmp_path}/file/q")
    assert failed.returncode == 1 and summary(failed)["failed"] == 2
    fixed = mailpipe("replay", "--store", url, "--enrich", "links", "--emit", "--queue", f"file://{tmp_path}/q")
    assert summary(fixed)["replayed"] == 2, fixed.stderr
    assert sorted(p.stem for p in (tmp_path / "q").glob("*.json")) == sorted(ids)


def test_replay_rewrites_an_attachment_whose_bytes_changed(tmp_path: Path) -> None:
    from email.message import EmailMessage

    url = f"file://{tmp_path}/store"
    m = EmailMessage()
    m["Subject"] = "with a file"
    m.set_content("see attached")
    m.add_attachment(b"%PDF-1.4 the real bytes", maintype="application", subtype="pdf", filename="a.pdf")
    store = open_store(url)
    mid = message_id(m.as_bytes(), None)
    store.put(raw_key(mid), m.as_bytes(), content_type="message/rfc822")
    Pipeline(store, MemoryQueue(f"q-{uuid.uuid4().hex}"), Settings()).process_key(raw_key(mid))
    (akey,) = [a["key"] for a in doc(url, parsed_key(mid))["attachments"]]
    store.put(akey, b"what an older parser wrote", content_type="application/pdf")
    assert summary(mailpipe("replay", "--store", url, "--enrich", "links"))["replayed"] == 1
    assert store.get(akey) == b"%PDF-1.4 the real bytes"


def test_a_killed_worker_ends_the_run_with_a_line_not_a_hang(tmp_path: Path) -> None:
    url = f"file://{tmp_path}/store"
    stored(url, 400)
    args = ("replay", "--enrich", "links", "--workers", "2", "--store", url)
    proc = subprocess.Popen([sys.executable, "-m", "mailpipe", *args], cwd=ROOT, env=clean_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    versions = tmp_path / "store" / "parsed"
    wait_for(lambda: len(list(versions.glob(f"*/{LINKS}.json"))) >= 20, 60, "a part of the replay")
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    workers = [int(c) for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]
    assert workers, children
    os.kill(workers[0], signal.SIGKILL)
    _out, err = proc.communicate(timeout=60)
    if len(list(versions.glob(f"*/{LINKS}.json"))) < 400:  # (else it finished before the kill landed)
        assert proc.returncode == 1 and "a worker process died" in err and "Traceback" not in err, err
    resumed = mailpipe(*args)
    assert resumed.returncode == 0 and summary(resumed)["current"] + summary(resumed)["replayed"] == 400


@pytest.mark.emulator
@pytest.mark.parametrize("cloud", ["s3", "gcs", "azure"])
def test_replay_on_each_cloud_emulator(cloud: str, request: pytest.FixtureRequest) -> None:
    prefix = f"tenant-{uuid.uuid4().hex[:8]}"
    if cloud == "s3":
        url = f"s3://{request.getfixturevalue('bucket')}/{prefix}"
    elif cloud == "gcs":
        request.getfixturevalue("gcs_env")
        url = f"gs://{GCS_BUCKET}/{prefix}"
    else:
        request.getfixturevalue("azure_env")
        url = f"azblob://{ACCOUNT}/{CONTAINER}/{prefix}"
    ids = stored(url, 4)
    env = {**clean_env(), **{k: v for k, v in os.environ.items() if k.startswith(("AWS_", "STORAGE_", "AZURE_"))}}
    proc = mailpipe("replay", "--store", url, "--enrich", "links", "--workers", "2", env=env)
    assert proc.returncode == 0 and summary(proc)["replayed"] == 4, proc.stderr
    for mid in ids:
        assert doc(url, parsed_key(mid))["enrichments"]["links"]["status"] == "ok"
        assert open_store(url).exists(version_key(mid, "0.1.0"))
    again = mailpipe("replay", "--store", url, "--enrich", "links", env=env)
    assert summary(again)["current"] == 4
    pruned = mailpipe("replay", "--store", url, "--prune", env=env)
    assert pruned.returncode == 0 and json.loads(pruned.stdout)["pruned"] == 4, pruned.stderr
