"""Entry points only: compose one provider with core, delegate, translate the Outcome to the platform's
signal."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from core.pipeline import Pipeline
    from core.ports import Delivery, ObjectStore


def compose() -> tuple[ObjectStore, Pipeline]:
    """Cold start of a function: Settings from MAILPIPE_* (ConfigError if invalid), JSON logs, store and
    pipeline."""
    from core.log import configure
    from core.pipeline import Pipeline
    from core.settings import Settings
    from providers import open_publisher, open_store

    settings = Settings.from_env()
    configure(settings.log_level)
    store = open_store(settings.store_url, settings)
    return store, Pipeline(store, open_publisher(settings.queue_url, settings), settings)


def run_or_raise(pipeline: Pipeline, decode: Callable[[Any], list[Delivery]], record: Any) -> None:
    """Run one platform record; on RETRY raise TransientError (GCP: 500 -> redelivery; Azure: host retry)."""
    from core.errors import TransientError
    from core.pipeline import Outcome

    if pipeline.run_record(decode, record) is Outcome.RETRY:
        raise TransientError("transient failure; the platform redelivers")
