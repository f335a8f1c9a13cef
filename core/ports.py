"""Ports: the small Protocols that providers implement. Stdlib only.

Every store is bound to one bucket/container (and optional prefix) when built; keys are relative to it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol


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
