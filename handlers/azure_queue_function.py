"""Azure Functions v2 app, queue variant (shipped as ``function_app.py``; the default Azure deployment).

Event Grid BlobCreated -> storage queue MAILPIPE_EVENTS_QUEUE -> ``on_queue``. Return -> message deleted
(DONE, QUARANTINED, IGNORED); RETRY raises -> the message reappears (``dequeue_count`` -> attempt) until
host.json's maxDequeueCount, then ``<queue>-poison``. The trigger reads the app setting MAILPIPE_STORAGE.
"""

from __future__ import annotations

import azure.functions as func

from mailpipe.core import metrics
from mailpipe.handlers.compose import compose, invoke
from mailpipe.providers.azure.events import bind_store, decode_queue_message

(STORE, PIPELINE), app = compose(), func.FunctionApp()
metrics.use(metrics.LogSink())  # one JSON line per series per invocation: Log Analytics queries count them


@app.queue_trigger(arg_name="msg", queue_name="%MAILPIPE_EVENTS_QUEUE%", connection="MAILPIPE_STORAGE")
def on_queue(msg: func.QueueMessage, context: func.Context) -> None:
    def decode(body: bytes) -> list:  # type: ignore[type-arg]
        return decode_queue_message(body, message_id=msg.id or "", dequeue_count=msg.dequeue_count or 1)

    invoke(PIPELINE, bind_store(STORE, decode), msg.get_body(), context.invocation_id)
