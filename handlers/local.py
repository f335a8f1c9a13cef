"""``mailpipe serve``: the SMTP edge and the parsing worker in one command, on the folder store and queue.

The folder store raises the object-created event for each new ``.eml``; the key goes to the parse worker (a
child process for a folder store, threads for memory://), which runs Pipeline.process_key. At every start the
worker re-processes each raw message that has no completion marker (crash recovery).
"""

from __future__ import annotations

import asyncio
import signal
from typing import TYPE_CHECKING, Any

from core.log import configure
from core.pipeline import Pipeline
from handlers.smtp_edge import start_edge
from providers import open_publisher, open_store
from providers.local.process import WorkerProcess
from providers.local.store import FolderStore
from providers.local.worker import run_local

if TYPE_CHECKING:
    from collections.abc import Iterator

    from core.ports import ObjectStore
    from core.settings import Settings


def serve(settings: Settings) -> int:
    """Run until SIGINT/SIGTERM; return the exit code."""
    configure(settings.log_level)
    store = open_store(settings.store_url, settings)
    worker: Any = None
    if isinstance(store, FolderStore):
        store.remove_stale_temp()
        worker = WorkerProcess(parse_worker, settings)
        store.add_listener(worker.submit)  # before the child's start-up scan: no key falls in between
        worker.start()
    elif hasattr(store, "add_listener"):  # memory:// lives in this process
        worker = run_local(
            store, Pipeline(store, open_publisher(settings.queue_url, settings), settings).process_key
        )
    # a cloud store has no in-process event: its bucket trigger runs the parser
    asyncio.run(_edge_until_signal(settings, store))
    if worker is not None:
        worker.stop()
    return 0


def parse_worker(settings: Settings, keys: Iterator[str]) -> None:
    """The child process: process the start-up backlog and every key the edge stored."""
    configure(settings.log_level)
    store = open_store(settings.store_url, settings)
    worker = run_local(
        store, Pipeline(store, open_publisher(settings.queue_url, settings), settings).process_key
    )
    for key in keys:
        worker.submit(key)
    worker.stop(drain=False)


async def _edge_until_signal(settings: Settings, store: ObjectStore) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = await start_edge(settings, store)
    await stop.wait()
    server.close()
    await server.wait_closed()
