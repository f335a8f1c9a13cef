"""Adapters, chosen by URL scheme and imported lazily (the fsspec registry pattern).

Stores:   file://DIR  memory://NAME  s3://BUCKET[/PREFIX]  gs://BUCKET[/PREFIX]  azblob://ACCOUNT/CONTAINER[/PREFIX]
Queues:   file://DIR  memory://NAME  sqs://QUEUE-NAME (or the queue's https URL)  pubsub://PROJECT/TOPIC
          azqueue://ACCOUNT/QUEUE
Dead letters (``mailpipe dlq --dlq``): sqs://NAME  pubsub://PROJECT/SUBSCRIPTION  azqueue://ACCOUNT/QUEUE-poison

Every adapter class has ``from_url(url, settings)``; the AWS function never imports the Azure SDK.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mailpipe.core.errors import ConfigError

if TYPE_CHECKING:
    from mailpipe.core.ports import DeadLetterQueue, ObjectStore, Publisher
    from mailpipe.core.settings import Settings

# scheme -> ("module:Class", install hint)
STORES: dict[str, tuple[str, str]] = {
    "file": ("mailpipe.providers.local.store:FolderStore", ""),
    "memory": ("mailpipe.providers.local.store:MemoryStore", ""),
    "s3": ("mailpipe.providers.aws.clients:S3Store", "pip install 'mailpipe[aws]'"),
    "gs": ("mailpipe.providers.gcp.clients:GcsStore", "pip install 'mailpipe[gcp]'"),
    "azblob": ("mailpipe.providers.azure.clients:BlobStore", "pip install 'mailpipe[azure]'"),
}
QUEUES: dict[str, tuple[str, str]] = {
    "file": ("mailpipe.providers.local.queue:FolderQueue", ""),
    "memory": ("mailpipe.providers.local.queue:MemoryQueue", ""),
    "sqs": ("mailpipe.providers.aws.clients:SqsPublisher", "pip install 'mailpipe[aws]'"),
    "https": ("mailpipe.providers.aws.clients:SqsPublisher", "pip install 'mailpipe[aws]'"),
    "pubsub": ("mailpipe.providers.gcp.clients:PubSubPublisher", "pip install 'mailpipe[gcp]'"),
    "azqueue": ("mailpipe.providers.azure.clients:QueuePublisher", "pip install 'mailpipe[azure]'"),
}


DEAD_LETTERS: dict[str, tuple[str, str]] = {
    "sqs": ("mailpipe.providers.aws.deadletters:SqsDeadLetters", "pip install 'mailpipe[aws]'"),
    "https": ("mailpipe.providers.aws.deadletters:SqsDeadLetters", "pip install 'mailpipe[aws]'"),
    "pubsub": ("mailpipe.providers.gcp.deadletters:PubSubDeadLetters", "pip install 'mailpipe[gcp]'"),
    "azqueue": ("mailpipe.providers.azure.deadletters:PoisonQueue", "pip install 'mailpipe[azure]'"),
}


def _load(table: dict[str, tuple[str, str]], url: str, kind: str) -> Any:
    scheme = urlsplit(url).scheme or "file"
    if scheme not in table:
        known = ", ".join(sorted(table))
        raise ConfigError(f"unknown {kind} URL scheme {scheme!r} in {url!r}; known: {known}")
    target, hint = table[scheme]
    module, _, cls = target.partition(":")
    try:
        return getattr(importlib.import_module(module), cls)
    except ImportError as exc:
        raise ConfigError(f"{kind} {scheme}:// needs an extra: {hint} ({exc})") from exc


def check_store_url(url: str) -> None:
    """Check at start-up that ``url`` could be opened: known scheme, extra installed (imports the adapter
    module, opens nothing). Raises ConfigError."""
    _load(STORES, url, "store")


def check_queue_url(url: str) -> None:
    """As ``check_store_url`` for a queue URL. Raises ConfigError."""
    _load(QUEUES, url, "queue")


def open_store(url: str, settings: Settings | None = None) -> ObjectStore:
    """Build the store for ``url``. Raises ConfigError for an unknown scheme or a missing extra."""
    return _load(STORES, url, "store").from_url(url, settings)  # type: ignore[no-any-return]


def open_dead_letters(url: str, settings: Settings | None = None) -> DeadLetterQueue:
    """The dead-letter queue at ``url``: ``sqs://NAME``, ``pubsub://PROJECT/SUBSCRIPTION`` (of the dead-letter
    topic), ``azqueue://ACCOUNT/QUEUE-poison``. Raises ConfigError."""
    return _load(DEAD_LETTERS, url, "dead-letter queue").from_url(url, settings)  # type: ignore[no-any-return]


def open_publisher(url: str, settings: Settings | None = None) -> Publisher:
    """Build the publisher for ``url``. Raises ConfigError for an unknown scheme or a missing extra."""
    return _load(QUEUES, url, "queue").from_url(url, settings)  # type: ignore[no-any-return]
