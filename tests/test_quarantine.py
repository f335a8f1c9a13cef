"""core.quarantine: one record shape for every writer (pipeline, routing rule, local runner)."""

from __future__ import annotations

import json
import time

from mailpipe.core import quarantine
from mailpipe.providers.local.memory import MemoryStore

MID = "a" * 64


def test_record_shape_and_bounded_detail() -> None:
    rec = quarantine.record(MID, "too_large", "x" * 5000, raw_key=f"raw/{MID}.eml")
    assert list(rec) == ["id", "raw_key", "reason", "detail"]
    assert len(rec["detail"]) == quarantine.DETAIL_MAX


def test_put_writes_the_record_and_if_absent_keeps_the_first(memory_url: str) -> None:
    store = MemoryStore.from_url(memory_url)
    key = quarantine.put(store, MID, "rule", "quarantined by routing rule acme/malware", raw_key="raw/x.eml")
    assert key == f"quarantine/{MID}.json"
    quarantine.put(store, MID, "worker_crash", "3 crashes", if_absent=True)
    rec = json.loads(store.get(key))
    assert rec.pop("at").startswith(time.strftime("%Y-"))  # when it was written (dlq list --since)
    assert rec == {"id": MID, "raw_key": "raw/x.eml", "reason": "rule",
                   "detail": "quarantined by routing rule acme/malware"}  # fmt: skip
