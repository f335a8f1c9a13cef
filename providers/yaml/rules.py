"""The YAML reader of routing rules (``rules/<stage>.yml``): the document plus the line of every field, for
``mailpipe.core.routing.load`` (which validates). Needs PyYAML (the ``rules`` extra).

Duplicate keys are refused (YAML would keep the last one silently); merge keys (``<<: *defaults``) are followed,
their fields reported at the anchor's lines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mailpipe.core.errors import ConfigError
from mailpipe.core.routing.validate import dotted

if TYPE_CHECKING:
    from mailpipe.core.routing.load import Lines
    from mailpipe.core.routing.validate import Path


def read(text: str, source: str) -> tuple[Any, Lines]:
    """Parse YAML ``text``; return the document and field path -> line. Raises ConfigError naming ``source``."""
    try:
        import yaml
    except ImportError as exc:
        raise ConfigError("routing rules in YAML need PyYAML: pip install 'mailpipe[rules]'") from exc
    loader = yaml.SafeLoader(text)
    lines: Lines = {}
    try:
        node = loader.get_single_node()
        if node is None:
            return None, lines
        _index(node, (), lines, source)  # before constructing: that flattens merge keys into the mapping nodes
        doc = loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)  # a MarkedYAMLError has one, a plain YAMLError not
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise ConfigError(f"{where}: YAML error: {getattr(exc, 'problem', None) or exc}") from None
    finally:
        loader.dispose()
    return doc, lines


def _index(node: Any, path: Path, lines: Lines, source: str) -> None:
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
                    f"{source}:{key.start_mark.line + 1}: {dotted(path) or '(top)'}: duplicate key {key.value!r}"
                )
            seen.add(key.value)
            lines[(*path, key.value)] = key.start_mark.line + 1
            _index(value, (*path, key.value), lines, source)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*path, i)] = item.start_mark.line + 1
            _index(item, (*path, i), lines, source)
