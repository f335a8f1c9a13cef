"""The composition root: the one place a Pipeline and its Router are assembled, for every entry point (the
function handlers, ``mailpipe serve``, ``mailpipe webhook-replay``). Settings come in; stores, publishers, rules
and enrichers are opened here, so a bad configuration fails start-up (ConfigError, exit 2), never a first mail.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from mailpipe.core.pipeline import Pipeline
    from mailpipe.core.ports import Delivery, ObjectStore
    from mailpipe.core.routing.dispatch import Router
    from mailpipe.core.routing.rules import RoutingConfig
    from mailpipe.core.settings import Settings


def compose() -> tuple[ObjectStore, Pipeline]:
    """Cold start of a function: Settings from MAILPIPE_* (ConfigError if invalid), JSON logs, store, routing
    rules (MAILPIPE_RULES) and pipeline. Relative file settings are read from the bundle (docs/stages.md)."""
    from dataclasses import replace

    from mailpipe.core.log import configure
    from mailpipe.core.settings import Settings
    from mailpipe.providers import open_store

    settings = Settings.from_env()
    settings = replace(settings, rules_file=bundle_path(settings.rules_file),
                       enrich_config_file=bundle_path(settings.enrich_config_file))  # fmt: skip
    configure(settings.log_level)
    store = open_store(settings.store_url, settings)
    return store, pipeline(settings, store)


def pipeline(settings: Settings, store: ObjectStore, *, publish: bool = True) -> Pipeline:
    """The pipeline over ``store``: its notification publisher, router (when rules are set) and enrichers.
    ``publish=False`` (``mailpipe replay`` without ``--emit``): no queue is opened and no rules are loaded, and a
    publish would raise. Raises ConfigError for a bad rules file, queue URL or enricher."""
    from mailpipe.core.pipeline import Pipeline
    from mailpipe.providers import open_publisher

    if not publish:
        return Pipeline(store, _Unsent(), settings)
    publisher = open_publisher(settings.queue_url, settings)
    return Pipeline(store, publisher, settings, router=router(settings.rules_file, store))


class _Unsent:
    """The publisher of a pipeline that must send nothing."""

    def publish(self, body: bytes, *, key: str) -> None:
        raise RuntimeError(f"{key}: this pipeline publishes nothing")


def router(rules_file: str | None, store: ObjectStore, env: Mapping[str, str] | None = None) -> Router | None:
    """The Router of ``rules_file`` (YAML or compiled JSON), or None without one. Destination queues are
    checked at start-up and opened on first use, once per URL. Raises ConfigError."""
    if not rules_file:
        return None
    from mailpipe.core.routing.dispatch import Dispatcher, Router
    from mailpipe.providers import open_publisher

    return Router(load_rules(rules_file, env), Dispatcher(store, open_publisher))


def load_rules(path: str, env: Mapping[str, str] | None = None) -> RoutingConfig:
    """A rules file, JSON (``.json``, stdlib: what a bundle ships) or YAML (anything else; PyYAML, file:line
    errors), with destinations limited to the queue schemes this process can open. ``env`` (default os.environ)
    supplies secrets. Raises ConfigError."""
    from mailpipe.core.errors import ConfigError
    from mailpipe.core.routing.load import load_rules
    from mailpipe.providers import QUEUES

    if path.endswith(".json"):
        return load_rules(path, env=env, schemes=QUEUES)
    try:
        from mailpipe.providers.yaml.rules import read
    except ImportError as exc:  # a function bundle carries no YAML reader: deploy compiles the rules to JSON
        raise ConfigError(f"{path}: YAML rules need mailpipe.providers.yaml and PyYAML ({exc}); "
                          "pass the compiled .json (deploy.build_bundle writes it)") from exc  # fmt: skip
    return load_rules(path, read_yaml=read, env=env, schemes=QUEUES)


def bundle_path(path: str | None) -> str | None:
    """``path`` as given when it exists (or is absolute), else relative to the bundle root (the folder
    holding ``mailpipe/``; in a checkout, the repository): platforms do not all start the function in its code
    folder."""
    from pathlib import Path

    import mailpipe

    if not path or Path(path).is_absolute() or Path(path).exists():
        return path
    return str(Path(mailpipe.__file__).resolve().parents[1] / path)


def run_or_raise(pipeline: Pipeline, decode: Callable[[Any], list[Delivery]], record: Any) -> None:
    """Run one platform record; on RETRY raise TransientError (GCP: 500 -> redelivery; Azure: host retry)."""
    from mailpipe.core.errors import TransientError
    from mailpipe.core.pipeline import Outcome

    if pipeline.run_record(decode, record) is Outcome.RETRY:
        raise TransientError("transient failure; the platform redelivers")


def invoke(pipeline: Pipeline, decode: Callable[[Any], list[Delivery]], record: Any, request_id: str | None) -> None:
    """One function invocation: ``run_or_raise`` with the platform's invocation id on every log line, and the
    metrics recorded during it flushed at its end (whatever the outcome)."""
    from mailpipe.core import metrics
    from mailpipe.core.log import log_context

    with log_context(request_id=request_id):
        try:
            run_or_raise(pipeline, decode, record)
        finally:
            metrics.flush()


def exit_code(command: Callable[[], int]) -> int:
    """Run a command-line verb: its exit code, or 2 with one line on stderr for a ConfigError (bad configuration
    found at start-up: no traceback for a user's mistake), or 130 after Ctrl-C."""
    import sys

    from mailpipe.core.errors import ConfigError

    try:
        return int(command())
    except KeyboardInterrupt:  # Ctrl-C: the verb stops where it is (every verb is safe to run again)
        print("mailpipe: interrupted", file=sys.stderr)
        return 130
    except ConfigError as exc:
        for line in str(exc).splitlines() or [""]:  # several problems: one line each
            print(f"mailpipe: configuration error: {line}", file=sys.stderr)
        return 2
