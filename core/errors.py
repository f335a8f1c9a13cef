"""The error taxonomy: every failure the pipeline routes on purpose is permanent or transient.

Permanent: the same input fails the same way again, so the delivery is quarantined and acknowledged.
Transient: infrastructure trouble; the platform redelivers (SQS, Pub/Sub, Azure queue) or the SMTP
sender retries (451). Unknown exceptions are treated as transient by the pipeline.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


class PipelineError(Exception):
    """Base for failures the pipeline routes on purpose. ``reason`` is a stable snake_case log field."""

    reason: ClassVar[str] = "error"


class PermanentError(PipelineError):
    """Same input, same failure. Quarantine the delivery and acknowledge it; never retry."""

    reason = "permanent"


class RetriesExhausted(PermanentError):
    """A message that failed transiently too often (a local runner's cap, as a queue's maxReceiveCount):
    quarantined with the last failure's reason, for ``mailpipe dlq redrive`` once the cause is fixed."""

    reason = "retries_exhausted"


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


@contextmanager
def translated(
    translate: Callable[[BaseException, str], PipelineError | None],
    what: str,
    *,
    missing: type[PipelineError] = ObjectNotFound,
) -> Iterator[None]:
    """The one shape of SDK-error translation every adapter uses: ``with translated(sdk.translate, "s3 get
    raw/x.eml"): ...``. An exception ``translate`` recognises becomes its neutral error (chained to the original);
    one it does not (None) propagates unchanged -- the pipeline counts the unknown as transient; neutral errors
    pass through. ``missing`` is what a not-found becomes: a publisher's missing queue or topic is set-up
    trouble (BackendUnavailable: retry, then dead-letter), not a permanent fault of the message."""
    try:
        yield
    except PipelineError:
        raise
    except Exception as exc:
        mapped = translate(exc, what)
        if mapped is None:
            raise
        if isinstance(mapped, ObjectNotFound) and missing is not ObjectNotFound:
            mapped = missing(str(mapped))
        raise mapped from exc
