"""End-of-DATA -> 250 latency probe: ``send(port, count, concurrency, size)`` over raw asyncio sockets.

``concurrency`` connections share ``count`` messages; each connection sends EHLO once, then per message
``MAIL FROM / RCPT TO / DATA`` as one pipelined group (RFC 2920, when the server offers PIPELINING), the
body, and the final ``.``. The clock starts once the last byte of ``<CRLF>.<CRLF>`` has left the client's
buffer (write-buffer limits 0, so ``drain()`` returns only then) and stops at the reply: that is the
server's durable-accept latency plus one loopback round trip. Every read has a timeout and the whole run a
deadline, so it always ends.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

FROM, RCPT = "probe@client.test", "user@bench.test"


@dataclass
class Tally:
    left: int
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def make_body(size: int) -> bytes:
    """About ``size`` bytes of body lines (nothing to dot-stuff), terminated for DATA."""
    line = b"abcdefghijklmnopqrstuvwxyz0123456789 ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789\r\n"
    return line * max(1, (size - 200) // len(line)) + b".\r\n"


def make_head(seq: int) -> bytes:
    """Unique headers per message: a content-addressed store must not collapse the run into one object."""
    return (f"From: <{FROM}>\r\nTo: <{RCPT}>\r\nSubject: probe {seq}\r\n"
            f"Message-ID: <probe.{seq}.{time.time_ns()}@client.test>\r\n\r\n").encode()


async def _reply(reader: asyncio.StreamReader, timeout: float) -> tuple[int, bytes]:
    lines = []
    while True:
        line = await asyncio.wait_for(reader.readline(), timeout)
        if not line:
            raise ConnectionError("server closed the connection")
        lines.append(line)
        if line[3:4] != b"-":
            return int(line[:3]), b"".join(lines)


async def _expect(reader: asyncio.StreamReader, code: int, timeout: float) -> bytes:
    got, text = await _reply(reader, timeout)
    if got != code:
        raise RuntimeError(f"expected {code}, got {text[:120]!r}")
    return text


async def _session(port: int, tally: Tally, message: bytes, timeout: float) -> None:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    writer.transport.set_write_buffer_limits(0)
    try:
        await _expect(reader, 220, timeout)
        writer.write(b"EHLO probe.client.test\r\n")
        pipelining = b"PIPELINING" in (await _expect(reader, 250, timeout)).upper()
        while tally.left > 0:
            tally.left -= 1
            await _transaction(reader, writer, make_head(tally.left) + message, pipelining, tally, timeout)
        writer.write(b"QUIT\r\n")
        await writer.drain()
    finally:
        writer.close()


async def _transaction(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, message: bytes,
                       pipelining: bool, tally: Tally, timeout: float) -> None:
    cmds = [f"MAIL FROM:<{FROM}>\r\n".encode(), f"RCPT TO:<{RCPT}>\r\n".encode(), b"DATA\r\n"]
    if pipelining:
        writer.write(b"".join(cmds))
    for cmd, code in zip(cmds, (250, 250, 354), strict=True):
        if not pipelining:
            writer.write(cmd)
        await _expect(reader, code, timeout)
    writer.write(message)
    await writer.drain()
    t0 = time.perf_counter()
    code, text = await _reply(reader, timeout)
    if code == 250:
        tally.latencies.append(time.perf_counter() - t0)
    else:
        tally.errors.append(text[:120].decode("latin-1"))


async def _run(port: int, count: int, concurrency: int, message: bytes, timeout: float) -> Tally:
    tally = Tally(count)
    tasks = [_session(port, tally, message, timeout) for _ in range(min(concurrency, count))]
    for res in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(res, BaseException):
            tally.errors.append(f"{type(res).__name__}: {res}")
    return tally


def send(port: int, count: int, concurrency: int, size: int, timeout: float = 120.0,
         deadline: float = 900.0) -> dict[str, object]:
    """Send ``count`` messages of ``size`` bytes at ``concurrency``; return latency percentiles (ms)."""
    message = make_body(size)
    t0 = time.perf_counter()
    try:
        tally = asyncio.run(asyncio.wait_for(_run(port, count, concurrency, message, timeout), deadline))
    except TimeoutError:
        return {"error": f"probe deadline {deadline:.0f}s exceeded"}
    wall = time.perf_counter() - t0
    lat = sorted(tally.latencies)
    pct = (lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000) if lat else (lambda q: None)
    return {"sent": len(lat), "errors": len(tally.errors), "error_samples": tally.errors[:5],
            "wall_s": wall, "msgs_per_s": len(lat) / wall if wall else 0.0,
            "p50_ms": pct(0.50), "p99_ms": pct(0.99), "max_ms": lat[-1] * 1000 if lat else None}
