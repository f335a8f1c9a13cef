"""Enrichment cost: ``python -m bench.enrich [--quick] [--count N] [--scale X] [--pages P] [--enrichers ...]``.

1. Per-enricher cost per message (mean / p95 ms) on the synthetic mix (bench.gen_mix), with a private clamd
   loaded with the project's test signatures and the project's YARA rules.
2. The whole pipeline step (parse + every enricher except OCR) in one worker: messages/s per core
   (target > 20). CPU is ours plus clamd's (read from /proc), so the per-core figure is honest.
3. OCR seconds per page on a generated scanned invoice (target < 1.5 s).
Results are printed and written to bench/out/enrich-latest.json (``--out DIR``: elsewhere; the mix too).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import OUT_DIR
from bench.gen_mix import generate
from mailpipe.core.enrich.contract import Context
from mailpipe.core.enrich.registry import load_enricher
from mailpipe.core.enrich.run import run_one
from mailpipe.core.enrich.view import MessageView, Part, build_view
from mailpipe.core.mime.parser import parse
from mailpipe.core.model import Envelope
from mailpipe.enrichers.clamd import DATA_DIR, private_clamd

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
NO_OCR = ["malware", "language", "sentiment", "links", "auth"]
DNS = {"example.com TXT": ["v=spf1 ip4:203.0.113.0/24 -all"], "_dmarc.example.com TXT": ["v=DMARC1; p=none"]}
ENVELOPE = Envelope("a@example.com", ("b@acme.example",), client_ip="203.0.113.5", helo="mail.example.com")


def _config(clamd: str) -> dict[str, Any]:
    return {
        "malware": {"clamd": clamd, "yara_rules": [str(DATA_DIR / "mailpipe-test.yar")]},
        "auth": {"dns": DNS},
        "links": {"trusted": ["acme.example"]},
    }


def _cpu_of(pid: int | None) -> float:
    if pid is None:  # no clamd: malware not among the enrichers
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def per_enricher(
    raws: list[bytes], config: dict[str, Any], clamd_pid: int | None, names: list[str]
) -> dict[str, dict[str, float]]:
    """Wall and CPU (ours + clamd's) milliseconds per message, per enricher."""
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, float] = dict.fromkeys(names, 0.0)
    for raw in raws:
        result = parse(raw, envelope=ENVELOPE)
        view = build_view(result.message.to_dict(), result.payloads, raw)
        results: dict[str, Any] = {}
        for name in names:
            start, cpu0, clam0 = time.perf_counter(), time.process_time(), _cpu_of(clamd_pid)
            results[name] = run_one(load_enricher(name), view, Context(config.get(name, {}), results))
            wall[name].append((time.perf_counter() - start) * 1000)
            cpu[name] += time.process_time() - cpu0 + _cpu_of(clamd_pid) - clam0
    return {
        n: {
            "mean_ms": round(statistics.fmean(w), 2),
            "p95_ms": round(_p95(w), 2),
            "cpu_ms": round(cpu[n] * 1000 / len(raws), 2),
        }
        for n, w in wall.items()
    }


def whole(raws: list[bytes], config: dict[str, Any], clamd_pid: int | None, names: list[str]) -> dict[str, float]:
    from mailpipe.core.enrich.run import run_enrichers

    cpu0, clam0, wall0 = time.process_time(), _cpu_of(clamd_pid), time.perf_counter()
    for raw in raws:
        result = parse(raw, envelope=ENVELOPE)
        doc = result.message.to_dict()
        doc["enrichments"] = run_enrichers(doc, result.payloads, raw, names, config)
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0 + _cpu_of(clamd_pid) - clam0
    return {
        "messages": len(raws),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "msgs_per_s_wall": round(len(raws) / wall, 1),
        "msgs_per_cpu_s": round(len(raws) / cpu, 1),
    }


def ocr_per_page(pages: int) -> dict[str, float]:
    from PIL import Image, ImageDraw, ImageFont

    dpi, imgs = 150, []
    for p in range(pages):
        img = Image.new("L", (int(8.27 * dpi), int(11.69 * dpi)), 255)
        draw, font = ImageDraw.Draw(img), ImageFont.truetype(FONT, 23)
        lines = [f"Invoice Number: INV-2024-{p:04d}", "Invoice Date: 2024-03-15", "Total: EUR 312.00"]
        for i, line in enumerate(lines * 12):
            draw.text((dpi, dpi + i * 38), line, font=font, fill=0)
        imgs.append(img)
    buf = io.BytesIO()
    imgs[0].save(buf, format="PDF", resolution=dpi, save_all=True, append_images=imgs[1:])
    view = MessageView(b"", None, None, (), (Part("2", "scan.pdf", "application/pdf", buf.getvalue()),))
    start, cpu0 = time.perf_counter(), _children_cpu()
    out = run_one(load_enricher("ocr"), view, Context({}))
    took, cpu = time.perf_counter() - start, _children_cpu() - cpu0
    assert out["status"] == "ok" and out["result"]["invoice"]["number"] == "INV-2024-0000", out
    return {"pages": pages, "s_per_page": round(took / pages, 3), "cpu_s_per_page": round(cpu / pages, 3)}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _p95(values: list[float]) -> float:
    return sorted(values)[max(0, int(len(values) * 0.95) - 1)]


def measure_mix(raws: list[bytes], names: list[str]) -> tuple[dict[str, Any], dict[str, float]]:
    """Per-enricher cost and the whole step; a private clamd only when the malware enricher is measured."""
    with tempfile.TemporaryDirectory(prefix="mailpipe-bench-clamd-") as tmp:
        if "malware" not in names:
            return per_enricher(raws, _config(""), None, names), whole(raws, _config(""), None, names)
        with private_clamd(Path(tmp)) as clamd:
            config = _config(clamd.address)
            pid = int((Path(tmp) / "clamd.pid").read_text().strip())
            return per_enricher(raws, config, pid, names), whole(raws, config, pid, names)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--pages", type=int, default=3, help="scanned pages for the OCR figure (0: skip OCR)")
    ap.add_argument("--quick", action="store_true", help="40 messages at scale 0.4 (as bench.parse --quick)")
    ap.add_argument("--enrichers", default=",".join(NO_OCR), help="enrichers timed on the mix (default all but ocr)")
    ap.add_argument("--out", type=Path, default=OUT_DIR, help="directory for the JSON and the mix (bench/out)")
    a = ap.parse_args(argv)
    names = a.enrichers.split(",")
    count, scale = (40, 0.4) if a.quick else (a.count, a.scale)
    mix = generate(1, count, scale, root=a.out)
    raws = [p.read_bytes() for p in sorted(mix.glob("*.eml"))]
    per, pipeline = measure_mix(raws, names)
    ocr = ocr_per_page(a.pages) if a.pages > 0 else None
    checks = {"pipeline > 20 msgs per CPU-second": pipeline["msgs_per_cpu_s"] > 20}
    if ocr is not None:
        checks["ocr < 1.5 s per page"] = ocr["s_per_page"] < 1.5
    report = {"mix": mix.name, "enrichers": names, "per_enricher": per, "pipeline_no_ocr": pipeline, "ocr": ocr,
              "targets": checks}  # fmt: skip
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "enrich-latest.json").write_text(json.dumps(report, indent=1))
    print_report(report, len(raws))
    return 0


def print_report(report: dict[str, Any], messages: int) -> None:
    per, pipeline, ocr = report["per_enricher"], report["pipeline_no_ocr"], report["ocr"]
    print(f"mix {report['mix']}: {messages} messages")
    for name, c in per.items():
        print(
            f"  {name:<10} wall mean {c['mean_ms']:8.2f} ms  p95 {c['p95_ms']:8.2f} ms  "
            f"CPU {c['cpu_ms']:8.2f} ms"
        )
    print(
        f"  pipeline (parse + {', '.join(report['enrichers'])}): {pipeline['msgs_per_s_wall']} msgs/s wall, "
        f"{pipeline['msgs_per_cpu_s']} msgs per CPU-second (ours + clamd)  [target > 20]"
    )
    if ocr is not None:
        print(
            f"  ocr: {ocr['s_per_page']} s/page wall, {ocr['cpu_s_per_page']} CPU-s/page (pdftoppm + tesseract) "
            f"over {ocr['pages']} scanned pages  [target < 1.5]"
        )

if __name__ == "__main__":
    sys.exit(main())
