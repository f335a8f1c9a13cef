"""Azure Functions v2 app (shipped as ``function_app.py``): Event Grid BlobCreated and blob triggers.

Return -> completed (DONE, QUARANTINED, IGNORED); RETRY raises -> Event Grid retries, then dead-letters; the
blob trigger tries 5 times, then ``webjobs-blobtrigger-poison``. Bindings read the app settings
MAILPIPE_STORAGE (connection) and MAILPIPE_CONTAINER. Queue variant: handlers/azure_queue_function.py.
"""

from __future__ import annotations

import azure.functions as func

from mailpipe.core import metrics
from mailpipe.handlers.compose import compose, invoke
from mailpipe.providers.azure.events import bind_store, decode_blob, decode_event

(STORE, PIPELINE), app = compose(), func.FunctionApp()
metrics.use(metrics.LogSink())  # one JSON line per series per invocation: Log Analytics queries count them


@app.event_grid_trigger(arg_name="event")
def on_event_grid(event: func.EventGridEvent, context: func.Context) -> None:
    record = {"id": event.id, "eventType": event.event_type, "data": event.get_json()}
    invoke(PIPELINE, bind_store(STORE, decode_event), record, context.invocation_id)


# A str, not func.BlobSource.EVENT_GRID: before azure-functions 1.21.1 the enum was bound as "EVENT_GRID".
@app.blob_trigger(arg_name="blob", path="%MAILPIPE_CONTAINER%/raw/{name}", connection="MAILPIPE_STORAGE",
                  source="EventGrid")  # type: ignore[arg-type]
def on_blob(blob: func.InputStream, context: func.Context) -> None:
    decode = bind_store(STORE, lambda n: decode_blob(n, invocation_id=f"blob:{n}", length=blob.length))
    invoke(PIPELINE, decode, blob.name, context.invocation_id)
