"""Routing rules from YAML (``rules/<stage>.yml``) with file:line in every error. Needs PyYAML (``rules``).

The document is validated by ``core.rules.load_config``; its field path (``customers.acme.rules[2].when``) is
mapped back to the line that holds that field, so a bad rule fails start-up with ``rules/acme.yml:14: ...``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from core.dispatch import Dispatcher, Router
from core.errors import ConfigError
from core.rules import load_config
from core.validate import RuleError, dotted

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Mapping

    from core.ports import ObjectStore, Publisher
    from core.rules import RoutingConfig
    from core.validate import Path


def open_router(
    path: str,
    store: ObjectStore,
    publisher_for: Callable[[str], Publisher],
    *,
    schemes: Collection[str] = (),
    env: Mapping[str, str] | None = None,
) -> Router:
    """The pipeline's Router for a rules file. The composition root passes ``providers.open_publisher`` and
    ``schemes=providers.QUEUES`` (destinations are then checked at start-up, opened lazily, cached per URL).
    Raises ConfigError for a bad file or an unknown queue scheme."""
    from urllib.parse import urlsplit

    config = load_rules_file(path, env)
    for cust in config.customers.values():
        for name, url in cust.destinations.items():
            if schemes and urlsplit(url).scheme not in schemes:
                field = f"customers.{cust.name}.destinations.{name}"
                raise ConfigError(
                    f"{path}: {field}: unknown queue scheme in {url!r}; known: {', '.join(schemes)}"
                )
    return Router(config, Dispatcher(store, publisher_for))


def load_rules_file(path: str, env: Mapping[str, str] | None = None) -> RoutingConfig:
    """Read, parse and validate a rules file. Raises ConfigError naming the file, line and field."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read routing rules: {exc}") from None
    return load_rules_text(text, source=path, env=env)


def load_rules_text(
    text: str, *, source: str = "<rules>", env: Mapping[str, str] | None = None
) -> RoutingConfig:
    """As ``load_rules_file`` for YAML text. ``env`` (default os.environ) supplies ``secret_env`` secrets."""
    try:
        import yaml
    except ImportError as exc:
        raise ConfigError("routing rules need PyYAML: pip install 'mailpipe[rules]'") from exc
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        doc = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise ConfigError(f"{where}: YAML error: {getattr(exc, 'problem', None) or exc}") from None
    finally:
        loader.dispose()
    lines: dict[Path, int] = {}
    if node is not None:
        _index(node, (), lines, source)
    try:
        return load_config(doc, os.environ if env is None else env)
    except RuleError as exc:
        raise ConfigError(
            f"{source}:{_line(lines, exc.path)}: {dotted(exc.path) or '(top)'}: {exc.detail}"
        ) from None


def _index(node: Any, path: Path, lines: dict[Path, int], source: str) -> None:
    """Record the line of every mapping key and sequence item; refuse duplicate keys (YAML keeps the last)."""
    import yaml

    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key, value in node.value:
            if key.value == "<<":  # merge key: the merged fields live at the anchor's lines
                for sub in value.value if isinstance(value, yaml.SequenceNode) else [value]:
                    _index(sub, path, lines, source)
                continue
            if key.value in seen:
                raise ConfigError(
                    f"{source}:{key.start_mark.line + 1}: {dotted(path) or '(top)'}: "
                    f"duplicate key {key.value!r}"
                )
            seen.add(key.value)
            lines[(*path, key.value)] = key.start_mark.line + 1
            _index(value, (*path, key.value), lines, source)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*path, i)] = item.start_mark.line + 1
            _index(item, (*path, i), lines, source)


def _line(lines: dict[Path, int], path: Path) -> int:
    while path and path not in lines:
        path = path[:-1]
    return lines.get(path, 1)
