"""Session fixtures for the GCP emulators (no Docker): gcp-storage-emulator (PyPI) and the Pub/Sub emulator
that ships with the Google Cloud CLI (needs Java). Each starts on a free loopback port, is polled until ready
and is killed by pid (its own process group) at the end. Loaded by tests/conftest.py (``pytest_plugins``).

Adapters are pointed at them only through the SDKs' standard settings: STORAGE_EMULATOR_HOST and
PUBSUB_EMULATOR_HOST.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

GCS_BUCKET = "mailpipe-test"
PUBSUB_PROJECT = "mailpipe-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


class Emulator:
    """A child process in its own process group, stopped by pid; its output goes to a log file."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        with open(log, "wb") as out:  # cwd: the log's folder, so no emulator leaves files in the work tree
            self.proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, cwd=log.parent, env=env, start_new_session=True
            )

    def wait_ready(self, ready: Callable[[], bool], timeout: float, name: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if ready():
                return
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"{name} did not start: {self.log.read_text(errors='replace')[-2000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of a gcp-storage-emulator holding the bucket ``GCS_BUCKET``."""
    exe = Path(sys.executable).with_name("gcp-storage-emulator")
    if not exe.exists():
        pytest.skip("gcp-storage-emulator is not installed (pip install -e '.[dev]')")
    port = free_port()
    emu = Emulator(
        [
            str(exe),
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--in-memory",
            "--default-bucket",
            GCS_BUCKET,
        ],
        tmp_path_factory.mktemp("gcs") / "gcs.log",
    )
    endpoint = f"http://127.0.0.1:{port}"
    emu.wait_ready(lambda: http_ok(f"{endpoint}/storage/v1/b/{GCS_BUCKET}"), 30, "gcp-storage-emulator")
    yield endpoint
    emu.stop()


def pubsub_emulator_binary() -> str | None:
    """The Pub/Sub emulator launcher of the installed Google Cloud CLI, or None."""
    gcloud = shutil.which("gcloud")
    if gcloud is None or shutil.which("java") is None:
        return None
    root = subprocess.run(
        [gcloud, "info", "--format=value(installation.sdk_root)"], capture_output=True, text=True, timeout=60
    ).stdout.strip()
    exe = Path(root) / "platform" / "pubsub-emulator" / "bin" / "cloud-pubsub-emulator"
    return str(exe) if exe.exists() else None


@pytest.fixture(scope="session")
def pubsub_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``127.0.0.1:PORT`` of the Pub/Sub emulator (the PUBSUB_EMULATOR_HOST value)."""
    exe = pubsub_emulator_binary()
    if exe is None:
        pytest.skip(
            "Pub/Sub emulator needs the Google Cloud CLI's pubsub-emulator component and Java; "
            "neither comes from a package registry"
        )
    port = free_port()
    log = tmp_path_factory.mktemp("pubsub") / "pubsub.log"
    emu = Emulator([exe, "--host=127.0.0.1", f"--port={port}"], log)
    emu.wait_ready(lambda: http_ok(f"http://127.0.0.1:{port}/"), 60, "Pub/Sub emulator")
    yield f"127.0.0.1:{port}"
    emu.stop()


@pytest.fixture
def gcs_env(gcs_emulator: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """STORAGE_EMULATOR_HOST set for this test; returns the endpoint."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator)
    return gcs_emulator


@pytest.fixture
def pubsub_topic(pubsub_emulator: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """A fresh topic with one subscription: ``(topic_path, subscription_path)``; PUBSUB_EMULATOR_HOST set."""
    from google.cloud import pubsub_v1

    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator)
    name = f"t-{uuid.uuid4().hex[:10]}"
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    topic = publisher.create_topic(name=f"projects/{PUBSUB_PROJECT}/topics/{name}").name
    sub_path = f"projects/{PUBSUB_PROJECT}/subscriptions/{name}"
    sub = subscriber.create_subscription(name=sub_path, topic=topic).name
    yield topic, sub
    subscriber.close()
