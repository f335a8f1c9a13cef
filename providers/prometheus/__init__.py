"""Prometheus metrics for ``mailpipe serve --metrics HOST:PORT`` (the ``prometheus-client`` library)."""
