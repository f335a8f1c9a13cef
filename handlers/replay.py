"""``mailpipe replay --store URL``: parse stored raw messages again with this code, enrichers and settings, so
history gets what a newer parser or a new enricher finds.

Each message's new document goes beside the old one (``parsed/<id>/<version>.json``, the version named in
its ``processed_by``) and ``parsed/<id>.json`` is switched to it by one atomic put (Pipeline.replay_key).
Nothing is sent unless ``--emit`` (routing again and the notification, as for new mail: webhooks included).

Resumable: a message whose ``parsed/<id>/<version>.json`` exists is skipped (``current``), so a run stopped by
Ctrl-C, a crash or a failed store resumes where it was by running the same command again. Keys are streamed
from the store's listing (never all in memory) to ``--workers`` processes through a bounded window.
``--prune`` deletes the versions that are not current instead.

Progress on stderr: a bar with count, rate and ETA on a terminal, else one JSON line every ``--progress``
messages; the summary is one JSON line on stdout. Exit codes: 0 every selected message replayed or current;
1 some failed (run it again: it is idempotent); 2 bad usage or configuration; 130 interrupted.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import sys
import time
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterable, Iterator

    from mailpipe.core.pipeline import Pipeline, Replayed
    from mailpipe.core.ports import ObjectStore
    from mailpipe.core.settings import Settings


class Stop:
    """Ctrl-C/SIGTERM: the first stops feeding new keys (those in flight finish), the second aborts."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum: int, _frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nmailpipe replay: stopping after the messages in flight (again to abort)", file=sys.stderr)


class Progress:
    """Count, rate and ETA: a redrawn line on a terminal, else a JSON line every ``every`` messages."""

    def __init__(self, total: int | None, every: int, tty: bool) -> None:
        self.total, self.every, self.tty = total, every, tty
        self.counts = {"replayed": 0, "current": 0, "failed": 0, "ignored": 0, "filtered": 0}
        self.start = self._drawn = time.monotonic()

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    def add(self, status: str) -> None:
        self.counts[status] += 1
        now = time.monotonic()
        if self.tty and now - self._drawn >= 0.1:
            self._drawn = now
            sys.stderr.write("\r" + self.line(now))
            sys.stderr.flush()
        elif not self.tty and self.done % self.every == 0:
            print(json.dumps({"progress": self.counts, "done": self.done, "total": self.total,
                              "per_second": round(self.rate(now), 1)}), file=sys.stderr)  # fmt: skip

    def rate(self, now: float) -> float:
        return self.done / max(now - self.start, 1e-9)

    def line(self, now: float) -> str:
        rate = self.rate(now)
        if not self.total:
            return f"replay {self.done} messages  {rate:.1f}/s  failed {self.counts['failed']}"
        width, frac = 30, min(self.done / self.total, 1.0)
        eta = int((self.total - self.done) / rate) if rate > 0 else 0
        bar = "#" * int(width * frac) + "-" * (width - int(width * frac))
        return (f"replay [{bar}] {self.done}/{self.total} {frac:5.1%}  {rate:.1f}/s  "
                f"ETA {eta // 3600}:{eta // 60 % 60:02d}:{eta % 60:02d}  failed {self.counts['failed']}")  # fmt: skip

    def finish(self) -> None:
        if self.tty:
            sys.stderr.write("\r" + self.line(time.monotonic()) + "\n")


def parse_when(text: str) -> datetime:
    """``2026-11-01`` or an ISO 8601 date-time (UTC when no offset) -> an aware datetime. Raises ConfigError."""
    from mailpipe.core.errors import ConfigError

    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--since/--until: {text!r} is not an ISO 8601 date (2026-11-01T08:00Z)") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def keys(store: ObjectStore, prefix: str, ids_file: str | None) -> Iterator[str]:
    """The raw keys to replay: those named in ``ids_file`` (ids or raw keys, one per line), else every
    ``raw/<prefix>*.eml`` of the store's listing, streamed."""
    from mailpipe.core.keys import RAW_PREFIX, RAW_SUFFIX, raw_key

    if ids_file is None:
        yield from (k for k in store.list(RAW_PREFIX + prefix) if k.endswith(RAW_SUFFIX))
        return
    lines = sys.stdin if ids_file == "-" else _read_ids(ids_file)
    for line in lines:
        if item := line.strip():
            yield item if item.startswith(RAW_PREFIX) else raw_key(item)


def _read_ids(path: str) -> Iterator[str]:
    from mailpipe.core.errors import ConfigError

    try:
        f = open(path)  # noqa: SIM115 - closed below, after the last line
    except OSError as exc:
        raise ConfigError(f"--ids: cannot read {path}: {exc.strerror or exc}") from exc
    with f:
        yield from f


def received(store: ObjectStore, mid: str) -> datetime | None:
    """When a message arrived: its envelope's ``received_at``, else (a backfilled message has no envelope) the
    Date of its current parsed document; None when neither is known."""
    from mailpipe.core.errors import ObjectNotFound
    from mailpipe.core.keys import envelope_key, parsed_key

    for key, field in ((envelope_key(mid), "received_at"), (parsed_key(mid), "date")):
        try:
            value = json.loads(store.get(key)).get(field)
            return parse_when(value) if isinstance(value, str) else None
        except ObjectNotFound:
            continue
        except Exception:
            return None
    return None


def selected(store: ObjectStore, args: argparse.Namespace, progress: Progress) -> Iterator[str]:
    """``keys`` narrowed by ``--since``/``--until`` (a message of unknown time is left out of a dated run)."""
    from mailpipe.core.keys import id_from_raw_key

    since = parse_when(args.since) if args.since else None
    until = parse_when(args.until) if args.until else None
    for key in keys(store, args.prefix, args.ids):
        if since or until:
            mid = id_from_raw_key(key)
            when = received(store, mid) if mid else None
            if when is None or (since and when < since) or (until and when >= until):
                progress.add("filtered")
                continue
        yield key


CHUNK, WINDOW = 16, 4  # keys per task sent to a worker; tasks in flight per worker

# The worker processes: one Pipeline each, built once.
_PIPELINE: Pipeline | None = None
_EMIT = False


def _init(settings: Settings, emit: bool, parent: int) -> None:
    """A worker process: it dies with the replay (even by kill -9), never orphaned; builds its pipeline."""
    global _PIPELINE, _EMIT
    from mailpipe.providers.local.runner.process import die_with_parent

    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides (Ctrl-C and SIGTERM go to the whole
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # group); a message in flight finishes
    from mailpipe.core.log import configure
    from mailpipe.handlers.compose import pipeline
    from mailpipe.providers import open_store

    configure(settings.log_level)
    _PIPELINE, _EMIT = pipeline(settings, open_store(settings.store_url, settings), publish=emit), emit


def _work(key: str) -> Replayed:
    assert _PIPELINE is not None
    return _PIPELINE.replay_key(key, emit=_EMIT)


def _results(
    todo: Iterable[str], settings: Settings, args: argparse.Namespace, pipe: Pipeline
) -> Iterator[Replayed]:
    """``replay_key`` of each key: here (one worker) or in ``--workers`` processes, sent from this thread in
    chunks of ``CHUNK`` keys (one pickle and pipe write per chunk: the parent stays light), at most ``WINDOW``
    chunks per worker in flight, so the listing is read no faster than the workers go. A worker that dies
    (killed, out of memory) raises BrokenProcessPool: what was finished stays finished (resumable). One worker:
    here, with ``pipe``, the pipeline the command built."""
    if args.workers <= 1:
        from mailpipe.core.log import configure

        configure(settings.log_level)
        yield from (pipe.replay_key(key, emit=args.emit) for key in todo)
        return
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

    keys: Iterator[str] = iter(todo)
    running: set[Future[list[Replayed]]] = set()
    pool = ProcessPoolExecutor(args.workers, multiprocessing.get_context("spawn"), _init,
                               (settings, args.emit, os.getpid()))  # fmt: skip
    try:
        while True:
            while len(running) < WINDOW * args.workers and (chunk := list(itertools.islice(keys, CHUNK))):
                running.add(pool.submit(_work_many, chunk))
            if not running:
                break
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                yield from future.result()
    except BaseException:  # a second Ctrl-C, a dead worker: stop now, the rest is for the next run
        pool.shutdown(wait=False, cancel_futures=True)
        for proc in list((getattr(pool, "_processes", None) or {}).values()):  # (no public way to stop tasks)
            proc.terminate()
        raise
    pool.shutdown()


def _work_many(keys: list[str]) -> list[Replayed]:
    return [_work(key) for key in keys]


def command(args: argparse.Namespace) -> int:
    """The ``replay`` verb. Raises ConfigError (exit 2) for a bad store URL, settings, enricher or rules."""
    from mailpipe.core.settings import Settings
    from mailpipe.providers import open_store

    names = tuple(n for n in (args.enrich or "").split(",") if n) or None
    settings = Settings.from_env(store_url=args.store, enrichers=names, enrich_config_file=args.enrich_config,
                                 rules_file=args.rules, queue_url=args.queue, log_level=args.log_level)  # fmt: skip
    from mailpipe.core.errors import ConfigError
    from mailpipe.handlers.check import unreachable

    store = open_store(settings.store_url, settings)
    if problem := unreachable("store", settings.store_url, store):  # the store answers, or exit 2 naming it
        raise ConfigError(problem)
    if args.ids and args.ids != "-":
        next(_read_ids(args.ids), None)  # an unreadable --ids file: exit 2 now
    if args.prune:
        return prune(store, args)
    from mailpipe.handlers.compose import pipeline

    pipe = pipeline(settings, store, publish=args.emit)  # ConfigError before any work
    version = pipe.processed_by["version"]
    tty = sys.stderr.isatty()
    counted = tty and not (args.since or args.until) and args.ids != "-"  # (stdin can be read once)
    total = sum(1 for _ in keys(store, args.prefix, args.ids)) if counted else None
    progress = Progress(total, args.progress, tty)
    args.stop = Stop()
    signal.signal(signal.SIGTERM, args.stop)
    signal.signal(signal.SIGINT, args.stop)
    todo = _until(args.stop, selected(store, args, progress))
    broken = False
    try:
        if args.dry_run:
            _dry_run(store, todo, version, progress)
        else:
            for result in _results(todo, settings, args, pipe):
                progress.add(result.status)
                if result.status == "failed":
                    print(f"mailpipe replay: {result.key}: failed ({result.reason}): {result.error}", file=sys.stderr)
    except KeyboardInterrupt:
        args.stop.requested = True
    except BrokenProcessPool:
        broken = True
        print("\nmailpipe replay: a worker process died (killed? out of memory?); what was done is kept: "
              "run the same command again to go on", file=sys.stderr)  # fmt: skip
    progress.finish()
    summary = {**progress.counts, "version": version, "store": settings.store_url, "interrupted": args.stop.requested,
               "seconds": round(time.monotonic() - progress.start, 3)}  # fmt: skip
    sys.stdout.write(json.dumps(summary) + "\n")
    return 130 if args.stop.requested else 1 if progress.counts["failed"] or broken else 0


def _until(stop: Stop, items: Iterable[str]) -> Iterator[str]:
    for item in items:
        if stop.requested:
            return
        yield item


def _dry_run(store: ObjectStore, todo: Iterable[str], version: str, progress: Progress) -> None:
    """Print what a run would do to each key (``would_replay`` or ``current``); write nothing."""
    from mailpipe.core.keys import id_from_raw_key, version_key

    for key in todo:
        mid = id_from_raw_key(key)
        status = "ignored" if mid is None else "current" if store.exists(version_key(mid, version)) else "replayed"
        progress.add(status)
        out = {"key": key, "status": "would_replay" if status == "replayed" else status}
        sys.stdout.write(json.dumps(out) + "\n")


def prune(store: ObjectStore, args: argparse.Namespace) -> int:
    """Delete every ``parsed/<id>/<version>.json`` whose version is not the current document's."""
    from mailpipe.core.errors import ConfigError, ObjectNotFound
    from mailpipe.core.keys import PARSED_PREFIX, is_message_id, parsed_key
    from mailpipe.core.ports import DeletableStore

    if not isinstance(store, DeletableStore):
        raise ConfigError(f"{args.store}: this store cannot delete objects")
    counts = {"kept": 0, "pruned": 0, "failed": 0}
    current: dict[str, str | None] = {}
    for key in store.list(PARSED_PREFIX + args.prefix):
        mid, _, name = key[len(PARSED_PREFIX) :].partition("/")
        if not name.endswith(".json") or "/" in name or not is_message_id(mid):
            continue
        if mid not in current:
            if len(current) > 4096:
                current.clear()
            try:
                by = json.loads(store.get(parsed_key(mid))).get("processed_by") or {}
                current[mid] = by.get("version") if isinstance(by, dict) else None
            except ObjectNotFound:
                current[mid] = None  # no current document: keep its versions, they may be all there is
            except Exception:
                current[mid] = None
        if current[mid] is None or name[:-5] == current[mid]:
            counts["kept"] += 1
            continue
        if args.dry_run:
            sys.stdout.write(json.dumps({"key": key, "status": "would_prune"}) + "\n")
            counts["pruned"] += 1
            continue
        try:
            store.delete(key)
            counts["pruned"] += 1
        except Exception as exc:
            counts["failed"] += 1
            print(f"mailpipe replay --prune: {key}: not deleted: {exc}", file=sys.stderr)
    sys.stdout.write(json.dumps({**counts, "store": args.store}) + "\n")
    return 1 if counts["failed"] else 0


def _positive(text: str) -> int:
    import argparse

    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, not {text!r}")
    return int(text)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``replay`` verb on the ``mailpipe`` command line."""
    rp = sub.add_parser("replay", help="parse stored messages again into a new version of their parsed JSON")
    rp.add_argument("--store", required=True, help="store URL (file://, s3://, gs://, azblob://)")
    rp.add_argument("--prefix", default="", help="only ids starting with this (raw/<prefix>...)")
    rp.add_argument("--since", metavar="DATE", help="only messages received at or after DATE (ISO 8601)")
    rp.add_argument("--until", metavar="DATE", help="only messages received before DATE")
    rp.add_argument("--ids", metavar="FILE", help="only these message ids or raw keys, one per line ('-': stdin)")
    rp.add_argument("--enrich", metavar="NAME,...", help="enrichers to run (default: MAILPIPE_ENRICHERS)")
    rp.add_argument("--enrich-config", metavar="FILE", help="JSON file: enricher name -> its settings")
    rp.add_argument("--emit", action="store_true", help="route again and publish notifications (webhooks too)")
    rp.add_argument("--rules", help="routing rules for --emit (default: MAILPIPE_RULES)")
    rp.add_argument("--queue", help="notification queue URL for --emit (default: MAILPIPE_QUEUE_URL)")
    rp.add_argument("--workers", type=_positive, default=1, metavar="N", help="parse in N processes (default 1)")
    rp.add_argument("--dry-run", action="store_true", help="print what would be done; write nothing")
    rp.add_argument("--prune", action="store_true", help="delete the versions that are not current instead")
    rp.add_argument("--log-level", default="WARNING", help="JSON log lines from this level (default WARNING)")
    rp.add_argument("--progress", type=_positive, default=1000, metavar="N", help="a JSON progress line every N")
    rp.set_defaults(func=command)
