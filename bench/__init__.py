"""mailpipe benchmarks: ``python -m bench.parse`` (MIME parsers) and ``python -m bench.ingest`` (SMTP accept).

Not part of the installed package and not imported by tests: speed and memory targets live here, never in
timed tests. Results go to ``bench/out/`` (git-ignored). See bench/README.md.
"""

from __future__ import annotations

from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
OUT_DIR = BENCH_DIR / "out"
REPO_DIR = BENCH_DIR.parent
