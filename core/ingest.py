"""Accepting a message: raw bytes and envelope go durably into the store, then the sender may hear 250.

The envelope sidecar is written first and the ``.eml`` last: the ``.eml`` is the commit point, its creation
is the event that triggers parsing, so the parser always finds the envelope. Both writes are ``if_absent``: a
sender's retry has the same id (core.keys.message_id) and is stored once; the raw object is never modified.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.errors import BackendUnavailable, TransientError
from core.keys import envelope_key, message_id, raw_key
from core.model import dumps

if TYPE_CHECKING:
    from core.model import Envelope
    from core.ports import ObjectStore


def accept(store: ObjectStore, raw: bytes, envelope: Envelope) -> str:
    """Store ``raw`` exactly as received plus its envelope; return the message id.

    Raises a TransientError (the SMTP edge answers 451) when the store fails; any other store exception is
    wrapped as BackendUnavailable, so a caller never mistakes an unknown failure for success.
    """
    mid = message_id(raw, envelope)
    items = [
        (envelope_key(mid), dumps(envelope.to_dict()), "application/json"),
        (raw_key(mid), raw, "message/rfc822"),
    ]
    put_many = getattr(store, "put_many", None)  # optional: one durable commit for both objects
    try:
        if put_many is not None:
            put_many(items, if_absent=True)
        else:
            for key, data, content_type in items:
                store.put(key, data, content_type=content_type, if_absent=True)
    except TransientError:
        raise
    except Exception as exc:
        raise BackendUnavailable(f"store failed: {type(exc).__name__}") from exc
    return mid
