"""A store or queue that does not answer at start is named with its URL and the cause: ``serve`` and ``edge``
refuse to start (exit 2, one line each), ``check --reach`` reports it; against moto, the GCS emulator, Azurite
and the folder store, and with an endpoint nobody listens on."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from emulators_aws import aws_env, bucket, moto_endpoint  # noqa: F401 - fixtures
from emulators_azure import ACCOUNT, CONTAINER
from emulators_gcp import GCS_BUCKET

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mailpipe(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MAILPIPE_")}
    return subprocess.run([sys.executable, "-m", "mailpipe", *args], cwd=ROOT, env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def errors(proc: subprocess.CompletedProcess[str]) -> list[str]:
    assert "Traceback" not in proc.stderr, proc.stderr
    return [ln for ln in proc.stderr.splitlines() if "cannot be reached" in ln]


def test_serve_names_a_missing_bucket_and_queue(tmp_path: Path, bucket: str) -> None:  # noqa: F811
    proc = mailpipe("serve", "--listen", f"127.0.0.1:{free_port()}", "--store", "s3://no-such-bucket",
                    "--queue", "sqs://no-such-queue")  # fmt: skip
    assert proc.returncode == 2
    store, queue = errors(proc)
    assert store == "mailpipe: configuration error: store s3://no-such-bucket cannot be reached: " \
        "s3 bucket no-such-bucket: no such bucket (404)"
    assert queue.startswith("mailpipe: configuration error: queue sqs://no-such-queue cannot be reached: ")
    ok = mailpipe("check", "--reach", "--store", f"s3://{bucket}/tenant", "--queue", f"file://{tmp_path}/q")
    assert ok.returncode == 0 and ok.stdout.startswith("mailpipe check: ok"), ok.stderr


def test_an_endpoint_nobody_listens_on_is_named_with_the_cause(tmp_path: Path) -> None:
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}", "AWS_ACCESS_KEY_ID": "x",
           "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "eu-west-1", "AWS_MAX_ATTEMPTS": "1"}  # fmt: skip
    proc = mailpipe("check", "--reach", "--store", "s3://b", "--queue", f"file://{tmp_path}/q", env=env)
    assert proc.returncode == 2
    (line,) = errors(proc)
    assert "store s3://b cannot be reached: " in line and "connect" in line.lower()


def test_a_folder_that_cannot_be_written(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("a file, not a folder")
    proc = mailpipe("serve", "--listen", f"127.0.0.1:{free_port()}", "--store", f"file://{tmp_path}/file/mail",
                    "--queue", f"file://{tmp_path}/q")  # fmt: skip
    assert proc.returncode == 2
    (line,) = errors(proc)
    assert f"store file://{tmp_path}/file/mail cannot be reached: " in line and "Not a directory" in line


def test_a_rules_destination_queue_is_reached_too(tmp_path: Path, aws_env: str) -> None:  # noqa: F811
    rules = tmp_path / "rules.yml"
    rules.write_text("customers:\n  acme:\n    domains: [acme.example]\n    destinations: {crm: sqs://gone}\n"
                     "    rules:\n      - name: all\n        when: {subject: x}\n"
                     "        actions: [{publish: crm}]\n")  # fmt: skip
    proc = mailpipe("check", "--reach", "--rules", str(rules), "--store", f"file://{tmp_path}/m", "--queue",
                    f"file://{tmp_path}/q")  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    (line,) = errors(proc)
    assert "queue sqs://gone cannot be reached" in line


@pytest.mark.emulator
def test_edge_names_every_store_that_does_not_answer(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    request.getfixturevalue("gcs_env")
    request.getfixturevalue("azure_env")
    ok = f"gs://{GCS_BUCKET}/acme"
    proc = mailpipe("edge", "--listen", f"127.0.0.1:{free_port()}", "--domain-store", f"acme.example={ok}",
                    "--domain-store", "globex.example=gs://no-such-bucket",
                    "--domain-store", f"initech.example=azblob://{ACCOUNT}/no-such-container",
                    "--domain-store", f"hooli.example=azblob://{ACCOUNT}/{CONTAINER}/hooli")  # fmt: skip
    assert proc.returncode == 2
    assert sorted(ln.split(" cannot")[0].rsplit(" ", 1)[1] for ln in errors(proc)) == [
        f"azblob://{ACCOUNT}/no-such-container", "gs://no-such-bucket"]
