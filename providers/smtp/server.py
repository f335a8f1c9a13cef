"""The SMTP edge: the listener (``start_edge``, ``bind``); protocol.py runs connections, policy.py decides.

Replies (RFC 5321 / RFC 3463):
  250 2.0.0  queued as <id>[,<id>...]: raw bytes and envelope are durably in every recipient's store (one copy
             per customer store, each envelope listing only that store's recipients; mailpipe.core.edge.tenants)
  421 4.7.0  too many connections (also sent when the idle/session timeout closes the session)
  451 4.3.0  a store failed: nothing half-written is kept, the sender retries (same ids: stored once)
  452 4.5.3  too many recipients for one message
  550 5.7.1  recipient domain not served here: in no domain map entry (the edge never relays)
  552 5.3.4  message exceeds the SIZE limit (MAIL FROM SIZE= or the DATA itself)
  554 5.5.2  bare CR/LF in the data (SMTP smuggling) or a line over the limit
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import ssl
from typing import TYPE_CHECKING, Any

from mailpipe.core.edge.session import Session
from mailpipe.core.edge.tenants import StoreRoutes
from mailpipe.core.errors import ConfigError
from mailpipe.providers.smtp.policy import EdgeHandler
from mailpipe.providers.smtp.protocol import ConnectionGate, SMTPProtocol

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine
    from concurrent.futures import Executor

    from mailpipe.core.ports import ObjectStore
    from mailpipe.core.settings import Settings

log = logging.getLogger("mailpipe.edge")


def _tls(settings: Settings) -> ssl.SSLContext | None:
    if not settings.tls_cert or not settings.tls_key:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(settings.tls_cert, settings.tls_key)
    return ctx


def routes_of(settings: Settings, store: ObjectStore | StoreRoutes) -> StoreRoutes:
    """``store`` as routes: a single store serves ``settings.domains`` (any domain in local mode).

    Raises ConfigError when ``settings.domain_stores`` names other stores: build StoreRoutes with an opener."""
    if isinstance(store, StoreRoutes):
        return store
    routes = StoreRoutes(settings.store_map(), settings.store_url, lambda url: store)
    if set(routes.urls) - {settings.store_url}:
        raise ConfigError("a store per domain needs the edge alone: `mailpipe edge` (serve runs one store)")
    return routes


async def start_edge(
    settings: Settings,
    store: ObjectStore | StoreRoutes,
    executor: Executor | None = None,
    sock: socket.socket | None = None,
    busy: Callable[[], bool] | None = None,
) -> asyncio.Server:
    """Serve on ``sock``, else listen on ``settings.listen`` (port 0: a free port, see ``server.sockets``).

    ``store``: one store, or StoreRoutes (a store per recipient domain, opened on first use). ``busy()``
    true: messages are answered 451 instead of stored (the parse backlog is full: back-pressure)."""
    loop = asyncio.get_running_loop()
    host, _, port = settings.listen.rpartition(":")
    # one writer thread per store: the group committer sends it whole batches (mailpipe.core.edge.ingest.accept_many)
    routes = routes_of(settings, store)
    gate, tls = ConnectionGate(settings.max_connections), _tls(settings)
    handler = EdgeHandler(routes, settings, executor, alone=lambda: gate.active <= 1, busy=busy)
    if not routes.exact and not routes.wild:
        log.warning("local mode: no --domains given, accepting mail for any recipient domain")

    def new_session(tls_available: bool) -> Session:
        return Session(
            hostname=settings.hostname,
            max_size=settings.max_message_bytes,
            max_line=settings.max_line_length,
            check_rcpt=handler.check_rcpt,
            tls_available=tls_available,
        )

    def factory() -> SMTPProtocol:
        return SMTPProtocol(
            new_session,
            handler.deliver,
            gate=gate,
            tls=tls,
            idle=settings.idle_timeout,
            total=settings.session_timeout,
        )

    if sock is not None:
        return await loop.create_server(factory, sock=sock)
    return await loop.create_server(factory, host.strip("[]") or None, int(port), backlog=512)


async def serve_until_signal(settings: Settings, store: ObjectStore | StoreRoutes) -> None:
    """``start_edge``, then run until SIGINT/SIGTERM (``docker stop``); sessions mid-DATA get no 250."""
    stop, loop = asyncio.Event(), asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = await start_edge(settings, store)
    await stop.wait()
    server.close()
    await server.wait_closed()


def run_loop(main: Coroutine[Any, Any, None], settings: Settings) -> None:
    """Run the edge's ``main`` on uvloop (libuv: ~12 % more sessions per second on one core here) when it is
    installed or asked for, else on asyncio's own loop. Raises ConfigError if uvloop is asked for but absent."""
    if settings.event_loop != "asyncio":
        try:
            import uvloop
        except ImportError:
            if settings.event_loop == "uvloop":
                raise ConfigError("MAILPIPE_EVENT_LOOP=uvloop but uvloop is not installed (mailpipe[smtp])") from None
        else:
            uvloop.run(main)
            return
    asyncio.run(main)


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
