"""``mailpipe dlq list|show|redrive --store URL [--dlq URL]``: the quarantined messages of any store and the
events a cloud queue dead-lettered, and sending them back through the normal path once the cause is fixed (a
rule, an enricher, a limit, an engine that was down).

``--dlq`` names the platform's dead-letter queue: ``sqs://NAME`` (the event queue's SQS dead-letter queue),
``pubsub://PROJECT/SUBSCRIPTION`` (the dead-letter topic's subscription), ``azqueue://ACCOUNT/QUEUE-poison``.
Its entries show the message the event names, the reason and error of the last failure (``retry/<id>.json``,
left by the function on each transient failure), the attempts and when it was dead-lettered; ``list`` leaves
them where they are (held for a moment, then released), ``redrive`` runs each event through the pipeline as
the function would and deletes it from the queue once it ends parsed or quarantined.

``list`` prints one JSON line per record of ``quarantine/`` (id, reason, raw key, the first line of the error);
records already redriven are left out unless ``--all``. ``show ID`` prints one record whole. ``redrive [ID...]``
(default: every record listed; ``--reason`` and ``--since`` narrow) runs each message through the pipeline built
as ``serve`` builds it (``--queue``, ``--rules``, ``--enrich`` or MAILPIPE_*), and prints what happened to each:
``done`` (the record is kept, marked ``redriven``), ``quarantined`` again (the record now holds the new reason),
``retry`` (a transient failure: run it again) or ``not_redrivable`` (an undecodable platform event has no message
to re-run); a dead letter also ``not_found`` (its object is not in ``--store``: a wrong store?) or ``ignored``
(its key is no raw message of this store), and stays in its queue.

Exit codes: 0 success (redrive: every entry done); 1 some entry was not done, or the id is unknown; 2 bad usage
or configuration.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Iterator

    from mailpipe.core.ports import DeadLetter, Decoder, ObjectStore

QUARANTINE = "quarantine/"
HOLD = 60  # seconds a listed letter is hidden from other readers (released as soon as the listing is done)
REDRIVE_HOLD = 600  # seconds a batch being redriven is hidden (those that stay are released at the end)


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
    out = {"source": "quarantine", "id": rec.get("id"), "reason": rec.get("reason"), "raw_key": rec.get("raw_key"),
           "attempts": rec.get("attempts"), "detail": _first_line(rec.get("detail")), "at": rec.get("at")}  # fmt: skip
    return {**out, "redriven": rec["redriven"]} if "redriven" in rec else out


def _first_line(text: Any) -> str:
    lines = str(text or "").splitlines()[:1]
    return lines[0][:200] if lines else ""


def _since(args: argparse.Namespace) -> Callable[[str | None], bool]:
    """``--since DATE``: keep entries at or after DATE (one of unknown time is kept)."""
    if not getattr(args, "since", None):
        return lambda at: True
    from mailpipe.handlers.replay import parse_when

    since = parse_when(args.since)
    return lambda at: at is None or parse_when(at) >= since


def letter_entry(store: ObjectStore, decode: Decoder, letter: DeadLetter, url: str) -> dict[str, Any]:
    """One dead letter as ``list`` shows it: the message its event names and its last failure's note."""
    from mailpipe.core.errors import MalformedEvent, ObjectNotFound
    from mailpipe.core.keys import id_from_raw_key, retry_key

    out: dict[str, Any] = {"source": "dlq", "dlq": url, "message_id": letter.id, "id": None}
    try:
        deliveries = decode(letter.record)
    except MalformedEvent as exc:
        return {**out, "reason": "malformed_event", "raw_key": None, "attempts": letter.attempts,
                "detail": _first_line(exc), "at": letter.sent_at}  # fmt: skip
    key = deliveries[0].ref.key if deliveries else None
    mid = id_from_raw_key(key) if key else None
    note: dict[str, Any] = {}
    if mid is not None:
        try:
            note = json.loads(store.get(retry_key(mid)))
        except (ObjectNotFound, ValueError):
            note = {}
    return {**out, "id": mid, "reason": note.get("reason") or "dead_lettered", "raw_key": key,
            "attempts": letter.attempts or note.get("attempt"), "detail": _first_line(note.get("error")),
            "at": letter.sent_at}  # fmt: skip


def dead_letters(args: argparse.Namespace, settings: Any) -> Any:
    """The dead-letter queue of ``--dlq``. Raises ConfigError for a bad URL."""
    from mailpipe.providers import open_dead_letters

    return open_dead_letters(args.dlq, settings)


def receive(queue: Any, url: str, limit: int, hold: float) -> list[DeadLetter]:
    """Up to ``limit`` letters, held for ``hold`` seconds; a queue that does not answer is a ConfigError naming
    it (exit 2: nothing was done)."""
    from mailpipe.core.errors import ConfigError, TransientError

    try:
        return list(queue.receive(limit, hold))
    except TransientError as exc:
        raise ConfigError(f"dead-letter queue {url} cannot be reached: {exc}") from exc


def _open(args: argparse.Namespace) -> tuple[Any, ObjectStore]:
    """Settings and the store; the store must answer (ConfigError naming it otherwise: exit 2)."""
    from mailpipe.core.errors import ConfigError
    from mailpipe.core.log import configure
    from mailpipe.core.settings import Settings
    from mailpipe.handlers.check import unreachable
    from mailpipe.providers import open_store

    settings = Settings.from_env(
        store_url=args.store, queue_url=getattr(args, "queue", None), rules_file=getattr(args, "rules", None),
        enrichers=tuple(n for n in (getattr(args, "enrich", None) or "").split(",") if n) or None,
    )  # fmt: skip
    store = open_store(settings.store_url, settings)
    if problem := unreachable("store", settings.store_url, store):
        raise ConfigError(problem)
    configure("WARNING")  # the pipeline's own warnings as JSON lines on stderr; results go to stdout
    return settings, store


def list_command(args: argparse.Namespace) -> int:
    settings, store = _open(args)
    keep = _since(args)
    for rec in records(store, reason=args.reason, everything=args.all):
        if keep(rec.get("at")):
            sys.stdout.write(json.dumps(summary(rec)) + "\n")
    if args.dlq:
        queue = dead_letters(args, settings)
        letters = receive(queue, args.dlq, args.limit, HOLD)
        try:
            decode = queue.decoder(store)
            for letter in letters:
                entry = letter_entry(store, decode, letter, args.dlq)
                if (args.reason is None or entry["reason"] == args.reason) and keep(entry["at"]):
                    sys.stdout.write(json.dumps(entry) + "\n")
        finally:
            for letter in letters:
                queue.release(letter)
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
    if args.dlq:
        return _redrive_letters(args, settings, store, pipe)
    wanted, keep = set(args.ids or ()), _since(args)
    entries = [r for r in records(store, reason=args.reason)
               if (not wanted or r.get("id") in wanted) and keep(r.get("at"))]  # fmt: skip
    missing = wanted - {r.get("id") for r in entries}
    status = 1 if missing else 0
    for mid in sorted(missing):
        print(f"mailpipe dlq: no quarantine record {mid} waiting for a redrive", file=sys.stderr)
    for rec in entries:
        result = _redrive(store, pipe, rec)
        status = status if result["outcome"] == "done" else 1
        sys.stdout.write(json.dumps(result) + "\n")
    return status


def _redrive_letters(args: argparse.Namespace, settings: Any, store: ObjectStore, pipe: Any) -> int:
    """Run each dead letter through the pipeline as the function would, ten at a time (each batch held for
    ``REDRIVE_HOLD`` seconds); delete it once it ended parsed or quarantined in this store (nothing is lost).
    A letter that failed transiently again, was not chosen, names no message of this store (``ignored``: a
    wrong ``--store``?) or cannot be decoded stays in the queue, released at the end."""
    from mailpipe.core.pipeline import Outcome

    queue = dead_letters(args, settings)
    decode, keep, wanted, status = queue.decoder(store), _since(args), set(args.ids or ()), 0
    seen: set[str] = set()
    held: list[DeadLetter] = []
    try:
        while len(seen) < args.limit:
            batch = [lt for lt in receive(queue, args.dlq, min(10, args.limit - len(seen)), REDRIVE_HOLD)
                     if lt.id not in seen]  # fmt: skip
            if not batch:
                break
            for letter in batch:
                seen.add(letter.id)
                entry = letter_entry(store, decode, letter, args.dlq)
                chosen = (not wanted or entry["id"] in wanted or letter.id in wanted) and keep(entry["at"])
                if not chosen or (args.reason is not None and entry["reason"] != args.reason):
                    held.append(letter)
                    continue
                out = {"source": "dlq", "message_id": letter.id, "id": entry["id"], "was": entry["reason"]}
                if entry["reason"] == "malformed_event":
                    held.append(letter)
                    out.update(outcome="not_redrivable", detail=entry["detail"])
                elif entry["id"] and not store.exists(entry["raw_key"]):  # a wrong --store, or a deleted object
                    held.append(letter)
                    out.update(outcome="not_found", detail=f"{entry['raw_key']} is not in {args.store}")
                else:
                    outcome = pipe.run_record(decode, letter.record)
                    out["outcome"] = outcome.value
                    if outcome in (Outcome.DONE, Outcome.QUARANTINED):
                        queue.remove(letter)
                        if outcome is Outcome.QUARANTINED:
                            out["reason"] = _quarantine_reason(store, entry["id"])
                    else:  # retry: again later; ignored: not a message of this store
                        held.append(letter)
                        if outcome is Outcome.IGNORED:
                            out["detail"] = f"{entry['raw_key'] or 'its key'} is no raw message of {args.store}"
                status = status if out["outcome"] in ("done", "quarantined") else 1
                sys.stdout.write(json.dumps(out) + "\n")
    finally:
        for letter in held:
            queue.release(letter)
    return status


def _quarantine_reason(store: ObjectStore, mid: str | None) -> str | None:
    from mailpipe.core.errors import ObjectNotFound
    from mailpipe.core.keys import quarantine_key

    try:
        return json.loads(store.get(quarantine_key(str(mid)))).get("reason") if mid else None
    except (ObjectNotFound, ValueError):
        return None


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
    rp.add_argument("ids", nargs="*", metavar="ID", help="message ids, or dead-letter message ids (default: all)")
    rp.add_argument("--reason", help="only records with this reason")
    rp.add_argument("--queue", help="notification queue URL (default: MAILPIPE_QUEUE)")
    rp.add_argument("--rules", help="routing rules file (default: MAILPIPE_RULES)")
    rp.add_argument("--enrich", metavar="NAME,...", help="enrichers (default: MAILPIPE_ENRICHERS)")
    rp.set_defaults(func=redrive_command)
    for p in (lp, rp):
        p.add_argument("--dlq", metavar="URL", help="also the platform's dead-letter queue (sqs://, pubsub://, azqueue://)")
        p.add_argument("--since", metavar="DATE", help="only entries quarantined or dead-lettered at or after DATE")
        p.add_argument("--limit", type=int, default=1000, help="dead letters read at most (default 1000)")
    for p in (lp, sp, rp):
        p.add_argument("--store", required=True, help="store URL holding quarantine/")
