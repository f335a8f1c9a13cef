"""Pipeline outcomes over real in-memory adapters (DONE, QUARANTINED, RETRY, IGNORED); idempotent reruns."""

from __future__ import annotations

import io
import json
import logging
import time
import uuid
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

import pytest

from mailpipe.core.edge.ingest import accept
from mailpipe.core.errors import BackendUnavailable, ConfigError, MalformedEvent
from mailpipe.core.keys import envelope_key, parsed_key, quarantine_key, raw_key
from mailpipe.core.log import configure
from mailpipe.core.model import NOTIFICATION_SCHEMA, Envelope
from mailpipe.core.pipeline import Outcome, Pipeline, pending_raw_keys
from mailpipe.core.ports import Delivery, ObjectRef
from mailpipe.core.routing.dispatch import Dispatcher, Router
from mailpipe.core.routing.rules import load_config
from mailpipe.core.settings import Settings
from mailpipe.providers import open_publisher
from mailpipe.providers.local.memory import MemoryQueue, MemoryStore
from mailpipe.providers.local.runner.worker import LocalWorker, Pacer

if TYPE_CHECKING:
    from collections.abc import Iterator

ENV = Envelope(mail_from="jane.doe@sender.org", rcpt_to=("bob.smith@example.com",), client_ip="127.0.0.1")


def _message() -> bytes:
    m = EmailMessage()
    m["From"] = "Jane Doe <jane.doe@sender.org>"
    m["To"] = "bob.smith@example.com"
    m["Subject"] = "TOPSECRET-SUBJECT"
    m["Message-ID"] = "<m1@sender.org>"
    m.set_content("BODYTEXT-private")
    m.add_attachment(b"%PDF-1.4 fake", maintype="application", subtype="pdf", filename="../../etc/report.pdf")
    m.add_attachment(b"a,b\r\n1,2\r\n", maintype="text", subtype="csv", filename="data.csv")
    return m.as_bytes(policy=m.policy.clone(linesep="\r\n"))


class Flaky(MemoryStore):
    """A real MemoryStore whose get or put fails ``failures`` times for keys containing ``on``."""

    def __init__(self, name: str, on: str, failures: int = 10**9, op: str = "get") -> None:
        super().__init__(name)
        self.on, self.failures, self.op = on, failures, op

    def _maybe_fail(self, op: str, key: str) -> None:
        if op == self.op and self.on in key and self.failures > 0:
            self.failures -= 1
            raise BackendUnavailable("injected")

    def get(self, key: str) -> bytes:
        self._maybe_fail("get", key)
        return super().get(key)

    def put(self, key: str, data: bytes, *, content_type: str = "", if_absent: bool = False) -> bool:
        self._maybe_fail("put", key)
        return super().put(key, data, content_type=content_type, if_absent=if_absent)


class FailingQueue(MemoryQueue):
    def __init__(self, name: str, failures: int) -> None:
        super().__init__(name)
        self.failures = failures

    def publish(self, body: bytes, *, key: str) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise BackendUnavailable("queue down")
        super().publish(body, key=key)


@pytest.fixture
def name() -> str:
    return f"pipe-{uuid.uuid4().hex}"


@pytest.fixture
def store(name: str) -> MemoryStore:
    return MemoryStore(name)


@pytest.fixture
def queue(name: str) -> MemoryQueue:
    return MemoryQueue(name)


def _pipeline(store: Any, queue: Any) -> Pipeline:
    return Pipeline(store, queue, Settings())


def test_done_writes_attachments_parsed_json_and_notification(store: MemoryStore, queue: MemoryQueue) -> None:
    raw = _message()
    mid = accept(store, raw, ENV)
    assert _pipeline(store, queue).process_key(raw_key(mid)) is Outcome.DONE
    doc = json.loads(store.get(parsed_key(mid)))
    assert (doc["id"], doc["raw_key"], doc["subject"]) == (mid, raw_key(mid), "TOPSECRET-SUBJECT")
    assert doc["envelope"]["rcpt_to"] == ["bob.smith@example.com"]
    att_keys = [a["key"] for a in doc["attachments"]]
    assert len(att_keys) == 2 and all(k.startswith(f"att/{mid}/") and ".." not in k for k in att_keys)
    assert store.get(att_keys[0]) == b"%PDF-1.4 fake"
    note = json.loads(queue.messages[mid])
    assert note == {
        "schema": NOTIFICATION_SCHEMA,
        "id": mid,
        "envelope": ENV.to_dict(),
        "subject": "TOPSECRET-SUBJECT",
        "from": [{"name": "Jane Doe", "address": "jane.doe@sender.org"}],
        "raw_key": raw_key(mid),
        "parsed_key": parsed_key(mid),
        "attachment_keys": sorted(att_keys),
    }
    assert store.get(raw_key(mid)) == raw  # never modified


def test_reprocessing_is_idempotent(store: MemoryStore, queue: MemoryQueue) -> None:
    mid = accept(store, _message(), ENV)
    pipeline = _pipeline(store, queue)
    pipeline.process_key(raw_key(mid))
    snapshot = {k: store.get(k) for k in store.list("")}
    note = queue.messages[mid]
    assert pipeline.process_key(raw_key(mid)) is Outcome.DONE
    assert {k: store.get(k) for k in store.list("")} == snapshot
    assert queue.messages == {mid: note}


@pytest.mark.parametrize(
    "key",
    [
        "parsed/x.json",
        "raw/0123456789abcdef0123456789abcdef.envelope.json",
        "raw/not-an-id.eml",
        "att/x/0-a.pdf",
        "",
    ],
)
def test_other_keys_are_ignored(store: MemoryStore, queue: MemoryQueue, key: str) -> None:
    assert _pipeline(store, queue).process_key(key) is Outcome.IGNORED
    assert list(store.list("")) == [] and queue.messages == {}


def test_missing_raw_object_is_quarantined(store: MemoryStore, queue: MemoryQueue) -> None:
    mid = "0123456789abcdef0123456789abcdef"
    assert _pipeline(store, queue).process_key(raw_key(mid)) is Outcome.QUARANTINED
    record = json.loads(store.get(quarantine_key(mid)))
    assert (record["id"], record["reason"], record["raw_key"]) == (mid, "object_missing", raw_key(mid))
    assert queue.messages == {}


def test_unreadable_envelope_is_quarantined_and_missing_one_is_tolerated(
    store: MemoryStore, queue: MemoryQueue
) -> None:
    bad = accept(store, b"Subject: a\r\n\r\nx\r\n", ENV)
    store.put(envelope_key(bad), b"{not json", content_type="application/json")
    assert _pipeline(store, queue).process_key(raw_key(bad)) is Outcome.QUARANTINED
    assert json.loads(store.get(quarantine_key(bad)))["reason"] == "malformed"
    mid = "fedcba9876543210fedcba9876543210"
    store.put(raw_key(mid), b"Subject: dropped in directly\r\n\r\nx\r\n", content_type="message/rfc822")
    assert _pipeline(store, queue).process_key(raw_key(mid)) is Outcome.DONE
    assert json.loads(store.get(parsed_key(mid)))["envelope"] is None


@pytest.mark.parametrize("raw", [b"", b"\x00\xff" * 1000, b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x"])
def test_garbage_never_crashes(store: MemoryStore, queue: MemoryQueue, raw: bytes) -> None:
    mid = accept(store, raw, ENV)
    assert _pipeline(store, queue).process_key(raw_key(mid)) is Outcome.DONE
    assert store.exists(parsed_key(mid)) and mid in queue.messages


def test_transient_store_failure_is_retry_then_done(name: str, queue: MemoryQueue) -> None:
    store = Flaky(name, on=".eml", failures=1)
    mid = accept(store, _message(), ENV)
    pipeline = _pipeline(store, queue)
    assert pipeline.process_key(raw_key(mid)) is Outcome.RETRY
    assert not store.exists(parsed_key(mid)) and not store.exists(quarantine_key(mid))
    assert pipeline.process_key(raw_key(mid)) is Outcome.DONE


def test_queue_failure_is_retry(store: MemoryStore, name: str) -> None:
    queue = FailingQueue(name, failures=1)
    mid = accept(store, _message(), ENV)
    pipeline = _pipeline(store, queue)
    assert pipeline.process_key(raw_key(mid)) is Outcome.RETRY
    assert pipeline.process_key(raw_key(mid)) is Outcome.DONE
    assert mid in queue.messages


def test_quarantine_write_failure_is_retry(name: str, queue: MemoryQueue) -> None:
    store = Flaky(name, on="quarantine/", op="put")
    assert _pipeline(store, queue).process_key(raw_key("0" * 32)) is Outcome.RETRY


def _decode(record: Any) -> list[Delivery]:
    if not isinstance(record, dict) or "keys" not in record:
        raise MalformedEvent("no keys")
    return [Delivery(id=f"d{n}", ref=ObjectRef("b", k)) for n, k in enumerate(record["keys"])]


def test_run_record_returns_the_worst_outcome(store: MemoryStore, name: str) -> None:
    queue = FailingQueue(name, failures=0)
    good = accept(store, _message(), ENV)
    pipeline = _pipeline(store, queue)
    assert pipeline.run_record(_decode, {"keys": [raw_key(good), "parsed/x.json"]}) is Outcome.DONE
    assert pipeline.run_record(_decode, {"keys": []}) is Outcome.IGNORED
    assert pipeline.run_record(_decode, {"keys": [raw_key(good), raw_key("1" * 32)]}) is Outcome.QUARANTINED
    queue.failures = 1
    assert pipeline.run_record(_decode, {"keys": [raw_key("1" * 32), raw_key(good)]}) is Outcome.RETRY


def test_malformed_event_is_quarantined(store: MemoryStore, queue: MemoryQueue) -> None:
    assert _pipeline(store, queue).run_record(_decode, {"garbage": True}) is Outcome.QUARANTINED
    (qkey,) = list(store.list("quarantine/"))
    record = json.loads(store.get(qkey))
    assert record["reason"] == "bad_event" and "garbage" in record["record"]


def test_pending_raw_keys_finds_unfinished_work(store: MemoryStore, queue: MemoryQueue) -> None:
    done, todo = accept(store, b"Subject: 1\r\n\r\n", ENV), accept(store, b"Subject: 2\r\n\r\n", ENV)
    quarantined = "2" * 32
    store.put(raw_key(quarantined), b"x", content_type="message/rfc822")
    store.put(quarantine_key(quarantined), b"{}", content_type="application/json")
    _pipeline(store, queue).process_key(raw_key(done))
    assert list(pending_raw_keys(store)) == [raw_key(todo)]


def test_local_worker_retries_until_done(name: str, queue: MemoryQueue) -> None:
    store = Flaky(name, on=".eml", failures=2)
    worker = LocalWorker(_pipeline(store, queue).process_key, max_delay=0.2).start()
    store.add_listener(worker.submit)
    try:
        mid = accept(store, _message(), ENV)
        assert worker.wait_idle(10)
    finally:
        worker.stop()
    assert store.failures == 0 and mid in queue.messages


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """Log through mailpipe.core.log.configure (the JSON formatter, as in production) into a buffer."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    configure("DEBUG", stream)
    yield stream
    root.handlers[:], root.level = saved[0], saved[1]


def test_log_lines_are_json_without_subject_body_or_address(
    store: MemoryStore, queue: MemoryQueue, log_stream: io.StringIO
) -> None:
    mid = accept(store, _message(), ENV)
    pipeline = _pipeline(store, queue)
    pipeline.process_key(raw_key(mid))
    pipeline.process_key(raw_key("3" * 32))
    lines = log_stream.getvalue().splitlines()
    docs = [json.loads(line) for line in lines]
    assert {(d["id"], d["message"]) for d in docs} >= {(mid, "parsed"), ("3" * 32, "quarantined")}
    for line in lines:
        for secret in ("TOPSECRET", "BODYTEXT", "jane.doe@", "bob.smith@"):
            assert secret not in line, line


def test_enrichers_from_settings_run_after_parsing(store: MemoryStore, queue: MemoryQueue) -> None:
    mid = accept(store, _message(), ENV)
    pipeline = Pipeline(store, queue, Settings(enrichers=("links", "autoreply")))
    assert pipeline.process_key(raw_key(mid)) is Outcome.DONE
    enrichments = json.loads(store.get(parsed_key(mid)))["enrichments"]
    assert list(enrichments) == ["links", "autoreply"]
    assert all(e["status"] in {"ok", "skipped"} for e in enrichments.values())


def test_unknown_enricher_fails_at_construction(store: MemoryStore, queue: MemoryQueue) -> None:
    with pytest.raises(ConfigError):
        Pipeline(store, queue, Settings(enrichers=("no-such-enricher",)))


def _router(store: MemoryStore, name: str) -> Router:
    config = load_config(
        {
            "customers": {
                "acme": {
                    "domains": ["example.com"],
                    "destinations": {"ops": f"memory://{name}-ops"},
                    "rules": [
                        {
                            "name": "vip",
                            "when": {"recipient": "bob.smith@example.com"},
                            "actions": [{"tag": "vip"}],
                        },
                        {
                            "name": "ops",
                            "when": {"recipient": "ops@example.com"},
                            "actions": [{"publish": "ops"}],
                        },
                        {"name": "bad", "when": {"recipient": "spam@example.com"}, "actions": ["quarantine"]},
                    ],
                }
            }
        }
    )
    return Router(config, Dispatcher(store, open_publisher))


def test_routing_rules_tag_publish_and_quarantine(store: MemoryStore, queue: MemoryQueue, name: str) -> None:
    pipeline = Pipeline(store, queue, Settings(), router=_router(store, name))
    vip = accept(store, _message(), ENV)
    assert pipeline.process_key(raw_key(vip)) is Outcome.DONE
    assert json.loads(queue.messages[vip])["tags"] == ["vip"]
    ops = accept(store, _message(), Envelope(mail_from="a@sender.org", rcpt_to=("ops@example.com",)))
    assert pipeline.process_key(raw_key(ops)) is Outcome.DONE
    assert MemoryQueue(f"{name}-ops").messages  # the rule's destination got the message
    spam = accept(store, _message(), Envelope(mail_from="a@sender.org", rcpt_to=("spam@example.com",)))
    assert pipeline.process_key(raw_key(spam)) is Outcome.QUARANTINED
    assert spam not in queue.messages  # no default notification for a quarantined message
    assert json.loads(store.get(parsed_key(spam)))["routing"]


def test_pacer_defers_parsing_while_mail_arrives_but_not_forever() -> None:
    done: list[float] = []
    pacer = Pacer(quiet=0.2, max_defer=1.0)
    worker = LocalWorker(lambda key: done.append(time.monotonic()) or Outcome.DONE, pacer=pacer).start()
    try:
        start = time.monotonic()
        worker.submit("raw/x.eml")
        assert worker.wait_idle(5) and 0.2 <= done[0] - start < 1.0  # waited for a quiet spell
        start = time.monotonic()
        while time.monotonic() - start < 3.0:  # a sender that never pauses
            worker.submit("raw/y.eml")
            time.sleep(0.05)
        assert worker.wait_idle(5)
        assert done[1] - start < 2.5  # parsed once max_defer passed, not only after the sender stopped
    finally:
        worker.stop()
