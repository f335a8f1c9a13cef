"""Enrichment: small, versioned steps run after parsing; each result lands under ``enrichments.<name>``.

An enricher is any object with ``name``, ``version``, ``wants`` (the parts it reads), ``timeout`` (seconds),
``max_bytes`` (input budget) and ``run(view, ctx) -> dict``. Built-ins are listed in ``registry.BUILTIN`` and
imported on first use; third-party ones register under the entry-point group ``mailpipe.enrichers``.

Every result has the same shape::

    {"version": "1", "status": "ok"|"error"|"skipped"|"timeout", "result": {...}|None,
     "error": str|None, "duration_ms": int}

Files found inside the message (winmail.dat, uuencode) go back through ``ctx.derive`` and are stored by the
pipeline as derived attachments (``derived``, ``enrich_message``).

One failing, slow or crashing enricher never loses the message or the others' results. An engine outage raises
``TransientError`` (clamd down): ``run_enrichers`` lets it propagate so the platform redelivers the message.
"""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any

from mailpipe.core import metrics
from mailpipe.core.enrich.contract import Context, Skip
from mailpipe.core.enrich.derived import Derivations, Derived, DerivedLimits
from mailpipe.core.enrich.registry import load_enricher
from mailpipe.core.enrich.view import MessageView, build_view
from mailpipe.core.errors import TransientError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from mailpipe.core.enrich.contract import Enricher


def run_enrichers(
    document: Mapping[str, Any],
    payloads: Mapping[str, bytes],
    raw: bytes,
    names: Sequence[str],
    config: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run the named enrichers in order; return ``{name: result}`` for ``document["enrichments"]``.

    ``config`` maps an enricher name to its own settings (``{"malware": {"clamd": "unix:/run/clamd.sock"}}``).
    Raises ConfigError for an unknown name and TransientError when an engine is down (retry the message).
    Derived files are listed in the results but their bytes are dropped: use ``enrich_message`` to keep them.
    """
    return enrich_message(document, payloads, raw, names, config)[0]


def enrich_message(
    document: Mapping[str, Any],
    payloads: Mapping[str, bytes],
    raw: bytes,
    names: Sequence[str],
    config: Mapping[str, Any] | None = None,
) -> tuple[dict[str, dict[str, Any]], list[Derived]]:
    """``run_enrichers`` plus the derived files to store (keys under ``att/<document id>/``), within the caps
    of ``config["derived"]`` (DerivedLimits). Raises ConfigError, TransientError."""
    config = config or {}
    derivations = Derivations(document.get("id"), DerivedLimits.from_config(config))
    enrichers = [load_enricher(n) for n in names]
    view = build_view(document, payloads, raw)
    results: dict[str, dict[str, Any]] = {}
    for enricher in enrichers:
        ctx = Context(config.get(enricher.name) or {}, results, derivations.stage(enricher.name))
        results[enricher.name] = run_one(enricher, view, ctx)
        if results[enricher.name]["status"] == "ok" and ctx.stage is not None:
            derivations.commit(ctx.stage)  # a timed-out or failed step leaves no file behind
    return results, derivations.files


def run_one(enricher: Enricher, view: MessageView, ctx: Context) -> dict[str, Any]:
    """Run one step in a worker thread bounded by its timeout. Raises TransientError only."""
    timeout = float(ctx.config.get("timeout", enricher.timeout))
    wants = set(enricher.wants)
    if wants and not wants & _present(view):  # e.g. OCR on a message without attachments: not even started
        return _result(enricher, "skipped", None, f"message has no {'/'.join(sorted(wants))}", 0)
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            result = enricher.run(view, ctx)
            json.dumps(
                result, ensure_ascii=False
            )  # a plug-in's set or datetime must not break the stored JSON
            box["result"] = result
        except BaseException as exc:  # the worker must never die silently; the caller sorts it out
            box["exc"] = exc

    start = time.monotonic()
    worker = threading.Thread(target=work, name=f"enrich-{enricher.name}", daemon=True)
    worker.start()
    worker.join(timeout)
    seconds = time.monotonic() - start
    ms = int(seconds * 1000)
    if worker.is_alive():  # a thread cannot be killed: it is abandoned, and heavy engines run as subprocesses
        return _result(enricher, "timeout", None, f"no result within {timeout:g} s", ms, seconds)
    exc = box.get("exc")
    if exc is None:
        return _result(enricher, "ok", box.get("result"), None, ms, seconds)
    if isinstance(exc, TransientError):
        raise exc
    if isinstance(exc, Skip):
        return _result(enricher, "skipped", None, str(exc) or "nothing to do", ms, seconds)
    return _result(enricher, "error", None, f"{type(exc).__name__}: {exc}"[:500], ms, seconds)


def _present(view: MessageView) -> set[str]:
    have = {
        "text": view.text,
        "html": view.html,
        "headers": view.headers,
        "attachments": view.parts,
        "raw": view.raw,
        "envelope": view.envelope,
    }
    return {k for k, v in have.items() if v}


def _result(
    enricher: Enricher, status: str, result: Any, error: str | None, ms: int, seconds: float = 0.0
) -> dict[str, Any]:
    metrics.observe("mailpipe_enricher_seconds", seconds, enricher=str(enricher.name), status=status)
    return {
        "version": str(enricher.version),
        "status": status,
        "result": result,
        "error": error,
        "duration_ms": ms,
    }
