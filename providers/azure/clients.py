"""Azure Blob store and Storage Queue publisher: calls only (credentials and errors: providers/azure/sdk.py).

The SDKs are imported on first use. Point them at azurite with its well-known connection string in
``AZURE_STORAGE_CONNECTION_STRING``; without it the platform's managed identity is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mailpipe.core.errors import BackendUnavailable, ConfigError, MessageTooLarge, ObjectNotFound, translated
from mailpipe.core.keys import check_key
from mailpipe.providers.azure.sdk import make_client, translate

if TYPE_CHECKING:
    from collections.abc import Iterator

    from mailpipe.core.settings import Settings


class BlobStore:
    """``azblob://ACCOUNT/CONTAINER[/PREFIX]``; ``if_absent`` uploads with If-None-Match: *."""

    def __init__(
        self, account: str, container: str, prefix: str = "", *, client: Any = None, max_bytes: int | None = None
    ) -> None:
        self.account, self.bucket, self.max_bytes = account, container, max_bytes
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._container = client

    @classmethod
    def from_url(cls, url: str, settings: Settings | None = None) -> BlobStore:
        """``azblob://account/container[/prefix]``; ``get`` refuses objects over twice the message size limit."""
        parts = urlsplit(url)
        container, _, prefix = parts.path.lstrip("/").partition("/")
        if parts.scheme != "azblob" or not parts.netloc or not container:
            raise ConfigError(f"Azure Blob URL must be azblob://ACCOUNT/CONTAINER[/PREFIX], got {url!r}")
        limit = 2 * settings.max_message_bytes if settings else None
        return cls(parts.netloc, container, prefix, max_bytes=limit)

    def _cc(self) -> Any:
        if self._container is None:
            from azure.storage.blob import ContainerClient

            self._container = make_client(ContainerClient, self.account, "blob", container_name=self.bucket)
        return self._container

    def get(self, key: str) -> bytes:
        name = self.prefix + check_key(key)
        # a ranged read of one byte past the limit: never more than that in memory (never OOM the function)
        offset, length = (None, None) if self.max_bytes is None else (0, self.max_bytes + 1)
        from azure.core.exceptions import HttpResponseError

        with translated(translate, f"blob get {name}"):
            try:
                data: bytes = self._cc().download_blob(name, offset=offset, length=length).readall()
            except HttpResponseError as exc:
                if length is None or exc.status_code != 416:
                    raise
                data = b""  # a ranged read of an empty blob is refused (the SDK re-reads only unranged ones)
        if self.max_bytes is not None and len(data) > self.max_bytes:
            raise MessageTooLarge(f"blob get {name}: over {self.max_bytes} bytes")
        return data

    def put(self, key: str, data: bytes, *, content_type: str, if_absent: bool = False) -> bool:
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.blob import ContentSettings

        name = self.prefix + check_key(key)
        with translated(translate, f"blob put {name}"):
            try:
                self._cc().upload_blob(name, data, overwrite=not if_absent,
                                       content_settings=ContentSettings(content_type=content_type))  # fmt: skip
            except ResourceExistsError:
                return False
        return True

    def exists(self, key: str) -> bool:
        name = self.prefix + check_key(key)
        with translated(translate, f"blob exists {name}"):
            return self._cc().get_blob_client(name).exists()  # type: ignore[no-any-return]

    def probe(self) -> None:
        try:
            with translated(translate, f"blob container {self.bucket}"):
                self._cc().get_container_properties()
        except ObjectNotFound:
            raise BackendUnavailable(f"blob container {self.bucket}: no such container (404)") from None

    def delete(self, key: str) -> bool:
        name = self.prefix + check_key(key)
        try:
            with translated(translate, f"blob delete {name}"):
                self._cc().delete_blob(name)
        except ObjectNotFound:
            return False
        return True

    def list(self, prefix: str) -> Iterator[str]:
        with translated(translate, f"blob list {self.prefix + prefix}"):
            for name in self._cc().list_blob_names(name_starts_with=self.prefix + prefix):
                yield name[len(self.prefix) :]


class QueuePublisher:
    """``azqueue://ACCOUNT/QUEUE``. Bodies are base64-encoded, as the Functions queue trigger expects.

    A Storage Queue message has no attributes, so ``key`` is not sent (the notification body carries the id).
    """

    def __init__(self, account: str, queue: str, *, client: Any = None) -> None:
        self.account, self.queue, self._client = account, queue, client

    @classmethod
    def from_url(cls, url: str, settings: Settings | None = None) -> QueuePublisher:
        parts = urlsplit(url)
        queue = parts.path.strip("/")
        if parts.scheme != "azqueue" or not parts.netloc or not queue or "/" in queue:
            raise ConfigError(f"Azure queue URL must be azqueue://ACCOUNT/QUEUE, got {url!r}")
        return cls(parts.netloc, queue)

    def _queue_client(self) -> Any:
        if self._client is None:
            from azure.storage.queue import BinaryBase64EncodePolicy, QueueClient

            self._client = make_client(QueueClient, self.account, "queue", queue_name=self.queue,
                                       message_encode_policy=BinaryBase64EncodePolicy())
        return self._client

    def probe(self) -> None:
        with translated(translate, f"queue {self.queue}", missing=BackendUnavailable):
            self._queue_client().get_queue_properties()

    def publish(self, body: bytes, *, key: str) -> None:
        self._queue_client()
        # a missing queue is set-up trouble: retry, then the poison queue
        with translated(translate, f"queue send {self.queue}", missing=BackendUnavailable):
            self._client.send_message(body)
