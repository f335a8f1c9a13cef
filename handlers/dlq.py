"""``mailpipe dlq list|show|redrive --store URL``: the quarantined messages of any store, and sending them back
through the normal path once the cause is fixed (a rule, an enricher, a limit).

``list`` prints one JSON line per record of ``quarantine/`` (id, reason, raw key, the first line of the error);
records already redriven are left out unless ``--all``. ``show ID`` prints one record whole. ``redrive [ID...]``
(default: every record listed, ``--reason`` narrows) runs each message through the pipeline built as ``serve``
builds it (``--queue``, ``--rules``, ``--enrich`` or MAILPIPE_*), and prints what happened to each: ``done`` (the
record is kept, marked ``redriven``), ``quarantined`` again (the record now holds the new reason), ``retry`` (a
transient failure: run it again) or ``not_redrivable`` (an undecodable platform event has no message to re-run).

Exit codes: 0 success (redrive: every entry done); 1 some entry was not done, or the id is unknown; 2 bad usage
or configuration.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterator

    from mailpipe.core.ports import ObjectStore

QUARANTINE = "quarantine/"


def records(store: ObjectStore, *, reason: str | None = None, everything: bool = False) -> Iterator[dict[str, Any]]:
    """The quarantine records of ``store`` (unreadable ones as ``reason: "unreadable"``), one at a time."""
    from mailpipe.core.errors import ObjectNotFound

    for key in sorted(store.list(QUARANTINE)):
        if not key.endswith(".json"):
            continue
        try:
            rec = json.loads(store.get(key))
        except ObjectNotFound:
            continue
        except ValueError:
            rec = {"id": key[len(QUARANTINE) : -5], "reason": "unreadable", "detail": "not JSON"}
        if (reason is None or rec.get("reason") == reason) and (everything or "redriven" not in rec):
            yield rec


def summary(rec: dict[str, Any]) -> dict[str, Any]:
    """One record as ``list`` shows it: the first line of the error, at most 200 characters."""
    detail = str(rec.get("detail") or "").splitlines()[:1]
    out = {"id": rec.get("id"), "reason": rec.get("reason"), "raw_key": rec.get("raw_key"),
           "detail": detail[0][:200] if detail else ""}  # fmt: skip
    return {**out, "redriven": rec["redriven"]} if "redriven" in rec else out


def _open(args: argparse.Namespace) -> tuple[Any, ObjectStore]:
    from mailpipe.core.settings import Settings
    from mailpipe.providers import open_store

    settings = Settings.from_env(
        store_url=args.store, queue_url=getattr(args, "queue", None), rules_file=getattr(args, "rules", None),
        enrichers=tuple(n for n in (getattr(args, "enrich", None) or "").split(",") if n) or None,
    )  # fmt: skip
    return settings, open_store(settings.store_url, settings)


def list_command(args: argparse.Namespace) -> int:
    _, store = _open(args)
    for rec in records(store, reason=args.reason, everything=args.all):
        sys.stdout.write(json.dumps(summary(rec)) + "\n")
    return 0


def show_command(args: argparse.Namespace) -> int:
    from mailpipe.core.errors import ObjectNotFound
    from mailpipe.core.keys import is_message_id, quarantine_key

    _, store = _open(args)
    if not is_message_id(args.id):
        print(f"mailpipe dlq: {args.id!r} is not a message id", file=sys.stderr)
        return 1
    try:
        sys.stdout.write(json.dumps(json.loads(store.get(quarantine_key(args.id))), indent=2) + "\n")
    except ObjectNotFound:
        print(f"mailpipe dlq: no quarantine record {args.id}", file=sys.stderr)
        return 1
    return 0


def redrive_command(args: argparse.Namespace) -> int:
    """Re-run quarantined messages; one JSON line per entry. Raises ConfigError (exit 2)."""
    from mailpipe.handlers.compose import pipeline

    settings, store = _open(args)
    pipe = pipeline(settings, store)  # a bad rules file or enricher stops here, before any message
    wanted = set(args.ids or ())
    entries = [r for r in records(store, reason=args.reason) if not wanted or r.get("id") in wanted]
    missing = wanted - {r.get("id") for r in entries}
    status = 1 if missing else 0
    for mid in sorted(missing):
        print(f"mailpipe dlq: no quarantine record {mid} waiting for a redrive", file=sys.stderr)
    for rec in entries:
        result = _redrive(store, pipe, rec)
        status = status if result["outcome"] == "done" else 1
        sys.stdout.write(json.dumps(result) + "\n")
    return status


def _redrive(store: ObjectStore, pipe: Any, rec: dict[str, Any]) -> dict[str, Any]:
    from mailpipe.core.keys import quarantine_key
    from mailpipe.core.model import dumps
    from mailpipe.core.pipeline import Outcome

    out: dict[str, Any] = {"id": rec.get("id"), "was": rec.get("reason")}
    if not rec.get("raw_key"):
        return {**out, "outcome": "not_redrivable", "detail": "an undecodable platform event: no message to re-run"}
    outcome = pipe.process_key(rec["raw_key"])
    if outcome is Outcome.DONE:
        store.put(quarantine_key(str(rec["id"])), dumps({**rec, "redriven": {"outcome": "done"}}),
                  content_type="application/json")  # fmt: skip
        return {**out, "outcome": "done"}
    if outcome is Outcome.QUARANTINED:
        now = json.loads(store.get(quarantine_key(str(rec["id"]))))
        return {**out, "outcome": "quarantined", "reason": now.get("reason"), "detail": summary(now)["detail"]}
    return {**out, "outcome": outcome.value}


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``dlq list|show|redrive`` on the ``mailpipe`` command line."""
    dp = sub.add_parser("dlq", help="quarantined messages: list, show, redrive")
    verbs = dp.add_subparsers(dest="dlq_command", required=True)
    lp = verbs.add_parser("list", help="one JSON line per quarantined message")
    lp.add_argument("--reason", help="only this reason (malformed, too_large, rule, worker_crash, ...)")
    lp.add_argument("--all", action="store_true", help="include records already redriven")
    lp.set_defaults(func=list_command)
    sp = verbs.add_parser("show", help="one quarantine record, whole")
    sp.add_argument("id", help="the message id")
    sp.set_defaults(func=show_command)
    rp = verbs.add_parser("redrive", help="send quarantined messages through the pipeline again")
    rp.add_argument("ids", nargs="*", metavar="ID", help="message ids (default: every record, or --reason)")
    rp.add_argument("--reason", help="only records with this reason")
    rp.add_argument("--queue", help="notification queue URL (default: MAILPIPE_QUEUE)")
    rp.add_argument("--rules", help="routing rules file (default: MAILPIPE_RULES)")
    rp.add_argument("--enrich", metavar="NAME,...", help="enrichers (default: MAILPIPE_ENRICHERS)")
    rp.set_defaults(func=redrive_command)
    for p in (lp, sp, rp):
        p.add_argument("--store", required=True, help="store URL holding quarantine/")
