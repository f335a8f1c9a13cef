"""SMTP ingest benchmark: ``python -m bench.ingest [--quick] [--targets mailpipe,postfix,smtp-sink]``.

For every target (bench/targets.py: ``mailpipe serve`` with fsync'd folder store, a private Postfix queueing
to disk on HOLD, ``smtp-sink``), message size (10 KB, 1 MB) and concurrency (1, 20, 100), a fresh server is
started and driven by Postfix's ``smtp-source`` (throughput: messages / wall time, one message per SMTP
session as an MX mostly sees) and then by bench/probe.py (p50/p99 end-of-DATA -> 250 latency, connections
reused, PIPELINING). Afterwards the messages the server holds on disk are counted against those it answered
250 to. Loopback only; every run is bounded by message counts and timeouts. Table on stdout, JSON in
bench/out/ingest-<utc>.json (+ ingest-latest.json).

Targets: mailpipe >= Postfix's durable accept rate at 10 KB, >= half of it at 1 MB.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import OUT_DIR
from bench.parse import write_json
from bench.probe import send
from bench.targets import RCPT_DOMAIN, TARGETS

SIZES = {"10KB": 10 * 1024, "1MB": 1024 * 1024}
# (smtp-source messages, probe messages) per size and concurrency
COUNTS = {
    "10KB": {1: (2000, 300), 20: (4000, 1000), 100: (4000, 2000)},
    "1MB": {1: (100, 50), 20: (300, 150), 100: (500, 300)},
}
QUICK_COUNTS = {
    "10KB": {1: (200, 100), 20: (500, 200), 100: (500, 300)},
    "1MB": {1: (20, 10), 20: (50, 40), 100: (100, 100)},
}
TARGET_RATIO = {"10KB": 1.0, "1MB": 0.5}  # mailpipe / postfix msgs/s
SETTLE_S = 2.0  # after the banner answers, before the clock starts: every target gets the same


def smtp_source(port: int, count: int, concurrency: int, size: int, timeout: float, reuse: bool) -> dict:
    """Run Postfix's smtp-source; msgs/s = count / wall time of the whole run (``reuse``: -d, many messages
    per connection)."""
    exe = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    cmd = [
        exe,
        *(["-d"] if reuse else []),
        "-s",
        str(concurrency),
        "-m",
        str(count),
        "-l",
        str(size),
        "-f",
        "bench@client.test",
        "-t",
        f"user@{RCPT_DOMAIN}",
        f"127.0.0.1:{port}",
    ]
    t0 = time.perf_counter()
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return {"error": f"smtp-source timed out after {timeout:.0f}s", "msgs_per_s": None}
    wall = time.perf_counter() - t0
    res: dict[str, Any] = {"count": count, "wall_s": wall, "msgs_per_s": count / wall, "rc": out.returncode}
    if out.returncode != 0 or out.stderr.strip():
        res["error"] = (out.stderr or out.stdout)[-300:]
        if out.returncode != 0:
            res["msgs_per_s"] = None
    return res


def postfix_version() -> str | None:
    try:
        cmd = ["postconf", "-d", "-h", "mail_version"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def run_cell(
    target: str,
    size_name: str,
    conc: int,
    counts: tuple[int, int],
    timeout: float,
    reuse: bool = False,
    leftovers: list[Path] | None = None,
) -> dict:
    """One (target, size, concurrency) cell on a freshly started server; its directory goes to ``leftovers``
    (removed by the caller after the run) when given, else it is removed at once."""
    size = SIZES[size_name]
    cell: dict[str, Any] = {"target": target, "size": size_name, "concurrency": conc}
    server = TARGETS[target]()
    try:
        port = server.start()
        time.sleep(SETTLE_S)  # measure the steady state, not start-up (mailpipe spawns its processes then)
        cell["source"] = smtp_source(port, counts[0], conc, size, timeout, reuse)
        cell["probe"] = send(port, counts[1], conc, size, deadline=timeout)
        stored = server.stored()
        if stored is not None:
            accepted = counts[0] * (cell["source"].get("rc") == 0) + int(cell["probe"].get("sent", 0))
            cell["durable"] = {"accepted_250": accepted, "on_disk": stored, "ok": stored >= accepted}
    except (OSError, RuntimeError, TimeoutError) as exc:
        cell["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        server.stop(keep_files=leftovers is not None)
        if leftovers is not None:
            leftovers.append(server.dir)
    return cell


def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def ratios(cells: list[dict[str, Any]]) -> dict[str, float | None]:
    """mailpipe / postfix smtp-source msgs/s per (size, concurrency)."""
    rate = {(c["target"], c["size"], c["concurrency"]): c.get("source", {}).get("msgs_per_s") for c in cells}
    out: dict[str, float | None] = {}
    for (t, size, conc), mp in rate.items():
        pf = rate.get(("postfix", size, conc))
        if t == "mailpipe":
            out[f"{size}/c{conc}"] = mp / pf if mp and pf else None
    return out


def print_table(cells: list[dict[str, Any]], ratio: dict[str, float | None]) -> None:
    print(
        f"\n{'target':10} {'size':>5} {'conc':>4} {'msgs/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'probe/s':>8} {'on disk':>9} {'mailpipe/postfix':>16}"
    )
    for c in cells:
        src, pr = c.get("source", {}), c.get("probe", {})
        dur = c.get("durable")
        disk = "-" if dur is None else f"{dur['on_disk']}/{dur['accepted_250']}"
        r = ratio.get(f"{c['size']}/c{c['concurrency']}") if c["target"] == "mailpipe" else None
        print(
            f"{c['target']:10} {c['size']:>5} {c['concurrency']:4d} {_fmt(src.get('msgs_per_s'), '8.1f')} "
            f"{_fmt(pr.get('p50_ms'), '8.2f')} {_fmt(pr.get('p99_ms'), '8.2f')} "
            f"{_fmt(pr.get('msgs_per_s'), '8.1f')} {disk:>9} {_fmt(r, '15.2f') + ('x' if r else ''):>16}"
        )
        for err in (c.get("error"), src.get("error"), pr.get("error"), *(pr.get("error_samples") or [])):
            if err:
                print(f"{'':10} ! {str(err).strip()[:150]}")


def verdict(cells: list[dict[str, Any]], ratio: dict[str, float | None]) -> dict[str, bool | None]:
    checks: dict[str, bool | None] = {}
    for key, r in ratio.items():
        want = TARGET_RATIO[key.split("/")[0]]
        checks[f"{key}: mailpipe >= {want:g}x postfix msgs/s"] = None if r is None else r >= want
    for c in cells:
        if c["target"] == "mailpipe" and "durable" in c:
            checks[f"{c['size']}/c{c['concurrency']}: every 250 on disk"] = c["durable"]["ok"]
    return checks


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="SMTP durable accept: mailpipe vs Postfix vs smtp-sink")
    ap.add_argument("--quick", action="store_true", help="fewer messages per cell (a couple of minutes)")
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--sizes", default=",".join(SIZES))
    ap.add_argument("--concurrency", default="1,20,100")
    ap.add_argument("--reuse-connections", action="store_true", help="smtp-source -d (reuse sessions)")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per smtp-source/probe run")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    ap.add_argument("--messages", help="SOURCE,PROBE messages per cell, instead of the count table (smoke runs)")
    ap.add_argument("--out", type=Path, default=OUT_DIR, help="directory for the JSON (default bench/out)")
    a = ap.parse_args(argv)
    if os.geteuid() != 0 and "postfix" in a.targets:
        print("note: the private Postfix instance needs root (postfix -c DIR start)", file=sys.stderr)
    table = QUICK_COUNTS if a.quick else COUNTS
    fixed = None
    if a.messages:
        source, probe = a.messages.split(",")
        fixed = (int(source), int(probe))
    cells: list[dict[str, Any]] = []
    leftovers: list[Path] = []  # deleted after the last cell: mass deletions slow file creation (targets.py)
    try:
        for size in a.sizes.split(","):
            for conc in (int(c) for c in a.concurrency.split(",")):
                for target in a.targets.split(","):
                    counts = fixed or table[size].get(conc, table[size][max(table[size])])
                    cells.append(run_cell(target, size, conc, counts, a.timeout, a.reuse_connections, leftovers))
                    print(f"   {target} {size} c{conc}: done", flush=True)
    finally:
        for directory in leftovers:
            shutil.rmtree(directory, ignore_errors=True)
    ratio = ratios(cells)
    print_table(cells, ratio)
    checks = verdict(cells, ratio)
    print("\ntargets:")
    for k, v in checks.items():
        print(f"  {'PASS' if v else ('n/a ' if v is None else 'FAIL')}  {k}")
    utc = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    doc = {
        "bench": "ingest",
        "utc": utc,
        "quick": a.quick,
        "reuse_connections": a.reuse_connections,
        "postfix": postfix_version(),
    }
    doc |= {"cpus": os.cpu_count(), "cells": cells, "ratios_mailpipe_over_postfix": ratio, "targets": checks}
    write_json(doc, a.out)
    return 1 if a.strict and False in checks.values() else 0


if __name__ == "__main__":
    sys.exit(main())
