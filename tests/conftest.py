"""Shared fixtures: environment isolation (autouse), free ports, a `mailpipe serve` subprocess."""

from __future__ import annotations

import asyncio
import os
import smtplib
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

ROOT = Path(__file__).resolve().parent.parent

# Session fixtures for the cloud emulators (one process each per test session, whichever modules use them).
pytest_plugins = ["emulators_gcp", "emulators_azure"]


@pytest.fixture(autouse=True)
def _isolate_environ() -> Iterator[None]:
    """Tests may change os.environ; every test starts from the same environment (functions-framework)."""
    saved = os.environ.copy()
    for name in [n for n in os.environ if n.startswith("MAILPIPE_")]:
        del os.environ[name]
    yield
    os.environ.clear()
    os.environ.update(saved)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    return _free_port()


@pytest.fixture
def memory_url() -> str:
    """A memory:// URL no other test uses."""
    return f"memory://t-{uuid.uuid4().hex[:12]}"


def wait_for(predicate: Callable[[], object], timeout: float = 20.0, what: str = "condition") -> object:
    """Poll ``predicate`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_port(port: int, timeout: float = 20.0) -> None:
    def ready() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                return s.recv(3) == b"220"
        except OSError:
            return False

    wait_for(ready, timeout, f"SMTP banner on port {port}")


class ServeProcess:
    """A running ``mailpipe serve`` subprocess with a folder store and folder queue under ``base``."""

    def __init__(self, base: Path, port: int, extra: list[str]) -> None:
        self.base, self.port, self.extra = base, port, extra
        self.store_dir, self.queue_dir = base / "mail", base / "queue"
        self.log_path = base / "serve.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServeProcess:
        args = [
            sys.executable,
            "-m",
            "mailpipe.handlers.cli",
            "serve",
            "--listen",
            f"127.0.0.1:{self.port}",
            "--store",
            f"file://{self.store_dir}",
            "--queue",
            f"file://{self.queue_dir}",
            *self.extra,
        ]
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child for its lifetime
        self.proc = subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=log)
        log.close()
        try:
            wait_port(self.port)
        except AssertionError:
            self.stop()
            raise AssertionError(f"serve did not start: {self.log_path.read_text()[-2000:]}") from None
        return self

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.terminate()
        try:
            return self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines()


@pytest.fixture
def serve_process(tmp_path: Path) -> Iterator[Callable[..., ServeProcess]]:
    """Factory: ``serve_process("--domains", "example.com")`` starts `mailpipe serve` on a free port."""
    started: list[ServeProcess] = []

    def start(*extra: str, port: int | None = None) -> ServeProcess:
        proc = ServeProcess(tmp_path, port or _free_port(), list(extra)).start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


class Edge:
    """An in-process edge server (the real SMTP server on loopback) and the store it writes to."""

    def __init__(self, port: int, store: Any) -> None:
        self.port, self.store = port, store

    def client(self) -> smtplib.SMTP:
        return smtplib.SMTP("127.0.0.1", self.port, timeout=10)

    def raw_keys(self) -> list[str]:
        return sorted(k for k in self.store.list("raw/") if k.endswith(".eml"))


@pytest.fixture(params=["asyncio", "uvloop"])
def edge(request: pytest.FixtureRequest) -> Iterator[Callable[..., Edge]]:
    """Factory: start the edge with Settings overrides on a private event loop thread (each test runs on
    asyncio's loop and on uvloop, the edge's default when installed)."""
    loops: list[tuple[asyncio.AbstractEventLoop, asyncio.Server, threading.Thread]] = []
    if request.param == "uvloop":
        uvloop = pytest.importorskip("uvloop", reason="uvloop not installed (mailpipe[smtp] on Linux/macOS)")
        new_loop: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    else:
        new_loop = asyncio.new_event_loop

    def start(store: Any = None, **overrides: Any) -> Edge:
        from mailpipe.core.settings import Settings
        from mailpipe.providers.local.store import MemoryStore
        from mailpipe.providers.smtp.server import start_edge

        store = store if store is not None else MemoryStore(f"edge-{uuid.uuid4().hex}")
        cfg = Settings.from_env({}, **{"listen": "127.0.0.1:0", "domains": ("example.com",), **overrides})
        loop = new_loop()
        server = loop.run_until_complete(start_edge(cfg, store))
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        loops.append((loop, server, thread))
        return Edge(server.sockets[0].getsockname()[1], store)

    yield start
    for loop, server, thread in loops:
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """Publish the conformance agreement per suite (collected by tests/test_conformance.py) in the test output."""
    module = sys.modules.get("test_conformance") or sys.modules.get("tests.test_conformance")
    key = getattr(module, "AGREEMENT_TABLE", None)
    lines = config.stash.get(key, None) if key is not None else None
    if lines:
        terminalreporter.section("conformance")
        for line in lines:
            terminalreporter.write_line(line)
