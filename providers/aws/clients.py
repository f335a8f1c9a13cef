"""S3 store and SQS publisher: calls and error translation only. Clients are injected or created lazily.

Endpoints come from botocore's standard settings, so ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_S3`` /
``AWS_ENDPOINT_URL_SQS`` (moto server, LocalStack) just work; credentials come from the Lambda role.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mailpipe.core.errors import BackendUnavailable, ConfigError, MessageTooLarge, ObjectNotFound, translated
from mailpipe.core.keys import check_key
from mailpipe.providers.aws.sdk import BOTO_ERRORS, error_code, make_client, send_params, translate

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mailpipe.core.settings import Settings


_SQS_HOST = re.compile(r"^sqs[.-]([a-z0-9-]+)\.amazonaws\.com(\.cn)?$")


class S3Store:
    """Objects in one S3 bucket under an optional prefix; keys are relative to ``s3://bucket/prefix/``."""

    def __init__(
        self, bucket: str, prefix: str = "", *, client: Any = None, max_bytes: int | None = None
    ) -> None:
        if not bucket:
            raise ConfigError("s3 store needs a bucket: s3://BUCKET[/PREFIX]")
        self.bucket, self._s3, self.max_bytes = bucket, client, max_bytes
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""

    @classmethod
    def from_url(cls, url: str, settings: Settings | None = None) -> S3Store:
        """``s3://bucket[/prefix]``; ``get`` refuses objects over twice the message size limit."""
        parts = urlsplit(url)
        return cls(parts.netloc, parts.path, max_bytes=2 * settings.max_message_bytes if settings else None)

    @property
    def client(self) -> Any:
        self._s3 = self._s3 or make_client("s3")  # lazily: the first call pays for importing boto3
        return self._s3

    def get(self, key: str) -> bytes:
        with translated(translate, f"s3 get {key}"):
            obj = self.client.get_object(Bucket=self.bucket, Key=self.prefix + check_key(key))
            if self.max_bytes is not None and obj["ContentLength"] > self.max_bytes:  # never OOM the function
                obj["Body"].close()
                raise MessageTooLarge(f"s3 get {key}: {obj['ContentLength']} bytes")
            return bytes(obj["Body"].read())

    def exists(self, key: str) -> bool:
        try:
            with translated(translate, f"s3 head {key}"):
                self.client.head_object(Bucket=self.bucket, Key=self.prefix + check_key(key))
        except ObjectNotFound:
            return False
        return True

    def put(self, key: str, data: bytes, *, content_type: str = "", if_absent: bool = False) -> bool:
        extra = {"ContentType": content_type or "application/octet-stream"}
        extra.update({"IfNoneMatch": "*"} if if_absent else {})
        with translated(translate, f"s3 put {key}"):
            try:
                self.client.put_object(Bucket=self.bucket, Key=self.prefix + check_key(key), Body=data, **extra)
            except BOTO_ERRORS as exc:
                if if_absent and error_code(exc) == "PreconditionFailed":  # IfNoneMatch: the object exists
                    return False
                raise
        return True

    def probe(self) -> None:
        try:
            with translated(translate, f"s3 bucket {self.bucket}"):
                self.client.head_bucket(Bucket=self.bucket)
        except ObjectNotFound:  # HeadBucket's 404 has no body: say what it means
            raise BackendUnavailable(f"s3 bucket {self.bucket}: no such bucket (404)") from None

    def delete(self, key: str) -> bool:
        if not self.exists(key):  # S3 answers 204 either way
            return False
        with translated(translate, f"s3 delete {key}"):
            self.client.delete_object(Bucket=self.bucket, Key=self.prefix + check_key(key))
        return True

    def list(self, prefix: str = "") -> Iterator[str]:
        with translated(translate, f"s3 list {prefix}"):
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for obj in page.get("Contents", []):
                    yield obj["Key"][len(self.prefix) :]


class SqsPublisher:
    """Sends notifications to one SQS queue, named (``sqs://name``) or by its https URL."""

    def __init__(self, queue: str, *, client: Any = None, region: str | None = None) -> None:
        self._queue, self._sqs, self._region = queue, client, region
        self._url = queue if queue.startswith(("https://", "http://")) else None

    @classmethod
    def from_url(cls, url: str, settings: Settings | None = None) -> SqsPublisher:
        """``sqs://queue-name`` (resolved with GetQueueUrl on first publish) or the queue's https URL."""
        parts = urlsplit(url)
        if parts.scheme == "sqs":
            return cls(parts.netloc + parts.path.rstrip("/"))
        host = _SQS_HOST.match(parts.hostname or "")
        return cls(url, region=host.group(1) if host else None)

    @property
    def client(self) -> Any:
        self._sqs = self._sqs or make_client("sqs", self._region)
        return self._sqs

    def queue_url(self) -> str:
        """The queue's URL (``sqs://NAME`` resolved once with GetQueueUrl). Raises BackendUnavailable."""
        if self._url is None:
            with translated(translate, f"sqs queue {self._queue}", missing=BackendUnavailable):
                self._url = str(self.client.get_queue_url(QueueName=self._queue)["QueueUrl"])
        return self._url

    def probe(self) -> None:
        url = self.queue_url()
        with translated(translate, f"sqs queue {self._queue}", missing=BackendUnavailable):
            self.client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])

    def publish(self, body: bytes, *, key: str) -> None:
        url = self.queue_url()
        with translated(translate, f"sqs send {self._queue}", missing=BackendUnavailable):
            self.client.send_message(QueueUrl=url, **send_params(url, body, key))
