"""Pure decoders: one AWS platform record -> the Deliveries it names. No I/O, no boto3.

Handled, one record at a time (so one bad record never fails its batch):
  - SQS record whose body is an S3 notification (the production path: S3 -> SQS -> Lambda), an SNS envelope
    around one (S3 -> SNS -> SQS), or an ``s3:TestEvent`` (sent when the notification is configured: ignored);
  - a direct S3 record (S3 -> Lambda async invoke) and an SNS record (S3 -> SNS -> Lambda).
Only ``ObjectCreated:*`` records become Deliveries. S3 keys arrive URL-encoded (space as ``+``) and are always
decoded with ``unquote_plus`` (the Powertools ``S3Object.key`` bug, STYLE.md section 1.A).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_plus

from mailpipe.core.errors import MalformedEvent
from mailpipe.core.ports import Decoder, Delivery, ObjectRef
from mailpipe.core.ports import bind_store as _bind_store

_DECODE_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError)


def is_sqs_batch(event: dict[str, Any]) -> bool:
    """True for a Lambda SQS event (answered with ``batchItemFailures``), False for direct S3/SNS invokes."""
    records = event.get("Records") or [{}]
    return isinstance(records[0], dict) and records[0].get("eventSource") == "aws:sqs"


def record_id(record: dict[str, Any]) -> str:
    """The id AWS gives this record: SQS ``messageId``, SNS ``MessageId``, or S3 ``bucket/key@sequencer``."""
    if "messageId" in record:
        return str(record["messageId"])
    if "Sns" in record:
        return str(record["Sns"].get("MessageId", ""))
    s3 = record.get("s3", {})
    obj = s3.get("object", {})
    return f"{s3.get('bucket', {}).get('name')}/{obj.get('key')}@{obj.get('sequencer')}"


def decode_record(record: dict[str, Any]) -> list[Delivery]:
    """One SQS, S3 or SNS record -> zero or more Deliveries. Raises MalformedEvent (permanent) otherwise."""
    try:
        source = record.get("eventSource") or record.get("EventSource")
        if source == "aws:sqs":
            attempt = int(record["attributes"]["ApproximateReceiveCount"])
            return _from_body(json.loads(record["body"]), str(record["messageId"]), attempt)
        if source == "aws:sns":
            return _from_body(json.loads(record["Sns"]["Message"]), str(record["Sns"]["MessageId"]), 1)
        if source == "aws:s3":
            return _from_s3_records([record], record_id(record), 1)
    except MalformedEvent:
        raise
    except _DECODE_ERRORS as exc:
        raise MalformedEvent(f"aws record {_safe_id(record)}: {type(exc).__name__}") from exc
    raise MalformedEvent(f"aws record {_safe_id(record)}: unknown event source")


def bind_store(store: object, decoder: Decoder = decode_record) -> Decoder:
    """``decoder`` for one store (see mailpipe.core.ports.bind_store)."""
    return _bind_store(store, decoder)


def _from_body(body: Any, rid: str, attempt: int) -> list[Delivery]:
    if not isinstance(body, dict):
        raise MalformedEvent(f"aws record {rid}: body is not a JSON object")
    if body.get("Type") == "Notification" and "Message" in body:  # S3 -> SNS -> SQS (raw delivery off)
        return _from_body(json.loads(body["Message"]), rid, attempt)
    if body.get("Event") == "s3:TestEvent" or body.get("Type") == "SubscriptionConfirmation":
        return []
    if "Records" not in body:
        raise MalformedEvent(f"aws record {rid}: not an S3 notification")
    return _from_s3_records(body["Records"], rid, attempt)


def _from_s3_records(records: list[dict[str, Any]], rid: str, attempt: int) -> list[Delivery]:
    created = [r for r in records if str(r.get("eventName", "")).startswith("ObjectCreated:")]
    return [
        Delivery(
            id=rid if n == 0 else f"{rid}#{n}",
            ref=ObjectRef(
                bucket=str(r["s3"]["bucket"]["name"]),
                key=unquote_plus(r["s3"]["object"]["key"]),
                size=int(r["s3"]["object"]["size"]) if "size" in r["s3"]["object"] else None,
            ),
            attempt=attempt,
        )
        for n, r in enumerate(created)
    ]


def _safe_id(record: Any) -> str:
    try:
        return record_id(record)
    except _DECODE_ERRORS:
        return "?"
