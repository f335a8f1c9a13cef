"""Structured logging: stdlib ``logging`` + one JSON formatter + contextvars.

Never log bodies, subjects or full addresses: use ``redact_address`` (keeps the domain only) and ids/hashes.
A line logged with ``exc_info`` carries ``exception``, ``error`` (its text, 500 characters at most) and
``traceback`` (code locations; our exceptions name keys and ids, never message content).
Configure in the entry point (``configure``), never at import time.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import time
import traceback
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("mailpipe_log", default=None)
_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp, level, severity (GCP), logger, message, context and extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "severity": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update(_context.get() or {})
        out.update({k: v for k, v in record.__dict__.items() if k not in _RESERVED and not k.startswith("_")})
        if record.exc_info and record.exc_info[0] is not None:  # logged with exc_info: the error and where
            kind, exc, tb = record.exc_info
            out["exception"] = kind.__name__
            out["error"] = f"{kind.__name__}: {exc}"[:500]
            out["traceback"] = "".join(traceback.format_exception(kind, exc, tb))[-8000:]
        return json.dumps(out, default=str, ensure_ascii=False)


def configure(level: str = "INFO", stream: Any = None) -> None:
    """Send every mailpipe log line as JSON to ``stream`` (stderr by default)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add ``fields`` to every log line emitted inside the block (per task/thread, via contextvars)."""
    token = _context.set({**(_context.get() or {}), **fields})
    try:
        yield
    finally:
        _context.reset(token)


def redact_address(address: str | None) -> str | None:
    """``jane@example.com`` -> ``*@example.com``: logs carry domains, never full addresses."""
    if not address:
        return address
    return "*@" + address.rpartition("@")[2] if "@" in address else "*"
