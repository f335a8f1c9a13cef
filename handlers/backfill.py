"""``mailpipe backfill SOURCE... --store URL``: bring an existing archive in as raw messages, so a new customer's
history goes through the same pipeline as new mail.

A SOURCE is a Maildir (a folder with ``cur/`` and ``new/``), an mbox file (starts with ``From ``), a single
message file, or a folder of message files (walked, hidden files skipped). Each message is stored as
``raw/<id>.eml`` exactly as archived, with no envelope (it is unknown: the parsed JSON's ``envelope`` is null and
routing, which reads envelope recipients only, matches nothing). Its id hashes the bytes alone, so a message
archived twice, or a second run, is stored once (``duplicates``). The store's object-created event then parses
it: a bucket trigger on the clouds; on a folder store, the next ``mailpipe serve`` start picks up every raw message
not yet done.

Progress: one JSON line on stderr every ``--progress`` messages; the summary as one JSON line on stdout.
Exit codes: 0 every message stored or already there; 1 some failed (the store was unavailable: run it again, it
is idempotent) or a SOURCE could not be read; 2 bad usage or configuration.
"""

from __future__ import annotations

import json
import mailbox
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterator

    from mailpipe.core.ports import ObjectStore


def messages(source: Path) -> Iterator[tuple[str, bytes]]:
    """(where, raw bytes) of every message in ``source``, one at a time (an mbox is indexed, not loaded).
    Raises OSError for a source that cannot be read."""
    if source.is_dir() and (source / "cur").is_dir() and (source / "new").is_dir():
        box = mailbox.Maildir(source, factory=None, create=False)
        for key in sorted(box.keys()):
            yield f"{source}:{key}", box.get_bytes(key)
    elif source.is_dir():
        for dirpath, dirnames, filenames in os.walk(source):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(n for n in filenames if not n.startswith(".")):
                path = Path(dirpath) / name
                yield str(path), path.read_bytes()
    else:
        with source.open("rb") as f:
            is_mbox = f.read(5) == b"From "
        if not is_mbox:
            yield str(source), source.read_bytes()
            return
        mbox = mailbox.mbox(source, create=False)
        try:
            for i, key in enumerate(mbox.iterkeys()):
                yield f"{source}#{i + 1}", mbox.get_bytes(key)
        finally:
            mbox.close()


def store_one(store: ObjectStore, raw: bytes) -> bool:
    """Store ``raw`` under its content id; False if it was there already. Raises TransientError, InvalidKey."""
    from mailpipe.core.keys import message_id, raw_key

    return store.put(raw_key(message_id(raw, None)), raw, content_type="message/rfc822", if_absent=True)


def command(args: argparse.Namespace) -> int:
    """The ``backfill`` verb. Raises ConfigError (exit 2) for a bad store URL or settings."""
    from mailpipe.core.errors import TransientError
    from mailpipe.core.settings import Settings
    from mailpipe.providers import open_store

    settings = Settings.from_env(store_url=args.store)
    store = open_store(settings.store_url, settings)
    limit = settings.max_message_bytes
    counts = {"read": 0, "stored": 0, "duplicates": 0, "too_large": 0, "empty": 0, "failed": 0}
    start, status = time.monotonic(), 0
    for source in map(Path, args.sources):
        try:
            for where, raw in messages(source):
                counts["read"] += 1
                if not raw.strip():
                    counts["empty"] += 1
                elif len(raw) > limit:  # what the edge would refuse (552) is not let in by the back door
                    counts["too_large"] += 1
                    print(f"mailpipe backfill: {where}: {len(raw)} bytes, over the {limit}-byte limit", file=sys.stderr)
                else:
                    try:
                        counts["stored" if store_one(store, raw) else "duplicates"] += 1
                    except TransientError as exc:
                        counts["failed"] += 1
                        print(f"mailpipe backfill: {where}: not stored: {exc}", file=sys.stderr)
                if counts["read"] % args.progress == 0:
                    _progress(counts, start)
        except OSError as exc:
            print(f"mailpipe backfill: cannot read {source}: {exc.strerror or exc}", file=sys.stderr)
            status = 1
    summary = {**counts, "seconds": round(time.monotonic() - start, 3), "store": settings.store_url}
    sys.stdout.write(json.dumps(summary) + "\n")
    return 1 if counts["failed"] else status


def _progress(counts: dict[str, int], start: float) -> None:
    elapsed = max(time.monotonic() - start, 1e-9)
    print(json.dumps({"progress": counts, "per_second": round(counts["read"] / elapsed, 1)}), file=sys.stderr)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``backfill`` verb on the ``mailpipe`` command line."""
    bp = sub.add_parser("backfill", help="store an archive (Maildir, mbox, .eml files) as raw messages to process")
    bp.add_argument("sources", nargs="+", metavar="SOURCE", help="a Maildir, an mbox file, a message file or folder")
    bp.add_argument("--store", required=True, help="store URL the messages go to (file://, s3://, gs://, azblob://)")
    bp.add_argument("--progress", type=int, default=1000, metavar="N", help="a progress line every N messages")
    bp.set_defaults(func=command)
