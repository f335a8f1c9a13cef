"""The SMTP edge on loopback (the real edge server in a thread) driven by smtplib and raw sockets."""

from __future__ import annotations

import asyncio
import json
import shutil
import smtplib
import socket
import ssl
import subprocess
import threading
import time
import uuid
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailpipe.core.edge.data import DataDecoder, DataError, _has_long_line
from mailpipe.core.edge.ingest import accept_many
from mailpipe.core.errors import BackendUnavailable
from mailpipe.core.keys import envelope_key, message_id, raw_key
from mailpipe.core.model import Envelope
from mailpipe.core.settings import Settings
from mailpipe.providers.local.store import FolderStore, MemoryStore

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from conftest import Edge

MSG = b"From: a@sender.org\r\nTo: b@example.com\r\nSubject: t\r\n\r\nHello\r\n"


def _queued_id(reply: bytes) -> str:
    return reply.decode().rsplit(" ", 1)[-1]


def test_250_only_with_raw_and_envelope_stored(edge: Callable[..., Edge]) -> None:
    e = edge()
    with e.client() as c:
        c.ehlo("client.test")
        c.mail("a@sender.org")
        c.rcpt("b@example.com")
        c.rcpt("C@Example.COM")
        code, reply = c.data(MSG)
    assert code == 250
    mid = _queued_id(reply)
    env = Envelope.from_dict(json.loads(e.store.get(envelope_key(mid))))
    assert e.store.get(raw_key(mid)) == MSG  # exactly the bytes sent, no trace header
    assert (env.mail_from, env.rcpt_to, env.helo, env.client_ip) == (
        "a@sender.org",
        ("b@example.com", "C@Example.COM"),
        "client.test",
        "127.0.0.1",
    )
    assert mid == message_id(MSG, env)


def test_ehlo_advertises_extensions(edge: Callable[..., Edge]) -> None:
    with edge().client() as c:
        c.ehlo("x")
        for ext in ("size", "pipelining", "8bitmime", "smtputf8"):
            assert c.has_extn(ext), ext
        assert c.esmtp_features["size"] == str(Settings().max_message_bytes)
        assert not c.has_extn("starttls")


@pytest.fixture
def cert(tmp_path: Path) -> tuple[str, str]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl binary missing: cannot generate a test certificate")
    crt, key = tmp_path / "c.pem", tmp_path / "k.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(crt),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ],
        check=True,
        capture_output=True,
    )
    return str(crt), str(key)


def test_starttls(edge: Callable[..., Edge], cert: tuple[str, str]) -> None:
    e = edge(tls_cert=cert[0], tls_key=cert[1])
    ctx = ssl.create_default_context(cafile=cert[0])
    ctx.check_hostname = False
    with e.client() as c:
        c.ehlo("x")
        assert c.has_extn("starttls")
        c.starttls(context=ctx)
        c.ehlo("x")
        assert not c.has_extn("starttls")
        c.sendmail("a@sender.org", ["b@example.com"], MSG)
    (key,) = e.raw_keys()
    assert json.loads(e.store.get(key.replace(".eml", ".envelope.json")))["tls"] is True


def test_552_when_size_declared_or_data_too_big(edge: Callable[..., Edge]) -> None:
    e = edge(max_message_bytes=1000)
    with e.client() as c:
        c.ehlo("x")
        assert c.mail("a@sender.org", ["SIZE=5000"])[0] == 552
        c.mail("a@sender.org")
        c.rcpt("b@example.com")
        assert c.data(MSG + b"x" * 2000 + b"\r\n")[0] == 552
        c.mail("a@sender.org")  # the session survives
        c.rcpt("b@example.com")
        assert c.data(MSG)[0] == 250
    assert len(e.raw_keys()) == 1


def test_550_unknown_domain_never_relays(edge: Callable[..., Edge]) -> None:
    e = edge(domains=("example.com", "example.net"))
    with e.client() as c:
        c.ehlo("x")
        c.mail("a@sender.org")
        assert c.rcpt("x@elsewhere.org")[0] == 550
        assert c.rcpt("x@sub.example.com")[0] == 550
        assert c.rcpt("x@example.net")[0] == 250
    assert e.raw_keys() == []


def test_local_mode_accepts_any_domain(edge: Callable[..., Edge]) -> None:
    e = edge(domains=())
    with e.client() as c:
        assert c.sendmail("a@sender.org", ["x@anything.test"], MSG) == {}
    assert len(e.raw_keys()) == 1


def test_452_too_many_recipients(edge: Callable[..., Edge]) -> None:
    e = edge(max_recipients=3)
    with e.client() as c:
        c.ehlo("x")
        c.mail("a@sender.org")
        assert [c.rcpt(f"r{n}@example.com")[0] for n in range(4)] == [250, 250, 250, 452]
        assert c.rcpt("r9@example.com")[1].startswith(b"4.5.3")
        code, reply = c.data(MSG)
    assert code == 250
    env = json.loads(e.store.get(envelope_key(_queued_id(reply))))
    assert env["rcpt_to"] == ["r0@example.com", "r1@example.com", "r2@example.com"]


class FailingStore(MemoryStore):
    """A real MemoryStore whose writes fail for keys matching ``fail_on`` (fault injection, not a mock)."""

    def __init__(self, fail_on: str, error: Exception) -> None:
        super().__init__(f"failing-{uuid.uuid4().hex}")
        self.fail_on, self.error = fail_on, error

    def put(self, key: str, data: bytes, *, content_type: str = "", if_absent: bool = False) -> bool:
        if self.fail_on in key:
            raise self.error
        return super().put(key, data, content_type=content_type, if_absent=if_absent)


@pytest.mark.parametrize("error", [BackendUnavailable("disk full"), RuntimeError("bug")])
@pytest.mark.parametrize("fail_on", [".eml", ".envelope.json"])
def test_451_when_the_store_fails(edge: Callable[..., Edge], fail_on: str, error: Exception) -> None:
    e = edge(store=FailingStore(fail_on, error))
    with e.client() as c:
        c.ehlo("x")
        c.mail("a@sender.org")
        c.rcpt("b@example.com")
        code, reply = c.data(MSG)
    assert (code, reply[:5]) == (451, b"4.3.0")
    assert e.raw_keys() == []


DOTTY = b"Subject: dots\r\n\r\n.\r\n..\r\n.leading\r\n...three\r\nmid.dle\r\n. \r\nend\r\n"


def test_dot_stuffing_round_trip(edge: Callable[..., Edge]) -> None:
    e = edge()
    for body in (DOTTY, b".first line dot\r\n" + DOTTY, b"..\r\n"):
        with e.client() as c:
            code, reply = c.ehlo("x") and c.mail("a@sender.org") and c.rcpt("b@example.com") and c.data(body)
        assert code == 250
        assert e.store.get(raw_key(_queued_id(reply))) == body


def _raw_session(port: int, payload: bytes) -> list[bytes]:
    """Send ``payload`` (ending in QUIT) in one write; return every reply line until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(payload)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return [line for line in data.split(b"\r\n") if line]


HEAD = b"EHLO x\r\nMAIL FROM:<a@sender.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"
SMUGGLED = b"MAIL FROM:<evil@sender.org>\r\nRCPT TO:<victim@example.com>\r\nDATA\r\nSubject: smuggled\r\n\r\nx\r\n"


@pytest.mark.parametrize("fake_end", [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n", b"\n.\r", b"\r\n.\r"])
def test_smuggling_is_never_two_messages(edge: Callable[..., Edge], fake_end: bytes) -> None:
    e = edge()
    payload = HEAD + b"Subject: one\r\n\r\nbody" + fake_end + SMUGGLED + b".\r\nQUIT\r\n"
    replies = _raw_session(e.port, payload)
    codes = [r[:3] for r in replies]
    assert b"250" not in codes[-2:], replies  # the DATA ended only at the real <CRLF>.<CRLF>, and was refused
    assert codes[-2:] == [b"554", b"221"], replies
    assert codes.count(b"354") == 1
    assert e.raw_keys() == []


def test_pipelined_session_in_one_write(edge: Callable[..., Edge]) -> None:
    e = edge()
    msg2 = b"Subject: two\r\n\r\nsecond\r\n"
    payload = HEAD + MSG + b".\r\nMAIL FROM:<a@sender.org>\r\nRCPT TO:<c@example.com>\r\nDATA\r\n" + msg2
    replies = _raw_session(e.port, payload + b".\r\nQUIT\r\n")
    assert [r[:3] for r in replies if not r.startswith(b"250-")] == [
        b"220",
        b"250",
        b"250",
        b"250",
        b"354",
        b"250",
        b"250",
        b"250",
        b"354",
        b"250",
        b"221",
    ]
    assert sorted(e.store.get(k) for k in e.raw_keys()) == sorted([MSG, msg2])


def test_421_over_the_connection_limit(edge: Callable[..., Edge]) -> None:
    e = edge(max_connections=2)
    first, second = e.client(), e.client()
    try:
        with pytest.raises(smtplib.SMTPConnectError) as exc:
            e.client()
        assert exc.value.smtp_code == 421
    finally:
        first.quit()
        second.quit()
    with e.client() as c:  # slots are given back
        assert c.noop()[0] == 250


def test_554_line_too_long(edge: Callable[..., Edge]) -> None:
    e = edge(max_line_length=100)
    with e.client() as c:
        c.ehlo("x")
        c.mail("a@sender.org")
        c.rcpt("b@example.com")
        assert c.data(b"Subject: x\r\n\r\n" + b"y" * 101 + b"\r\n")[0] == 554
    assert e.raw_keys() == []


def test_retry_is_stored_once_null_sender_8bit_and_smtputf8(edge: Callable[..., Edge]) -> None:
    e = edge(domains=("exämple.com", "example.com"))
    body = "Subject: ünïcödé\r\n\r\ncafé €\r\n".encode()
    with e.client() as c:
        assert c.sendmail("<>", ["b@example.com"], MSG) == {}
        assert c.sendmail("<>", ["b@example.com"], MSG) == {}  # same bytes, same envelope: one object
        assert (
            c.sendmail("jörg@sender.org", ["zoë@exämple.com"], body, mail_options=["SMTPUTF8", "BODY=8BITMIME"]) == {}
        )
    keys = e.raw_keys()
    assert len(keys) == 2
    envs = [json.loads(e.store.get(k.replace(".eml", ".envelope.json"))) for k in keys]
    assert sorted((x["mail_from"], x["rcpt_to"][0]) for x in envs) == [
        ("", "b@example.com"),
        ("jörg@sender.org", "zoë@exämple.com"),
    ]
    assert body in [e.store.get(k) for k in keys]


lines = st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")), max_size=30)


@settings(max_examples=300, deadline=None)
@given(lines=lines, chunk=st.integers(1, 70))
def test_decoder_round_trips_any_lines_in_any_chunking(lines: list[bytes], chunk: int) -> None:
    message = b"".join(line + b"\r\n" for line in lines)
    wire = b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines) + b".\r\nNEXT"
    decoder = DataDecoder(max_bytes=10**6, max_line=1000)
    for i in range(0, len(wire), chunk):
        leftover = decoder.feed(wire[i : i + chunk])
        if leftover is not None:
            break
    assert decoder.error is None
    assert decoder.message == message
    assert leftover + wire[i + chunk :] == b"NEXT"


def test_decoder_discards_past_the_limit_but_still_finds_the_end() -> None:
    decoder = DataDecoder(max_bytes=1000, max_line=10**6)
    for _ in range(100):
        assert decoder.feed(b"x" * 999 + b"\r\n") is None
    assert decoder._kept == 0 and not decoder._chunks  # memory stays bounded while discarding
    assert decoder.feed(b".\r\nQUIT\r\n") == b"QUIT\r\n"
    assert decoder.error is DataError.TOO_BIG


@settings(max_examples=500, deadline=None)
@given(lines=st.lists(st.integers(0, 25), max_size=12), tail=st.integers(0, 25), limit=st.integers(1, 20))
def test_long_line_check_matches_a_plain_split(lines: list[int], tail: int, limit: int) -> None:
    data = b"".join(b"y" * n + b"\r\n" for n in lines) + b"z" * tail
    assert _has_long_line(data, limit) == (max(len(x) for x in data.split(b"\r\n")) > limit)


def test_idn_domains_match_in_either_spelling(edge: Callable[..., Edge]) -> None:
    e = edge(domains=("exämple.com", "xn--bcher-kva.example"))
    with e.client() as c:
        c.ehlo("x")
        c.mail("a@sender.org", ["SMTPUTF8"])
        assert c.rcpt("a@xn--exmple-cua.com")[0] == 250
        assert c.rcpt("b@bücher.example")[0] == 250
        assert c.rcpt("c@example.com")[0] == 550


def test_idle_and_session_timeouts_answer_421_and_close(edge: Callable[..., Edge]) -> None:
    e = edge(idle_timeout=0.3)
    with socket.create_connection(("127.0.0.1", e.port), timeout=5) as s:
        assert s.recv(1024).startswith(b"220")
        data = b""
        while chunk := s.recv(1024):  # the server closes after the idle time
            data += chunk
    assert data.startswith(b"421 4.4.2")
    e = edge(session_timeout=0.6)
    with e.client() as c, pytest.raises(smtplib.SMTPServerDisconnected):
        for _ in range(40):  # busy, never idle, yet the whole session is bounded
            c.noop()
            time.sleep(0.05)


def test_concurrent_sessions_share_group_commits(edge: Callable[..., Edge], tmp_path: Path) -> None:
    e = edge(store=FolderStore(tmp_path / "store"), domains=())
    results: dict[bytes, str] = {}

    def client(n: int) -> None:
        with e.client() as c:
            for k in range(10):
                body = b"Subject: %d/%d\r\n\r\n" % (n, k) + b"x" * (n * 100) + b"\r\n"
                code, reply = c.ehlo("x") and c.mail("a@sender.org") and c.rcpt(f"r{n}@example.com") and c.data(body)
                assert code == 250
                results[body] = _queued_id(reply)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 160 and len(set(results.values())) == 160
    for body, mid in results.items():
        assert e.store.get(raw_key(mid)) == body
        assert json.loads(e.store.get(envelope_key(mid)))["rcpt_to"][0].startswith("r")


class PoisonStore(MemoryStore):
    """put_many fails for a batch holding a poisoned message, and so does put for that message alone."""

    def put_many(self, items: list[tuple[str, bytes, str]], *, if_absent: bool = False) -> list[bool]:
        if any(b"POISON" in data for _, data, _ in items):
            raise BackendUnavailable("disk full")
        return [self.put(k, d, content_type=c, if_absent=if_absent) for k, d, c in items]


def test_a_failing_message_does_not_fail_its_batch() -> None:
    store = PoisonStore(f"poison-{uuid.uuid4().hex}")
    env = Envelope(mail_from="a@sender.org", rcpt_to=("b@example.com",))
    messages = [(b"Subject: ok1\r\n\r\n", env), (b"Subject: POISON\r\n\r\n", env), (b"Subject: ok2\r\n\r\n", env)]
    results = accept_many(store, messages)
    assert isinstance(results[1], BackendUnavailable)
    assert [store.get(raw_key(r)) for r in (results[0], results[2])] == [messages[0][0], messages[2][0]]
    assert not store.exists(raw_key(message_id(*messages[1])))


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from([b"a", b".", b"\r", b"\n", b"\r\n"]), max_size=30))
def test_bare_cr_lf_is_refused_exactly_when_a_cr_or_lf_is_not_part_of_crlf(parts: list[bytes]) -> None:
    data = b"".join(parts) + b"\r\n"
    decoder = DataDecoder(max_bytes=10**6, max_line=10**6)
    leftover = decoder.feed(data + b".\r\n")
    crlf = data.count(b"\r\n")
    bare = data.count(b"\r") != crlf or data.count(b"\n") != crlf
    if leftover != b"":  # an end marker inside the data ended it earlier: nothing more to check here
        return
    assert (decoder.error is DataError.BARE_NEWLINE) == bare


def test_a_client_that_never_reads_its_replies_is_not_read_from(edge: Callable[..., Edge]) -> None:
    e = edge()
    with socket.create_connection(("127.0.0.1", e.port), timeout=10) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # replies back up at once
        assert s.recv(1024).startswith(b"220")
        s.settimeout(3)
        flood = b"NOOP\r\n" * 4_000_000  # 24 MB of commands, 56 MB of replies if all were answered
        with pytest.raises(TimeoutError):  # the server stopped reading: our send blocks
            s.sendall(flood)


def test_a_failed_tls_handshake_closes_only_that_connection(edge: Callable[..., Edge], cert: tuple[str, str]) -> None:
    e = edge(tls_cert=cert[0], tls_key=cert[1])
    with socket.create_connection(("127.0.0.1", e.port), timeout=10) as s:
        assert s.recv(1024).startswith(b"220")
        s.sendall(b"EHLO x\r\n")
        while not s.recv(4096).rstrip().splitlines()[-1].startswith(b"250 "):
            pass
        s.sendall(b"STARTTLS\r\n")
        assert s.recv(1024).startswith(b"220 2.0.0")
        s.sendall(b"MAIL FROM:<a@sender.org>\r\n" * 50)  # clear text where a TLS ClientHello belongs
        data = b""
        while chunk := s.recv(4096):  # the server gives up on this connection: EOF or a TLS alert, no 250
            data += chunk
        assert b"250" not in data
    with e.client() as c:  # the server itself is fine
        assert c.ehlo("x")[0] == 250
        c.sendmail("a@sender.org", ["b@example.com"], MSG)
    assert len(e.raw_keys()) == 1


class SlowStore:
    """A store whose writes take ``delay`` seconds (a stalled disk or a slow cloud PUT)."""

    def __init__(self, delay: float) -> None:
        self.delay, self.inner = delay, MemoryStore(f"slow-{uuid.uuid4().hex}")

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def put(self, key: str, data: bytes, *, content_type: str = "", if_absent: bool = False) -> bool:
        time.sleep(self.delay)
        return bool(self.inner.put(key, data, content_type=content_type, if_absent=if_absent))

    def put_many(self, items: list[tuple[str, bytes, str]], *, if_absent: bool = False) -> list[bool]:
        time.sleep(self.delay)
        return [bool(self.inner.put(k, d, content_type=t, if_absent=if_absent)) for k, d, t in items]



def test_session_timeout_during_a_slow_write_closes_but_the_message_is_kept(edge: Callable[..., Edge]) -> None:
    store = SlowStore(1.0)
    # a cloud store: written in the committer's thread (a local store serving one session is written on the
    # event loop, where a stalled disk also holds the timers until the write returns)
    e = edge(store=store, store_url="s3://bucket", session_timeout=0.5)
    c = e.client()
    c.ehlo("x")
    c.mail("a@sender.org")
    c.rcpt("b@example.com")
    assert c.data(MSG)[0] == 421  # the whole-session timeout fires while the write is still running
    with pytest.raises(smtplib.SMTPServerDisconnected):
        c.noop()
    c.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not [k for k in store.inner.list("raw/") if k.endswith(".eml")]:
        time.sleep(0.05)
    assert [k for k in store.inner.list("raw/") if k.endswith(".eml")]  # the write ran to completion


class PutOnlyStore:
    """The shape of the cloud adapters (one request per object, no put_many), each put taking ``delay`` s."""

    def __init__(self, delay: float) -> None:
        self.delay, self.inner, self.order = delay, MemoryStore(f"puts-{uuid.uuid4().hex}"), list[str]()
        self.failing: set[str] = set()

    def put(self, key: str, data: bytes, *, content_type: str = "", if_absent: bool = False) -> bool:
        time.sleep(self.delay)
        if key in self.failing:
            raise BackendUnavailable(f"injected failure for {key}")
        self.order.append(key)
        return bool(self.inner.put(key, data, content_type=content_type, if_absent=if_absent))


def test_a_batch_for_a_store_without_put_many_is_written_concurrently_envelope_first() -> None:
    """A group commit of 10 messages to a cloud bucket costs ~2 request latencies, not 2 per message."""
    store = PutOnlyStore(0.2)
    env = Envelope(mail_from="", rcpt_to=("a@example.com",))
    messages = [(b"Subject: %d\r\n\r\nx\r\n" % n, env) for n in range(10)]
    started = time.monotonic()
    ids = accept_many(store, messages)  # type: ignore[arg-type]
    assert time.monotonic() - started < 1.5  # one after another: 20 x 0.2 s = 4 s
    assert ids == [message_id(raw, env) for raw, _ in messages]
    for mid in ids:  # every .eml (the commit point, the object-created event) after its envelope
        assert store.order.index(envelope_key(mid)) < store.order.index(raw_key(mid))


def test_in_a_concurrent_batch_a_failed_envelope_fails_only_its_message() -> None:
    store = PutOnlyStore(0.0)
    env = Envelope(mail_from="", rcpt_to=("a@example.com",))
    messages = [(b"Subject: %d\r\n\r\nx\r\n" % n, env) for n in range(5)]
    bad = message_id(messages[2][0], env)
    store.failing.add(envelope_key(bad))
    results = accept_many(store, messages)  # type: ignore[arg-type]
    assert isinstance(results[2], BackendUnavailable)
    others = [message_id(raw, env) for raw, _ in messages[:2] + messages[3:]]
    assert [r for i, r in enumerate(results) if i != 2] == others
    assert raw_key(bad) not in store.order  # no .eml without its envelope: nothing would parse it wrongly


def test_event_loop_setting() -> None:
    from mailpipe.core.errors import ConfigError
    from mailpipe.providers.smtp.server import run_loop

    with pytest.raises(ConfigError):
        Settings.from_env({"MAILPIPE_EVENT_LOOP": "trio"})
    seen: list[str] = []

    async def main() -> None:
        seen.append(type(asyncio.get_running_loop()).__module__.split(".")[0])

    run_loop(main(), Settings.from_env({"MAILPIPE_EVENT_LOOP": "asyncio"}))
    uvloop = pytest.importorskip("uvloop", reason="uvloop not installed (mailpipe[smtp] on Linux/macOS)")
    run_loop(main(), Settings.from_env({"MAILPIPE_EVENT_LOOP": "auto"}))
    assert seen == ["asyncio", uvloop.__name__]
