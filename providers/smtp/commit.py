"""Group commit at the edge: the DATA of many sessions shares one trip to the store thread.

While one batch is being written and synced, messages that finish their DATA queue up; they go together as
the next batch the moment the previous one is durable. One thread hand-off and one journal commit serve the
whole batch, instead of one per message.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from mailpipe.core.edge.ingest import accept_many
from mailpipe.core.errors import BackendUnavailable

if TYPE_CHECKING:
    from collections.abc import Callable
    from concurrent.futures import Executor

    from mailpipe.core.errors import TransientError
    from mailpipe.core.model import Envelope
    from mailpipe.core.ports import ObjectStore

MAX_BATCH = 64


class GroupCommitter:
    """Event-loop side of the group commit; ``accept`` returns the id or raises a TransientError.

    ``store()`` gives the store; it is called in the executor thread, so a store opened lazily on first use
    (mailpipe.core.edge.tenants.StoreRoutes) never blocks the event loop, and failing to open it is a 451, not a crash.
    """

    def __init__(
        self, store: Callable[[], ObjectStore], executor: Executor, inline: Callable[[], bool] | None = None
    ) -> None:
        self._store, self._executor, self._inline = store, executor, inline
        self._pending: list[tuple[bytes, Envelope, asyncio.Future[str]]] = []
        self._busy = False

    async def accept(self, raw: bytes, envelope: Envelope) -> str:
        if not self._busy and self._inline is not None and self._inline():
            # a local store and no other session to serve: write on the loop, skipping two thread hand-offs
            (result,) = self._accept_many([(raw, envelope)])
            if isinstance(result, Exception):
                raise result
            return result
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._pending.append((raw, envelope, future))
        if not self._busy:
            self._next()
        return await future

    def _next(self) -> None:
        batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
        self._busy = bool(batch)
        if batch:
            messages = [(raw, env) for raw, env, _ in batch]
            job = asyncio.get_running_loop().run_in_executor(self._executor, self._accept_many, messages)
            job.add_done_callback(lambda done: self._finish(batch, done))

    def _accept_many(self, messages: list[tuple[bytes, Envelope]]) -> list[str | TransientError]:
        return accept_many(self._store(), messages)

    def _finish(
        self,
        batch: list[tuple[bytes, Envelope, asyncio.Future[str]]],
        done: asyncio.Future[list[str | TransientError]],
    ) -> None:
        try:
            results = done.result()
        except Exception as exc:  # a bug below: every message of the batch gets 451, none is lost
            results = [BackendUnavailable(f"store failed: {type(exc).__name__}")] * len(batch)
        for (_, _, future), result in zip(batch, results, strict=True):
            if future.done():
                continue  # the session went away meanwhile
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)
        self._next()
