"""Routing rules from JSON: what the deploy tooling compiles ``rules/<stage>.yml`` into (deploy/stage_files.py),
so a function bundle reads its rules with the stdlib alone. The YAML was validated with file:line errors at
deploy time; here a bad file still fails cold start with the file and the field (``ConfigError``)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from core.errors import ConfigError
from core.rules import load_config
from core.validate import RuleError, dotted

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

    from core.rules import RoutingConfig


def load_rules_json(
    path: str, env: Mapping[str, str] | None = None, schemes: Collection[str] = ()
) -> RoutingConfig:
    """Read and validate a JSON rules file; ``env`` (default os.environ) supplies the ``secret_env`` secrets,
    ``schemes`` (providers.QUEUES) the destination URL schemes this bundle can open. Raises ConfigError."""
    import os

    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read routing rules: {exc}") from None
    try:
        config = load_config(doc, os.environ if env is None else env)
    except RuleError as exc:
        raise ConfigError(f"{path}: {dotted(exc.path) or '(top)'}: {exc.detail}") from None
    for cust in config.customers.values():
        for name, url in cust.destinations.items():
            if schemes and urlsplit(url).scheme not in schemes:
                field = f"customers.{cust.name}.destinations.{name}"
                raise ConfigError(f"{path}: {field}: unknown queue scheme in {url!r}; known: {', '.join(schemes)}")
    return config
