"""The stateless parse step: ``raw/<id>.eml`` in; attachments, ``parsed/<id>.json`` and a notification out.

Every output key is derived from the message id, every write is safe to repeat: processing the same raw object
again (an at-least-once redelivery, a restart) produces the same keys and the same notification. Permanent
errors (mailpipe.core.errors.PermanentError) write ``quarantine/<id>.json`` and are acknowledged; anything else is
RETRY, so the platform redelivers.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mailpipe.core import RELEASE, metrics, quarantine
from mailpipe.core.errors import (
    MalformedEvent,
    MalformedMessage,
    ObjectNotFound,
    PermanentError,
    PipelineError,
    RetriesExhausted,
)
from mailpipe.core.keys import (
    PARSED_PREFIX,
    QUARANTINE_PREFIX,
    RAW_PREFIX,
    RAW_SUFFIX,
    envelope_key,
    id_from_parsed_key,
    id_from_raw_key,
    parsed_key,
    retry_key,
    version_key,
)
from mailpipe.core.log import log_context
from mailpipe.core.mime.parser import parse
from mailpipe.core.model import NOTIFICATION_SCHEMA, Envelope, dumps

if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterator

    from mailpipe.core.enrich.derived import Derived
    from mailpipe.core.ports import Delivery, ObjectStore, Publisher
    from mailpipe.core.routing.dispatch import Router
    from mailpipe.core.routing.plan import Plan
    from mailpipe.core.settings import Settings

log = logging.getLogger("mailpipe.pipeline")


class Outcome(enum.Enum):
    """What happened to one unit of work; the handler maps it to the platform's signal (ack, retry...)."""

    DONE = "done"
    QUARANTINED = "quarantined"
    RETRY = "retry"
    IGNORED = "ignored"


_SEVERITY = {Outcome.IGNORED: 0, Outcome.DONE: 1, Outcome.QUARANTINED: 2, Outcome.RETRY: 3}


class Pipeline:
    """Parse stored messages. Thread-safe if the store and publisher are; holds no per-message state."""

    def __init__(
        self, store: ObjectStore, publisher: Publisher, settings: Settings, *, router: Router | None = None
    ) -> None:
        """``settings.enrichers`` run after parsing (docs/enrichers.md); ``router`` applies routing rules
        (docs/rules.md). Raises ConfigError now, at cold start, for an unknown enricher or a bad config."""
        self.store, self.publisher, self.settings, self.router = store, publisher, settings, router
        self._enrich: Callable[..., tuple[dict[str, Any], list[Derived]]] | None = None
        versions: dict[str, str] = {}
        config: dict[str, Any] = {}
        if settings.enrichers:
            from mailpipe.core.enrich.derived import DerivedLimits
            from mailpipe.core.enrich.registry import load_config, load_enricher
            from mailpipe.core.enrich.run import enrich_message

            versions = {name: str(load_enricher(name).version) for name in settings.enrichers}
            DerivedLimits.from_config(config := load_config(settings.enrich_config_file))
            self._enrich = functools.partial(enrich_message, names=list(settings.enrichers), config=config)
        self.processed_by = processed_by(versions, config)

    def process_key(self, key: str) -> Outcome:
        """Process ``raw/<id>.eml``; any other key is IGNORED. Never raises."""
        return self.process(key).outcome

    def process(self, key: str) -> Processed:
        """``process_key`` with, for a RETRY, the stable reason and the error's first line. Never raises."""
        start = time.perf_counter()
        result = self._process_key(key)
        metrics.inc("mailpipe_messages_total", outcome=result.outcome.value)
        if result.outcome is not Outcome.IGNORED:
            metrics.observe("mailpipe_parse_seconds", time.perf_counter() - start)
        return result

    def _process_key(self, key: str) -> Processed:
        mid = id_from_raw_key(key)
        if mid is None:
            log.info("ignored key", extra={"key": key[:200]})
            return Processed(Outcome.IGNORED)
        with log_context(id=mid, key=key):
            try:
                disposition, attachments = self._process(mid, key)
            except PermanentError as exc:
                return Processed(self._quarantine(mid, exc, raw_key=key))
            except Exception as exc:
                reason = exc.reason if isinstance(exc, PipelineError) else "unexpected"
                log.warning("will retry", extra={"reason": reason, "error": type(exc).__name__},
                            exc_info=reason == "unexpected")  # fmt: skip
                return Processed(Outcome.RETRY, reason, f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
            outcome = Outcome.QUARANTINED if disposition == "quarantine" else Outcome.DONE
            log.info(
                "parsed", extra={"outcome": outcome.value, "routing": disposition, "attachments": attachments}
            )
            return Processed(outcome)

    def give_up(self, key: str, attempts: int, last: Processed | None = None) -> Outcome:
        """Quarantine ``key`` after ``attempts`` transient failures (reason ``retries_exhausted``, the last
        failure's reason and error in the detail): a local runner's cap, as a cloud queue's maxReceiveCount.
        RETRY if the record cannot be written."""
        mid = id_from_raw_key(key)
        if mid is None:
            return Outcome.IGNORED
        detail = f"{attempts} attempts failed transiently"
        if last is not None and last.reason:
            detail += f"; last: {last.reason}: {last.error}"
        with log_context(id=mid, key=key):
            outcome = self._quarantine(mid, RetriesExhausted(detail), raw_key=key, attempts=attempts)
        metrics.inc("mailpipe_messages_total", outcome="gave_up" if outcome is Outcome.QUARANTINED else "retry")
        return outcome

    def run_delivery(self, delivery: Delivery) -> Outcome:
        """Process the object a platform event named; the log lines carry the delivery id and attempt. A RETRY
        leaves ``retry/<id>.json`` (reason, error, attempt): what ``mailpipe dlq`` shows for the message if
        the platform dead-letters it."""
        with log_context(delivery_id=delivery.id, attempt=delivery.attempt):
            result = self.process(delivery.ref.key)
            if result.outcome is Outcome.RETRY:
                self._note_retry(delivery, result)
            return result.outcome

    def _note_retry(self, delivery: Delivery, result: Processed) -> None:
        mid = id_from_raw_key(delivery.ref.key)
        if mid is None:
            return
        note = {"id": mid, "raw_key": delivery.ref.key, "reason": result.reason, "error": result.error,
                "attempt": delivery.attempt, "delivery_id": delivery.id,
                "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip
        try:
            self.store.put(retry_key(mid), dumps(note), content_type="application/json")
        except Exception as exc:  # the store may be what failed: the log line is the record then
            log.info("retry note not written", extra={"reason": "retry_note_failed", "error": type(exc).__name__})

    def run_record(self, decode: Callable[[Any], list[Delivery]], record: Any) -> Outcome:
        """Decode one platform record and process its deliveries; return the worst outcome.

        A record that cannot be decoded (MalformedEvent) is quarantined under ``quarantine/<hash>.json``.
        """
        try:
            deliveries = decode(record)
        except MalformedEvent as exc:
            text = json.dumps(record, default=repr, sort_keys=True)[:100_000]
            digest = hashlib.sha256(text.encode()).hexdigest()[:32]
            outcome = self._quarantine(digest, exc, record=text)
            metrics.inc("mailpipe_messages_total", outcome="malformed_event" if outcome is Outcome.QUARANTINED
                        else outcome.value)  # fmt: skip
            return outcome
        outcomes = [self.run_delivery(d) for d in deliveries]
        return max(outcomes, key=_SEVERITY.__getitem__, default=Outcome.IGNORED)

    def _process(self, mid: str, key: str) -> tuple[str, int]:
        doc, payloads, derived = self._build(mid, key)
        plan = self.router.plan(doc) if self.router is not None else None  # adds routing, tags
        self.store.put(parsed_key(mid), dumps(doc), content_type="application/json")
        return self._emit(doc, plan, payloads, derived), len(payloads)

    def _build(
        self, mid: str, key: str, *, refresh: bool = False
    ) -> tuple[dict[str, Any], dict[str, bytes], list[str]]:
        """Parse ``key``, write its attachments and derived files; the parsed dict, payloads, derived keys.
        ``refresh`` (a replay): an attachment already stored with other bytes is rewritten."""
        raw = self.store.get(key)
        result = parse(raw, limits=self.settings.limits, envelope=self._envelope(mid), mid=mid)
        message = result.message
        types = {a.key: a.content_type for a in message.attachments if a.key}
        for akey in sorted(result.payloads):
            content_type, data = types.get(akey, "application/octet-stream"), result.payloads[akey]
            written = self.store.put(akey, data, content_type=content_type, if_absent=True)
            if refresh and not written and self.store.get(akey) != data:
                self.store.put(akey, data, content_type=content_type)
        doc = message.to_dict()
        doc["raw_key"] = key
        doc["processed_by"] = dict(self.processed_by)
        derived: list[str] = []
        if self._enrich is not None:  # an engine outage raises TransientError: RETRY
            doc["enrichments"], files = self._enrich(doc, result.payloads, raw)
            derived = self._store_derived(files)  # before the JSON that lists them, as the attachments are
        return doc, result.payloads, derived

    def _emit(self, doc: dict[str, Any], plan: Plan | None, payloads: dict[str, bytes], derived: list[str]) -> str:
        """Carry out the routing plan, then the default notification unless a rule held or dropped the message."""
        if plan is not None:
            self.router.act(plan, doc, payloads)  # type: ignore[union-attr]
            if plan.disposition != "deliver":  # quarantined or dropped by a rule: no default notification
                return plan.disposition
        self.publisher.publish(dumps(notification(doc, sorted(payloads), sorted(derived))), key=doc["id"])
        return "deliver"

    def replay_key(self, key: str, *, emit: bool = False) -> Replayed:
        """Parse ``raw/<id>.eml`` again into version ``processed_by["version"]`` (``mailpipe replay``).

        The new document is written to ``parsed/<id>.json`` (one atomic put switches readers to it) after the
        one it replaces is kept under its own version (``parsed/<id>/<old>.json``), then (after the emit, with
        ``emit``) to ``parsed/<id>/<version>.json``, which marks the message done: a message is ``current``
        (skipped: a resumed run) only while that marker exists and ``parsed/<id>.json`` is of this version, so
        a rollback to an earlier version, or a replay after the live path re-parsed the message, does the work.
        Attachments whose bytes changed (a parser fix) are rewritten. Without ``emit`` nothing is sent and the
        old document's ``routing`` and ``tags`` are carried over; with it routing runs again and the
        notification goes out, as for new mail. Never raises: errors are the result's ``failed`` status with
        the reason.
        """
        mid = id_from_raw_key(key)
        if mid is None:
            return Replayed("ignored", key)
        version = self.processed_by["version"]
        with log_context(id=mid, key=key):
            try:
                old = self._current(mid)
                if old is not None and _version_of(old) == version and self.store.exists(version_key(mid, version)):
                    return Replayed("current", key)
                doc, payloads, derived = self._build(mid, key, refresh=True)
                plan = None
                if emit and self.router is not None:
                    plan = self.router.plan(doc)
                elif old is not None:
                    doc.update({k: old[1][k] for k in ("routing", "tags") if k in old[1]})
                if old is not None and (was := _version_of(old)) != version:
                    self.store.put(version_key(mid, was), old[0], content_type="application/json", if_absent=True)
                body = dumps(doc)
                self.store.put(parsed_key(mid), body, content_type="application/json")
                if emit:  # before the marker: a failed emit leaves the message to do again
                    self._emit(doc, plan, payloads, derived)
                self.store.put(version_key(mid, version), body, content_type="application/json")
            except Exception as exc:
                reason = exc.reason if isinstance(exc, PipelineError) else "unexpected"
                log.warning("replay failed", extra={"reason": reason, "error": type(exc).__name__})
                return Replayed("failed", key, reason, f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
        log.info("replayed", extra={"version": version, "emitted": emit})
        return Replayed("replayed", key)

    def _current(self, mid: str) -> tuple[bytes, dict[str, Any]] | None:
        """The bytes and dict of ``parsed/<id>.json`` (an unreadable one: an empty dict), None if there is none."""
        try:
            data = self.store.get(parsed_key(mid))
        except ObjectNotFound:
            return None
        try:
            doc = json.loads(data)
        except ValueError:
            doc = None
        return data, doc if isinstance(doc, dict) else {}

    def _store_derived(self, files: list[Derived]) -> list[str]:
        """Write derived files (if_absent); one with other bytes (enrichers changed since) is replaced."""
        for f in files:
            written = self.store.put(f.key, f.data, content_type=f.content_type, if_absent=True)
            if not written and self.store.get(f.key) != f.data:
                self.store.put(f.key, f.data, content_type=f.content_type)
        return [f.key for f in files]

    def _envelope(self, mid: str) -> Envelope | None:
        try:
            data = self.store.get(envelope_key(mid))
        except ObjectNotFound:
            # a backfilled message has none by design; a message of our edge always has one
            log.info("no envelope sidecar; parsing without it", extra={"reason": "no_envelope"})
            return None
        try:
            return Envelope.from_dict(json.loads(data))
        except (ValueError, KeyError, TypeError) as exc:
            raise MalformedMessage(f"envelope sidecar unreadable: {type(exc).__name__}") from exc

    def _quarantine(self, mid: str, exc: PermanentError, **fields: Any) -> Outcome:
        try:
            qkey = quarantine.put(self.store, mid, exc.reason, str(exc), **fields)
        except Exception as err:  # the quarantine record itself could not be written: try again later
            extra = {"reason": "quarantine_failed", "error": type(err).__name__}
            log.warning("quarantine write failed", extra=extra)
            return Outcome.RETRY
        log.warning("quarantined", extra={"outcome": "quarantined", "reason": exc.reason, "qkey": qkey})
        return Outcome.QUARANTINED


@dataclass(frozen=True, slots=True)
class Processed:
    """What ``process`` did to one key; ``reason``/``error`` say why a RETRY failed."""

    outcome: Outcome
    reason: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Replayed:
    """What ``replay_key`` did to one key: ``replayed``, ``current`` (already at this version: done by an
    earlier run), ``failed`` (with the stable reason and the first line of the error) or ``ignored``."""

    status: str
    key: str
    reason: str | None = None
    error: str | None = None


_UNSAFE_VERSION = re.compile(r"[^A-Za-z0-9._-]+")


def processed_by(enrichers: dict[str, str], config: dict[str, Any]) -> dict[str, Any]:
    """The ``processed_by`` of a parsed document: the code's release, each enricher's version (run order) and a
    ``version`` name built from them, e.g. ``0.1.0.links-1.auth-2.c1a2b3c`` (``c``: a digest of the enrichers'
    settings, when there are any). The name keys ``parsed/<id>/<version>.json``, so a replay with other code,
    enrichers or settings writes beside the old document instead of over it."""
    name = RELEASE + "".join(f".{n}-{v}" for n, v in enrichers.items())
    sections = {n: config[n] for n in enrichers if config.get(n)}
    if sections:
        digest = hashlib.sha256(json.dumps(sections, sort_keys=True, default=str).encode()).hexdigest()
        name += ".c" + digest[:7]
    name = _UNSAFE_VERSION.sub("_", name)
    if len(name) > 200:
        name = RELEASE + ".e" + hashlib.sha256(name.encode()).hexdigest()[:16]
    return {"version": name, "mailpipe": RELEASE, "enrichers": dict(enrichers)}


def _version_of(current: tuple[bytes, dict[str, Any]]) -> str:
    """The version name a stored document was written under (from its ``processed_by``); one written before
    versions existed, or unreadable, is ``unversioned-<sha256 of its bytes>``."""
    by = current[1].get("processed_by")
    named = by.get("version") if isinstance(by, dict) else None
    if isinstance(named, str) and 0 < len(named) <= 200 and named[0].isalnum() and not _UNSAFE_VERSION.search(named):
        return named
    return "unversioned-" + hashlib.sha256(current[0]).hexdigest()[:16]


def notification(doc: dict[str, Any], attachment_keys: list[str], derived: list[str] | None = None) -> dict[str, Any]:
    """The compact queue message for a parsed document (deterministic: same document, same notification).
    ``derived_attachment_keys``: files enrichers found inside the message (docs/enrichers.md), if any."""
    note = {
        "schema": NOTIFICATION_SCHEMA,
        "id": doc["id"],
        "envelope": doc.get("envelope"),
        "subject": doc.get("subject"),
        "from": doc.get("from"),
        "raw_key": doc["raw_key"],
        "parsed_key": parsed_key(doc["id"]),
        "attachment_keys": attachment_keys,
    }
    if derived:
        note["derived_attachment_keys"] = derived
    if "tags" in doc:  # set by routing rules
        note["tags"] = doc["tags"]
    return note


def pending_raw_keys(store: ObjectStore, done: Collection[str] | None = None) -> Iterator[str]:
    """Raw messages with no quarantine record that are not ``done`` (default: no ``parsed/<id>.json``).

    ``parsed/<id>.json`` is written before the notification is published, so a runner that must also recover
    lost notifications records its own completion (e.g. the local done log) and passes those ids.
    """
    if done is None:
        done = {mid for k in store.list(PARSED_PREFIX) if (mid := id_from_parsed_key(k))}
    quarantined = {k[len(QUARANTINE_PREFIX) : -5] for k in store.list(QUARANTINE_PREFIX)}
    for key in sorted(store.list(RAW_PREFIX)):
        mid = id_from_raw_key(key) if key.endswith(RAW_SUFFIX) else None
        if mid is not None and mid not in done and mid not in quarantined:
            yield key
