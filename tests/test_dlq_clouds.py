"""``mailpipe dlq --dlq URL`` on each cloud's dead-letter queue, run as a user runs it: an event the function
gave up on (its destination queue was missing) is listed with the message it names, the last failure's reason
and error and the attempts; after the fix ``redrive`` runs it through the pipeline, deletes it from the
dead-letter queue and reports ``done``.

AWS: moto moves the message itself (a RedrivePolicy with maxReceiveCount 2 on the S3 event queue). The Pub/Sub
emulator has no dead-letter policy and Azurite no Functions host, so there the test puts the message where the
platform would (the dead-letter topic, with the delivery-count attribute Pub/Sub sets; the ``-poison`` queue,
with the body the host moves), after the real function path failed on it."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from emulators_aws import aws_env, bucket, client, lambda_sqs_event, moto_endpoint, notify_bucket_to_queue  # noqa: F401
from emulators_azure import ACCOUNT, CONTAINER
from emulators_gcp import GCS_BUCKET, PUBSUB_PROJECT

from mailpipe.core.keys import envelope_key, message_id, parsed_key, raw_key
from mailpipe.core.model import Envelope
from mailpipe.core.pipeline import Outcome, Pipeline
from mailpipe.core.settings import Settings
from mailpipe.providers import open_publisher, open_store

ROOT = Path(__file__).resolve().parent.parent
RAW = b"From: ar@supplier.example\r\nTo: billing@acme.example\r\nSubject: invoice 7\r\n\r\nhello\r\n"


def mailpipe(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPIPE_")}
    return subprocess.run([sys.executable, "-m", "mailpipe", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def lines(proc: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert proc.returncode == 0, proc.stderr
    return [json.loads(ln) for ln in proc.stdout.splitlines()]


def seed(store_url: str) -> str:
    store = open_store(store_url)
    env = Envelope("ar@supplier.example", ("billing@acme.example",))
    mid = message_id(RAW, env)
    store.put(envelope_key(mid), json.dumps(env.to_dict()).encode(), content_type="application/json")
    store.put(raw_key(mid), RAW, content_type="message/rfc822")
    return mid


def fail_once(store_url: str, missing_queue: str, decode: Any, record: Any) -> None:
    """The function's own path on ``record`` with a destination queue that does not exist: RETRY."""
    store = open_store(store_url)
    pipeline = Pipeline(store, open_publisher(missing_queue), Settings())
    assert pipeline.run_record(decode(store), record) is Outcome.RETRY


def unwritable_queue() -> Path:
    """A folder queue below a regular file: every publish fails (BackendUnavailable), as a missing queue does."""
    import tempfile

    blocker = Path(tempfile.mkdtemp(prefix="mailpipe-dlq-")) / "file"
    blocker.write_text("not a folder")
    return blocker / "queue"


def check_list_and_redrive(store_url: str, dlq: str, good_queue: str, mid: str, attempts: int) -> None:
    (entry,) = [e for e in lines(mailpipe("dlq", "list", "--store", store_url, "--dlq", dlq)) if e["source"] == "dlq"]
    assert (entry["id"], entry["raw_key"], entry["reason"], entry["attempts"]) == (mid, raw_key(mid), "unavailable",
                                                                                   attempts)  # fmt: skip
    assert entry["detail"] and entry["at"].startswith("20") and entry["dlq"] == dlq
    assert [e["id"] for e in lines(mailpipe("dlq", "list", "--store", store_url, "--dlq", dlq))
            if e["source"] == "dlq"] == [mid]  # listing left it there  # fmt: skip
    wrong = store_url.rsplit("/", 1)[0] + "/another-tenant" if store_url.count("/") > 2 else store_url + "/other"
    proc = mailpipe("dlq", "redrive", "--store", wrong, "--dlq", dlq, "--queue", good_queue)  # a wrong --store
    (missed,) = [json.loads(ln) for ln in proc.stdout.splitlines()]
    assert proc.returncode == 1 and missed["outcome"] in ("ignored", "not_found"), proc.stdout + proc.stderr
    assert [e["id"] for e in lines(mailpipe("dlq", "list", "--store", store_url, "--dlq", dlq))
            if e["source"] == "dlq"] == [mid]  # it stays in the dead-letter queue, for the right store  # fmt: skip
    (done,) = lines(mailpipe("dlq", "redrive", "--store", store_url, "--dlq", dlq, "--queue", good_queue))
    assert (done["id"], done["outcome"], done["was"]) == (mid, "done", "unavailable")
    assert json.loads(open_store(store_url).get(parsed_key(mid)))["id"] == mid
    assert [e for e in lines(mailpipe("dlq", "list", "--store", store_url, "--dlq", dlq)) if e["source"] == "dlq"] == []


def test_sqs_dead_letter_queue(bucket: str) -> None:  # noqa: F811
    from mailpipe.providers.aws.events import bind_store

    sqs, name = client("sqs"), f"dlq-{uuid.uuid4().hex[:8]}"
    dlq_url = sqs.create_queue(QueueName=name)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events_url = sqs.create_queue(QueueName=f"events-{name}", Attributes={"RedrivePolicy": json.dumps(
        {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"})})["QueueUrl"]  # fmt: skip
    arn = notify_bucket_to_queue(bucket, events_url)
    for m in sqs.receive_message(QueueUrl=events_url, WaitTimeSeconds=1).get("Messages", []):  # s3:TestEvent
        sqs.delete_message(QueueUrl=events_url, ReceiptHandle=m["ReceiptHandle"])
    store_url = f"s3://{bucket}"
    mid = seed(store_url)
    for _ in range(2):  # two receives by the function, both failing: SQS moves the event to the dead-letter queue
        got = sqs.receive_message(QueueUrl=events_url, WaitTimeSeconds=2, VisibilityTimeout=0,
                                  AttributeNames=["All"])["Messages"]  # fmt: skip
        (record,) = lambda_sqs_event(got, arn)["Records"]
        fail_once(store_url, "sqs://no-such-destination", bind_store, record)
    assert "Messages" not in sqs.receive_message(QueueUrl=events_url, WaitTimeSeconds=0)
    dest = f"dest-{name}"
    sqs.create_queue(QueueName=dest)  # the fix
    check_list_and_redrive(store_url, f"sqs://{name}", f"sqs://{dest}", mid, attempts=2)
    assert json.loads(sqs.receive_message(QueueUrl=sqs.get_queue_url(QueueName=dest)["QueueUrl"])["Messages"][0]
                      ["Body"])["id"] == mid  # fmt: skip


@pytest.mark.emulator
def test_pubsub_dead_letter_subscription(gcs_env: str, pubsub_topic: tuple[str, str]) -> None:
    from google.cloud import pubsub_v1

    from mailpipe.providers.gcp.events import bind_store

    prefix = f"dl-{uuid.uuid4().hex[:8]}"
    store_url = f"gs://{GCS_BUCKET}/{prefix}"
    mid = seed(store_url)
    attributes = {"bucketId": GCS_BUCKET, "objectId": f"{prefix}/{raw_key(mid)}", "eventType": "OBJECT_FINALIZE",
                  "payloadFormat": "JSON_API_V1"}  # fmt: skip
    data = json.dumps({"bucket": GCS_BUCKET, "name": f"{prefix}/{raw_key(mid)}"}).encode()
    push = {"message": {"attributes": attributes, "data": base64.b64encode(data).decode(), "messageId": "77"},
            "subscription": "projects/p/subscriptions/gcs", "deliveryAttempt": 5}  # fmt: skip
    # (a folder queue that cannot be written, not a missing topic: the Pub/Sub client would keep retrying in a
    # background thread of this test process, drawing on the global random state other tests' hypothesis uses)
    fail_once(store_url, f"file://{unwritable_queue()}", bind_store, push)
    # Pub/Sub forwards it to the dead-letter topic with the delivery count (the emulator has no dead-lettering)
    dl_topic, dl_sub = pubsub_topic
    pubsub_v1.PublisherClient().publish(dl_topic, data, **attributes,
                                        CloudPubSubDeadLetterSourceDeliveryCount="5").result(timeout=30)  # fmt: skip
    good = pubsub_v1.PublisherClient().create_topic(name=f"projects/{PUBSUB_PROJECT}/topics/g-{prefix}").name
    check_list_and_redrive(store_url, f"pubsub://{PUBSUB_PROJECT}/{dl_sub.rsplit('/', 1)[1]}",
                           f"pubsub://{PUBSUB_PROJECT}/{good.rsplit('/', 1)[1]}", mid, attempts=5)  # fmt: skip


@pytest.mark.emulator
def test_azure_poison_queue(azure_env: str) -> None:
    from azure.storage.queue import QueueClient

    from mailpipe.providers.azure.events import bind_store, decode_queue_message

    prefix = f"dl-{uuid.uuid4().hex[:8]}"
    store_url = f"azblob://{ACCOUNT}/{CONTAINER}/{prefix}"
    mid = seed(store_url)
    url = f"http://127.0.0.1:10000/{ACCOUNT}/{CONTAINER}/{prefix}/{raw_key(mid)}"
    event = {"id": f"eg-{prefix}", "eventType": "Microsoft.Storage.BlobCreated", "subject": "x",
             "data": {"url": url, "contentLength": len(RAW)}}  # fmt: skip
    body = json.dumps(event).encode()

    def decode(store: Any) -> Any:
        return bind_store(store, lambda b: decode_queue_message(b, message_id="m-1", dequeue_count=5))

    fail_once(store_url, f"file://{unwritable_queue()}", decode, body)
    poison = f"events-{prefix}-poison"
    queue = QueueClient.from_connection_string(azure_env, poison)
    queue.create_queue()
    queue.send_message(base64.b64encode(body).decode())  # what the Functions host moves there
    good = f"good-{prefix}"
    QueueClient.from_connection_string(azure_env, good).create_queue()
    try:
        check_list_and_redrive(store_url, f"azqueue://{ACCOUNT}/{poison}", f"azqueue://{ACCOUNT}/{good}", mid,
                               attempts=5)  # fmt: skip
    finally:
        queue.delete_queue()
        QueueClient.from_connection_string(azure_env, good).delete_queue()
