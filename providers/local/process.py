"""Run the local parse worker in a child process, so parsing never competes with the SMTP loop for the GIL.

The parent's store listener forwards each created key through a multiprocessing queue (``put`` never blocks
the edge). The child runs at a lower CPU priority, exits when the parent dies (even by kill -9), and is
restarted if it dies itself; every (re)start scans the store for unfinished work, so no key is lost.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import queue
import signal
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

log = logging.getLogger("mailpipe.worker")
NICE = 19  # lowest priority: accepting mail always comes first, the backlog is durable on disk
PR_SET_PDEATHSIG = 1


class WorkerProcess:
    """Start ``target(*args, keys)`` in a spawned child; ``keys`` iterates the submitted keys.

    ``backlog()`` (the unfinished work on disk) is listed into the new child's queue at the first start when
    ``scan_first``, and at every restart: what was queued for a child that died is only on disk now.
    """

    def __init__(
        self, target: Callable[..., None], *args: Any, backlog: Callable[[], Iterable[str]], scan_first: bool
    ) -> None:
        self._target, self._args, self._backlog, self._scan = target, args, backlog, scan_first
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
        self._queue = self._ctx.Queue()  # new keys go here from now on; older ones are in the backlog
        args = (self._target, self._args, self._queue, os.getpid())
        self._proc = self._ctx.Process(target=_child_main, args=args, name="mailpipe-parse", daemon=True)
        self._proc.start()
        for key in self._backlog() if self._scan else ():
            self._queue.put(key)
        self._scan = True

    def _watch(self) -> None:
        while not self._stopping.is_set():
            self._proc.join(0.5)
            if self._proc.exitcode is not None and not self._stopping.is_set():
                log.warning(
                    "parse worker died, restarting",
                    extra={"reason": "worker_died", "exitcode": self._proc.exitcode},
                )
                self._spawn()  # the new child's start-up scan finds what the old one left


def spawn(target: Callable[..., None], *args: Any, name: str) -> Any:
    """Start ``target(*args)`` in a spawned child that dies with this process (even on kill -9)."""
    # not a daemon: a daemonic process may not have children (its parse worker); PDEATHSIG reaps it instead
    proc = multiprocessing.get_context("spawn").Process(
        target=_orphan_proof, args=(target, args, os.getpid()), name=name
    )
    proc.start()
    return proc


def _orphan_proof(target: Callable[..., None], args: tuple[Any, ...], parent: int) -> None:
    die_with_parent(parent)
    target(*args)


def die_with_parent(parent: int) -> None:
    """Linux: the kernel sends SIGKILL when the parent dies, so no orphan keeps serving a shared socket."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the whole group; the parent decides
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(0)


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
