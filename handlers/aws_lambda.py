"""AWS Lambda entry point ``handlers.aws_lambda.handle``, configured by MAILPIPE_STORE / MAILPIPE_QUEUE.

SQS batch (needs ``functionResponseType: ReportBatchItemFailures``): ``{"batchItemFailures": [...]}`` lists
the RETRY records; SQS redelivers them until maxReceiveCount moves them to the DLQ. DONE / QUARANTINED /
IGNORED are acknowledged. Direct S3/SNS invoke (async): raises on RETRY; Lambda retries, then on-failure.
"""

from __future__ import annotations

from typing import Any

from core.log import configure
from core.pipeline import Outcome, Pipeline
from core.settings import Settings
from providers import open_publisher, open_store
from providers.aws.events import bind_store, is_sqs_batch

SETTINGS = Settings.from_env()
configure(SETTINGS.log_level)
STORE = open_store(SETTINGS.store_url, SETTINGS)
PIPELINE, DECODE = Pipeline(STORE, open_publisher(SETTINGS.queue_url, SETTINGS), SETTINGS), bind_store(STORE)


def handle(event: dict[str, Any], context: object = None) -> dict[str, Any]:
    retry = [r for r in event.get("Records", []) if PIPELINE.run_record(DECODE, r) is Outcome.RETRY]
    if is_sqs_batch(event):
        return {"batchItemFailures": [{"itemIdentifier": r.get("messageId", "")} for r in retry]}
    if retry:
        raise RuntimeError(f"{len(retry)} record(s) failed transiently; Lambda retries the invocation")
    return {"batchItemFailures": []}
