"""Quarantine records: ``quarantine/<id>.json``, one shape for every writer -- the pipeline (a permanent error),
a routing rule's ``quarantine`` action, and the local runner (a message that crashed its worker too often).

A record is ``{"id", "reason", "detail", "at", ...}`` (``at``: when it was written, ISO 8601 UTC) plus what
locates the input (``raw_key``, or the undecodable platform ``record``) and, where they were counted,
``attempts`` (retries exhausted, worker crashes). ``reason`` is the stable snake_case
name of mailpipe.core.errors (``malformed``, ``too_large``, ``rule``, ``worker_crash``, ...). A quarantined
message is acknowledged and never retried.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from mailpipe.core.keys import quarantine_key
from mailpipe.core.model import dumps

if TYPE_CHECKING:
    from mailpipe.core.ports import ObjectStore

DETAIL_MAX = 1000  # characters of the error text kept: enough to act on, never a whole message


def record(mid: str, reason: str, detail: str, **fields: Any) -> dict[str, Any]:
    """The record of message (or event) ``mid``; ``fields`` add ``raw_key`` / ``record``. Pure."""
    return {"id": mid, **fields, "reason": reason, "detail": detail[:DETAIL_MAX]}


def put(store: ObjectStore, mid: str, reason: str, detail: str, *, if_absent: bool = False, **fields: Any) -> str:
    """Write the record to ``quarantine/<mid>.json`` and return its key. Idempotent for the same input; with
    ``if_absent`` an existing record is kept. Raises what ``store.put`` raises (TransientError, InvalidKey)."""
    key = quarantine_key(mid)
    doc = {**record(mid, reason, detail, **fields), "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    store.put(key, dumps(doc), content_type="application/json", if_absent=if_absent)
    return key
