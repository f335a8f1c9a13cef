"""``mailpipe serve``: the SMTP edge and the parsing worker in one command, on the folder store and queue.

The listen socket is bound once and shared by ``edge_processes`` SMTP processes (one per CPU by default;
Python runs one core per process). Each has its parse worker (a niced child for a folder store, threads for
memory://) fed by the store's object-created event. Before accepting mail, the first process queues every
raw message without a completion marker (crash recovery); helper processes start after that scan.
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from mailpipe.core import metrics
from mailpipe.core.log import configure
from mailpipe.core.ports import ObservableStore
from mailpipe.handlers.compose import pipeline
from mailpipe.providers import open_store
from mailpipe.providers.local.runner.process import WorkerProcesses, spawn
from mailpipe.providers.local.runner.worker import Pacer, pending, run_local
from mailpipe.providers.local.store import FolderStore
from mailpipe.providers.smtp.server import bind, routes_of, run_loop, start_edge

if TYPE_CHECKING:
    import socket
    from collections.abc import Callable, Iterator

    from mailpipe.core.ports import ObjectStore
    from mailpipe.core.settings import Settings


def serve(settings: Settings) -> int:
    """Run until SIGINT/SIGTERM; return the exit code."""
    configure(settings.log_level)
    path = _serve_metrics(settings)
    try:
        return _serve(settings)
    finally:
        if path is not None:
            from mailpipe.providers.prometheus.sink import cleanup

            cleanup(path)


def _serve_metrics(settings: Settings) -> str | None:
    """``--metrics HOST:PORT``: Prometheus text of every process of this serve at ``/metrics``. Raises
    ConfigError if the address cannot be bound."""
    if not settings.metrics_listen:
        return None
    from mailpipe.providers.prometheus.sink import prepare
    from mailpipe.providers.prometheus.sink import serve as serve_metrics

    path = prepare()  # before any process (this one included) records: multiprocess mode
    try:
        serve_metrics(settings.metrics_listen, path)
    except BaseException:
        from mailpipe.providers.prometheus.sink import cleanup

        cleanup(path)
        raise
    _record(settings)
    return path


def _record(settings: Settings) -> None:
    """Record metrics in this process when ``--metrics`` is on (the serve's processes share the directory)."""
    if settings.metrics_listen:
        from mailpipe.providers.prometheus.sink import PrometheusSink

        metrics.use(PrometheusSink())


def _serve(settings: Settings) -> int:
    store = open_store(settings.store_url, settings)
    pipeline(settings, store)  # a bad rules file or enricher fails here, before binding the port
    routes_of(settings, store)  # so does a store per domain (that is `mailpipe edge`)
    sock = bind(settings.listen)
    count = _edge_count(settings) if isinstance(store, FolderStore) else 1
    settings = replace(settings, max_connections=-(-settings.max_connections // count))  # split the limit
    worker = _start_worker(settings, store, primary=True)
    helpers = [spawn(_helper, settings, sock, count, name=f"mailpipe-edge-{n}") for n in range(1, count)]
    run_loop(_edge_until_signal(settings, store, sock, _busy(settings, worker, count)), settings)
    for proc in helpers:
        proc.terminate()  # SIGTERM: stop accepting, finish the sessions' writes, stop the worker
    if worker is not None:
        worker.stop()
    for proc in helpers:
        proc.join(30)
    return 0


def _helper(settings: Settings, sock: socket.socket, count: int) -> None:
    """Another SMTP process on the shared socket, with its own parse worker (no start-up scan)."""
    configure(settings.log_level)
    _record(settings)
    store = open_store(settings.store_url, settings)
    worker = _start_worker(settings, store, primary=False)
    run_loop(_edge_until_signal(settings, store, sock, _busy(settings, worker, count)), settings)
    worker.stop()


def _start_worker(settings: Settings, store: ObjectStore, *, primary: bool) -> Any:
    """This SMTP process's parse workers: ``settings.workers`` niced child processes for a folder store
    (threads for memory://), or None for a cloud store (its bucket trigger runs the parser)."""
    if isinstance(store, FolderStore):
        if primary:
            store.remove_stale_temp()
        store.preallocate("raw")  # the edge's hot directory: inode allocation off the 250 path
        backlog = functools.partial(pending, store)
        workers = WorkerProcesses(parse_worker, settings, backlog=backlog, scan_first=primary, count=settings.workers)
        store.add_listener(workers.submit)
        return workers.start()
    if isinstance(store, ObservableStore):  # memory:// lives in this process
        p = pipeline(settings, store)
        return run_local(store, p.process, threads=settings.workers, max_attempts=settings.max_attempts,
                         give_up=p.give_up)  # fmt: skip
    return None


def parse_worker(settings: Settings, keys: Iterator[str], settled: Callable[[], None]) -> None:
    """The parse child: process every key it is sent (the parent lists the backlog into the same queue)."""
    configure(settings.log_level)
    _record(settings)
    store = open_store(settings.store_url, settings)
    p = pipeline(settings, store)
    worker = run_local(store, p.process, scan=False, pacer=Pacer(), max_attempts=settings.max_attempts,
                       give_up=p.give_up, settled=settled)  # fmt: skip
    for key in keys:
        worker.submit(key)
    worker.stop(drain=False)


def _busy(settings: Settings, worker: Any, count: int) -> Callable[[], bool] | None:
    """True while this SMTP process's share of ``max_backlog`` (messages stored, not yet parsed) is full:
    the edge then answers 451 rather than let the disk fill (back-pressure)."""
    if worker is None:
        return None
    limit = max(1, settings.max_backlog // count)
    if isinstance(worker, WorkerProcesses):
        return lambda: worker.waiting >= limit
    return lambda: worker.backlog >= limit


def _edge_count(settings: Settings) -> int:
    return settings.edge_processes or min(4, len(os.sched_getaffinity(0)))


async def _edge_until_signal(
    settings: Settings, store: ObjectStore, sock: socket.socket, busy: Callable[[], bool] | None
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = await start_edge(settings, store, sock=sock, busy=busy)
    await stop.wait()
    server.close()
    await server.wait_closed()
