"""Run the local parse worker in a child process, so parsing never competes with the SMTP loop for the GIL.

The parent's store listener forwards each created key as one line on a pipe: a non-blocking write of a few
bytes, no feeder thread (a multiprocessing queue's feeder contends for the GIL with the SMTP loop on every
message). Keys the pipe cannot take at once, and the start-up backlog, are written by the monitor thread.
The child runs at a lower CPU priority, exits when the parent dies (even by kill -9), and is
restarted if it dies itself; every (re)start scans the store for unfinished work, so no key is lost.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import logging
import multiprocessing
import os
import select
import signal
import threading
import time
import zlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

log = logging.getLogger("mailpipe.worker")
NICE = 19  # lowest priority: accepting mail always comes first, the backlog is durable on disk
PR_SET_PDEATHSIG = 1


class WorkerProcess:
    """Start ``target(*args, keys, settled)`` in a spawned child; ``keys`` iterates the submitted keys and the
    child calls ``settled()`` once per key it is done with (parsed, quarantined or ignored: not a retry).

    ``backlog()`` (the unfinished work on disk) is listed into the new child's queue at the first start when
    ``scan_first``, and at every restart: what was queued for a child that died is only on disk now.
    ``waiting`` counts the keys sent and not settled (the edge's back-pressure reads it).
    """

    def __init__(
        self, target: Callable[..., None], *args: Any, backlog: Callable[[], Iterable[str]], scan_first: bool
    ) -> None:
        self._target, self._args, self._backlog, self._scan = target, args, backlog, scan_first
        self._ctx = multiprocessing.get_context("spawn")
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._overflow: collections.deque[bytes] = collections.deque()  # lines the pipe did not take yet
        self._pipe = -1
        self._writer: Any = None  # the pipe's write end (a multiprocessing Connection)
        self._proc: Any = None
        self._monitor = threading.Thread(target=self._watch, name="mailpipe-worker-monitor", daemon=True)
        # keys sent (this process, under _lock) minus keys the child settled (its RawValue, written by it alone):
        # no lock shared between processes, so a child killed mid-count cannot freeze the edge
        self._sent = 0
        self._settled: Any = None

    @property
    def waiting(self) -> int:
        settled = self._settled
        return max(0, self._sent - (int(settled.value) if settled is not None else 0))

    def start(self) -> WorkerProcess:
        self._spawn()
        self._monitor.start()
        return self

    def submit(self, key: str) -> None:
        """Hand ``key`` to the child; never blocks (the key waits in memory while the pipe is full)."""
        line = key.encode() + b"\n"
        with self._lock:
            self._sent += 1
            if not self._overflow and _write_line(self._pipe, line):
                return
            self._overflow.append(line)

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the child to finish its current key and exit; unfinished keys wait for the next start."""
        self._stopping.set()
        with self._lock:
            self._overflow.clear()
            self._overflow.append(b"\n")  # the stop line
        self._flush(timeout)
        self._proc.join(timeout)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(5)

    def _spawn(self) -> None:
        reader, writer = self._ctx.Pipe(duplex=False)  # POSIX: a plain pipe; only its descriptors are used
        os.set_blocking(writer.fileno(), False)
        settled = self._ctx.RawValue("q", 0)  # a new count per child: the dead one's work is in the backlog
        args = (self._target, self._args, reader, os.getpid(), settled)
        self._proc = self._ctx.Process(target=_child_main, args=args, name="mailpipe-parse", daemon=True)
        self._proc.start()
        reader.close()
        with self._lock:  # new keys go to the new pipe from now on; older ones are in the backlog
            old, self._writer, self._pipe = self._writer, writer, writer.fileno()
            self._overflow.clear()
            self._sent, self._settled = 0, settled  # what the dead child had is in the backlog again
        backlog = [key.encode() + b"\n" for key in (self._backlog() if self._scan else ())]  # (a store scan)
        with self._lock:
            self._sent += len(backlog)
            self._overflow.extendleft(reversed(backlog))
        if old is not None:
            old.close()
        self._scan = True

    def _flush(self, seconds: float) -> None:
        """Write waiting lines for up to ``seconds`` (blocking in select, never in the caller of submit)."""
        deadline = time.monotonic() + seconds
        while self._overflow and time.monotonic() < deadline:
            select.select([], [self._pipe], [], max(0.0, deadline - time.monotonic()))
            with self._lock:
                while self._overflow and _write_line(self._pipe, self._overflow[0]):
                    self._overflow.popleft()

    def _watch(self) -> None:
        while not self._stopping.is_set():
            self._flush(0.5)
            self._proc.join(0.5 if not self._overflow else 0)
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


def _child_main(target: Callable[..., None], args: tuple[Any, ...], keys: Any, parent: int, settled_count: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the whole group; the parent decides
    with contextlib.suppress(OSError):
        os.nice(NICE)  # under load the edge's accept path wins the CPU; parsing catches up afterwards

    def settled() -> None:  # called by the child's one worker thread (parse_worker: threads=1)
        settled_count.value += 1

    target(*args, _keys(keys, parent), settled)


class WorkerProcesses:
    """``count`` WorkerProcesses sharing the keys by a hash of the key; ``backlog(keep)`` lists the unfinished
    work for which ``keep(key)`` is true (so a restarted worker checks and re-runs only its share, though the
    store is listed whole); ``waiting`` is their sum."""

    def __init__(
        self, target: Callable[..., None], *args: Any, backlog: Callable[[Callable[[str], bool]], Iterable[str]],
        scan_first: bool, count: int,
    ) -> None:  # fmt: skip
        def share(n: int) -> Callable[[], Iterable[str]]:
            return lambda: backlog(lambda k: _shard(k, count) == n)

        self.workers = [WorkerProcess(target, *args, backlog=share(n), scan_first=scan_first) for n in range(count)]

    @property
    def waiting(self) -> int:
        return sum(w.waiting for w in self.workers)

    def start(self) -> WorkerProcesses:
        for w in self.workers:
            w.start()
        return self

    def submit(self, key: str) -> None:
        self.workers[_shard(key, len(self.workers))].submit(key)

    def stop(self, timeout: float = 30.0) -> None:
        for w in self.workers:
            w.stop(timeout)


def _shard(key: str, count: int) -> int:
    return zlib.crc32(key.encode()) % count if count > 1 else 0


def _write_line(fd: int, line: bytes) -> bool:
    """One line, all or nothing (a pipe write of at most PIPE_BUF bytes is atomic); False if the pipe is full."""
    try:
        os.write(fd, line)
    except (BlockingIOError, BrokenPipeError):  # full; or the child is gone (its restart rescans the store)
        return False
    return True


def _keys(reader: Any, parent: int) -> Iterator[str]:
    """The keys the parent writes, a line each; ends at the empty stop line, at EOF or when the parent died."""
    fd, pending = reader.fileno(), b""
    while os.getppid() == parent:  # the parent died (kill -9): stop, the next start recovers the work
        if not select.select([fd], [], [], 0.5)[0]:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            if not line:
                return
            yield line.decode()
