"""The enricher registry: built-in names imported on first use, third-party plug-ins through the entry-point
group ``mailpipe.enrichers``, and the enrichment settings file. Stdlib only."""

from __future__ import annotations

import functools
import importlib
import json
from typing import TYPE_CHECKING, Any

from mailpipe.core.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mailpipe.core.enrich.contract import Enricher

ENTRY_POINT_GROUP = "mailpipe.enrichers"

# name -> ("module:attr", install hint). ``attr``: an Enricher instance, or a class taking no argument.
BUILTIN: dict[str, tuple[str, str]] = {
    "malware": ("mailpipe.enrichers.malware:MalwareEnricher", "pip install 'mailpipe[malware]' and run clamd"),
    "ocr": (
        "mailpipe.enrichers.ocr:OcrEnricher",
        "pip install 'mailpipe[ocr]'; apt install tesseract-ocr poppler-utils",
    ),
    "language": ("mailpipe.enrichers.nlp:LanguageEnricher", "pip install 'mailpipe[nlp]'"),
    "sentiment": ("mailpipe.enrichers.nlp:SentimentEnricher", "pip install 'mailpipe[nlp]'"),
    "links": ("mailpipe.enrichers.links:LinksEnricher", ""),
    "auth": ("mailpipe.enrichers.auth:AuthEnricher", "pip install 'mailpipe[auth]'"),
    "autoreply": ("mailpipe.enrichers.mailtypes:AutoreplyEnricher", ""),
    "bounce": ("mailpipe.enrichers.reports:BounceEnricher", ""),
    "reply": ("mailpipe.enrichers.mailtypes:ReplyEnricher", ""),
    "crypto": ("mailpipe.enrichers.mailtypes:CryptoEnricher", ""),
    "uuencode": ("mailpipe.enrichers.mailtypes:UuencodeEnricher", ""),
    "attachment_hashes": ("mailpipe.enrichers.hashes:AttachmentHashesEnricher", ""),
    "calendar": ("mailpipe.enrichers.ical:CalendarEnricher", "pip install 'mailpipe[messy]'"),
    "tnef": ("mailpipe.enrichers.tnef:TnefEnricher", "pip install 'mailpipe[messy]'"),
}


@functools.cache
def load_enricher(name: str) -> Enricher:
    """The enricher registered under ``name``: built-in first, then entry points; loaded once per process
    (a cold start pays the import, a message does not). Raises ConfigError."""
    if name in BUILTIN:
        target, hint = BUILTIN[name]
        module, _, attr = target.partition(":")
        try:
            obj = getattr(importlib.import_module(module), attr)
        except ImportError as exc:
            raise ConfigError(f"enricher {name!r} needs an extra: {hint} ({exc})") from exc
        _check_engines(name, obj, hint)
    else:
        from importlib.metadata import entry_points  # ~20 ms: paid only when a plug-in name is used

        found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
        if not found:
            raise ConfigError(f"unknown enricher {name!r}; known: {', '.join(sorted(available()))}")
        obj = found[0].load()
    enricher: Enricher = obj() if isinstance(obj, type) or not hasattr(obj, "run") else obj
    return enricher


def _check_engines(name: str, obj: Any, hint: str) -> None:
    """Fail at cold start, not on the first mail: the modules (``requires``) and programs (``programs``) an
    enricher declares must be installed. Nothing is imported here (the bundle stays lazy)."""
    import importlib.util
    import shutil

    missing = [m for m in getattr(obj, "requires", ()) if importlib.util.find_spec(m) is None]
    missing += [p for p in getattr(obj, "programs", ()) if shutil.which(p) is None]
    if missing:
        raise ConfigError(f"enricher {name!r} is missing {', '.join(missing)}: {hint}")


def available() -> list[str]:
    """Names of every enricher that can be loaded by name (built-in and plug-ins)."""
    from importlib.metadata import entry_points

    return sorted(set(BUILTIN) | {ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


def parse_names(spec: str | Sequence[str] | None) -> list[str]:
    """``"malware, ocr"`` or a list -> ``["malware", "ocr"]`` (order kept, duplicates dropped)."""
    items = spec.split(",") if isinstance(spec, str) else list(spec or ())
    return list(dict.fromkeys(s.strip() for s in items if s and s.strip()))


def load_config(path: str | None) -> dict[str, Any]:
    """Read the enricher settings from a JSON file (``None``: no settings). Raises ConfigError."""
    if not path:
        return {}
    try:
        with open(path, encoding="utf-8") as fh:
            conf = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"enrichment config {path}: {exc}") from exc
    if not isinstance(conf, dict) or not all(isinstance(v, dict) for v in conf.values()):
        raise ConfigError(f"enrichment config {path}: expected an object of objects (name -> settings)")
    return conf
