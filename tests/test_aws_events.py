"""AWS event decoding: recorded platform payloads in, Deliveries out (pure functions, no emulator).

Payload shapes come from the AWS documentation examples (ids, keys and buckets adapted):
  S3 event message structure + s3:TestEvent:
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html
  Lambda SQS event:   https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html
  Lambda S3 event:    https://docs.aws.amazon.com/lambda/latest/dg/with-s3.html
  Lambda SNS event:   https://docs.aws.amazon.com/lambda/latest/dg/with-sns.html
  SNS -> SQS body:    https://docs.aws.amazon.com/sns/latest/dg/sns-message-and-json-formats.html
moto_sqs_s3_put.json was recorded from moto server by tests/test_aws_handler.py (real S3 -> SQS delivery).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mailpipe.core.errors import MalformedEvent
from mailpipe.core.ports import Delivery, ObjectRef
from mailpipe.providers.aws.events import bind_store, decode_record, is_sqs_batch, record_id

EVENTS = Path(__file__).parent / "fixtures" / "events" / "aws"
BUCKET = "mailpipe-dev-mail"
K1 = "raw/0123456789abcdef0123456789abcdef.eml"
K2 = "raw/weird name (copy)+1.eml"  # recorded URL-encoded as raw/weird+name+%28copy%29%2B1.eml


def load(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())  # type: ignore[no-any-return]


def decode_all(event: dict[str, Any]) -> list[Delivery]:
    return [d for rec in event["Records"] for d in decode_record(rec)]


def test_sqs_s3_notifications_decode_with_url_decoded_keys_and_attempts() -> None:
    assert decode_all(load("sqs_s3_put.json")) == [
        Delivery("059f36b4-87a3-44ab-83d2-661975830a7d", ObjectRef(BUCKET, K1, 2048), 1),
        Delivery("2e1424d4-f796-459a-8184-9c92662be6da", ObjectRef(BUCKET, K2, 7340032), 3),
    ]


def test_s3_test_event_is_ignored_not_an_error() -> None:
    assert decode_all(load("sqs_s3_test_event.json")) == []


def test_sns_wrapped_s3_notification_in_sqs_is_unwrapped() -> None:
    assert decode_all(load("sqs_sns_s3.json")) == [
        Delivery("d9b4f4c7-6a1e-4c5f-8f2b-0e1d2c3b4a59", ObjectRef(BUCKET, K1, 2048), 2)
    ]


def test_direct_s3_event() -> None:
    (d,) = decode_all(load("s3_direct_put.json"))
    assert d.ref == ObjectRef(BUCKET, K1, 2048) and d.attempt == 1
    assert d.id == f"{BUCKET}/{'raw/0123456789abcdef0123456789abcdef.eml'}@0055AED6DCD90281E5"


def test_direct_sns_event() -> None:
    assert decode_all(load("sns_s3.json")) == [
        Delivery("95df01b4-ee98-5cb9-9903-4c221d41eb5e", ObjectRef(BUCKET, K2, 2048), 1)
    ]


def test_non_created_events_are_ignored() -> None:
    assert decode_all(load("s3_direct_removed.json")) == []


def test_moto_recorded_notification() -> None:
    event = load("moto_sqs_s3_put.json")
    (d,) = decode_all(event)
    assert d.ref.key == "raw/with space+plus.eml" and d.attempt == 1
    assert d.id == event["Records"][0]["messageId"]


@pytest.mark.parametrize("index", [0, 1, 2])
def test_malformed_records_raise_malformed_event_one_at_a_time(index: int) -> None:
    records = load("sqs_malformed.json")["Records"]
    with pytest.raises(MalformedEvent, match=records[index]["messageId"]):
        decode_record(records[index])


@pytest.mark.parametrize(
    "record",
    [
        {},
        {"eventSource": "aws:sqs"},
        {"eventSource": "aws:sqs", "messageId": "m", "body": "{}", "attributes": {}},
        {
            "eventSource": "aws:sqs",
            "messageId": "m",
            "body": "[1]",
            "attributes": {"ApproximateReceiveCount": "1"},
        },
        {
            "eventSource": "aws:sqs",
            "messageId": "m",
            "body": "null",
            "attributes": {"ApproximateReceiveCount": "x"},
        },
        {"eventSource": "aws:s3", "s3": {"object": {"key": "k"}}, "eventName": "ObjectCreated:Put"},
        {"EventSource": "aws:sns", "Sns": {"MessageId": "s", "Message": "{not json"}},
        {"eventSource": "aws:kinesis"},
    ],
)
def test_garbage_never_crashes_the_decoder(record: dict[str, Any]) -> None:
    with pytest.raises(MalformedEvent):
        decode_record(record)


def test_batch_kind_detection() -> None:
    assert is_sqs_batch(load("sqs_s3_put.json")) is True
    assert is_sqs_batch(load("s3_direct_put.json")) is False
    assert is_sqs_batch(load("sns_s3.json")) is False
    assert is_sqs_batch({}) is False


def test_record_ids() -> None:
    assert record_id(load("sqs_s3_put.json")["Records"][0]) == "059f36b4-87a3-44ab-83d2-661975830a7d"
    assert record_id(load("sns_s3.json")["Records"][0]) == "95df01b4-ee98-5cb9-9903-4c221d41eb5e"


def test_store_bound_decoder_strips_the_prefix_and_rejects_other_buckets() -> None:
    from mailpipe.providers.aws.clients import S3Store

    record = load("sqs_s3_put.json")["Records"][0]
    (d,) = bind_store(S3Store(BUCKET, "raw"))(record)
    assert d.ref.key == "0123456789abcdef0123456789abcdef.eml"
    (d,) = bind_store(S3Store(BUCKET, "elsewhere/"))(record)
    assert d.ref.key == K1  # outside the store's prefix: left as is, the pipeline ignores it
    with pytest.raises(MalformedEvent, match="not this store"):
        bind_store(S3Store("another-bucket"))(record)
