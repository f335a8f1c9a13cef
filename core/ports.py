"""Ports: the small Protocols that providers implement. Stdlib only.

Every store is bound to one bucket/container (and optional prefix) when built; keys are relative to it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

from mailpipe.core.errors import MalformedEvent


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """A stored object named by an event. ``key`` is already URL-decoded by the adapter."""

    bucket: str
    key: str
    size: int | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """One unit of queued work, whichever cloud delivered it."""

    id: str  # SQS messageId | Pub/Sub messageId | Azure queue message id | local event id
    ref: ObjectRef
    attempt: int = 1  # ApproximateReceiveCount | deliveryAttempt | dequeue_count


class ObjectStore(Protocol):
    """A bucket-like store of immutable objects addressed by relative keys."""

    def get(self, key: str) -> bytes:
        """Return the object's bytes. Raises ObjectNotFound, InvalidKey, TransientError. No side effects."""
        ...

    def put(self, key: str, data: bytes, *, content_type: str, if_absent: bool = False) -> bool:
        """Durably and atomically write ``data`` (never visible half-written).

        Returns True when written; with ``if_absent=True`` returns False instead of overwriting an existing
        object. Raises InvalidKey, TransientError (BackendUnavailable on disk full / read-only / 5xx).
        Idempotent for identical data.
        """
        ...

    def exists(self, key: str) -> bool:
        """True if an object is stored at ``key``. Raises InvalidKey, TransientError."""
        ...

    def list(self, prefix: str) -> Iterator[str]:
        """Yield the keys that start with ``prefix`` (any order). Raises TransientError."""
        ...


class Publisher(Protocol):
    """A destination queue/topic for notifications."""

    def publish(self, body: bytes, *, key: str) -> None:
        """Enqueue ``body``; ``key`` is a stable id consumers may dedupe on (republishing the same key with the
        same body is harmless). Raises TransientError."""
        ...


ObjectCreatedListener = Callable[[str], None]
"""Called with the key of a newly created object (the local store's stand-in for a cloud bucket event)."""


# Optional store capabilities: small Protocols checked with isinstance, never attribute probes.
@runtime_checkable
class BatchStore(Protocol):
    """A store that writes many objects in one durable commit (the folder store's group commit)."""

    def put_many(self, items: list[tuple[str, bytes, str]], *, if_absent: bool = False) -> list[bool]:
        """``put`` for ``(key, data, content_type)`` items, made durable together; per item True when written,
        False when ``if_absent`` found it there. Raises InvalidKey, TransientError (the whole batch failed)."""
        ...


@runtime_checkable
class BucketStore(Protocol):
    """A store bound to one cloud bucket/container (``bucket``) and key prefix (``prefix``, "" or ending in /):
    what a platform's object-created event names."""

    bucket: str
    prefix: str


@runtime_checkable
class Probe(Protocol):
    """A store or publisher that can say at start-up whether its backend answers (``mailpipe serve``, ``edge``
    and ``check --reach`` name the URL and the cause instead of failing on the first mail)."""

    def probe(self) -> None:
        """One cheap request (the bucket's or queue's metadata; a folder: that it can be created and written).
        Raises TransientError (unreachable, refused, missing bucket or queue) or ConfigError, with the cause."""
        ...


@runtime_checkable
class DeletableStore(Protocol):
    """A store that can remove an object: only operators' verbs use it (``mailpipe replay --prune``); the
    pipeline never deletes."""

    def delete(self, key: str) -> bool:
        """Remove the object at ``key``; False if there was none. Raises InvalidKey, TransientError."""
        ...


@runtime_checkable
class ObservableStore(Protocol):
    """A store that announces its new objects in-process (memory://, file://): the local bucket event."""

    def add_listener(self, listener: ObjectCreatedListener) -> None:
        """Call ``listener(key)`` after every object created from now on. No I/O; raises nothing."""
        ...


# The event contract: a provider's decoder turns one platform record into Deliveries, without I/O.
Decoder = Callable[[Any], list[Delivery]]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One message of a platform's dead-letter queue: an event the function gave up on."""

    id: str  # the platform's message id
    record: Any  # what the queue's ``decoder`` takes (an SQS record, a Pub/Sub push body, a queue body)
    attempts: int | None = None  # deliveries before it was dead-lettered, where the platform says
    sent_at: str | None = None  # ISO 8601 UTC: when it entered the dead-letter queue
    handle: Any = None  # what ``release``/``remove`` need (receipt handle, ack id, queue message)


class DeadLetterQueue(Protocol):
    """The dead letters of one platform queue (SQS dead-letter queue, Pub/Sub dead-letter subscription, Azure
    poison queue) for ``mailpipe dlq``."""

    def decoder(self, store: object) -> Decoder:
        """The provider's decoder of these records, bound to ``store`` (bind_store)."""
        ...

    def receive(self, limit: int, hold: float) -> list[DeadLetter]:
        """Up to ``limit`` letters, hidden from other readers for ``hold`` seconds. Raises TransientError."""
        ...

    def release(self, letter: DeadLetter) -> None:
        """Make ``letter`` visible again at once (listed, or its redrive must be tried again)."""
        ...

    def remove(self, letter: DeadLetter) -> None:
        """Delete ``letter`` (its redrive ended: parsed, or quarantined in the store)."""
        ...


def bind_store(store: object, decoder: Decoder) -> Decoder:
    """``decoder`` restricted to one store: a delivery naming another bucket/container is MalformedEvent
    (permanent), and keys are made relative to the store's prefix (``s3://bucket/prefix``); keys outside the
    prefix stay as they are, so the pipeline ignores them. A store that is no BucketStore takes any bucket.
    Pure: no I/O."""
    bucket, prefix = (store.bucket, store.prefix) if isinstance(store, BucketStore) else (None, "")

    def bound(record: Any) -> list[Delivery]:
        out = []
        for d in decoder(record):
            if bucket is not None and d.ref.bucket != bucket:
                raise MalformedEvent(f"delivery {d.id}: bucket {d.ref.bucket!r} is not this store's")
            if prefix and d.ref.key.startswith(prefix):
                d = replace(d, ref=replace(d.ref, key=d.ref.key[len(prefix) :]))
            out.append(d)
        return out

    return bound
