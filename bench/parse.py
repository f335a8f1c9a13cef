"""MIME parser benchmark: ``python -m bench.parse [--quick] [--sets corpus,cpython,mix] [--engines ...]``.

Every engine runs in its own process pinned to one core (sched_setaffinity, inherited by node), over the
same files, doing the same full extraction (bench/engines.py, bench/node/runner.mjs). Timed: parse +
extraction only (files are read before each timer starts); the best of --reps passes is reported, passes
run round-robin across engines (one process per pass) so background load hits every engine alike.
Crashes = exceptions plus process deaths/hangs (a message that kills or hangs the process is dropped and
the run restarted without it). Peak memory = max RSS of the engine's process (os.wait4). Results: a table
on stdout and JSON in bench/out/parse-<utc>.json (+ parse-latest.json). See bench/README.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import selectors
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import BENCH_DIR, OUT_DIR, REPO_DIR
from bench.gen_mix import mix_dir

MB = 1_000_000
NODE_ENGINES = ("mailparser", "postal-mime")
ENGINES = ("mailpipe", "stdlib-default", "stdlib-compat32", "mail-parser", "fast-mail-parser", *NODE_ENGINES)
TARGET_PEERS = ("mailparser", "mail-parser")  # mailpipe must reach 2x their MB/s on corpus and mix
MAX_RESTARTS = 20


def corpus_files() -> list[Path]:
    return sorted((REPO_DIR.parent / "shared/corpus/stalwart-mail-parser/eml").glob("*/*.eml"))


def cpython_files() -> list[Path]:
    return sorted((Path(sysconfig.get_paths()["stdlib"]) / "test/test_email/data").glob("msg_*.txt"))


def engine_command(engine: str, listfile: str, reps: int) -> tuple[list[str], Path] | None:
    """The argv and cwd of one engine run, or None when the engine is not installed here."""
    if engine in NODE_ENGINES:
        node = shutil.which("node")
        if node is None or not (BENCH_DIR / "node/node_modules" / engine).is_dir():
            return None
        return [node, str(BENCH_DIR / "node/runner.mjs"), engine, listfile, str(reps)], BENCH_DIR / "node"
    if engine == "mailpipe" and importlib.util.find_spec("mailpipe.core.mime.parser") is None:
        return None
    return [sys.executable, "-m", "bench.worker", engine, listfile, str(reps)], REPO_DIR


def _read_lines(proc: subprocess.Popen[str], timeout: float) -> tuple[list[dict[str, Any]], str | None]:
    """Collect the worker's JSON lines; stop on EOF or when no line came for ``timeout`` s (then kill)."""
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    lines: list[dict[str, Any]] = []
    while True:
        if not sel.select(timeout):
            proc.kill()
            return lines, f"hang: no result within {timeout:.0f}s"
        line = proc.stdout.readline()
        if not line:
            return lines, None
        if line.startswith("{"):  # anything else is a library printing to stdout
            lines.append(json.loads(line))


def _one_process(cmd: list[str], cwd: Path, core: int, timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryFile(mode="w+") as err:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            preexec_fn=lambda: os.sched_setaffinity(0, {core}),
        )
        lines, hang = _read_lines(proc, timeout)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        tail = err.read()[-300:]
    return {"lines": lines, "hang": hang, "rc": proc.returncode, "stderr": tail, "maxrss_kb": usage.ru_maxrss}


def run_engine(engine: str, files: list[Path], reps: int, core: int, timeout: float) -> dict[str, Any]:
    """Run one engine over ``files``; restart without any message that kills or hangs the process."""
    alive = list(range(len(files)))
    deaths: list[dict[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="mailpipe-bench-") as tmp:
        listfile = str(Path(tmp) / "files.json")
        for _ in range(MAX_RESTARTS):
            Path(listfile).write_text(json.dumps([str(files[i]) for i in alive]))
            cmd = engine_command(engine, listfile, reps)
            if cmd is None:
                return {"engine": engine, "available": False}
            res = _one_process(*cmd, core, timeout)
            per_msg = [x for x in res["lines"] if "i" in x]
            if len(per_msg) == len(alive) or not alive:
                return _summary(engine, files, alive, res, per_msg, deaths)
            bad = alive.pop(len(per_msg))
            why = res["hang"] or f"process died rc={res['rc']}: {res['stderr'].strip()[-200:]}"
            deaths.append({"file": files[bad].name, "err": why})
    return {"engine": engine, "available": True, "error": "too many process deaths", "deaths": deaths}


def _merge(first: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    """Add a later round's timing to the first round's result (crash counts stay the first round's)."""
    if "passes" not in more:
        return first
    passes = first["passes"] + more["passes"]
    best = min(passes)
    return first | {
        "passes": passes, "best_s": best, "median_s": statistics.median(passes),
        "msgs_per_s": first["messages"] / best, "mb_per_s": first["bytes"] / MB / best,
        "peak_rss_mb": max(first["peak_rss_mb"], more["peak_rss_mb"]),
    }


def _summary(
    engine: str,
    files: list[Path],
    alive: list[int],
    res: dict[str, Any],
    per_msg: list[dict[str, Any]],
    deaths: list[dict[str, str]],
) -> dict[str, Any]:
    passes = [x["t"] for x in res["lines"] if "pass" in x]
    nbytes = sum(files[i].stat().st_size for i in alive)
    best = min(passes) if passes else float("nan")
    errors = [{"file": files[alive[x["i"]]].name, "err": x["err"]} for x in per_msg if not x["ok"]]
    return {
        "engine": engine,
        "available": True,
        "messages": len(alive),
        "bytes": nbytes,
        "passes": passes,
        "best_s": best,
        "median_s": statistics.median(passes) if passes else None,
        "msgs_per_s": len(alive) / best if passes else 0.0,
        "mb_per_s": nbytes / MB / best if passes else 0.0,
        "crashes": len(errors) + len(deaths),
        "exceptions": errors[:20],
        "deaths": deaths,
        "attachments": sum(x["n"] for x in per_msg),
        "decoded_bytes": sum(x["bytes"] for x in per_msg),
        "peak_rss_mb": res["maxrss_kb"] / 1024,
        "incomplete_passes": res["rc"] != 0,
    }


def check_memory(row: dict[str, Any], largest: int) -> dict[str, Any]:
    """mailpipe's peak RSS must stay under 3x the largest message + 50 MiB (all in MiB, as ru_maxrss)."""
    limit_mb = (3 * largest + 50 * 2**20) / 2**20
    return {"peak_rss_mb": row["peak_rss_mb"], "limit_mb": limit_mb, "ok": row["peak_rss_mb"] <= limit_mb}


def ratios(rows: dict[str, dict[str, Any]]) -> dict[str, float]:
    mp = rows.get("mailpipe", {})
    if not mp.get("mb_per_s"):
        return {}
    return {
        e: mp["mb_per_s"] / r["mb_per_s"] for e, r in rows.items() if e != "mailpipe" and r.get("mb_per_s")
    }


def run_set(
    name: str, files: list[Path], engines: list[str], reps: int, a: argparse.Namespace
) -> dict[str, Any]:
    print(
        f"\n== {name}: {len(files)} messages, {sum(f.stat().st_size for f in files) / MB:.1f} MB, "
        f"best of {reps} pass(es), core {a.core}",
        flush=True,
    )
    rows: dict[str, dict[str, Any]] = {}
    for rnd in range(reps):  # round-robin, one pass per process: background load hits every engine alike
        for engine in engines:
            if rnd and "passes" not in rows[engine]:
                continue  # not installed, or gave up
            t0 = time.monotonic()
            res = run_engine(engine, files, 1, a.core, a.timeout)
            rows[engine] = _merge(rows[engine], res) if rnd else res
            print(f"   pass {rnd + 1}/{reps} {engine}: {time.monotonic() - t0:.1f}s", flush=True)
    largest = max(f.stat().st_size for f in files)
    out: dict[str, Any] = {
        "set": name,
        "messages": len(files),
        "largest_bytes": largest,
        "reps": reps,
        "engines": rows,
        "ratios_mailpipe_over": ratios(rows),
    }
    if rows.get("mailpipe", {}).get("available"):
        out["mailpipe_memory"] = check_memory(rows["mailpipe"], largest)
    print_table(out)
    return out


def print_table(s: dict[str, Any]) -> None:
    ratio = s["ratios_mailpipe_over"]
    print(
        f"{'engine':18} {'msgs/s':>9} {'MB/s':>8} {'crashes':>7} {'peak RSS MiB':>12} {'atts':>6} "
        f"{'mailpipe/peer':>13}"
    )
    for e, r in s["engines"].items():
        if not r.get("available"):
            print(f"{e:18} not installed (make bench)")
            continue
        if "error" in r:
            print(f"{e:18} {r['error']}")
            continue
        rt = f"{ratio[e]:.2f}x" if e in ratio else "-"
        print(
            f"{e:18} {r['msgs_per_s']:9.1f} {r['mb_per_s']:8.2f} {r['crashes']:7d} {r['peak_rss_mb']:12.1f} "
            f"{r['attachments']:6d} {rt:>13}"
        )
    if "mailpipe_memory" in s:
        m = s["mailpipe_memory"]
        print(
            f"mailpipe peak RSS {m['peak_rss_mb']:.1f} MiB vs limit 3x largest + 50 MiB "
            f"= {m['limit_mb']:.1f} MiB: "
            f"{'OK' if m['ok'] else 'OVER'}"
        )


def verdict(sets: list[dict[str, Any]]) -> dict[str, Any]:
    """Targets: mailpipe >= 2x Node mailparser and >= 2x mail-parser MB/s on corpus and mix; zero crashes."""
    checks: dict[str, Any] = {}
    for s in sets:
        mp = s["engines"].get("mailpipe", {})
        checks[f"{s['set']}: mailpipe crashes == 0"] = mp.get("crashes") == 0 if mp.get("available") else None
        if s["set"] == "cpython":
            continue
        for peer in TARGET_PEERS:
            r = s["ratios_mailpipe_over"].get(peer)
            checks[f"{s['set']}: mailpipe >= 2x {peer} MB/s"] = None if r is None else r >= 2.0
        if "mailpipe_memory" in s:
            checks[f"{s['set']}: mailpipe peak RSS <= 3x largest + 50 MiB"] = s["mailpipe_memory"]["ok"]
    return checks


def generate_mix(seed: int, count: int, scale: float, root: Path = OUT_DIR) -> Path:
    """Generate in a child process: the harness stays small, and a child's max RSS counts its parent's
    resident set at fork time (Linux carries the pre-exec high-water mark into ru_maxrss)."""
    args = ["--seed", str(seed), "--count", str(count), "--scale", str(scale), "--out", str(root)]
    subprocess.run([sys.executable, "-m", "bench.gen_mix", *args], cwd=REPO_DIR, check=True)
    return mix_dir(seed, count, scale, root)


def build_sets(a: argparse.Namespace) -> list[tuple[str, list[Path], int]]:
    sets = []
    for name in a.sets.split(","):
        if name == "corpus":
            sets.append((name, corpus_files(), a.reps or (2 if a.quick else 5)))
        elif name == "cpython":
            sets.append((name, cpython_files(), a.reps or (2 if a.quick else 5)))
        elif name == "mix":
            count, scale = (40, 0.4) if a.quick else (a.mix_count, a.mix_scale)
            mix = generate_mix(a.seed, count, scale, a.out)
            sets.append((name, sorted(mix.glob("*.eml")), a.reps or (1 if a.quick else 3)))
        else:
            raise SystemExit(f"unknown set {name!r} (corpus, cpython, mix)")
    return [s for s in sets if s[1] or print(f"skipping {s[0]}: no files found")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="mailpipe MIME parse benchmark against peer parsers")
    ap.add_argument("--quick", action="store_true", help="small mix (40 msgs, 0.4x sizes), fewer passes")
    ap.add_argument("--sets", default="corpus,cpython,mix")
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--reps", type=int, help="timed passes per engine (best is reported)")
    ap.add_argument("--mix-count", type=int, default=100)
    ap.add_argument("--mix-scale", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--core", type=int, default=0, help="CPU every engine is pinned to")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds one message may take before 'hang'")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    ap.add_argument("--out", type=Path, default=OUT_DIR, help="directory for the JSON and the mix (bench/out)")
    a = ap.parse_args(argv)
    engines = a.engines.split(",")
    results = [run_set(name, files, engines, reps, a) for name, files, reps in build_sets(a)]
    checks = verdict(results)
    print("\ntargets:")
    for k, v in checks.items():
        print(f"  {'PASS' if v else ('n/a ' if v is None else 'FAIL')}  {k}")
    write_json(
        {
            "bench": "parse",
            "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "quick": a.quick,
            "versions": versions(),
            "cpus": os.cpu_count(),
            "sets": results,
            "targets": checks,
        },
        a.out,
    )
    return 1 if a.strict and False in checks.values() else 0


def versions() -> dict[str, str | None]:
    """Peer versions, recorded with the results."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"python": sys.version.split()[0]}
    for dist in ("mail-parser", "fast-mail-parser"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    node = shutil.which("node")
    if node:
        out["node"] = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    for pkg in NODE_ENGINES:
        meta = BENCH_DIR / "node/node_modules" / pkg / "package.json"
        out[pkg] = json.loads(meta.read_text())["version"] if meta.exists() else None
    return out


def write_json(doc: dict[str, Any], out: Path = OUT_DIR) -> None:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{doc['bench']}-{doc['utc'].replace(':', '')}.json"
    text = json.dumps(doc, indent=1, default=str)
    path.write_text(text)
    (out / f"{doc['bench']}-latest.json").write_text(text)
    print(f"results: {path}")


if __name__ == "__main__":
    sys.exit(main())
