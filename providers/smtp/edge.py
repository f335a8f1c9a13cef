"""The SMTP edge on aiosmtpd: recipient policy, the durable accept, the listener.

Replies (RFC 5321 / RFC 3463):
  250 2.0.0  queued as <id>: raw bytes and envelope are durably in the store
  421 4.7.0  too many connections (also sent when the idle/session timeout closes the session)
  451 4.3.0  the store failed: nothing half-written is kept, the sender retries
  452 4.5.3  too many recipients for one message
  550 5.7.1  recipient domain not served here (the edge never relays)
  552 5.3.4  message exceeds the SIZE limit (MAIL FROM SIZE= or the DATA itself)
  554 5.5.2  bare CR/LF in the data (SMTP smuggling) or a line over the limit
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from core.errors import TransientError
from core.ingest import accept
from core.log import log_context
from core.model import Envelope
from providers.smtp.session import ConnectionGate, EdgeSMTP

if TYPE_CHECKING:
    from core.ports import ObjectStore
    from core.settings import Settings

log = logging.getLogger("mailpipe.edge")


class EdgeHandler:
    """aiosmtpd hooks: recipient policy and the durable accept (store I/O runs in ``executor``)."""

    def __init__(self, store: ObjectStore, settings: Settings, executor: Executor) -> None:
        self.store, self.settings, self.executor = store, settings, executor
        self.domains = {form for d in settings.domains for form in domain_forms(d)}

    def __dir__(self) -> list[str]:  # aiosmtpd looks its hooks up with dir() for every session
        return ["handle_DATA", "handle_EHLO", "handle_RCPT"]

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
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
        loop = asyncio.get_running_loop()
        try:
            mid = await loop.run_in_executor(self.executor, accept, self.store, raw, env)
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


def _tls(settings: Settings) -> ssl.SSLContext | None:
    if not settings.tls_cert or not settings.tls_key:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(settings.tls_cert, settings.tls_key)
    return ctx


async def start_edge(
    settings: Settings,
    store: ObjectStore,
    executor: Executor | None = None,
    sock: socket.socket | None = None,
) -> asyncio.Server:
    """Serve on ``sock``, else listen on ``settings.listen`` (port 0: a free port, see ``server.sockets``)."""
    loop = asyncio.get_running_loop()
    host, _, port = settings.listen.rpartition(":")
    # a few writers in flight are enough for the journal to batch their fsyncs; more only fight for the GIL
    handler = EdgeHandler(store, settings, executor or ThreadPoolExecutor(8, "mailpipe-store"))
    gate, tls = ConnectionGate(settings.max_connections), _tls(settings)
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs full addresses at INFO
    if not settings.domains:
        log.warning("local mode: no --domains given, accepting mail for any recipient domain")

    def factory() -> EdgeSMTP:
        return EdgeSMTP(
            handler,
            gate=gate,
            max_line=settings.max_line_length,
            session_timeout=settings.session_timeout,
            data_size_limit=settings.max_message_bytes,
            enable_SMTPUTF8=True,
            hostname=settings.hostname,
            ident="mailpipe ESMTP",
            tls_context=tls,
            timeout=settings.idle_timeout,
            loop=loop,
        )

    if sock is not None:
        return await loop.create_server(factory, sock=sock)
    return await loop.create_server(factory, host.strip("[]") or None, int(port), backlog=512)


def bind(listen: str) -> socket.socket:
    """Bind and listen on ``HOST:PORT`` once, so several edge processes can share the socket."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that say TCP; without it multi-line
    # replies (EHLO) stall ~40 ms on Nagle + delayed ACK
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, int(port)))
    sock.listen(512)
    sock.setblocking(False)
    return sock
