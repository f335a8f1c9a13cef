"""Entry points only: compose one provider with core, delegate, translate the Outcome to the platform's
signal."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from core.dispatch import Router
    from core.pipeline import Pipeline
    from core.ports import Delivery, ObjectStore
    from core.settings import Settings


def compose() -> tuple[ObjectStore, Pipeline]:
    """Cold start of a function: Settings from MAILPIPE_* (ConfigError if invalid), JSON logs, store, routing
    rules (MAILPIPE_RULES) and pipeline. Relative file settings are read from the bundle (docs/stages.md)."""
    from dataclasses import replace

    from core.log import configure
    from core.pipeline import Pipeline
    from core.settings import Settings
    from providers import open_publisher, open_store

    settings = Settings.from_env()
    settings = replace(settings, rules_file=bundle_path(settings.rules_file),
                       enrich_config_file=bundle_path(settings.enrich_config_file))  # fmt: skip
    configure(settings.log_level)
    store = open_store(settings.store_url, settings)
    publisher = open_publisher(settings.queue_url, settings)
    return store, Pipeline(store, publisher, settings, router=open_rules(settings, store))


def bundle_path(path: str | None) -> str | None:
    """``path`` as given when it exists (or is absolute), else relative to the bundle root (the folder
    holding ``handlers/``): platforms do not all start the function in its code folder."""
    from pathlib import Path

    if not path or Path(path).is_absolute() or Path(path).exists():
        return path
    return str(Path(__file__).resolve().parent.parent / path)


def open_rules(settings: Settings, store: ObjectStore) -> Router | None:
    """The routing rules of MAILPIPE_RULES: JSON as deployed (stdlib), or YAML where PyYAML is installed."""
    if not settings.rules_file:
        return None
    from core.dispatch import Dispatcher, Router
    from providers import QUEUES, open_publisher

    if settings.rules_file.endswith(".json"):
        from core.rules_json import load_rules_json

        return Router(load_rules_json(settings.rules_file, schemes=QUEUES), Dispatcher(store, open_publisher))
    from providers.local.rules_yaml import open_router

    return open_router(settings.rules_file, store, open_publisher, schemes=QUEUES)


def run_or_raise(pipeline: Pipeline, decode: Callable[[Any], list[Delivery]], record: Any) -> None:
    """Run one platform record; on RETRY raise TransientError (GCP: 500 -> redelivery; Azure: host retry)."""
    from core.errors import TransientError
    from core.pipeline import Outcome

    if pipeline.run_record(decode, record) is Outcome.RETRY:
        raise TransientError("transient failure; the platform redelivers")
