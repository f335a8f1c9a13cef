"""``mailpipe serve``: the SMTP edge and the parsing worker in one process, on the folder store and queue.

The folder store raises the object-created event for each new ``.eml`` (-> worker -> Pipeline.process_key);
at start-up every raw message without a parsed or quarantine record is processed again (crash recovery).
"""

from __future__ import annotations

import asyncio
import signal
from typing import TYPE_CHECKING

from core.log import configure
from core.pipeline import Pipeline
from handlers.smtp_edge import start_edge
from providers import open_publisher, open_store
from providers.local.worker import run_local

if TYPE_CHECKING:
    from core.ports import ObjectStore
    from core.settings import Settings


def serve(settings: Settings) -> int:
    """Run until SIGINT/SIGTERM; return the exit code."""
    configure(settings.log_level)
    store = open_store(settings.store_url, settings)
    pipeline = Pipeline(store, open_publisher(settings.queue_url, settings), settings)
    worker = run_local(store, pipeline.process_key) if hasattr(store, "add_listener") else None
    asyncio.run(_edge_until_signal(settings, store))
    if worker:  # a cloud store has no in-process event: its bucket trigger runs the parser
        worker.stop()
    return 0


async def _edge_until_signal(settings: Settings, store: ObjectStore) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = await start_edge(settings, store)
    await stop.wait()
    server.close()
    await server.wait_closed()
