"""aiosmtpd's SMTP with a fast, strict DATA path, a connection limit and a whole-session timeout.

aiosmtpd reads DATA line by line (about 1/6 of Postfix's rate at 1 MB); here DATA is read in large chunks and
decoded by ``core.smtpdata.DataDecoder`` (end marker by ``bytes.find``, dot-unstuffing by one ``replace``,
size enforced while reading, bare CR/LF refused). Replies: 354, then the DATA hook's answer, 552 too big,
554 bare newline / long line; 421 when the server is at its connection limit.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, cast

from aiosmtpd.smtp import SMTP

from core.smtpdata import DataDecoder

if TYPE_CHECKING:
    import asyncio

CHUNK = 256 * 1024


@functools.cache
def _protocol_names(cls: type) -> list[str]:
    return sorted(n for n in dir(cls) if n.startswith(("smtp_", "auth_")))


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


class EdgeSMTP(SMTP):
    """One SMTP session. ``gate`` is shared by all sessions of a server."""

    def __init__(
        self, handler: Any, *, gate: ConnectionGate, max_line: int, session_timeout: float, **kwargs: Any
    ) -> None:
        super().__init__(handler, **kwargs)
        self._gate, self._max_line, self._session_timeout = gate, max_line, session_timeout

    def __dir__(self) -> list[str]:
        # aiosmtpd introspects every new session with dir()/inspect.getmembers() to find its smtp_/auth_
        # methods; answering with the cached relevant names cuts a third of the per-connection CPU.
        cls: type = type(self)  # as plain `type`: mypy checks type[EdgeSMTP] against Hashable via unbound __hash__
        return _protocol_names(cls)

    async def _handle_client(self) -> None:
        if not self._gate.enter():
            await self.push("421 4.7.0 Too many connections, try again later")
            assert self.transport is not None
            self.transport.close()
            return
        deadline = self.loop.call_later(self._session_timeout, self._timeout_cb)
        try:
            await super()._handle_client()
        finally:
            deadline.cancel()
            self._gate.leave()

    def _timeout_cb(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            # aiosmtpd types it BaseTransport; a stream server's transport is always a WriteTransport
            cast("asyncio.WriteTransport", self.transport).write(b"421 4.4.2 Timeout, closing connection\r\n")
        super()._timeout_cb()  # type: ignore[no-untyped-call]  # aiosmtpd leaves it unannotated

    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 5.5.1 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        decoder = await self._read_data()
        if decoder is None:
            return  # connection closed mid-DATA: nothing was stored, nothing is answered
        if decoder.error is not None:
            status = decoder.error.reply
        else:
            self.envelope.content = self.envelope.original_content = decoder.message
            status = await self._call_handler_hook("DATA")
        self._set_post_data_state()  # type: ignore[no-untyped-call]  # aiosmtpd leaves it unannotated
        await self.push(status)

    async def _read_data(self) -> DataDecoder | None:
        decoder = DataDecoder(self.data_size_limit or 2**62, self._max_line)
        reader = self._reader
        line_limit, reader._limit = reader._limit, CHUNK  # type: ignore[attr-defined]
        try:  # a higher limit lets the transport buffer big reads instead of pausing every 2 KB
            while True:
                chunk = await reader.read(CHUNK)
                if not chunk:
                    return None
                self._reset_timeout()  # the idle timeout counts silence, not the length of a transfer
                leftover = decoder.feed(chunk)
                if leftover is not None:
                    if leftover:  # pipelined commands after the end marker go back to the command reader
                        reader._buffer[:0] = leftover  # type: ignore[attr-defined]
                    return decoder
        finally:
            reader._limit = line_limit  # type: ignore[attr-defined]
