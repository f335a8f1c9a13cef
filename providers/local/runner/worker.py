"""The local stand-in for a cloud trigger: an in-process queue of created keys and worker threads.

Keys come from the store's object-created event and, at start-up, from the backlog: every raw message without
a line in the done log (``local/done.log``, written after the notification is published) or quarantine record.
RETRY outcomes are re-queued with a growing delay (a queue's visibility timeout); nothing is dropped while the
process lives, and a crash (kill -9) is recovered by the backlog scan on the next start.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from typing import TYPE_CHECKING

from mailpipe.core import quarantine
from mailpipe.core.errors import ObjectNotFound
from mailpipe.core.keys import envelope_key, id_from_raw_key, message_id
from mailpipe.core.model import Envelope
from mailpipe.core.pipeline import Outcome, Processed, pending_raw_keys
from mailpipe.providers.local.runner.journal import AttemptLog, DoneLog
from mailpipe.providers.local.store import FolderStore

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from mailpipe.core.ports import ObjectStore

log = logging.getLogger("mailpipe.worker")
MAX_CRASHES = 3  # a message that killed the parse worker this often is quarantined (a queue's maxReceiveCount)
_STOP = ""


class Pacer:
    """Let the SMTP edge go first: parse once keys stop arriving for ``quiet`` seconds, or after ``max_defer``.

    In one process the parse step's fsyncs share the filesystem journal with the edge's, and halve the accept
    rate of a single busy sender. A burst is accepted first and parsed right after it; under sustained load
    parsing runs at least every ``max_defer`` seconds, for as long as it takes to drain the backlog.
    """

    def __init__(self, quiet: float = 0.05, max_defer: float = 5.0) -> None:
        self.quiet, self.max_defer = quiet, max_defer
        self._last_arrival = 0.0
        self._deferring_since: float | None = None

    def arrived(self) -> None:
        self._last_arrival = time.monotonic()

    def wait(self) -> None:
        """Called before each key; returns at once while a backlog is being drained."""
        start = self._deferring_since = self._deferring_since or time.monotonic()
        while time.monotonic() - self._last_arrival < self.quiet and time.monotonic() - start < self.max_defer:
            time.sleep(self.quiet)

    def drained(self) -> None:
        self._deferring_since = None


class LocalWorker:
    """Run ``process(key)`` on ``threads`` daemon threads; ``submit`` is safe from any thread.

    ``finished(key)`` is called after a DONE or QUARANTINED outcome (records completion in the done log).
    A key that is still RETRY after ``max_attempts`` tries goes to ``give_up(key, attempts, last)`` (the
    pipeline quarantines it with the reason), never round for ever.
    """

    def __init__(
        self,
        process: Callable[[str], Outcome | Processed],
        *,
        threads: int = 1,
        max_delay: float = 60.0,
        finished: Callable[[str], None] | None = None,
        pacer: Pacer | None = None,
        attempts: AttemptLog | None = None,
        max_attempts: int | None = None,
        give_up: Callable[[str, int, Processed | None], Outcome] | None = None,
        settled: Callable[[], None] | None = None,
    ) -> None:
        self._process, self._max_delay, self._finished, self._pacer = process, max_delay, finished, pacer
        self._settled = settled
        self._attempts, self._max_attempts, self._give_up = attempts, max_attempts, give_up
        self._queue: queue.SimpleQueue[tuple[str, int]] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._run, name=f"mailpipe-worker-{n}", daemon=True) for n in range(threads)
        ]
        self._pending = 0
        self._stopping = False
        self._lock = threading.Condition()

    def start(self) -> LocalWorker:
        for t in self._threads:
            t.start()
        return self

    def submit(self, key: str, attempt: int = 1) -> None:
        with self._lock:
            self._pending += 1
        if self._pacer is not None:
            self._pacer.arrived()
        self._queue.put((key, attempt))

    @property
    def backlog(self) -> int:
        """Keys submitted and not finished yet (retries waiting for their turn included)."""
        return self._pending

    def wait_idle(self, timeout: float) -> bool:
        """True once every submitted key is finished (retries scheduled later count as pending)."""
        with self._lock:
            return self._lock.wait_for(lambda: self._pending == 0, timeout)

    def stop(self, timeout: float = 10.0, *, drain: bool = True) -> None:
        """Stop the threads: after every queued key (``drain``) or after the keys in progress."""
        self._stopping = not drain
        for _ in self._threads:
            self._queue.put((_STOP, 0))
        for t in self._threads:
            t.join(timeout)

    def _run(self) -> None:
        while True:
            key, attempt = self._queue.get()
            if key == _STOP or self._stopping:
                return
            if self._pacer is not None:
                self._pacer.wait()
            try:
                if self._attempts is not None:
                    self._attempts.record(key, "b")  # unmatched after a crash: counted at the next start
                result = self._process(key)
                outcome, last = (result.outcome, result) if isinstance(result, Processed) else (result, None)
                if outcome is Outcome.RETRY and self._give_up and self._max_attempts and attempt >= self._max_attempts:
                    outcome = self._give_up(key, attempt, last)
                if self._attempts is not None:
                    self._attempts.record(key, "e")
                if self._finished and outcome in (Outcome.DONE, Outcome.QUARANTINED):
                    self._finished(key)
            except Exception:  # Pipeline.process_key never raises; a marker write may: retry the key
                log.warning("worker step failed", extra={"reason": "worker_error"}, exc_info=True)
                outcome = Outcome.RETRY
            if outcome is Outcome.RETRY:
                self._retry_later(key, attempt)
            elif self._settled is not None:
                self._settled()
            if self._pacer is not None and self._queue.empty():
                self._pacer.drained()
            self._done()

    def _retry_later(self, key: str, attempt: int) -> None:
        delay = min(self._max_delay, 0.5 * 2**attempt)
        with self._lock:
            self._pending += 1
        timer = threading.Timer(delay, self._queue.put, ((key, attempt + 1),))
        timer.daemon = True
        timer.start()

    def _done(self) -> None:
        with self._lock:
            self._pending -= 1
            self._lock.notify_all()


def pending(store: ObjectStore, keep: Callable[[str], bool] | None = None) -> Iterator[str]:
    """Raw messages the local runner has not finished (crash recovery at start-up).

    A message on which the worker died ``MAX_CRASHES`` times is quarantined (reason ``worker_crash``) instead
    of being retried for ever: the local counterpart of a cloud queue's dead-letter redrive. A message that
    does not hash to its id is skipped: a write cut short by a power loss before its 250 (the folder store
    links names before the fsync that makes them durable); the sender retries and the retry repairs it.
    ``keep``: only the keys it accepts are looked at (a worker's share).
    """
    crashes = AttemptLog(store).crashes()
    for key in pending_raw_keys(store, DoneLog(store).ids()):
        if keep is not None and not keep(key):  # another worker's share: not read, not checked
            continue
        mid = str(id_from_raw_key(key))
        if crashes[mid] >= MAX_CRASHES:
            quarantine.put(store, mid, "worker_crash", f"{crashes[mid]} crashes", if_absent=True, raw_key=key,
                           attempts=crashes[mid])  # fmt: skip
            log.error("quarantined", extra={"reason": "worker_crash", "id": mid})
            continue
        # the folder store carries the envelope on the .eml too (a power cut can empty the sidecar)
        if isinstance(store, FolderStore) and store.restore_sidecar(key, envelope_key(mid)):
            log.warning("envelope restored from its message", extra={"reason": "sidecar_restored", "id": mid})
        if not intact(store, key, mid):
            log.warning("torn write skipped (never acknowledged)", extra={"reason": "torn_write", "id": mid})
            continue
        yield key


def intact(store: ObjectStore, key: str, mid: str) -> bool:
    """True if the raw message and its envelope (if any) hash to ``mid`` (mailpipe.core.keys.message_id)."""
    try:
        raw = store.get(key)
    except ObjectNotFound:
        return False
    try:
        envelope: Envelope | None = Envelope.from_dict(json.loads(store.get(envelope_key(mid))))
    except ObjectNotFound:
        envelope = None
    except (ValueError, TypeError, KeyError, AttributeError):  # an envelope cut short
        return False
    return message_id(raw, envelope) == mid


def run_local(
    store: ObjectStore,
    process: Callable[[str], Outcome | Processed],
    *,
    scan: bool = True,
    pacer: Pacer | None = None,
    threads: int = 1,
    max_attempts: int | None = None,
    give_up: Callable[[str, int, Processed | None], Outcome] | None = None,
    settled: Callable[[], None] | None = None,
) -> LocalWorker:
    """Wire ``process`` to the store's created event and (``scan``) submit the backlog; return the worker.
    ``threads``, ``max_attempts``/``give_up`` (the retry cap), ``settled``: as LocalWorker."""
    worker = LocalWorker(process, finished=DoneLog(store).add, pacer=pacer, attempts=AttemptLog(store),
                         threads=threads, max_attempts=max_attempts, give_up=give_up,
                         settled=settled).start()  # fmt: skip
    store.add_listener(worker.submit)  # type: ignore[attr-defined]
    for key in pending(store) if scan else ():
        worker.submit(key)
    return worker
