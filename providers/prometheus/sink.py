"""The catalogue of ``mailpipe.core.metrics`` as prometheus-client Counters and Histograms, in multiprocess
mode: every process of ``mailpipe serve`` (SMTP processes, parse workers) records into its own files under
``PROMETHEUS_MULTIPROC_DIR``; the /metrics endpoint of the first process adds them up.

``PROMETHEUS_MULTIPROC_DIR`` must be set before ``prometheus_client`` is first imported in a process
(``prepare``), which is why this module imports it lazily.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from mailpipe.core.errors import ConfigError
from mailpipe.core.metrics import BUCKETS, CATALOG, COUNTER

ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare() -> str:
    """A fresh multiprocess directory for this run, exported to every process started from now on."""
    path = tempfile.mkdtemp(prefix="mailpipe-metrics-")
    os.environ[ENV] = path
    return path


def cleanup(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


class PrometheusSink:
    """Records into prometheus-client metrics named as the catalogue (created on first use)."""

    def __init__(self, registry: Any = None) -> None:
        self._registry, self._metrics = registry, {}  # type: ignore[var-annotated]

    def _metric(self, name: str) -> Any:
        metric = self._metrics.get(name)
        if metric is None:
            from prometheus_client import REGISTRY, Counter, Histogram

            kind, doc, labels = CATALOG[name]
            registry = self._registry or REGISTRY
            if kind == COUNTER:
                metric = Counter(name, doc, labels, registry=registry)
            else:
                metric = Histogram(name, doc, labels, buckets=BUCKETS, registry=registry)
            self._metrics[name] = metric
        return metric

    def count(self, name: str, value: float, labels: tuple[str, ...]) -> None:
        metric = self._metric(name)
        (metric.labels(*labels) if labels else metric).inc(value)

    def observe(self, name: str, value: float, labels: tuple[str, ...]) -> None:
        metric = self._metric(name)
        (metric.labels(*labels) if labels else metric).observe(value)

    def flush(self) -> None:
        """Nothing to do: Prometheus scrapes."""


def serve(listen: str, path: str) -> Any:
    """Serve every process's metrics (the files under ``path``) as Prometheus text on ``http://listen/metrics``.
    Raises ConfigError when the address cannot be bound."""
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
    host, _, port = listen.rpartition(":")
    try:
        server, _thread = start_http_server(int(port), addr=host.strip("[]"), registry=registry)
    except OSError as exc:
        raise ConfigError(f"metrics: cannot listen on {listen}: {exc.strerror or exc}") from exc
    return server
