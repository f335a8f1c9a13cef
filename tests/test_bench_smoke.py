"""Smoke tests for the benchmarks in bench/: each harness runs as a subprocess in a tiny configuration and must
exit 0 and write its JSON (engines, numeric figures, targets) to a temp dir (``--out``). Never a timing
assertion: speed targets live in the benchmarks; here a target's verdict is only checked to be a verdict.
Only what ``make test`` installs is used (engines of the ``bench`` extra and bench/node are not run).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
PY_ENGINES = ["mailpipe", "stdlib-default", "stdlib-compat32"]  # the parse engines `make test` installs
ENRICHERS = {"malware", "language", "sentiment", "links", "auth"}  # bench.enrich's default (all but ocr)
HANDLERS = {"aws_lambda", "aws_lambda, import boto3", "gcp_function", "azure_queue_function",
            "azure_queue_function, managed identity", "azure_function"}  # fmt: skip


def run_bench(module: str, out: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m bench.<module> ... --out OUT`` from the repo root; fails the test on a non-zero exit."""
    cmd = [sys.executable, "-m", f"bench.{module}", *args, "--out", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)
    tail = f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}:\n{tail}"
    return proc


def load(path: Path) -> dict[str, Any]:
    assert path.is_file(), f"{path} not written; out dir holds {sorted(p.name for p in path.parent.iterdir())}"
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def assert_numbers(row: dict[str, Any], *keys: str) -> None:
    bad = {k: row.get(k) for k in keys if not is_number(row.get(k))}
    assert not bad, f"not finite numbers: {bad} in {row}"


def assert_targets(doc: dict[str, Any], *, allow_na: bool = False) -> None:
    """A non-empty name -> verdict map; a verdict is True/False (None: a peer that did not run)."""
    checks = doc["targets"]
    assert isinstance(checks, dict) and checks, doc.get("targets")
    allowed = (True, False, None) if allow_na else (True, False)
    assert all(isinstance(k, str) and v in allowed for k, v in checks.items()), checks


def test_parse_smoke(tmp_path: Path) -> None:
    """bench.parse on CPython's email test messages (when this Python ships them) and a 10-message mix at
    0.02x sizes, one pass, the Python engines `make test` installs; the mix goes under --out, not bench/out."""
    sets = ["mix"]
    if list((Path(sysconfig.get_paths()["stdlib"]) / "test/test_email/data").glob("msg_*.txt")):
        sets.insert(0, "cpython")
    args = ["--sets", ",".join(sets), "--engines", ",".join(PY_ENGINES), "--reps", "1"]
    run_bench("parse", tmp_path, *args, "--mix-count", "10", "--mix-scale", "0.02", "--seed", "7")
    doc = load(tmp_path / "parse-latest.json")
    assert doc["bench"] == "parse" and [s["set"] for s in doc["sets"]] == sets
    assert len(list((tmp_path / "mix-s7-n10-x0.02").glob("*.eml"))) == 10
    assert not (ROOT / "bench/out/mix-s7-n10-x0.02").exists()
    for s in doc["sets"]:
        assert list(s["engines"]) == PY_ENGINES
        for engine, row in s["engines"].items():
            assert row["available"] and "error" not in row, (s["set"], engine, row)
            assert row["messages"] == s["messages"] > 0 and len(row["passes"]) == 1
            assert_numbers(row, "best_s", "msgs_per_s", "mb_per_s", "peak_rss_mb", "bytes", "attachments")
        assert s["engines"]["mailpipe"]["crashes"] == 0, s["engines"]["mailpipe"]["exceptions"]
        assert set(s["ratios_mailpipe_over"]) == set(PY_ENGINES[1:])
        assert_numbers(s["mailpipe_memory"], "peak_rss_mb", "limit_mb")
    assert_targets(doc, allow_na=True)
    assert doc["targets"]["mix: mailpipe crashes == 0"] is True
    assert doc["targets"]["mix: mailpipe >= 2x mailparser MB/s"] is None  # the Node peer did not run


def test_rules_smoke(tmp_path: Path) -> None:
    """bench.rules with 10 rules per customer (one of each of its 10 rule kinds), 5 messages per timed run."""
    proc = run_bench("rules", tmp_path, "--rules", "10", "--messages", "5")
    doc = load(tmp_path / "rules-latest.json")
    assert doc["bench"] == "rules" and doc["rules_per_customer"] == 10 and doc["customers"] == 3
    assert [c["recipients"] for c in doc["cases"]] == [1, 3]
    for case in doc["cases"]:
        assert_numbers(case, "cpu_ms", "wall_ms", "cpu_ms_per_recipient")
    assert_targets(doc)
    assert "compiled 30 rules" in proc.stdout


def test_replay_smoke(tmp_path: Path) -> None:
    """bench.replay over 30 stored messages (the corpus, else CPython's email tests), one pass: the single-message
    path and `mailpipe replay --workers 1/2` each on its own copy, then the rerun that finds every one current."""
    proc = run_bench("replay", tmp_path, "--messages", "30", "--reps", "1")
    doc = load(tmp_path / "replay-latest.json")
    assert doc["bench"] == "replay" and doc["messages"] == 30 and doc["reps"] == 1 and doc["fsync"] is True
    assert doc["set"]["messages"] == 30 and doc["set"]["distinct_messages"] > 0
    names = ["single-message path (process_key)", "replay --workers 1", "replay --workers 2",
             "replay again (all current)"]  # fmt: skip
    assert [r["name"] for r in doc["configs"]] == names
    for row in doc["configs"]:
        assert row["ok"] and row["rc"] == 0, row
        assert_numbers(row, "wall_s", "msgs_per_s", "cpu_s", "cpu_ms_per_msg", "peak_rss_mb")
        assert row["peak_rss_mb"] > 0 and len(row["passes"]) == 1
    single, w1, w2, again = doc["configs"]
    assert single["summary"]["outcomes"] == {"done": 30} and single["on_disk"]["parsed"] == 30
    for row in (w1, w2):
        assert (row["summary"]["replayed"], row["summary"]["failed"]) == (30, 0), row["summary"]
        assert row["on_disk"] == {"parsed": 30, "versions": 30}
    assert (again["summary"]["current"], again["summary"]["replayed"]) == (30, 0)
    assert_numbers(doc["ratios"], "workers1_over_single", "workers2_over_workers1")
    assert_targets(doc)
    assert doc["targets"]["every run checked (all done/replayed, failed 0, documents on disk)"] is True
    assert "targets:" in proc.stdout


def test_workers_smoke(tmp_path: Path) -> None:
    """bench.workers with 20 messages, one pass: `mailpipe serve --workers 1/2`, plain and with enrichers, each
    message answered 250 also notified."""
    proc = run_bench("workers", tmp_path, "--messages", "20", "--reps", "1")
    doc = load(tmp_path / "workers-latest.json")
    assert doc["bench"] == "workers" and doc["messages"] == 20 and doc["reps"] == 1
    assert [(r["workers"], r["enrich"]) for r in doc["configs"]] == [(1, False), (2, False), (1, True), (2, True)]
    for row in doc["configs"]:
        assert row["ok"] and (row["accepted"], row["notified"], row["refused"]) == (20, 20, 0), row
        assert_numbers(row, "accept_per_s", "end_to_end_per_s", "accept_s", "end_to_end_s")
    assert_numbers(doc["ratios"], "plain", "enriched")
    assert_targets(doc)
    assert doc["targets"]["every message answered 250 notified, none refused"] is True
    assert "targets:" in proc.stdout


def test_enrich_smoke(tmp_path: Path) -> None:
    """bench.enrich on a 6-message mix at 0.02x with every default enricher (a private clamd for malware) and
    OCR of one generated page (tesseract, pdftoppm: deps/apt-test.txt)."""
    run_bench("enrich", tmp_path, "--count", "6", "--scale", "0.02", "--pages", "1")
    doc = load(tmp_path / "enrich-latest.json")
    assert doc["mix"] == "mix-s1-n6-x0.02" and (tmp_path / doc["mix"] / "manifest.json").is_file()
    assert set(doc["per_enricher"]) == set(doc["enrichers"]) == ENRICHERS
    for row in doc["per_enricher"].values():
        assert_numbers(row, "mean_ms", "p95_ms", "cpu_ms")
    assert doc["pipeline_no_ocr"]["messages"] == 6
    assert_numbers(doc["pipeline_no_ocr"], "wall_s", "cpu_s", "msgs_per_s_wall", "msgs_per_cpu_s")
    assert doc["ocr"]["pages"] == 1
    assert_numbers(doc["ocr"], "s_per_page", "cpu_s_per_page")
    assert_targets(doc)
    assert set(doc["targets"]) == {"pipeline > 20 msgs per CPU-second", "ocr < 1.5 s per page"}


def test_enrich_smoke_cheap_enrichers_without_ocr(tmp_path: Path) -> None:
    """--enrichers restricts the run (no clamd is started without malware); --pages 0 skips OCR."""
    run_bench("enrich", tmp_path, "--count", "3", "--scale", "0.02", "--pages", "0", "--enrichers", "links,auth")
    doc = load(tmp_path / "enrich-latest.json")
    assert list(doc["per_enricher"]) == ["links", "auth"] and doc["ocr"] is None
    assert list(doc["targets"]) == ["pipeline > 20 msgs per CPU-second"]


def _smtp_source() -> str | None:
    return shutil.which("smtp-source") or next((p for p in ["/usr/sbin/smtp-source"] if Path(p).exists()), None)


def _ingest_cells(tmp_path: Path, targets: list[str]) -> dict[str, Any]:
    args = ["--targets", ",".join(targets), "--sizes", "10KB", "--concurrency", "2", "--messages", "10,10"]
    run_bench("ingest", tmp_path, *args, "--timeout", "60")
    doc = load(tmp_path / "ingest-latest.json")
    assert doc["bench"] == "ingest" and [c["target"] for c in doc["cells"]] == targets
    for cell in doc["cells"]:
        assert (cell["size"], cell["concurrency"]) == ("10KB", 2)
        src, probe = cell["source"], cell["probe"]
        assert "error" not in cell and "error" not in src and src["rc"] == 0, cell
        assert probe["sent"] == 10 and probe["errors"] == 0, cell
        assert_numbers(src, "msgs_per_s", "wall_s")
        assert_numbers(probe, "msgs_per_s", "p50_ms", "p99_ms")
    return doc


@pytest.mark.skipif(
    _smtp_source() is None,
    reason="smtp-source/smtp-sink come with Debian's postfix (deps/apt-test.txt): run through `make test`, "
    "which installs it",
)
def test_ingest_smoke_mailpipe_and_smtp_sink(tmp_path: Path) -> None:
    """One tiny cell (10 KB, concurrency 2, 10 smtp-source + 10 probe messages) against `mailpipe serve` and
    smtp-sink; every message mailpipe answered 250 is on disk."""
    targets = (
        ["mailpipe", "smtp-sink"] if shutil.which("smtp-sink") or Path("/usr/sbin/smtp-sink").exists() else ["mailpipe"]
    )
    doc = _ingest_cells(tmp_path, targets)
    mp = doc["cells"][0]
    assert mp["durable"] == {"accepted_250": 20, "on_disk": 20, "ok": True}
    assert doc["ratios_mailpipe_over_postfix"] == {"10KB/c2": None}  # Postfix not run: no ratio
    assert doc["targets"]["10KB/c2: every 250 on disk"] is True
    assert_targets(doc, allow_na=True)


@pytest.mark.skipif(
    _smtp_source() is None or shutil.which("postfix") is None or os.geteuid() != 0,
    reason="the private Postfix instance needs Debian's postfix (deps/apt-test.txt, installed by `make test`) "
    "and root (postfix -c DIR start)",
)
def test_ingest_smoke_postfix(tmp_path: Path) -> None:
    """The same tiny cell against a private Postfix (queue on HOLD) next to mailpipe: the ratio is computed."""
    doc = _ingest_cells(tmp_path, ["mailpipe", "postfix"])
    assert doc["cells"][1]["durable"]["ok"] is True
    assert is_number(doc["ratios_mailpipe_over_postfix"]["10KB/c2"])
    assert isinstance(doc["targets"]["10KB/c2: mailpipe >= 1x postfix msgs/s"], bool)


def test_coldstart_smoke(tmp_path: Path) -> None:
    """bench.coldstart with one rep: builds the Lambda zip (serverless package, npm osls) and the GCP/Azure
    bundles, times every handler and peer once, the import breakdown (no socket opened) and the footprint."""
    run_bench("coldstart", tmp_path, "--reps", "1", timeout=300)
    doc = load(tmp_path / "coldstart.json")
    assert doc["bench"] == "coldstart" and doc["reps"] == 1
    assert set(doc["times"]) >= HANDLERS and "python -c pass" in doc["times"]
    for t in doc["times"].values():
        for metric in ("import_ms", "ready_ms", "ready_cpu_ms", "process_ms"):
            assert_numbers(t[metric], "median", "p90")
    assert set(doc["breakdown"]) == HANDLERS
    for name, b in doc["breakdown"].items():
        assert b["sockets"] == [] and b["not_from_bundle"] == [], (name, b)
    assert set(doc["footprint"]["core"]) == {"aws", "gcp", "azure"}
    for cloud, core in doc["footprint"]["core"].items():
        assert core["zipped"] > 0 and core["files"] > 0, cloud
    assert set(doc["targets"]) == HANDLERS | {f"core bundle {c}" for c in ("aws", "gcp", "azure")}
    assert all(isinstance(v["met"], bool) for v in doc["targets"].values()), doc["targets"]
