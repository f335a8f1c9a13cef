"""The one loader of routing rules, for both spellings of a rules file (docs/rules.md).

``rules/<stage>.yml`` is what a user writes; the deploy tooling compiles it to JSON (deploy/stage_files.py), so
a function bundle reads its rules with the stdlib alone. Both go through ``load_rules``: the JSON reader is
here, the YAML reader is ``mailpipe.providers.yaml.rules.read`` (PyYAML), passed in by the composition root.
A reader returns the document and, where it knows them, the line of every field, so an error names
``rules/acme.yml:14: customers.acme.rules[2].when: ...``. Every problem is a ConfigError (exit 2 at start-up).
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mailpipe.core.errors import ConfigError
from mailpipe.core.routing.rules import load_config
from mailpipe.core.routing.validate import RuleError, dotted

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Mapping

    from mailpipe.core.routing.rules import RoutingConfig
    from mailpipe.core.routing.validate import Path

Lines = dict[tuple[str | int, ...], int]  # a field path -> the line that holds it


def read_json(text: str, source: str) -> tuple[Any, Lines]:
    """The JSON reader (no line numbers: the file is generated). Raises ConfigError."""
    try:
        return json.loads(text), {}
    except ValueError as exc:
        raise ConfigError(f"{source}: cannot read routing rules: {exc}") from None


def load_rules(
    path: str,
    *,
    read_yaml: Callable[[str, str], tuple[Any, Lines]] | None = None,
    env: Mapping[str, str] | None = None,
    schemes: Collection[str] = (),
) -> RoutingConfig:
    """Read, parse and validate the rules file at ``path``: JSON (``.json``) or YAML (anything else, through
    ``read_yaml``). ``env`` (default os.environ) supplies the ``secret_env`` secrets; ``schemes`` are the
    destination URL schemes this process can open (``providers.QUEUES``). Raises ConfigError."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read routing rules: {exc}") from None
    if not path.endswith(".json"):
        if read_yaml is None:
            raise ConfigError(f"{path}: YAML routing rules need PyYAML: pip install 'mailpipe[rules]'")
        return load_text(text, source=path, reader=read_yaml, env=env, schemes=schemes)
    return load_text(text, source=path, reader=read_json, env=env, schemes=schemes)


def load_text(
    text: str,
    *,
    source: str,
    reader: Callable[[str, str], tuple[Any, Lines]],
    env: Mapping[str, str] | None = None,
    schemes: Collection[str] = (),
) -> RoutingConfig:
    """As ``load_rules`` for text already read; ``source`` names it in errors. Raises ConfigError."""
    doc, lines = reader(text, source)
    try:
        config = load_config(doc, os.environ if env is None else env)
    except RuleError as exc:
        where = f"{source}:{_line(lines, exc.path)}" if lines else source
        raise ConfigError(f"{where}: {dotted(exc.path) or '(top)'}: {exc.detail}") from None
    for cust in config.customers.values():
        for name, url in cust.destinations.items():
            if schemes and urlsplit(url).scheme not in schemes:
                field = f"customers.{cust.name}.destinations.{name}"
                raise ConfigError(f"{source}: {field}: unknown queue scheme in {url!r}; known: {', '.join(schemes)}")
    return config


def _line(lines: Lines, path: Path) -> int:
    while path and path not in lines:
        path = path[:-1]
    return lines.get(path, 1)
