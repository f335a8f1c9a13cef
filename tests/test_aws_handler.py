"""End to end on moto server: S3 put -> real S3 notification on SQS -> Lambda SQS event -> the real handler ->
parsed JSON and attachments in S3, a notification on the destination queue.

The Lambda SQS poller is played by ``poll_once`` (receive, invoke, delete what did not fail), which is what
https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html describes for partial batch
responses; the redrive to the dead-letter queue is moto's own SQS behaviour.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
import uuid
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

import pytest
from emulators_aws import *  # noqa: F403 - the moto fixtures
from emulators_aws import REGION, client, lambda_sqs_event, notify_bucket_to_queue, receive_all

from mailpipe.core.edge.ingest import accept
from mailpipe.core.errors import TransientError
from mailpipe.core.keys import attachment_key, parsed_key, raw_key
from mailpipe.core.model import NOTIFICATION_SCHEMA, Envelope
from mailpipe.providers.aws.clients import S3Store

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from types import ModuleType

pytestmark = pytest.mark.emulator
ENV = Envelope(mail_from="jane@sender.example", rcpt_to=("bob@dev.mailpipe.test",), client_ip="192.0.2.1")


def message(subject: str = "Quarterly numbers") -> bytes:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "Jane <jane@sender.example>", "bob@dev.mailpipe.test", subject
    m["Message-ID"] = f"<{uuid.uuid4().hex}@sender.example>"
    m.set_content("See attached.")
    m.add_attachment(b"a,b\r\n1,2\r\n", maintype="text", subtype="csv", filename="numbers.csv")
    return m.as_bytes()


class Stack:
    """What serverless.yml deploys, on moto: bucket -> inbox queue (+DLQ) -> function -> destination queue."""

    def __init__(self, dest_name: str, max_receive: int = 3) -> None:
        sqs, s3 = client("sqs"), client("s3")
        self.bucket = f"mp-{uuid.uuid4().hex[:12]}"
        s3.create_bucket(Bucket=self.bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        self.dlq = sqs.create_queue(QueueName=f"inbox-dlq-{uuid.uuid4().hex[:8]}")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=self.dlq, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive})
        self.inbox = sqs.create_queue(
            QueueName=f"inbox-{uuid.uuid4().hex[:8]}", Attributes={"RedrivePolicy": redrive}
        )["QueueUrl"]
        attrs = {"FifoQueue": "true"} if dest_name.endswith(".fifo") else {}
        self.dest_name = dest_name
        self.dest = sqs.create_queue(QueueName=dest_name, Attributes=attrs)["QueueUrl"]
        self.inbox_arn = notify_bucket_to_queue(self.bucket, self.inbox)
        self.store = S3Store(self.bucket)

    def poll_once(self, handler: ModuleType, expect: int = 1) -> tuple[dict[str, Any], dict[str, Any]]:
        """One Lambda poller cycle: receive, invoke, delete the records not reported as failed."""
        sqs = client("sqs")
        msgs: list[dict[str, Any]] = []
        for _ in range(20):
            resp = sqs.receive_message(
                QueueUrl=self.inbox, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=0,
                AttributeNames=["All"], MessageAttributeNames=["All"],
            )  # fmt: skip
            msgs += resp.get("Messages", [])
            if len(msgs) >= expect:
                break
        event = lambda_sqs_event(msgs, self.inbox_arn)
        result = handler.handle(event, None)
        failed = {f["itemIdentifier"] for f in result["batchItemFailures"]}
        for m in msgs:
            if m["MessageId"] not in failed:
                sqs.delete_message(QueueUrl=self.inbox, ReceiptHandle=m["ReceiptHandle"])
        return event, result

    def all_keys(self) -> list[str]:
        return sorted(self.store.list(""))


@pytest.fixture
def load_handler(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., ModuleType]]:
    """Import mailpipe.handlers.aws_lambda afresh, as a cold start with the given MAILPIPE_* environment."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level

    def load(store_url: str, queue_url: str) -> ModuleType:
        monkeypatch.setenv("MAILPIPE_STORE", store_url)
        monkeypatch.setenv("MAILPIPE_QUEUE", queue_url)
        sys.modules.pop("mailpipe.handlers.aws_lambda", None)
        return importlib.import_module("mailpipe.handlers.aws_lambda")

    yield load
    sys.modules.pop("mailpipe.handlers.aws_lambda", None)
    root.handlers[:], _ = saved[0], root.setLevel(saved[1])


def ingest_and_poll(
    stack: Stack, handler: ModuleType, raw: bytes
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    mid = accept(stack.store, raw, ENV)
    event, result = stack.poll_once(handler, expect=2)  # the s3:TestEvent and the .eml notification
    return mid, event, result


def test_s3_put_to_parsed_json_and_notification(load_handler: Callable[..., ModuleType]) -> None:
    stack = Stack(f"parsed-{uuid.uuid4().hex[:8]}")
    handler = load_handler(f"s3://{stack.bucket}", f"sqs://{stack.dest_name}")
    mid, event, result = ingest_and_poll(stack, handler, message())
    assert result == {"batchItemFailures": []}
    bodies = [json.loads(r["body"]) for r in event["Records"]]
    assert any(b.get("Event") == "s3:TestEvent" for b in bodies)  # moto sends it like S3 does; it is skipped
    doc = json.loads(stack.store.get(parsed_key(mid)))
    assert doc["id"] == mid and doc["raw_key"] == raw_key(mid) and doc["subject"] == "Quarterly numbers"
    assert doc["envelope"]["rcpt_to"] == ["bob@dev.mailpipe.test"]
    assert stack.store.get(attachment_key(mid, 0, "numbers.csv")) == b"a,b\r\n1,2\r\n"
    (note,) = receive_all(stack.dest)
    body = json.loads(note["Body"])
    assert body["schema"] == NOTIFICATION_SCHEMA and body["parsed_key"] == parsed_key(mid)
    assert body["attachment_keys"] == [attachment_key(mid, 0, "numbers.csv")]
    assert note["MessageAttributes"]["key"]["StringValue"] == mid
    assert receive_all(stack.inbox, wait=1) == []  # acknowledged


def test_redelivery_produces_no_duplicate_output(load_handler: Callable[..., ModuleType]) -> None:
    stack = Stack(f"parsed-{uuid.uuid4().hex[:8]}.fifo")
    handler = load_handler(f"s3://{stack.bucket}", f"sqs://{stack.dest_name}")
    mid, event, _ = ingest_and_poll(stack, handler, message())
    before, parsed = stack.all_keys(), stack.store.get(parsed_key(mid))
    for _ in range(2):  # at-least-once: SQS hands the same records to the function again
        assert handler.handle(event, None) == {"batchItemFailures": []}
    assert stack.all_keys() == before and stack.store.get(parsed_key(mid)) == parsed
    assert len(receive_all(stack.dest, expect=2, wait=2)) == 1  # FIFO destination drops the repeated key


def test_malformed_record_is_quarantined_and_does_not_fail_the_batch(
    load_handler: Callable[..., ModuleType],
) -> None:
    stack = Stack(f"parsed-{uuid.uuid4().hex[:8]}")
    handler = load_handler(f"s3://{stack.bucket}", f"sqs://{stack.dest_name}")
    client("sqs").send_message(QueueUrl=stack.inbox, MessageBody="definitely not an S3 event")
    mid, _, result = ingest_and_poll(stack, handler, message())
    assert result == {"batchItemFailures": []}
    assert parsed_key(mid) in stack.all_keys()
    (qkey,) = [k for k in stack.all_keys() if k.startswith("quarantine/")]
    record = json.loads(stack.store.get(qkey))
    assert record["reason"] == "bad_event" and "definitely not an S3 event" in record["record"]


def test_missing_object_is_quarantined(load_handler: Callable[..., ModuleType]) -> None:
    stack = Stack(f"parsed-{uuid.uuid4().hex[:8]}")
    handler = load_handler(f"s3://{stack.bucket}", f"sqs://{stack.dest_name}")
    mid = accept(stack.store, message(), ENV)
    client("s3").delete_object(Bucket=stack.bucket, Key=raw_key(mid))
    _, result = stack.poll_once(handler, expect=2)
    assert result == {"batchItemFailures": []}
    assert json.loads(stack.store.get(f"quarantine/{mid}.json"))["reason"] == "object_missing"


def test_missing_destination_queue_is_retried_then_dead_lettered(
    load_handler: Callable[..., ModuleType],
) -> None:
    stack = Stack(f"parsed-{uuid.uuid4().hex[:8]}", max_receive=2)
    handler = load_handler(f"s3://{stack.bucket}", f"sqs://{stack.dest_name}")
    client("sqs").delete_queue(QueueUrl=stack.dest)
    mid, event, result = ingest_and_poll(stack, handler, message())
    eml = [r["messageId"] for r in event["Records"] if "s3:TestEvent" not in r["body"]]
    assert result == {"batchItemFailures": [{"itemIdentifier": eml[0]}]}
    assert not any(k.startswith("quarantine/") for k in stack.all_keys())
    _, again = stack.poll_once(handler)  # second receive: still failing
    assert again["batchItemFailures"] == [{"itemIdentifier": eml[0]}]
    # the poller's next receive exceeds maxReceiveCount=2: SQS moves the message to the DLQ instead
    assert client("sqs").receive_message(QueueUrl=stack.inbox, WaitTimeSeconds=1).get("Messages", []) == []
    (dead,) = receive_all(stack.dlq, wait=5)
    assert dead["MessageId"] == eml[0] and raw_key(mid).split("/")[1] in dead["Body"]


def test_store_endpoint_down_fails_the_record(
    load_handler: Callable[..., ModuleType], moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = Stack(f"parsed-{uuid.uuid4().hex[:8]}")
    accept(stack.store, message(), ENV)
    msgs = receive_all(stack.inbox, expect=2)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")  # S3 unreachable, SQS still fine
    handler = load_handler(f"s3://{stack.bucket}", f"sqs://{stack.dest_name}")
    event = lambda_sqs_event(msgs, stack.inbox_arn)
    eml = [r["messageId"] for r in event["Records"] if "s3:TestEvent" not in r["body"]]
    assert handler.handle(event, None) == {"batchItemFailures": [{"itemIdentifier": eml[0]}]}


def test_direct_s3_event_and_retry_by_raising(load_handler: Callable[..., ModuleType]) -> None:
    stack = Stack(f"parsed-{uuid.uuid4().hex[:8]}")
    handler = load_handler(f"s3://{stack.bucket}", f"sqs://{stack.dest_name}")
    mid = accept(stack.store, message(), ENV)
    bodies = [json.loads(m["Body"]) for m in receive_all(stack.inbox, expect=2)]
    (s3_event,) = [b for b in bodies if "Records" in b]  # S3 -> Lambda sends exactly this document
    assert handler.handle(s3_event, None) == {"batchItemFailures": []}
    assert parsed_key(mid) in stack.all_keys()
    client("sqs").delete_queue(QueueUrl=stack.dest)
    with pytest.raises(TransientError, match="transiently"):
        load_handler(f"s3://{stack.bucket}", f"sqs://{stack.dest_name}").handle(s3_event, None)


def test_event_from_another_bucket_is_quarantined(load_handler: Callable[..., ModuleType]) -> None:
    stack = Stack(f"parsed-{uuid.uuid4().hex[:8]}")
    other = Stack(f"parsed-{uuid.uuid4().hex[:8]}")
    handler = load_handler(f"s3://{stack.bucket}", f"sqs://{stack.dest_name}")
    accept(other.store, message(), ENV)
    _, result = other.poll_once(handler, expect=2)
    assert result == {"batchItemFailures": []}
    assert [k for k in stack.all_keys() if k.startswith("quarantine/")]
    assert not [k for k in stack.all_keys() + other.all_keys() if k.startswith("parsed/")]


def test_s3_to_sns_to_sqs_fan_out(
    load_handler: Callable[..., ModuleType], bucket: str, queue_url: str
) -> None:
    sns, sqs = client("sns"), client("sqs")
    topic = sns.create_topic(Name=f"raw-{uuid.uuid4().hex[:8]}")["TopicArn"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)  # raw delivery off: SNS envelope in the body
    rules = [{"Name": "prefix", "Value": "raw/"}, {"Name": "suffix", "Value": ".eml"}]
    client("s3").put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "TopicConfigurations": [
                {
                    "TopicArn": topic,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": rules}},
                }
            ]
        },
    )
    dest = f"parsed-{uuid.uuid4().hex[:8]}"
    sqs.create_queue(QueueName=dest)
    handler = load_handler(f"s3://{bucket}", f"sqs://{dest}")
    mid = accept(S3Store(bucket), message(), ENV)
    msgs = receive_all(queue_url, expect=2)
    assert all(json.loads(m["Body"])["Type"] == "Notification" for m in msgs)
    assert handler.handle(lambda_sqs_event(msgs, arn), None) == {"batchItemFailures": []}
    assert json.loads(S3Store(bucket).get(parsed_key(mid)))["id"] == mid


def test_logs_carry_the_request_id_and_emf_goes_to_stdout(
    load_handler: Callable[..., ModuleType], capsys: pytest.CaptureFixture[str]
) -> None:
    """Every log line of an invocation names Lambda's aws_request_id; a failure's line carries the error text;
    at its end the metrics go to stdout as CloudWatch EMF documents (Lambda ships stdout to CloudWatch Logs)."""
    from types import SimpleNamespace

    stack = Stack(f"logs-{uuid.uuid4().hex[:8]}")
    handler = load_handler(f"s3://{stack.bucket}", "sqs://no-such-destination")  # publishing fails: RETRY
    mid = accept(stack.store, message(), ENV)
    records = [r for r in lambda_sqs_event(receive_all(stack.inbox, expect=2), stack.inbox_arn)["Records"]
               if "TestEvent" not in r["body"]]  # fmt: skip
    result = handler.handle({"Records": records}, SimpleNamespace(aws_request_id="req-42"))
    assert len(result["batchItemFailures"]) == 1
    out, err = capsys.readouterr()
    logs = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    mine = [ln for ln in logs if ln.get("id") == mid]
    assert mine and all(ln["request_id"] == "req-42" for ln in mine)
    (retry,) = [ln for ln in mine if ln["message"] == "will retry"]
    assert retry["reason"] == "unavailable" and retry["error"] == "BackendUnavailable"
    emf = [json.loads(line) for line in out.splitlines()]
    (retried,) = [d for d in emf if d.get("outcome") == "retry"]
    assert retried["mailpipe_messages_total"] == 1.0 and retried["_aws"]["CloudWatchMetrics"][0]["Namespace"]
    note = json.loads(stack.store.get(f"retry/{mid}.json"))  # what `mailpipe dlq --dlq` shows if it dead-letters
    assert (note["reason"], note["attempt"], note["raw_key"]) == ("unavailable", 1, raw_key(mid))
