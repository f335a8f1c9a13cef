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
    try:
        sidecar = dumps(envelope.to_dict())
        store.put(envelope_key(mid), sidecar, content_type="application/json", if_absent=True)
        store.put(raw_key(mid), raw, content_type="message/rfc822", if_absent=True)
    except TransientError:
        raise
    except Exception as exc:
        raise BackendUnavailable(f"store failed: {type(exc).__name__}") from exc
    return mid
