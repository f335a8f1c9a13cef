"""Google Cloud Functions (gen2) CloudEvent function ``on_event`` (functions-framework).

Eventarc ``storage.object.v1.finalized`` or a GCS notification via Pub/Sub. Return -> 2xx, acknowledged (DONE,
QUARANTINED, IGNORED); RETRY raises -> 500 -> redelivery (``--retry``), then the dead-letter topic.
Configured by MAILPIPE_STORE / MAILPIPE_QUEUE. Local: ``functions-framework --target on_event
--signature-type cloudevent --source handlers/gcp_function.py``.
"""

from __future__ import annotations

from typing import Any

import functions_framework

from mailpipe.core import metrics
from mailpipe.handlers.compose import compose, invoke
from mailpipe.providers.gcp.events import bind_store

STORE, PIPELINE = compose()
DECODE = bind_store(STORE)
metrics.use(metrics.LogSink())  # one JSON line per series per event: log-based metrics count them


@functions_framework.cloud_event
def on_event(event: Any) -> None:
    attributes = event.get_attributes()
    invoke(PIPELINE, DECODE, {**attributes, "data": event.get_data()}, attributes.get("id"))
