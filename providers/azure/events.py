"""Azure events -> Deliveries. Pure functions, no I/O, no SDK.

Accepted:
  Event Grid ``Microsoft.Storage.BlobCreated``, Event Grid schema (``eventType``) or CloudEvents (``type``);
  the same event(s) as the body of a Storage Queue message (Event Grid -> queue -> queue trigger), whose
  ``dequeue_count`` becomes ``Delivery.attempt``;
  a blob trigger invocation (``func.blob.InputStream.name`` is ``CONTAINER/BLOB``).

The blob name comes from ``data.url`` (``https://ACCOUNT.blob.core.windows.net/CONTAINER/NAME`` or azurite's
path-style ``http://HOST:PORT/ACCOUNT/CONTAINER/NAME``) and is percent-decoded; ``+`` stays ``+`` (URL path
rules, not form encoding). Other event types (BlobDeleted, ...) yield no Delivery.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from mailpipe.core.errors import MalformedEvent
from mailpipe.core.ports import Decoder, Delivery, ObjectRef
from mailpipe.core.ports import bind_store as _bind_store

BLOB_CREATED = "Microsoft.Storage.BlobCreated"


def ref_from_url(url: str, size: int | None = None) -> ObjectRef:
    """``ObjectRef(container, blob name)`` of a blob URL. Raises ValueError when it names no blob."""
    parts = urlsplit(url)
    segments = parts.path.lstrip("/").split("/")
    if not parts.hostname or ".blob." not in parts.hostname:  # azurite / emulator: /ACCOUNT/CONTAINER/NAME
        segments = segments[1:]
    if len(segments) < 2 or not segments[0] or not segments[-1]:
        raise ValueError(f"not a blob URL: {url!r}")
    return ObjectRef(unquote(segments[0]), unquote("/".join(segments[1:])), size)


def decode_event(
    event: Mapping[str, Any], *, delivery_id: str | None = None, attempt: int = 1
) -> list[Delivery]:
    """One Event Grid event (either schema) -> zero or one Delivery. Raises MalformedEvent."""
    try:
        kind = event.get("eventType") or event.get("type")
        if kind != BLOB_CREATED:
            if isinstance(kind, str) and kind.startswith("Microsoft."):
                return []
            raise MalformedEvent(f"unsupported event type {kind!r}")
        data = event["data"]
        size = data.get("contentLength")
        ref = ref_from_url(str(data["url"]), int(size) if size is not None else None)
        return [Delivery(str(delivery_id or event["id"]), ref, attempt)]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise MalformedEvent(f"event grid event {_id(event)}") from exc


def decode_queue_message(body: bytes, *, message_id: str, dequeue_count: int) -> list[Delivery]:
    """A queue message body (base64-decoded by the host) holding one event or a JSON array of events."""
    try:
        doc = json.loads(body)
    except ValueError:
        try:  # a body that was base64-encoded twice (host decoding plus a sender that encoded it itself)
            doc = json.loads(base64.b64decode(body, validate=True))
        except (ValueError, binascii.Error) as exc:
            raise MalformedEvent(f"queue message {message_id}: not JSON") from exc
    docs = doc if isinstance(doc, list) else [doc]
    if not all(isinstance(d, Mapping) for d in docs):
        raise MalformedEvent(f"queue message {message_id}: not an event")
    return [d for e in docs for d in decode_event(e, delivery_id=message_id, attempt=max(1, dequeue_count))]


def decode_blob(name: str, *, invocation_id: str, length: int | None = None) -> list[Delivery]:
    """A blob trigger's ``CONTAINER/NAME`` (not URL-encoded) -> one Delivery. Raises MalformedEvent."""
    container, _, blob = (name or "").partition("/")
    if not container or not blob:
        raise MalformedEvent(f"blob trigger name {name!r}")
    return [Delivery(invocation_id, ObjectRef(container, blob, length))]


def _id(event: Any) -> Any:
    return event.get("id") if isinstance(event, Mapping) else None


def bind_store(store: object, decoder: Decoder = decode_event) -> Decoder:
    """``decoder`` for one store (see mailpipe.core.ports.bind_store)."""
    return _bind_store(store, decoder)
