"""Run the local parse worker in a child process, so parsing never competes with the SMTP loop for the GIL.

The parent's store listener forwards each created key through a multiprocessing queue (``put`` never blocks
the edge). The child runs at a lower CPU priority, exits when the parent dies (even by kill -9), and is
restarted if it dies itself; every (re)start scans the store for unfinished work, so no key is lost.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import queue
import signal
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

log = logging.getLogger("mailpipe.worker")
NICE = 10


class WorkerProcess:
    """Start ``target(*args, keys)`` in a spawned child; ``keys`` is an iterator of submitted keys."""

    def __init__(self, target: Callable[..., None], *args: Any) -> None:
        self._target, self._args = target, args
        self._ctx = multiprocessing.get_context("spawn")
        self._stopping = threading.Event()
        self._queue: Any = None
        self._proc: Any = None
        self._monitor = threading.Thread(target=self._watch, name="mailpipe-worker-monitor", daemon=True)

    def start(self) -> WorkerProcess:
        self._spawn()
        self._monitor.start()
        return self

    def submit(self, key: str) -> None:
        self._queue.put(key)

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the child to finish its current key and exit; unfinished keys wait for the next start."""
        self._stopping.set()
        self._queue.put(None)
        self._proc.join(timeout)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(5)

    def _spawn(self) -> None:
        self._queue = self._ctx.Queue()
        args = (self._target, self._args, self._queue, os.getpid())
        self._proc = self._ctx.Process(target=_child_main, args=args, name="mailpipe-parse", daemon=True)
        self._proc.start()

    def _watch(self) -> None:
        while not self._stopping.is_set():
            self._proc.join(0.5)
            if self._proc.exitcode is not None and not self._stopping.is_set():
                log.warning(
                    "parse worker died, restarting",
                    extra={"reason": "worker_died", "exitcode": self._proc.exitcode},
                )
                self._spawn()  # the new child's start-up scan finds what the old one left


def _child_main(target: Callable[..., None], args: tuple[Any, ...], keys: Any, parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the whole group; the parent decides
    with contextlib.suppress(OSError):
        os.nice(NICE)  # under load the edge's accept path wins the CPU; parsing catches up afterwards
    target(*args, _keys(keys, parent))


def _keys(keys: Any, parent: int) -> Iterator[str]:
    while os.getppid() == parent:  # the parent died (kill -9): stop, the next start recovers the work
        try:
            key = keys.get(timeout=0.5)
        except queue.Empty:
            continue
        if key is None:
            return
        yield key
