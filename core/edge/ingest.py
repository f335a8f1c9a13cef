"""Accepting a message: raw bytes and envelope go durably into the store, then the sender may hear 250.

The envelope sidecar is written first and the ``.eml`` last: the ``.eml`` is the commit point, its creation
is the event that triggers parsing, so the parser always finds the envelope. Both writes are ``if_absent``: a
sender's retry has the same id (mailpipe.core.keys.message_id) and is stored once; the raw object is never modified.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from mailpipe.core.errors import BackendUnavailable, TransientError
from mailpipe.core.keys import envelope_key, message_id, raw_key
from mailpipe.core.model import dumps
from mailpipe.core.ports import BatchStore

if TYPE_CHECKING:
    from mailpipe.core.model import Envelope
    from mailpipe.core.ports import ObjectStore

Item = tuple[str, bytes, str]


def _items(mid: str, raw: bytes, envelope: Envelope) -> list[Item]:
    return [
        (envelope_key(mid), dumps(envelope.to_dict()), "application/json"),
        (raw_key(mid), raw, "message/rfc822"),
    ]


def _store(store: ObjectStore, items: list[Item]) -> None:
    try:
        if isinstance(store, BatchStore):  # one durable commit for many objects
            store.put_many(items, if_absent=True)
        else:
            for key, data, content_type in items:
                store.put(key, data, content_type=content_type, if_absent=True)
    except TransientError:
        raise
    except Exception as exc:
        raise BackendUnavailable(f"store failed: {type(exc).__name__}") from exc


def accept(store: ObjectStore, raw: bytes, envelope: Envelope) -> str:
    """Store ``raw`` exactly as received plus its envelope; return the message id.

    Raises a TransientError (the SMTP edge answers 451) when the store fails; any other store exception is
    wrapped as BackendUnavailable, so a caller never mistakes an unknown failure for success.
    """
    mid = message_id(raw, envelope)
    _store(store, _items(mid, raw, envelope))
    return mid


def accept_many(store: ObjectStore, messages: list[tuple[bytes, Envelope]]) -> list[str | TransientError]:
    """``accept`` for several messages at once (group commit).

    A store with ``put_many`` (the folder store) gets one call, one durable commit. Any other store (a cloud
    bucket: one request per object) gets every message's envelope PUT concurrently, then every raw PUT of the
    messages whose envelope landed: the batch costs about two request latencies instead of two per message, and
    each ``.eml`` (the commit point, the object-created event) still comes after its envelope.

    Returns, per message, its id or the TransientError to answer 451 with. A failed put_many batch is retried
    message by message, so one message's failure (say, too big for the disk that is left) stays its own.
    """
    ids = [message_id(raw, env) for raw, env in messages]
    if len(messages) > 1:
        if not isinstance(store, BatchStore):
            return _accept_concurrently(store, ids, messages)
        try:
            _store(store, [i for mid, (raw, env) in zip(ids, messages, strict=True) for i in _items(mid, raw, env)])
            return list(ids)
        except TransientError:
            pass
    results: list[str | TransientError] = []
    for mid, (raw, env) in zip(ids, messages, strict=True):
        try:
            _store(store, _items(mid, raw, env))
            results.append(mid)
        except TransientError as exc:
            results.append(exc)
    return results


def _accept_concurrently(
    store: ObjectStore, ids: list[str], messages: list[tuple[bytes, Envelope]]
) -> list[str | TransientError]:
    items = [_items(mid, raw, env) for mid, (raw, env) in zip(ids, messages, strict=True)]
    pool = _pool()
    envelopes = list(pool.map(lambda message_items: _attempt(store, message_items[:1]), items))
    raws = list(pool.map(lambda i: envelopes[i] or _attempt(store, items[i][1:]), range(len(items))))
    return [error or mid for mid, error in zip(ids, raws, strict=True)]


def _attempt(store: ObjectStore, items: list[Item]) -> TransientError | None:
    try:
        _store(store, items)
    except TransientError as exc:
        return exc
    return None


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()
PARALLEL_PUTS = 10  # concurrent object writes of a batch: the HTTP connection pool size of boto3 and the
# google/azure SDKs (10), so no connection is opened only to be discarded


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(PARALLEL_PUTS, "mailpipe-put")
        return _POOL
