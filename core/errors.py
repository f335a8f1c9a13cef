"""The error taxonomy: every failure the pipeline routes on purpose is permanent or transient.

Permanent: the same input fails the same way again, so the delivery is quarantined and acknowledged.
Transient: infrastructure trouble; the platform redelivers (SQS, Pub/Sub, Azure queue) or the SMTP
sender retries (451). Unknown exceptions are treated as transient by the pipeline.
"""

from __future__ import annotations

from typing import ClassVar


class PipelineError(Exception):
    """Base for failures the pipeline routes on purpose. ``reason`` is a stable snake_case log field."""

    reason: ClassVar[str] = "error"


class PermanentError(PipelineError):
    """Same input, same failure. Quarantine the delivery and acknowledge it; never retry."""

    reason = "permanent"


class MalformedMessage(PermanentError):
    """The raw bytes cannot be processed at all (the parser itself never raises this for bad MIME)."""

    reason = "malformed"


class MessageTooLarge(PermanentError):
    """The message exceeds a hard size limit."""

    reason = "too_large"


class ObjectNotFound(PermanentError):
    """The object named by an event or a key does not exist in the store."""

    reason = "object_missing"


class Rejected(PermanentError):
    """A policy refused the message (unknown recipient domain, relay attempt, smuggling)."""

    reason = "policy_rejected"


class MalformedEvent(PermanentError):
    """A platform event/record that cannot be decoded into a Delivery."""

    reason = "bad_event"


class InvalidKey(PermanentError):
    """A storage key that is empty, absolute, or escapes the store's prefix."""

    reason = "invalid_key"


class TransientError(PipelineError):
    """Infrastructure hiccup. Let the platform redeliver; its dead-letter queue is the backstop."""

    reason = "transient"


class Throttled(TransientError):
    """The backend asked us to slow down."""

    reason = "throttled"


class BackendUnavailable(TransientError):
    """The store, queue or an engine could not be reached or failed to persist (disk full, read-only, 5xx)."""

    reason = "unavailable"


class ConfigError(Exception):
    """Invalid configuration, raised at start-up (cold start); never caught by the pipeline."""
