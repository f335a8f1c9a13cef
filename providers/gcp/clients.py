"""GCS store and Pub/Sub publisher: calls only (errors: providers/gcp/sdk.py). SDKs are imported on first use.

Emulators need no code change: google-cloud-storage honours ``STORAGE_EMULATOR_HOST``, google-cloud-pubsub
``PUBSUB_EMULATOR_HOST``. Credentials come from the platform identity (Application Default Credentials).
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mailpipe.core.errors import BackendUnavailable, ConfigError, MessageTooLarge, ObjectNotFound, translated
from mailpipe.core.keys import check_key
from mailpipe.providers.gcp.sdk import translate

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mailpipe.core.settings import Settings


class _BoundedSink(io.BytesIO):
    """A download target that raises MessageTooLarge (permanent) once more than ``limit`` bytes arrive."""

    def __init__(self, limit: int | None, what: str) -> None:
        super().__init__()
        self._limit, self._what = limit, what

    def write(self, data: Any) -> int:
        if self._limit is not None and self.tell() + len(data) > self._limit:
            raise MessageTooLarge(f"{self._what}: over {self._limit} bytes")
        return super().write(data)


class GcsStore:
    """``gs://BUCKET[/PREFIX]``: keys are relative to the prefix; ``if_absent`` sends ifGenerationMatch=0."""

    def __init__(
        self, bucket: str, prefix: str = "", *, client: Any = None, retry_seconds: float = 30.0,
        max_bytes: int | None = None,
    ) -> None:  # fmt: skip
        from google.cloud.storage.retry import DEFAULT_RETRY

        self.bucket, self.prefix = bucket, prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._client, self.max_bytes = client, max_bytes
        # The default 120 s retry deadline would outlive the function timeout.
        self._retry = DEFAULT_RETRY.with_timeout(retry_seconds)

    @classmethod
    def from_url(cls, url: str, settings: Settings | None = None) -> GcsStore:
        """``gs://bucket[/prefix]``; ``get`` refuses objects over twice the message size limit."""
        parts = urlsplit(url)
        if parts.scheme != "gs" or not parts.netloc:
            raise ConfigError(f"GCS store URL must be gs://BUCKET[/PREFIX], got {url!r}")
        return cls(parts.netloc, parts.path, max_bytes=2 * settings.max_message_bytes if settings else None)

    def _bucket(self) -> Any:
        if self._client is None:
            from google.cloud import storage

            client = storage.Client()
            # google-cloud-storage >= 3.x looks up each bucket's metadata for its tracing spans in a background
            # thread (a GET with retries per bucket): a request and a thread a function does not need, and one
            # that outlives the invocation; mailpipe does not trace through it (also off with the library's
            # DISABLE_GCS_PYTHON_CLIENT_OTEL_BUCKET_METADATA=1)
            if getattr(client, "_bucket_metadata_cache", None) is not None:
                client._bucket_metadata_cache = None
            self._client = client
        return self._client.bucket(self.bucket)

    def get(self, key: str) -> bytes:
        name = self.prefix + check_key(key)
        # One whole-object download (the client checks its checksum, which it skips for a ranged one) into a
        # sink that stops it past the limit: never more than that in memory (never OOM the function).
        sink = _BoundedSink(self.max_bytes, f"gcs get {name}")
        with translated(translate, f"gcs get {name}"):
            self._bucket().blob(name).download_to_file(sink, retry=self._retry)
        return sink.getvalue()

    def put(self, key: str, data: bytes, *, content_type: str, if_absent: bool = False) -> bool:
        from google.api_core.exceptions import PreconditionFailed

        name = self.prefix + check_key(key)
        # No size -> a resumable upload (as atomic as multipart on GCS): gcp-storage-emulator drops the
        # connection on a multipart upload whose part is message/*, and the client then retries for minutes.
        size = None if content_type.startswith("message/") else len(data)
        with translated(translate, f"gcs put {name}"):
            try:
                self._bucket().blob(name).upload_from_file(io.BytesIO(data), size=size, content_type=content_type,
                                                           if_generation_match=0 if if_absent else None,
                                                           retry=self._retry)  # fmt: skip
            except PreconditionFailed:
                return False
        return True

    def exists(self, key: str) -> bool:
        name = self.prefix + check_key(key)
        with translated(translate, f"gcs exists {name}"):
            return self._bucket().blob(name).exists(retry=self._retry)  # type: ignore[no-any-return]

    def probe(self) -> None:
        try:
            with translated(translate, f"gcs bucket {self.bucket}"):
                self._bucket().reload(retry=None, timeout=10)
        except ObjectNotFound:
            raise BackendUnavailable(f"gcs bucket {self.bucket}: no such bucket (404)") from None

    def delete(self, key: str) -> bool:
        name = self.prefix + check_key(key)
        try:
            with translated(translate, f"gcs delete {name}"):
                self._bucket().blob(name).delete(retry=self._retry)
        except ObjectNotFound:
            return False
        return True

    def list(self, prefix: str) -> Iterator[str]:
        bucket = self._bucket()
        with translated(translate, f"gcs list {self.prefix + prefix}"):
            for blob in bucket.client.list_blobs(bucket, prefix=self.prefix + prefix, retry=self._retry):
                yield blob.name[len(self.prefix) :]


def pubsub_name(url: str, kind: str, usage: str) -> tuple[str, str]:
    """(project, name) of ``pubsub://PROJECT/NAME`` or ``pubsub://projects/PROJECT/<kind>/NAME`` (``kind``:
    ``topics`` or ``subscriptions``). Raises ConfigError("``usage``, got URL")."""
    parts = urlsplit(url)
    path = [p for p in parts.path.split("/") if p]
    if parts.netloc == "projects" and len(path) == 3 and path[1] == kind:
        return path[0], path[2]
    if parts.scheme != "pubsub" or not parts.netloc or len(path) != 1:
        raise ConfigError(f"{usage}, got {url!r}")
    return parts.netloc, path[0]


class PubSubPublisher:
    """``pubsub://PROJECT/TOPIC`` (or ``pubsub://projects/P/topics/T``); ``key`` is the attribute ``key``."""

    def __init__(self, project: str, topic: str, *, client: Any = None, timeout: float = 30.0) -> None:
        self.topic_path, self._client, self._timeout = f"projects/{project}/topics/{topic}", client, timeout

    @classmethod
    def from_url(cls, url: str, settings: Settings | None = None) -> PubSubPublisher:
        return cls(*pubsub_name(url, "topics", "Pub/Sub URL must be pubsub://PROJECT/TOPIC"))

    def _publisher(self) -> Any:
        if self._client is None:
            from google.cloud import pubsub_v1

            self._client = pubsub_v1.PublisherClient()
        return self._client

    def probe(self) -> None:
        with translated(translate, f"pubsub topic {self.topic_path}", missing=BackendUnavailable):
            self._publisher().get_topic(topic=self.topic_path, timeout=10, retry=None)

    def publish(self, body: bytes, *, key: str) -> None:
        self._publisher()
        # a missing topic is set-up trouble: retry, then the dead-letter topic
        with translated(translate, f"pubsub publish {self.topic_path}", missing=BackendUnavailable):
            self._client.publish(self.topic_path, body, key=key).result(timeout=self._timeout)
