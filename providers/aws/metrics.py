"""CloudWatch Embedded Metric Format: the catalogue of ``mailpipe.core.metrics`` as EMF JSON lines on stdout,
which Lambda sends to CloudWatch Logs and CloudWatch turns into metrics (no API call, no SDK, no latency).

One document per series (metric name + label values) per invocation, flushed at its end: counters as their
sum (Unit Count), latency histograms as the list of observed values (Unit Seconds; CloudWatch keeps the
distribution), at most 100 values per document (the EMF limit; more go in further documents). Dimensions are
the metric's labels plus ``function`` (AWS_LAMBDA_FUNCTION_NAME), namespace ``mailpipe`` unless
MAILPIPE_METRICS_NAMESPACE says otherwise.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any, TextIO

from mailpipe.core.metrics import CATALOG, COUNTER

MAX_VALUES = 100


class EmfSink:
    def __init__(self, namespace: str | None = None, stream: TextIO | None = None) -> None:
        self.namespace = namespace or os.environ.get("MAILPIPE_METRICS_NAMESPACE") or "mailpipe"
        self.function = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.stream = stream
        self._series: dict[tuple[str, tuple[str, ...]], list[float]] = {}
        self._lock = threading.Lock()

    def count(self, name: str, value: float, labels: tuple[str, ...]) -> None:
        with self._lock:
            series = self._series.setdefault((name, labels), [0.0])
            series[0] += value

    def observe(self, name: str, value: float, labels: tuple[str, ...]) -> None:
        with self._lock:
            self._series.setdefault((name, labels), []).append(round(value, 6))

    def flush(self) -> None:
        with self._lock:
            series, self._series = self._series, {}
        out = self.stream or sys.stdout
        now = int(time.time() * 1000)
        for (name, labels), values in series.items():
            kind, _doc, names = CATALOG[name]
            dims = {"function": self.function, **dict(zip(names, labels, strict=True))}
            unit = "Count" if kind == COUNTER else "Seconds"
            for i in range(0, len(values), MAX_VALUES):
                chunk = values[i : i + MAX_VALUES]
                doc: dict[str, Any] = {
                    "_aws": {"Timestamp": now, "CloudWatchMetrics": [{
                        "Namespace": self.namespace, "Dimensions": [sorted(dims)],
                        "Metrics": [{"Name": name, "Unit": unit}]}]},
                    **dims,
                    name: chunk[0] if kind == COUNTER else chunk,
                }  # fmt: skip
                out.write(json.dumps(doc, separators=(",", ":")) + "\n")
        out.flush()
