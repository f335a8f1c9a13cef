"""An Azure poison queue (``azqueue://ACCOUNT/QUEUE-poison``): the event messages the Functions host moved
there after ``maxDequeueCount`` tries of the queue trigger, for ``mailpipe dlq``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mailpipe.core.errors import BackendUnavailable, translated
from mailpipe.core.ports import DeadLetter
from mailpipe.providers.azure.clients import QueuePublisher
from mailpipe.providers.azure.events import bind_store, decode_queue_message
from mailpipe.providers.azure.sdk import make_client, translate

if TYPE_CHECKING:
    from mailpipe.core.ports import Decoder
    from mailpipe.core.settings import Settings


class PoisonQueue:
    def __init__(self, account: str, queue: str, *, client: Any = None) -> None:
        self.account, self.queue, self._client = account, queue, client

    @classmethod
    def from_url(cls, url: str, settings: Settings | None = None) -> PoisonQueue:
        q = QueuePublisher.from_url(url, settings)  # the same URL rules
        return cls(q.account, q.queue)

    def _queue_client(self) -> Any:
        if self._client is None:
            from azure.storage.queue import BinaryBase64DecodePolicy, BinaryBase64EncodePolicy, QueueClient

            self._client = make_client(QueueClient, self.account, "queue", queue_name=self.queue,
                                       message_encode_policy=BinaryBase64EncodePolicy(),
                                       message_decode_policy=BinaryBase64DecodePolicy())  # fmt: skip
        return self._client

    def decoder(self, store: object) -> Decoder:
        def decode(record: dict[str, Any]) -> Any:
            return decode_queue_message(record["body"], message_id=record["id"], dequeue_count=record["dequeue_count"])

        return bind_store(store, decode)

    def receive(self, limit: int, hold: float) -> list[DeadLetter]:
        with translated(translate, f"queue receive {self.queue}", missing=BackendUnavailable):
            got = list(self._queue_client().receive_messages(max_messages=limit, visibility_timeout=max(1, int(hold))))
        return [_letter(m) for m in got]

    def release(self, letter: DeadLetter) -> None:
        with translated(translate, f"queue release {letter.id}", missing=BackendUnavailable):
            self._queue_client().update_message(letter.handle, pop_receipt=letter.handle.pop_receipt,
                                                visibility_timeout=0)  # fmt: skip

    def remove(self, letter: DeadLetter) -> None:
        with translated(translate, f"queue delete {letter.id}", missing=BackendUnavailable):
            self._queue_client().delete_message(letter.handle)


def _letter(m: Any) -> DeadLetter:
    body = m.content if isinstance(m.content, bytes) else str(m.content).encode()
    at = m.inserted_on.strftime("%Y-%m-%dT%H:%M:%SZ") if m.inserted_on else None
    record = {"body": body, "id": m.id, "dequeue_count": m.dequeue_count or 1}
    return DeadLetter(m.id, record, None, at, m)
