"""botocore plumbing: client factory and error translation to the neutral taxonomy (mailpipe.core.errors).

NoSuchKey/404 -> ObjectNotFound; throttling codes -> Throttled; everything else that talks to AWS (5xx, access
denied, missing bucket/queue, connection errors, timeouts) -> BackendUnavailable, so the platform redelivers
and the dead-letter queue is the backstop (STYLE.md rule 8: anything involving I/O is transient).
"""

from __future__ import annotations

import hashlib
import threading
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from mailpipe.core.errors import (
    BackendUnavailable,
    MessageTooLarge,
    ObjectNotFound,
    PipelineError,
    Throttled,
)

NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})
THROTTLED = frozenset({
    "SlowDown", "Throttling", "ThrottlingException", "ThrottledException", "RequestLimitExceeded",
    "RequestThrottled", "RequestThrottledException", "TooManyRequestsException", "ServiceUnavailable",
    "ProvisionedThroughputExceededException", "KMS.ThrottlingException", "503",
})  # fmt: skip
BOTO_ERRORS = (ClientError, BotoCoreError)


def error_code(exc: Exception) -> str:
    """The AWS error code of a ClientError ("" for anything else)."""
    return str(exc.response.get("Error", {}).get("Code", "")) if isinstance(exc, ClientError) else ""


def translate(exc: BaseException, what: str) -> PipelineError | None:
    """The neutral error for a botocore exception raised while doing ``what`` (``"s3 get raw/x.eml"``), or None
    when it is not one (mailpipe.core.errors.translated re-raises it unchanged)."""
    if not isinstance(exc, BOTO_ERRORS):
        return None
    if isinstance(exc, ClientError):
        code = error_code(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in NOT_FOUND:
            return ObjectNotFound(what)
        if code in THROTTLED:
            return Throttled(f"{what}: {code}")
        return BackendUnavailable(f"{what}: {code or 'error'} (HTTP {status})")
    return BackendUnavailable(f"{what}: {type(exc).__name__}")




_SESSION: Any = None
_SESSION_LOCK = threading.Lock()


def make_client(service: str, region: str | None = None) -> Any:
    """A botocore client with bounded retries/timeouts (a Lambda must fail fast and let SQS redeliver)."""
    import boto3  # on first use only: an adapter built with an injected client never pays for it
    from botocore.config import Config

    global _SESSION
    cfg = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=30)
    with _SESSION_LOCK:  # creating clients from one Session is not thread-safe
        if _SESSION is None:
            _SESSION = boto3.session.Session()  # shared: a second Session re-reads every model (~35 ms cold)
        return _SESSION.client(service, region_name=region, config=cfg)


SQS_MAX_BYTES = 1024 * 1024  # body + attributes (raised from 256 KiB in 2025; moto enforces the same)


def send_params(queue_url: str, body: bytes, key: str) -> dict[str, Any]:
    """SendMessage parameters: body, the ``key`` attribute, and what a FIFO queue needs (it then drops a
    repeated key for 5 minutes). Raises MessageTooLarge (permanent: the same document never fits)."""
    if len(body) + len(key.encode()) + len("key") + len("String") > SQS_MAX_BYTES:
        raise MessageTooLarge(f"notification of {len(body)} bytes exceeds the SQS message size limit")
    params = {
        "MessageBody": body.decode("utf-8"),
        "MessageAttributes": {"key": {"DataType": "String", "StringValue": key}},
    }
    if queue_url.endswith(".fifo"):
        params |= {
            "MessageGroupId": "mailpipe",
            "MessageDeduplicationId": hashlib.sha256(key.encode()).hexdigest(),
        }
    return params
