"""Replay dead-lettered webhooks (``mailpipe webhook-replay``): re-POST the exact stored bodies. Stdlib only.

A dead-letter record names its outbox body, customer and webhook; the body is sent unchanged under the same
webhook id (receivers dedupe on it), with the webhook's current URL, secret and retry settings. Success writes
``outbox/<webhook-id>/<hook>.done`` (later redeliveries of the message skip it); failure updates the record.
"""

from __future__ import annotations

import base64
import json
import random
import time
from typing import TYPE_CHECKING, Any

from mailpipe.core.model import dumps
from mailpipe.core.routing.webhooks import deliver, http_send

if TYPE_CHECKING:
    from collections.abc import Callable

    from mailpipe.core.ports import ObjectStore
    from mailpipe.core.routing.rules import RoutingConfig
    from mailpipe.core.routing.webhooks import Sender

DEADLETTER_PREFIX = "deadletter/"


def replay_dead_letters(
    store: ObjectStore, config: RoutingConfig, *, send: Sender = http_send,
    sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time,
) -> list[dict[str, Any]]:
    """Re-send every dead-lettered webhook not delivered since. One outcome dict per record."""
    outcomes = []
    for key in sorted(store.list(DEADLETTER_PREFIX)):
        rec = json.loads(store.get(key))
        done = rec["outbox_key"].removesuffix(".json") + ".done"
        out = {"webhook_id": rec["webhook_id"], "customer": rec["customer"], "webhook": rec["webhook"]}
        if store.exists(done):
            continue
        cust = config.customers.get(rec["customer"])
        hook = cust.webhooks.get(rec["webhook"]) if cust else None
        if hook is None:
            outcomes.append({**out, "status": "no_such_webhook"})
            continue
        saved = json.loads(store.get(rec["outbox_key"]))
        res = deliver(hook, rec["webhook_id"], base64.b64decode(saved["body"]), saved["content_type"],
                      send=send, sleep=sleep, clock=clock, rand=random.random)
        rec.update(attempts=rec["attempts"] + res.attempts, status=res.status, error=res.error,
                   url=hook.safe_url, at=int(clock()))
        store.put(done if res.ok else key, dumps(rec), content_type="application/json")
        outcomes.append({**out, "status": "delivered" if res.ok else "dead_lettered"})
    return outcomes
