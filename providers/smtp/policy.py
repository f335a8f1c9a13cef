"""aiosmtpd hooks of the edge: recipient policy (domains, recipient limit) and the durable accept.

250 only after the group commit (core.ingest.accept_many) stored raw + envelope durably; else 451.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

from core.errors import TransientError
from core.log import log_context
from core.model import Envelope
from providers.smtp.commit import GroupCommitter

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from core.ports import ObjectStore
    from core.settings import Settings

log = logging.getLogger("mailpipe.edge")


class EdgeHandler:
    """aiosmtpd hooks: recipient policy and the durable accept (store I/O runs in ``executor``)."""

    def __init__(self, store: ObjectStore, settings: Settings, executor: Executor) -> None:
        self.store, self.settings = store, settings
        self.committer = GroupCommitter(store, executor)
        self.domains = {form for d in settings.domains for form in domain_forms(d)}

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
        if self.settings.domains and not (domain_forms(domain) & self.domains):
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
            mid = await self.committer.accept(raw, env)
        except Exception as exc:  # never 250 unless stored; every failure is temporary for the sender
            reason = exc.reason if isinstance(exc, TransientError) else "unexpected"
            log.warning("store failed, answered 451", extra={"reason": reason, "error": type(exc).__name__})
            return "451 4.3.0 Temporary storage failure, try again later"
        with log_context(id=mid):
            log.info(
                "accepted",
                extra={
                    "size": len(raw),
                    "rcpt_domains": sorted({r.rpartition("@")[2].lower() for r in env.rcpt_to}),
                },
            )
        return f"250 2.0.0 Ok: queued as {mid}"


def domain_forms(domain: str) -> set[str]:
    """A domain as written plus its IDNA (xn--) or Unicode twin, so either spelling matches."""
    forms = {domain}
    with contextlib.suppress(UnicodeError):
        forms.add(domain.encode("idna").decode("ascii"))
        forms.add(domain.encode("ascii").decode("idna"))
    return forms
