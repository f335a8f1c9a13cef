"""``mailpipe dlq``, run as a user runs it: a message quarantined by a rule shows up in ``list`` with its reason,
``show`` prints the record, and after the rule is fixed ``redrive`` sends it through the normal path (parsed JSON,
notification) and marks the record; on any store (a bucket on moto too)."""

from __future__ import annotations

import json
import os
import smtplib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import wait_for
from emulators_aws import aws_env, bucket, moto_endpoint  # noqa: F401 - fixtures

from mailpipe.core import quarantine
from mailpipe.providers import open_store

ROOT = Path(__file__).resolve().parent.parent
RULES = """\
customers:
  acme:
    domains: [acme.example]
    rules:
      - name: hold
        when: {subject: '(?i)invoice'}
        actions: [{quarantine: held by mistake}]
"""


def mailpipe(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPIPE_")}
    return subprocess.run([sys.executable, "-m", "mailpipe", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def lines(proc: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return [json.loads(ln) for ln in proc.stdout.splitlines()]


def test_a_rule_quarantine_is_listed_then_redriven_after_the_fix(tmp_path: Path, serve_process: Any) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES)
    serve = serve_process("--domains", "acme.example", "--rules", str(rules))
    with smtplib.SMTP("127.0.0.1", serve.port, timeout=20) as smtp:
        smtp.sendmail("ar@supplier.example", ["billing@acme.example"], b"Subject: Invoice 7\r\n\r\nattached\r\n")
        smtp.sendmail("ann@example.org", ["billing@acme.example"], b"Subject: hello\r\n\r\nhi\r\n")
    store = f"file://{serve.store_dir}"
    wait_for(lambda: len(list((serve.store_dir / "parsed").glob("*.json"))) == 2, 20, "both parsed")
    wait_for(lambda: list((serve.store_dir / "quarantine").glob("*.json")), 20, "the quarantine record")
    serve.stop()
    (held,) = lines(mailpipe("dlq", "list", "--store", store))
    assert held["reason"] == "rule" and held["detail"] == "quarantined by routing rule acme/hold"
    assert held["raw_key"] == f"raw/{held['id']}.eml"
    assert lines(mailpipe("dlq", "list", "--store", store, "--reason", "malformed")) == []
    show = mailpipe("dlq", "show", held["id"], "--store", store)
    assert show.returncode == 0 and json.loads(show.stdout)["reason"] == "rule"
    assert not (serve.queue_dir / f"{held['id']}.json").exists()  # quarantined: no notification

    rules.write_text(RULES.replace("(?i)invoice", "(?i)^never$"))  # the fix
    redrive = mailpipe("dlq", "redrive", "--store", store, "--queue", f"file://{serve.queue_dir}", "--rules",
                       str(rules))  # fmt: skip
    assert redrive.returncode == 0, redrive.stderr
    assert lines(redrive) == [{"id": held["id"], "was": "rule", "outcome": "done"}]
    assert json.loads((serve.queue_dir / f"{held['id']}.json").read_bytes())["id"] == held["id"]
    doc = json.loads((serve.store_dir / "parsed" / f"{held['id']}.json").read_bytes())
    assert doc["routing"] == [{"recipient": "billing@acme.example", "customer": "acme", "rule": None, "actions": []}]
    assert lines(mailpipe("dlq", "list", "--store", store)) == []
    (was,) = lines(mailpipe("dlq", "list", "--store", store, "--all"))
    assert was["redriven"] == {"outcome": "done"}


def test_redrive_reports_what_stays_quarantined_and_unknown_ids(tmp_path: Path) -> None:
    store_url = f"file://{tmp_path}/m"
    store = open_store(store_url)
    quarantine.put(store, "e" * 32, "bad_event", "sqs record 7", record="{}")
    quarantine.put(store, "a" * 32, "object_missing", "s3 get raw/x.eml", raw_key=f"raw/{'a' * 32}.eml")
    proc = mailpipe("dlq", "redrive", "--store", store_url, "--queue", f"file://{tmp_path}/q", "a" * 32, "e" * 32,
                    "b" * 32)  # fmt: skip
    assert proc.returncode == 1 and f"no quarantine record {'b' * 32}" in proc.stderr
    out = {r["id"]: r for r in lines(proc)}
    assert out["a" * 32]["outcome"] == "quarantined" and out["a" * 32]["reason"] == "object_missing"
    assert out["e" * 32]["outcome"] == "not_redrivable"
    assert mailpipe("dlq", "show", "../../etc/passwd", "--store", store_url).returncode == 1


def test_list_on_a_bucket(bucket: str) -> None:  # noqa: F811
    store = open_store(f"s3://{bucket}")
    quarantine.put(store, "c" * 32, "too_large", "s3 get raw/c.eml: 3000 bytes\nsecond line", raw_key="raw/c.eml")
    proc = mailpipe("dlq", "list", "--store", f"s3://{bucket}")
    assert proc.returncode == 0, proc.stderr
    (entry,) = lines(proc)
    assert entry.pop("at").startswith("20")
    assert entry == {"source": "quarantine", "id": "c" * 32, "reason": "too_large", "raw_key": "raw/c.eml",
                     "attempts": None, "detail": "s3 get raw/c.eml: 3000 bytes"}  # fmt: skip


@pytest.mark.emulator
@pytest.mark.parametrize("cloud", ["gcs", "azure"])
def test_list_and_show_on_gcs_and_blob(cloud: str, request: pytest.FixtureRequest) -> None:
    import uuid

    from emulators_azure import ACCOUNT, CONTAINER
    from emulators_gcp import GCS_BUCKET

    prefix = f"dlq-{uuid.uuid4().hex[:8]}"
    request.getfixturevalue("gcs_env" if cloud == "gcs" else "azure_env")
    url = f"gs://{GCS_BUCKET}/{prefix}" if cloud == "gcs" else f"azblob://{ACCOUNT}/{CONTAINER}/{prefix}"
    quarantine.put(open_store(url), "d" * 32, "malformed", "envelope sidecar unreadable", raw_key="raw/d.eml")
    (entry,) = lines(mailpipe("dlq", "list", "--store", url))
    assert (entry["id"], entry["reason"], entry["source"]) == ("d" * 32, "malformed", "quarantine")
    assert lines(mailpipe("dlq", "list", "--store", url, "--since", "2999-01-01")) == []
    show = mailpipe("dlq", "show", "d" * 32, "--store", url)
    assert show.returncode == 0 and json.loads(show.stdout)["detail"] == "envelope sidecar unreadable"
