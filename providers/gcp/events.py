"""GCP events -> Deliveries. Pure functions, no I/O; one CloudEvent at a time.

Accepted (structured-mode CloudEvent dicts, i.e. the attributes plus ``data``):
  google.cloud.storage.object.v1.finalized       Eventarc GCS trigger; ``data`` is the object resource
  google.cloud.pubsub.topic.v1.messagePublished  a GCS notification (OBJECT_FINALIZE) carried by Pub/Sub
  a bare Pub/Sub push body ``{"message": ..., "subscription": ...}`` (an HTTP push endpoint)

GCS object names arrive verbatim (not URL-encoded), so they are never unquoted: ``a+b.eml`` stays ``a+b.eml``.
Other storage events (deleted, archived, metadataUpdated) and other notification types yield no Delivery.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mailpipe.core.errors import MalformedEvent
from mailpipe.core.ports import Decoder, Delivery, ObjectRef
from mailpipe.core.ports import bind_store as _bind_store

FINALIZED = "google.cloud.storage.object.v1.finalized"
PUBSUB_PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"
OBJECT_FINALIZE = "OBJECT_FINALIZE"


def _size(value: Any) -> int | None:
    return int(value) if value not in (None, "") else None


def _from_object(event_id: str, obj: Mapping[str, Any], attempt: int = 1) -> Delivery:
    ref = ObjectRef(str(obj["bucket"]), str(obj["name"]), _size(obj.get("size")))
    return Delivery(str(event_id), ref, attempt)


def _from_push(body: Mapping[str, Any]) -> list[Delivery]:
    message = body["message"]
    attrs = message.get("attributes") or {}
    if attrs.get("eventType") != OBJECT_FINALIZE:
        return []
    mid = message.get("messageId") or message["message_id"]
    attempt = int(body.get("deliveryAttempt") or 1)
    ref = ObjectRef(str(attrs["bucketId"]), str(attrs["objectId"]))
    return [Delivery(str(mid), ref, attempt)]


def decode(event: Mapping[str, Any]) -> list[Delivery]:
    """One CloudEvent (or Pub/Sub push body) -> zero or one Delivery. Raises MalformedEvent on a bad event."""
    try:
        kind = event.get("type")
        if kind == FINALIZED:
            return [_from_object(event["id"], event["data"])]
        if kind == PUBSUB_PUBLISHED:
            return _from_push(event["data"])
        if kind is None and "message" in event:
            return _from_push(event)
        if isinstance(kind, str) and kind.startswith("google.cloud."):
            return []
        raise MalformedEvent(f"unsupported CloudEvent type {kind!r}")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise MalformedEvent(f"gcp event {event.get('id') if isinstance(event, Mapping) else None}") from exc


def bind_store(store: object, decoder: Decoder = decode) -> Decoder:
    """``decoder`` for one store (see mailpipe.core.ports.bind_store)."""
    return _bind_store(store, decoder)
