"""The same message gives byte-identical parsed JSON whatever the store: local (memory), GCS, Azure Blob, S3,
over the shared corpus (<repo>/../shared/corpus/stalwart-mail-parser/eml/*/*.eml) and the mail fixtures.

Each cloud store runs the real Pipeline against its emulator; every output object (parsed JSON, attachments,
quarantine records) and every notification must equal the local run's bytes.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from emulators_aws import aws_env, bucket, moto_endpoint  # noqa: F401 - fixtures
from emulators_azure import ACCOUNT, CONTAINER
from emulators_gcp import GCS_BUCKET

from mailpipe.core.keys import envelope_key, message_id, raw_key
from mailpipe.core.model import Envelope, dumps
from mailpipe.core.pipeline import Outcome, Pipeline
from mailpipe.core.settings import Settings
from mailpipe.providers import open_store

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus" / "stalwart-mail-parser" / "eml"
MAILS = sorted(CORPUS.glob("*/*.eml")) + sorted((Path(__file__).parent / "fixtures" / "mail").glob("*.eml"))
ENVELOPE = Envelope(mail_from="sender@example.org", rcpt_to=("inbox@example.com",), client_ip="192.0.2.1",
                    helo="mx.example.org", tls=True, received_at="2026-11-29T07:00:00Z")  # fmt: skip


class Capture:
    """A publisher that keeps what it was given (the notification bytes are part of the output)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    def publish(self, body: bytes, *, key: str) -> None:
        self.sent.append((key, body))


def run_all(store: Any) -> dict[str, Any]:
    """Ingest every mail into ``store`` and run the pipeline: {mail: (outcome, outputs, notifications)}."""
    settings, results = Settings(), {}
    for path in MAILS:
        raw = path.read_bytes()
        mid = message_id(raw, ENVELOPE)
        store.put(envelope_key(mid), dumps(ENVELOPE.to_dict()), content_type="application/json")
        store.put(raw_key(mid), raw, content_type="message/rfc822")
        publisher = Capture()
        outcome = Pipeline(store, publisher, settings).process_key(raw_key(mid))
        keys = [k for k in store.list("") if mid in k and not k.startswith("raw/")]
        results[str(path.relative_to(path.parents[1]))] = (outcome, {k: store.get(k) for k in sorted(keys)},
                                                            publisher.sent)  # fmt: skip
    return results


@pytest.fixture(scope="module")
def local_results() -> dict[str, Any]:
    if not CORPUS.is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS}")
    return run_all(open_store(f"memory://identical-{uuid.uuid4().hex[:8]}"))


@pytest.fixture
def cloud_store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
    prefix = f"identical-{uuid.uuid4().hex[:8]}"
    if request.param == "gcs":
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", request.getfixturevalue("gcs_emulator"))
        return open_store(f"gs://{GCS_BUCKET}/{prefix}")
    if request.param == "azure":
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", request.getfixturevalue("azurite"))
        return open_store(f"azblob://{ACCOUNT}/{CONTAINER}/{prefix}")
    return open_store(f"s3://{request.getfixturevalue('bucket')}/{prefix}")


@pytest.mark.emulator
@pytest.mark.parametrize("cloud_store", ["gcs", "azure", "s3"], indirect=True)
def test_parsed_output_is_byte_identical_to_local(local_results: dict[str, Any], cloud_store: Any) -> None:
    assert len(local_results) >= 100
    assert sum(r[0] is Outcome.DONE for r in local_results.values()) >= 90
    cloud = run_all(cloud_store)
    differ = [name for name, result in local_results.items() if cloud[name] != result]
    assert differ == []
