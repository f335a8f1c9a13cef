"""AWS Lambda entry point ``mailpipe.handlers.aws_lambda.handle``, configured by MAILPIPE_STORE / MAILPIPE_QUEUE.

SQS batch (needs ``functionResponseType: ReportBatchItemFailures``): ``{"batchItemFailures": [...]}`` lists
the RETRY records; SQS redelivers them until maxReceiveCount moves them to the DLQ. DONE / QUARANTINED /
IGNORED are acknowledged. Direct S3/SNS invoke (async): raises on RETRY; Lambda retries, then on-failure.
"""

from __future__ import annotations

from typing import Any

from mailpipe.core import metrics
from mailpipe.core.errors import TransientError
from mailpipe.core.log import log_context
from mailpipe.core.pipeline import Outcome
from mailpipe.handlers.compose import compose
from mailpipe.providers.aws.events import bind_store, is_sqs_batch
from mailpipe.providers.aws.metrics import EmfSink

STORE, PIPELINE = compose()  # once per container: settings from MAILPIPE_*, JSON logs, store, publisher
DECODE = bind_store(STORE)
metrics.use(EmfSink())  # CloudWatch metrics from the log stream, flushed at the end of each invocation


def handle(event: dict[str, Any], context: object = None) -> dict[str, Any]:
    with log_context(request_id=getattr(context, "aws_request_id", None)):
        try:
            retry = [r for r in event.get("Records", []) if PIPELINE.run_record(DECODE, r) is Outcome.RETRY]
        finally:
            metrics.flush()
    if is_sqs_batch(event):
        return {"batchItemFailures": [{"itemIdentifier": r.get("messageId", "")} for r in retry]}
    if retry:
        raise TransientError(f"{len(retry)} record(s) failed transiently; Lambda retries the invocation")
    return {"batchItemFailures": []}
