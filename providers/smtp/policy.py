"""aiosmtpd hooks of the edge: recipient policy (domain -> store map, recipient limit) and the durable accept.

250 only after the group commit (core.ingest.accept_many) stored raw + envelope durably in every recipient's
store; else 451.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from core.errors import TransientError
from core.log import log_context
from core.model import Envelope
from providers.smtp.commit import GroupCommitter

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from core.settings import Settings
    from core.tenants import StoreRoutes

log = logging.getLogger("mailpipe.edge")


class EdgeHandler:
    """aiosmtpd hooks: recipient policy and the durable accept (store I/O runs in ``executor``, else in one
    writer thread per store URL, so a slow store never holds up another customer's)."""

    def __init__(self, routes: StoreRoutes, settings: Settings, executor: Executor | None = None) -> None:
        self.routes, self.settings, self._executor = routes, settings, executor
        self._committers: dict[str, GroupCommitter] = {}

    def committer(self, url: str) -> GroupCommitter:
        if url not in self._committers:
            executor = self._executor or ThreadPoolExecutor(1, f"mailpipe-store-{len(self._committers)}")
            self._committers[url] = GroupCommitter(functools.partial(self.routes.store, url), executor)
        return self._committers[url]

    def __dir__(self) -> list[str]:  # aiosmtpd looks its hooks up with dir() for every session
        return ["handle_DATA", "handle_EHLO", "handle_RCPT"]

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        if len(envelope.rcpt_tos) >= self.settings.max_recipients:
            return "452 4.5.3 Too many recipients"
        domain = address.rpartition("@")[2].lower().strip("[]")
        if self.routes.url_for(domain) is None:
            log.info("recipient refused", extra={"reason": "unknown_domain", "domain": domain})
            return "550 5.7.1 Recipient domain not served here; relaying denied"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        env = Envelope(
            mail_from="" if envelope.mail_from == "<>" else envelope.mail_from,
            rcpt_to=tuple(envelope.rcpt_tos),
            client_ip=session.peer[0] if session.peer else None,
            helo=session.host_name,
            tls=session.ssl is not None,
            received_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
        raw: bytes = envelope.original_content
        try:
            ids = await self._accept(raw, env)
        except Exception as exc:  # never 250 unless every copy is stored; a retry rewrites the same ids
            reason = exc.reason if isinstance(exc, TransientError) else "unexpected"
            log.warning("store failed, answered 451", extra={"reason": reason, "error": type(exc).__name__})
            return "451 4.3.0 Temporary storage failure, try again later"
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
