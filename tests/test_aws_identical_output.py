"""Identical output on AWS: each message of the shared corpus (tests/fixtures/mail) gives byte-identical
parsed JSON, attachments and notification through the real AWS path (S3 on moto -> S3 notification -> SQS
-> the Lambda handler -> S3 + SQS) and through the local pipeline (memory store and queue).
"""

from __future__ import annotations

import importlib
import logging
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from emulators_aws import *  # noqa: F403 - the moto fixtures
from emulators_aws import client, lambda_sqs_event, notify_bucket_to_queue, receive_all

from mailpipe.core.edge.ingest import accept
from mailpipe.core.model import Envelope
from mailpipe.core.pipeline import Outcome, Pipeline
from mailpipe.core.settings import Settings
from mailpipe.providers import open_publisher, open_store
from mailpipe.providers.aws.clients import S3Store

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import ModuleType

pytestmark = pytest.mark.emulator
CORPUS = sorted((Path(__file__).parent / "fixtures" / "mail").glob("*.eml"))
ENV = Envelope(mail_from="sender@example.org", rcpt_to=("inbox@dev.mailpipe.test",), client_ip="192.0.2.7")


@pytest.fixture
def aws_handler(
    bucket: str, queue_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[ModuleType, str, str]]:
    """The real handler, cold-started on ``bucket`` + a new destination queue: (module, dest, inbox ARN)."""
    dest = f"dest-{uuid.uuid4().hex[:8]}"
    client("sqs").create_queue(QueueName=dest)
    arn = notify_bucket_to_queue(bucket, queue_url)
    monkeypatch.setenv("MAILPIPE_STORE", f"s3://{bucket}")
    monkeypatch.setenv("MAILPIPE_QUEUE", f"sqs://{dest}")
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    sys.modules.pop("mailpipe.handlers.aws_lambda", None)
    yield importlib.import_module("mailpipe.handlers.aws_lambda"), dest, arn
    sys.modules.pop("mailpipe.handlers.aws_lambda", None)
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def test_corpus_output_is_byte_identical_on_aws_and_local(
    aws_handler: tuple[ModuleType, str, str], bucket: str, queue_url: str
) -> None:
    assert len(CORPUS) >= 5, "the shared corpus is missing"
    handler, dest, arn = aws_handler
    s3 = S3Store(bucket)
    local_store = open_store(f"memory://ident-{uuid.uuid4().hex[:8]}")
    local_queue = open_publisher(f"memory://ident-{uuid.uuid4().hex[:8]}")
    local = Pipeline(local_store, local_queue, Settings())
    for path in CORPUS:
        raw = path.read_bytes()
        assert accept(s3, raw, ENV) == (mid := accept(local_store, raw, ENV))
        assert local.process_key(f"raw/{mid}.eml") in (Outcome.DONE, Outcome.QUARANTINED)
    msgs = receive_all(queue_url, expect=len(CORPUS) + 1, wait=10)  # + the s3:TestEvent
    assert len(msgs) == len(CORPUS) + 1
    assert handler.handle(lambda_sqs_event(msgs, arn), None) == {"batchItemFailures": []}

    outputs = [k for k in local_store.list("") if not k.startswith("raw/")]
    assert sorted(k for k in s3.list("") if not k.startswith("raw/")) == sorted(outputs)
    assert any(k.startswith("parsed/") for k in outputs) and any(k.startswith("att/") for k in outputs)
    for key in outputs:
        assert s3.get(key) == local_store.get(key), key
    dest_url = client("sqs").get_queue_url(QueueName=dest)["QueueUrl"]
    notes = {
        m["MessageAttributes"]["key"]["StringValue"]: m["Body"].encode()
        for m in receive_all(dest_url, 10, len(local_queue.messages))
    }
    assert notes == local_queue.messages  # type: ignore[attr-defined]
