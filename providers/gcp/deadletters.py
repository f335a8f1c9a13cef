"""A Pub/Sub dead-letter subscription (``pubsub://PROJECT/SUBSCRIPTION``, the subscription of the
dead-letter topic): the GCS notifications Pub/Sub forwarded there after ``maxDeliveryAttempts``."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from mailpipe.core.errors import BackendUnavailable, translated
from mailpipe.core.ports import DeadLetter
from mailpipe.providers.gcp.clients import pubsub_name
from mailpipe.providers.gcp.events import bind_store
from mailpipe.providers.gcp.sdk import translate

if TYPE_CHECKING:
    from mailpipe.core.ports import Decoder
    from mailpipe.core.settings import Settings

DELIVERY_COUNT = "CloudPubSubDeadLetterSourceDeliveryCount"  # set by Pub/Sub on a dead-lettered message


class PubSubDeadLetters:
    def __init__(self, project: str, subscription: str, *, client: Any = None) -> None:
        self.path, self._client = f"projects/{project}/subscriptions/{subscription}", client

    @classmethod
    def from_url(cls, url: str, settings: Settings | None = None) -> PubSubDeadLetters:
        return cls(*pubsub_name(url, "subscriptions", "a dead-letter subscription is pubsub://PROJECT/SUBSCRIPTION"))

    def _subscriber(self) -> Any:
        if self._client is None:
            from google.cloud import pubsub_v1

            self._client = pubsub_v1.SubscriberClient()
        return self._client

    def decoder(self, store: object) -> Decoder:
        return bind_store(store)

    def receive(self, limit: int, hold: float) -> list[DeadLetter]:
        out: list[DeadLetter] = []
        with translated(translate, f"pubsub pull {self.path}", missing=BackendUnavailable):
            while len(out) < limit:
                # return_immediately: an empty subscription answers at once (deprecated for streaming
                # consumers, right for a one-shot listing; without it the call waits out its timeout)
                request = {"subscription": self.path, "max_messages": min(100, limit - len(out)),
                           "return_immediately": True}  # fmt: skip
                got = self._subscriber().pull(request=request, timeout=30, retry=None).received_messages
                if not got:  # return_immediately may answer empty while messages wait: one short wait more
                    got = self._pull_waiting(min(100, limit - len(out)))
                if not got:
                    break
                hold_them = {"subscription": self.path, "ack_ids": [r.ack_id for r in got],
                             "ack_deadline_seconds": max(10, int(hold))}  # fmt: skip
                self._subscriber().modify_ack_deadline(request=hold_them)
                out += [_letter(r, self.path) for r in got]
        return out

    def _pull_waiting(self, count: int) -> Any:
        from google.api_core.exceptions import DeadlineExceeded

        try:
            return self._subscriber().pull(request={"subscription": self.path, "max_messages": count},
                                           timeout=2, retry=None).received_messages  # fmt: skip
        except DeadlineExceeded:
            return []

    def release(self, letter: DeadLetter) -> None:
        with translated(translate, f"pubsub nack {letter.id}", missing=BackendUnavailable):
            self._subscriber().modify_ack_deadline(request={"subscription": self.path, "ack_ids": [letter.handle],
                                                            "ack_deadline_seconds": 0})  # fmt: skip

    def remove(self, letter: DeadLetter) -> None:
        with translated(translate, f"pubsub ack {letter.id}", missing=BackendUnavailable):
            self._subscriber().acknowledge(request={"subscription": self.path, "ack_ids": [letter.handle]})


def _letter(received: Any, subscription: str) -> DeadLetter:
    """A pulled message as the Pub/Sub push body the event decoder reads."""
    m = received.message
    attributes = dict(m.attributes)
    at = m.publish_time.strftime("%Y-%m-%dT%H:%M:%SZ") if m.publish_time else None
    record: dict[str, Any] = {"subscription": subscription, "message": {
        "data": base64.b64encode(m.data).decode(), "attributes": attributes, "messageId": m.message_id,
        "publishTime": at}}  # fmt: skip
    count = attributes.get(DELIVERY_COUNT)
    attempts = int(count) if count and count.isdigit() else None
    if attempts:
        record["deliveryAttempt"] = attempts
    return DeadLetter(m.message_id, record, attempts, at, received.ack_id)
