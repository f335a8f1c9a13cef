"""The edge's policy: recipients (domain -> store map, recipient limit) and the durable accept.

250 only after the group commit (core.edge.ingest.accept_many) stored raw + envelope durably in every recipient's
store; else 451.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING

from mailpipe.core import metrics
from mailpipe.core.errors import TransientError
from mailpipe.core.log import log_context
from mailpipe.core.model import Envelope
from mailpipe.providers.smtp.commit import GroupCommitter

if TYPE_CHECKING:
    from collections.abc import Callable
    from concurrent.futures import Executor

    from mailpipe.core.edge.actions import Deliver
    from mailpipe.core.edge.tenants import StoreRoutes
    from mailpipe.core.settings import Settings

log = logging.getLogger("mailpipe.edge")
LOCAL_SCHEMES = ("file:", "memory:")
BUSY = "451 4.3.2 Too many messages waiting to be processed, try again later"


class EdgeHandler:
    """Recipient policy and the durable accept (store I/O runs in ``executor``, else in one writer thread per
    store URL, so a slow store never holds up another customer's)."""

    def __init__(
        self,
        routes: StoreRoutes,
        settings: Settings,
        executor: Executor | None = None,
        alone: Callable[[], bool] | None = None,
        busy: Callable[[], bool] | None = None,
    ) -> None:
        self.routes, self.settings, self._executor, self._alone, self._busy = routes, settings, executor, alone, busy
        self._committers: dict[str, GroupCommitter] = {}

    def committer(self, url: str) -> GroupCommitter:
        """The group committer of a store; a local store's is written on the event loop while ``alone()`` says
        only one session is open (the hand-offs to and from the writer thread cost more than they save)."""
        if url not in self._committers:
            executor = self._executor or ThreadPoolExecutor(1, f"mailpipe-store-{len(self._committers)}")
            inline = self._alone if url.startswith(LOCAL_SCHEMES) else None
            self._committers[url] = GroupCommitter(functools.partial(self.routes.store, url), executor, inline)
        return self._committers[url]

    def check_rcpt(self, address: str, accepted: int) -> str | None:
        """The refusal reply for RCPT ``address`` (``accepted`` recipients so far), or None to accept it."""
        if accepted >= self.settings.max_recipients:
            return "452 4.5.3 Too many recipients"
        domain = address.rpartition("@")[2].lower().strip("[]")
        if self.routes.url_for(domain) is None:
            log.info("recipient refused", extra={"reason": "unknown_domain", "domain": domain})
            return "550 5.7.1 Recipient domain not served here; relaying denied"
        return None

    async def deliver(self, message: Deliver, client_ip: str | None, tls: bool) -> str:
        """Store the message durably in every recipient's store; the reply: 250 with the ids, or 451 (storage
        failed, or the parse backlog is full: nothing stored, the sender retries later)."""
        if self._busy is not None and self._busy():
            log.warning("backlog full, answered 451", extra={"reason": "backlog_full"})
            return BUSY
        env = Envelope(
            mail_from=message.mail_from,
            rcpt_to=message.rcpt_to,
            client_ip=client_ip,
            helo=message.helo,
            tls=tls,
            received_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
        raw = message.raw
        start = time.perf_counter()
        try:
            ids = await self._accept(raw, env)
        except Exception as exc:  # never 250 unless every copy is stored; a retry rewrites the same ids
            reason = exc.reason if isinstance(exc, TransientError) else "unexpected"
            log.warning("store failed, answered 451", extra={"reason": reason, "error": type(exc).__name__})
            return "451 4.3.0 Temporary storage failure, try again later"
        metrics.observe("mailpipe_store_write_seconds", time.perf_counter() - start)
        metrics.inc("mailpipe_smtp_accepted_total")
        metrics.inc("mailpipe_smtp_accepted_bytes_total", len(raw))
        with log_context(id=ids[0]):
            log.info(
                "accepted",
                extra={
                    "size": len(raw),
                    "copies": len(ids),
                    "rcpt_domains": sorted({r.rpartition("@")[2].lower() for r in env.rcpt_to}),
                },
            )
        return f"250 2.0.0 Ok: queued as {','.join(ids)}"

    async def _accept(self, raw: bytes, env: Envelope) -> list[str]:
        """Store one copy per customer store, each envelope listing only that store's recipients; the ids.

        Raises the first failure once every copy has finished (copies that did land stay: they are
        content-addressed, so the sender's retry finds them and stores nothing twice)."""
        copies = self.routes.split(env.rcpt_to)
        if len(copies) == 1:  # the common case: one customer, no gather
            ((url, rcpts),) = copies.items()
            return [await self.committer(url).accept(raw, replace(env, rcpt_to=rcpts))]
        if not copies:
            raise TransientError("no store for any recipient")  # RCPT refused them all; cannot happen
        results = await asyncio.gather(
            *(self.committer(url).accept(raw, replace(env, rcpt_to=rcpts)) for url, rcpts in copies.items()),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return [str(mid) for mid in results]
