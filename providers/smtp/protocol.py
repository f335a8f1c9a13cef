"""The edge's SMTP connection on asyncio: ``mailpipe.core.edge.session.Session`` driven by an ``asyncio.Protocol``.

No stream reader and no task per command: bytes go straight into the session, all replies of a pipelined
batch leave in one write, and only a delivery (the durable store write) or a STARTTLS upgrade waits. Reading
pauses while either is pending, so a pipelining client cannot queue unbounded input. Timeouts: ``idle``
(silence, measured from the last bytes received) and ``session`` (the whole connection); both answer 421.
A client that does not read its replies is not read from either (``pause_writing``): replies never pile up.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, cast

from mailpipe.core import metrics
from mailpipe.core.edge.actions import Close, Deliver

if TYPE_CHECKING:
    import ssl
    from collections.abc import Awaitable, Callable

    from mailpipe.core.edge.actions import Step
    from mailpipe.core.edge.session import Session

TIMEOUT_REPLY = b"421 4.4.2 Timeout, closing connection\r\n"
BUSY_REPLY = b"421 4.7.0 Too many connections, try again later\r\n"


class ConnectionGate:
    """Counts open sessions of one server (event-loop confined, so no lock)."""

    def __init__(self, limit: int) -> None:
        self.limit, self.active = limit, 0

    def enter(self) -> bool:
        if self.active >= self.limit:
            return False
        self.active += 1
        return True

    def leave(self) -> None:
        self.active -= 1


class SMTPProtocol(asyncio.Protocol):
    """One SMTP connection. ``deliver(action, peer_ip, tls)`` stores a message and returns the reply."""

    def __init__(
        self,
        new_session: Callable[[bool], Session],
        deliver: Callable[[Deliver, str | None, bool], Awaitable[str]],
        *,
        gate: ConnectionGate,
        tls: ssl.SSLContext | None,
        idle: float,
        total: float,
    ) -> None:
        self._new_session, self._deliver, self._gate, self._tls = new_session, deliver, gate, tls
        self._idle, self._total = idle, total
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._admitted = self._write_paused = False
        self._last = 0.0
        self._timers: list[asyncio.TimerHandle] = []
        self._task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast("asyncio.Transport", transport)  # (uvloop's is not an asyncio.Transport subclass)
        if not self._gate.enter():
            metrics.inc("mailpipe_smtp_refused_total", reason="421 4.7.0")
            self._transport.write(BUSY_REPLY)
            self._transport.close()
            return
        self._admitted = True
        metrics.inc("mailpipe_smtp_sessions_total")
        peer = transport.get_extra_info("peername")
        self._peer = peer[0] if isinstance(peer, tuple) else None
        self._session = self._new_session(self._tls is not None)
        self._last = self._loop.time()
        self._timers = [
            self._loop.call_later(self._idle, self._idle_check),
            self._loop.call_later(self._total, self._timeout),
        ]
        self._transport.write(self._session.greeting())

    def data_received(self, data: bytes) -> None:
        self._last = self._loop.time()
        self._apply(self._session.receive(data))

    def eof_received(self) -> bool:
        return False  # the client half-closed: close our side too

    def pause_writing(self) -> None:
        """The client does not read its replies: stop reading its commands (no unbounded reply buffer)."""
        self._write_paused = True
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._transport is not None and self._admitted and not self._session.blocked:
            with contextlib.suppress(RuntimeError):
                self._transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        for timer in self._timers:
            timer.cancel()
        if self._admitted:
            self._admitted = False
            self._gate.leave()
        # a delivery in flight runs to completion: the message is stored, the client just never hears 250

    def _apply(self, step: Step) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        if step.out:
            transport.write(step.out)
        action = step.action
        if action is None:
            return
        if isinstance(action, Close):
            transport.close()
            return
        transport.pause_reading()
        runner = self._run_delivery(action) if isinstance(action, Deliver) else self._start_tls()
        self._task = self._loop.create_task(runner)

    async def _run_delivery(self, action: Deliver) -> None:
        reply = await self._deliver(action, self._peer, self._session.tls)
        self._resume(self._session.resume(reply))

    async def _start_tls(self) -> None:
        transport = self._transport
        assert transport is not None and self._tls is not None
        try:
            upgraded = await self._loop.start_tls(transport, self, self._tls, server_side=True)
        except (TimeoutError, OSError):  # a failed handshake (ssl.SSLError is an OSError)
            transport.abort()
            return
        if upgraded is None:
            transport.abort()
            return
        self._transport = upgraded
        self._resume(self._session.tls_started())

    def _resume(self, step: Step) -> None:
        if self._transport is None:
            return
        if not self._write_paused:
            with contextlib.suppress(RuntimeError):  # resume_reading on a transport being closed
                self._transport.resume_reading()
        self._apply(step)

    def _idle_check(self) -> None:
        remaining = self._last + self._idle - self._loop.time()
        if self._session.blocked or remaining > 0:  # busy storing, or heard from recently: look again later
            self._timers[0] = self._loop.call_later(self._idle if remaining <= 0 else remaining, self._idle_check)
            return
        self._timeout()

    def _timeout(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            metrics.inc("mailpipe_smtp_refused_total", reason="421 4.4.2")
            self._transport.write(TIMEOUT_REPLY)
            self._transport.close()
