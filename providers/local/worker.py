"""The local stand-in for a cloud trigger: an in-process queue of created keys and worker threads.

Keys come from the store's object-created event (and the start-up backlog). RETRY outcomes are re-queued with
a growing delay (like a queue's visibility timeout); nothing is dropped while the process lives, and a restart
re-finds unfinished work from the store itself (core.pipeline.pending_raw_keys).
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import TYPE_CHECKING

from core.pipeline import Outcome

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger("mailpipe.worker")
_STOP = ""


class LocalWorker:
    """Run ``process(key)`` on ``threads`` daemon threads; ``submit`` is safe from any thread."""

    def __init__(
        self, process: Callable[[str], Outcome], *, threads: int = 1, max_delay: float = 60.0
    ) -> None:
        self._process, self._max_delay = process, max_delay
        self._queue: queue.SimpleQueue[tuple[str, int]] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._run, name=f"mailpipe-worker-{n}", daemon=True)
            for n in range(threads)
        ]
        self._pending = 0
        self._lock = threading.Condition()

    def start(self) -> LocalWorker:
        for t in self._threads:
            t.start()
        return self

    def submit(self, key: str, attempt: int = 1) -> None:
        with self._lock:
            self._pending += 1
        self._queue.put((key, attempt))

    def wait_idle(self, timeout: float) -> bool:
        """True once every submitted key is finished (retries scheduled later count as pending)."""
        with self._lock:
            return self._lock.wait_for(lambda: self._pending == 0, timeout)

    def stop(self, timeout: float = 10.0) -> None:
        for _ in self._threads:
            self._queue.put((_STOP, 0))
        for t in self._threads:
            t.join(timeout)

    def _run(self) -> None:
        while True:
            key, attempt = self._queue.get()
            if key == _STOP:
                return
            try:
                outcome = self._process(key)
            except Exception:  # Pipeline.process_key never raises; a bug must not kill the worker
                log.exception("worker error", extra={"reason": "worker_bug"})
                outcome = Outcome.RETRY
            if outcome is Outcome.RETRY:
                self._retry_later(key, attempt)
            self._done()

    def _retry_later(self, key: str, attempt: int) -> None:
        delay = min(self._max_delay, 0.5 * 2**attempt)
        with self._lock:
            self._pending += 1
        timer = threading.Timer(delay, self._resubmit, (key, attempt + 1))
        timer.daemon = True
        timer.start()

    def _resubmit(self, key: str, attempt: int) -> None:
        self._queue.put((key, attempt))

    def _done(self) -> None:
        with self._lock:
            self._pending -= 1
            self._lock.notify_all()
