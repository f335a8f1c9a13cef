"""Metrics: ``mailpipe serve --metrics`` scraped after real SMTP traffic shows the right counts, summed over its
processes (two SMTP processes, their parse workers); the sinks for the functions (EMF in Lambda, metric log
lines on GCP/Azure) aggregate one invocation's series; a bad or taken metrics address is a one-line exit 2."""

from __future__ import annotations

import io
import json
import smtplib
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from conftest import wait_for
from prometheus_client.parser import text_string_to_metric_families

from mailpipe.core import metrics
from mailpipe.core.metrics import LogSink
from mailpipe.providers.aws.metrics import EmfSink

ROOT = Path(__file__).resolve().parent.parent
RULES = """\
customers:
  acme:
    domains: [acme.example]
    destinations: {billing: "file://%s"}
    rules:
      - name: hold
        when: {subject: '(?i)quarantine me'}
        actions: [{quarantine: held}]
      - name: billing
        when: {subject: '(?i)invoice'}
        actions: [{tag: invoice}, {publish: billing}]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}  # fmt: skip


def test_serve_metrics_count_what_happened_over_smtp(tmp_path: Path, serve_process: Any) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES % (tmp_path / "billing"))
    port = free_port()
    serve = serve_process("--domains", "acme.example", "--rules", str(rules), "--enrich", "links",
                          "--edge-processes", "2", "--max-message-bytes", "100000", "--metrics",
                          f"127.0.0.1:{port}")  # fmt: skip
    sent = 0
    for n in range(6):  # one session each: the two SMTP processes share them
        body = f"Subject: {'invoice' if n % 2 else 'hello'} {n}\r\n\r\nsee https://example.com/{n}\r\n".encode()
        with smtplib.SMTP("127.0.0.1", serve.port, timeout=20) as smtp:
            smtp.sendmail("ann@example.org", ["billing@acme.example"], body)
        sent += len(body)
    with smtplib.SMTP("127.0.0.1", serve.port, timeout=20) as smtp:
        held = b"Subject: quarantine me\r\n\r\nx\r\n"
        smtp.sendmail("ann@example.org", ["billing@acme.example"], held)
        sent += len(held)
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            smtp.sendmail("ann@example.org", ["bob@elsewhere.example"], b"Subject: x\r\n\r\nx\r\n")
        with pytest.raises(smtplib.SMTPSenderRefused):
            smtp.sendmail("ann@example.org", ["billing@acme.example"], b"Subject: big\r\n\r\n" + b"x" * 200_000)

    def settled() -> dict[Any, float] | None:
        got = scrape(port)
        done = got.get(("mailpipe_messages_total", (("outcome", "done"),)), 0)
        held = got.get(("mailpipe_messages_total", (("outcome", "quarantined"),)), 0)
        return got if done + held == 7 else None

    got = wait_for(settled, 30, "all 7 messages processed")
    assert isinstance(got, dict)
    assert got[("mailpipe_smtp_sessions_total", ())] == 7 + 1  # and the fixture's readiness probe (banner, close)
    assert got[("mailpipe_smtp_accepted_total", ())] == 7
    assert got[("mailpipe_smtp_accepted_bytes_total", ())] >= sent  # the stored bytes carry a Received line
    assert got[("mailpipe_smtp_refused_total", (("reason", "550 5.7.1"),))] == 1
    assert got[("mailpipe_smtp_refused_total", (("reason", "552 5.3.4"),))] == 1
    assert got[("mailpipe_store_write_seconds_count", ())] == 7
    assert got[("mailpipe_messages_total", (("outcome", "done"),))] == 6
    assert got[("mailpipe_messages_total", (("outcome", "quarantined"),))] == 1
    assert got[("mailpipe_parse_seconds_count", ())] == 7
    assert got[("mailpipe_enricher_seconds_count", (("enricher", "links"), ("status", "ok")))] == 7
    assert got[("mailpipe_routing_deliveries_total", (("action", "publish"), ("status", "published")))] == 3
    assert sum(v for (name, _), v in got.items() if name == "mailpipe_parse_seconds_sum") > 0


@pytest.mark.parametrize("address", ["nohost", "127.0.0.1:99999", "taken"])
def test_a_bad_or_taken_metrics_address_is_one_line_exit_2(tmp_path: Path, address: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        if address == "taken":
            address = f"127.0.0.1:{busy.getsockname()[1]}"
        proc = subprocess.run([sys.executable, "-m", "mailpipe", "serve", "--listen", f"127.0.0.1:{free_port()}",
                               "--store", f"file://{tmp_path}/mail", "--queue", f"file://{tmp_path}/q",
                               "--metrics", address], cwd=ROOT, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if "configuration error" in ln]
    assert len(errors) == 1 and "metrics" in errors[0] and "Traceback" not in proc.stderr


@pytest.fixture
def sink() -> Any:
    yield
    metrics.use(None)


def test_emf_documents_per_series(sink: None) -> None:
    out = io.StringIO()
    metrics.use(EmfSink(stream=out))
    metrics.inc("mailpipe_messages_total", outcome="done")
    metrics.inc("mailpipe_messages_total", outcome="done")
    metrics.inc("mailpipe_messages_total", outcome="retry")
    for i in range(150):
        metrics.observe("mailpipe_parse_seconds", i / 1000)
    metrics.flush()
    docs = [json.loads(line) for line in out.getvalue().splitlines()]
    done = [d for d in docs if d.get("outcome") == "done"]
    assert len(done) == 1 and done[0]["mailpipe_messages_total"] == 2.0
    spec = done[0]["_aws"]["CloudWatchMetrics"][0]
    assert spec["Dimensions"] == [["function", "outcome"]]
    assert spec["Metrics"] == [{"Name": "mailpipe_messages_total", "Unit": "Count"}]
    timings = [d for d in docs if "mailpipe_parse_seconds" in d]
    assert [len(d["mailpipe_parse_seconds"]) for d in timings] == [100, 50]  # EMF takes 100 values a document
    assert timings[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"] == "Seconds"
    metrics.flush()
    assert len(out.getvalue().splitlines()) == len(docs)  # flushed once: the next invocation starts empty


def test_log_sink_lines(sink: None, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    level = logging.getLogger().level
    logging.getLogger().setLevel("WARNING")  # MAILPIPE_LOG_LEVEL=WARNING: the metric lines still go out
    metrics.use(LogSink())
    metrics.observe("mailpipe_enricher_seconds", 0.25, enricher="ocr", status="timeout")
    metrics.observe("mailpipe_enricher_seconds", 0.75, enricher="ocr", status="timeout")
    metrics.inc("mailpipe_webhook_attempts_total", status=metrics.status_class(503))
    try:
        metrics.flush()
    finally:
        logging.getLogger().setLevel(level)
    lines = {r.metric: r for r in caplog.records}  # type: ignore[attr-defined]
    ocr = lines["mailpipe_enricher_seconds"]
    assert (ocr.enricher, ocr.status, ocr.count, ocr.sum, ocr.max) == ("ocr", "timeout", 2, 1.0, 0.75)  # type: ignore[attr-defined]
    hook = lines["mailpipe_webhook_attempts_total"]
    assert (hook.status, hook.count, hook.sum) == ("5xx", 1, 1.0)  # type: ignore[attr-defined]


def test_nothing_is_recorded_without_a_sink() -> None:
    metrics.use(None)
    metrics.inc("mailpipe_messages_total", outcome="done")  # no sink: a no-op, never an error
    with pytest.raises(KeyError):
        metrics.use(LogSink())
        try:
            metrics.inc("mailpipe_no_such_metric")  # a name outside the catalogue is a programming error
        finally:
            metrics.use(None)
