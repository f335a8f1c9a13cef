"""One engine run, in its own process: ``python -m bench.worker ENGINE LISTFILE REPS``.

LISTFILE is a JSON list of .eml paths. Protocol on stdout (JSON lines; bench/node/runner.mjs speaks the same):
pass 0 prints ``{"i": index, "ok": bool, "err": str|null, "n": attachments, "bytes": decoded}`` per message,
then every pass prints ``{"pass": p, "t": seconds}``. A file is read before its timer starts, so the timed
work is the parse + extraction only; one message is held at a time, so max RSS reflects the engine.
"""

from __future__ import annotations

import json
import sys
import time

from bench.engines import PYTHON_ENGINES

WARMUP = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: warm\r\n\r\nhello\r\n"


def _emit(obj: object) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def run(engine: str, paths: list[str], reps: int) -> None:
    extract = PYTHON_ENGINES[engine]
    clock = time.perf_counter
    try:  # imports and first-call setup stay out of the timed passes
        extract(WARMUP)
    except Exception:
        pass
    for p in range(reps):
        total = 0.0
        for i, path in enumerate(paths):
            with open(path, "rb") as f:
                raw = f.read()
            err, n, size = None, 0, 0
            t0 = clock()
            try:
                n, size = extract(raw)
            except Exception as exc:  # a crash is a result here, counted per engine
                err = f"{type(exc).__name__}: {str(exc)[:200]}"
            total += clock() - t0
            del raw
            if p == 0:
                _emit({"i": i, "ok": err is None, "err": err, "n": n, "bytes": size})
        _emit({"pass": p, "t": total})


def main() -> None:
    engine, listfile, reps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(listfile) as f:
        paths = json.load(f)
    run(engine, paths, reps)


if __name__ == "__main__":
    main()
