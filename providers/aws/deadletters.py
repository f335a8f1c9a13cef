"""The SQS dead-letter queue of the parse function's event queue (``sqs://NAME`` or its https URL): the S3
event notifications SQS moved there after ``maxReceiveCount`` receives, for ``mailpipe dlq``."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from mailpipe.core.errors import BackendUnavailable, translated
from mailpipe.core.ports import DeadLetter
from mailpipe.providers.aws.clients import SqsPublisher
from mailpipe.providers.aws.events import bind_store
from mailpipe.providers.aws.sdk import translate

if TYPE_CHECKING:
    from mailpipe.core.ports import Decoder
    from mailpipe.core.settings import Settings


class SqsDeadLetters:
    def __init__(self, queue: SqsPublisher) -> None:
        self._queue = queue  # its URL resolution and client

    @classmethod
    def from_url(cls, url: str, settings: Settings | None = None) -> SqsDeadLetters:
        return cls(SqsPublisher.from_url(url, settings))

    def decoder(self, store: object) -> Decoder:
        return bind_store(store)

    def _url(self) -> str:
        return self._queue.queue_url()  # a missing queue is BackendUnavailable with its name

    def receive(self, limit: int, hold: float) -> list[DeadLetter]:
        url, out, seen = self._url(), list[DeadLetter](), set[str]()
        client, empty = self._queue.client, 0
        with translated(translate, f"sqs receive {url}", missing=BackendUnavailable):
            while len(out) < limit and empty < 2:  # SQS samples its servers: one empty answer proves nothing
                got = client.receive_message(QueueUrl=url, MaxNumberOfMessages=min(10, limit - len(out)),
                                             VisibilityTimeout=max(1, int(hold)), WaitTimeSeconds=1,
                                             AttributeNames=["All"]).get("Messages", [])  # fmt: skip
                fresh = [m for m in got if m["MessageId"] not in seen]
                empty = 0 if fresh else empty + 1
                if not fresh:
                    continue
                for m in fresh:
                    seen.add(m["MessageId"])
                    out.append(_letter(m, url))
        return out

    def release(self, letter: DeadLetter) -> None:
        with translated(translate, f"sqs release {letter.id}", missing=BackendUnavailable):
            self._queue.client.change_message_visibility(QueueUrl=self._url(), ReceiptHandle=letter.handle,
                                                         VisibilityTimeout=0)  # fmt: skip

    def remove(self, letter: DeadLetter) -> None:
        with translated(translate, f"sqs delete {letter.id}", missing=BackendUnavailable):
            self._queue.client.delete_message(QueueUrl=self._url(), ReceiptHandle=letter.handle)


def _letter(m: dict[str, Any], url: str) -> DeadLetter:
    """An SQS message as the Lambda SQS record the event decoder reads (what the function was given)."""
    attributes = m.get("Attributes") or {}
    record = {"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
              "attributes": attributes, "eventSource": "aws:sqs", "eventSourceARN": url}  # fmt: skip
    sent = attributes.get("SentTimestamp")
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(sent) / 1000)) if sent else None
    return DeadLetter(m["MessageId"], record, None, at, m["ReceiptHandle"])
