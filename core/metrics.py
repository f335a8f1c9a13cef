"""Metrics: one catalogue of counters and latency histograms, recorded through a process-wide ``Sink``.

Code records with ``inc(name, **labels)`` and ``observe(name, seconds, **labels)``; the entry point chooses the
sink once (``use``): Prometheus on ``mailpipe serve --metrics`` (providers/prometheus), CloudWatch Embedded
Metric Format lines in Lambda (providers/aws/metrics), ``LogSink`` JSON lines on GCP and Azure (log-based
metrics count them). Without one, recording costs a dict lookup. Labels never carry message content: only
the bounded values named here (an outcome, a reason, an enricher's name, a status).
"""

from __future__ import annotations

import logging
import threading
from typing import Protocol

COUNTER, HISTOGRAM = "counter", "histogram"

# name -> (kind, help, label names). Counter names end in _total, histograms (seconds) in _seconds.
CATALOG: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "mailpipe_smtp_sessions_total": (COUNTER, "SMTP connections admitted", ()),
    "mailpipe_smtp_accepted_total": (COUNTER, "messages stored and answered 250", ()),
    "mailpipe_smtp_accepted_bytes_total": (COUNTER, "bytes of the messages answered 250", ()),
    "mailpipe_smtp_refused_total": (COUNTER, "4xx/5xx replies, by reply code", ("reason",)),
    "mailpipe_store_write_seconds": (HISTOGRAM, "durable store write of a message before its 250", ()),
    "mailpipe_messages_total": (COUNTER, "stored messages processed, by outcome", ("outcome",)),
    "mailpipe_parse_seconds": (HISTOGRAM, "processing of one stored message (parse to notification)", ()),
    "mailpipe_enricher_seconds": (HISTOGRAM, "one enricher's run, by enricher and status", ("enricher", "status")),
    "mailpipe_routing_deliveries_total": (COUNTER, "routing actions carried out", ("action", "status")),
    "mailpipe_webhook_attempts_total": (COUNTER, "webhook HTTP attempts, by response class", ("status",)),
}
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Sink(Protocol):
    """Where recorded values go. ``labels`` are the values of the catalogue's label names, in order."""

    def count(self, name: str, value: float, labels: tuple[str, ...]) -> None: ...

    def observe(self, name: str, value: float, labels: tuple[str, ...]) -> None: ...

    def flush(self) -> None:
        """Emit what was buffered (end of a function invocation); a sink that does not buffer does nothing."""
        ...


_sink: Sink | None = None


def use(sink: Sink | None) -> None:
    """Record into ``sink`` from now on, in this process (None: stop recording)."""
    global _sink
    _sink = sink


def inc(name: str, value: float = 1.0, **labels: str) -> None:
    if _sink is not None:
        _sink.count(name, value, _values(name, labels))


def observe(name: str, seconds: float, **labels: str) -> None:
    if _sink is not None:
        _sink.observe(name, seconds, _values(name, labels))


def flush() -> None:
    if _sink is not None:
        _sink.flush()


def _values(name: str, labels: dict[str, str]) -> tuple[str, ...]:
    return tuple(str(labels.get(label, "")) for label in CATALOG[name][2])


def status_class(status: int | None) -> str:
    """``200`` -> ``2xx``; no response (timeout, refused connection) -> ``error``."""
    return f"{status // 100}xx" if status is not None else "error"


class LogSink:
    """Buffers counts and observations per invocation; ``flush`` logs one JSON line per series
    (``{"message": "metric", "metric": NAME, "count": N, "sum": S, "max": M, <labels>}``): what a GCP
    log-based metric (filter ``jsonPayload.metric``, value ``jsonPayload.sum``) or an Azure Log Analytics
    query counts."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.log = logger or logging.getLogger("mailpipe.metrics")
        self.log.setLevel(logging.INFO)  # metric lines whatever MAILPIPE_LOG_LEVEL (WARNING would drop them)
        self._series: dict[tuple[str, tuple[str, ...]], list[float]] = {}
        self._lock = threading.Lock()

    def count(self, name: str, value: float, labels: tuple[str, ...]) -> None:
        self._add(name, value, labels)

    def observe(self, name: str, value: float, labels: tuple[str, ...]) -> None:
        self._add(name, value, labels)

    def _add(self, name: str, value: float, labels: tuple[str, ...]) -> None:
        with self._lock:
            s = self._series.setdefault((name, labels), [0, 0.0, value])
            s[0], s[1], s[2] = s[0] + 1, s[1] + value, max(s[2], value)

    def take(self) -> dict[tuple[str, tuple[str, ...]], list[float]]:
        with self._lock:
            series, self._series = self._series, {}
        return series

    def flush(self) -> None:
        for (name, labels), (n, total, peak) in self.take().items():
            fields = dict(zip(CATALOG[name][2], labels, strict=True))
            if CATALOG[name][0] == COUNTER:
                self.log.info("metric", extra={"metric": name, "count": int(n), "sum": total, **fields})
            else:
                self.log.info("metric", extra={"metric": name, "count": int(n), "sum": round(total, 6),
                                               "max": round(peak, 6), **fields})  # fmt: skip
