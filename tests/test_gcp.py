"""GCP adapters against real emulators (gcp-storage-emulator, the gcloud Pub/Sub emulator) and the event
decoders over CloudEvent fixtures.

Fixture shapes follow the documented payloads (they are not captures from a live project):
- Eventarc Cloud Storage CloudEvents: https://cloud.google.com/eventarc/docs/cloudevents#cloud-storage and the
  StorageObjectData schema, https://googleapis.github.io/google-cloudevents/jsonschema/google/events/cloud/storage/v1/StorageObjectData.json
- GCS Pub/Sub notifications (attributes bucketId/objectId/eventType): https://cloud.google.com/storage/docs/pubsub-notifications
- Pub/Sub push body and messagePublished CloudEvent: https://cloud.google.com/pubsub/docs/push#receive_push
"""

from __future__ import annotations

import json
import os
import socket
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from contract_store import BoundedStoreContract
from emulators_gcp import Emulator, free_port

from mailpipe.core.errors import BackendUnavailable, MalformedEvent, ObjectNotFound, Throttled
from mailpipe.core.ports import Delivery, ObjectRef
from mailpipe.providers import open_publisher, open_store
from mailpipe.providers.gcp import events
from mailpipe.providers.gcp.clients import GcsStore, PubSubPublisher
from mailpipe.providers.gcp.sdk import translate

if TYPE_CHECKING:
    from collections.abc import Iterator

EVENTS = Path(__file__).parent / "fixtures" / "events" / "gcp"
BUCKET = "mailpipe-test"
GEN0 = "gcp-storage-emulator ignores ifGenerationMatch=0 (a second create overwrites and returns 200)"


def load(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())  # type: ignore[no-any-return]


# --- decoders ---


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        (
            "storage_object_finalized.json",
            [
                Delivery(
                    "9795305557361254",
                    ObjectRef("globex-inbound-mail", "raw/0f3c2a9d8b7e6f5a4c3b2a1908f7e6d5.eml", 2417),
                )
            ],
        ),
        (
            "storage_object_finalized_odd_name.json",
            [Delivery("9795305557361255", ObjectRef("globex-inbound-mail", "drop/a+b %41 été.eml", 12))],
        ),
        (
            "pubsub_object_finalize.json",
            [
                Delivery(
                    "11254372658736401",
                    ObjectRef("globex-inbound-mail", "raw/0f3c2a9d8b7e6f5a4c3b2a1908f7e6d5.eml"),
                    attempt=3,
                )
            ],
        ),
        ("storage_object_deleted.json", []),
        ("pubsub_push_object_delete.json", []),
    ],
)
def test_decode_recorded_events(fixture: str, expected: list[Delivery]) -> None:
    assert events.decode(load(fixture)) == expected


def test_decode_bare_pubsub_push_body() -> None:
    body = load("pubsub_object_finalize.json")["data"]
    assert events.decode(body) == [
        Delivery(
            "11254372658736401",
            ObjectRef("globex-inbound-mail", "raw/0f3c2a9d8b7e6f5a4c3b2a1908f7e6d5.eml"),
            attempt=3,
        )
    ]


@pytest.mark.parametrize(
    "bad",
    [
        {"type": events.FINALIZED, "id": "1", "data": {"bucket": "b"}},  # no name
        {"type": events.FINALIZED, "id": "1", "data": "not an object"},
        {"type": events.FINALIZED, "id": "1", "data": {"bucket": "b", "name": "k", "size": "many"}},
        {
            "type": events.PUBSUB_PUBLISHED,
            "id": "2",
            "data": {
                "message": {"attributes": {"eventType": "OBJECT_FINALIZE", "objectId": "k"}, "messageId": "2"}
            },
        },  # no bucketId
        {"type": "com.example.other", "id": "3", "data": {}},
        {"id": "4"},
    ],
)
def test_decode_malformed_raises_malformed_event(bad: dict[str, Any]) -> None:
    with pytest.raises(MalformedEvent):
        events.decode(bad)


# --- store contract over gcp-storage-emulator ---


@pytest.mark.emulator
class TestGcsStore(BoundedStoreContract):
    @pytest.fixture
    def store(self, gcs_env: str) -> GcsStore:
        return open_store(f"gs://{BUCKET}")  # type: ignore[return-value]

    @pytest.mark.xfail(strict=True, reason=GEN0)
    def test_if_absent_never_overwrites(self, store: Any, prefix: str) -> None:
        super().test_if_absent_never_overwrites(store, prefix)

    @pytest.mark.xfail(strict=True, reason=GEN0)
    def test_concurrent_if_absent_has_one_winner(self, store: Any, prefix: str) -> None:
        super().test_concurrent_if_absent_has_one_winner(store, prefix)


@pytest.mark.emulator
def test_gcs_prefix_is_applied_and_hidden(gcs_env: str) -> None:
    sub = f"tenant-{uuid.uuid4().hex[:8]}"
    store = GcsStore.from_url(f"gs://{BUCKET}/{sub}/")
    store.put("raw/a.eml", b"x", content_type="message/rfc822")
    assert list(store.list("raw/")) == ["raw/a.eml"]
    assert GcsStore(BUCKET).get(f"{sub}/raw/a.eml") == b"x"


@pytest.mark.emulator
def test_gcs_content_type_is_kept(gcs_env: str) -> None:
    from google.cloud import storage

    key = f"ct-{uuid.uuid4().hex[:8]}/raw/a.eml"
    GcsStore(BUCKET).put(key, b"Subject: x\r\n\r\nbody\r\n", content_type="message/rfc822")
    blob = storage.Client().bucket(BUCKET).get_blob(key)
    assert (blob.content_type, blob.size) == ("message/rfc822", 20)


def test_gcs_unreachable_is_backend_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{free_port()}")
    store = GcsStore(BUCKET, retry_seconds=0.5)
    with pytest.raises(BackendUnavailable):
        store.get("raw/a.eml")
    with pytest.raises(BackendUnavailable):
        store.put("raw/a.eml", b"x", content_type="text/plain")


def test_error_translation_table() -> None:
    """Status codes the emulator cannot produce, translated by the same function the adapters use."""
    from google.api_core import exceptions as gexc

    assert isinstance(translate(gexc.NotFound("gone"), "k"), ObjectNotFound)
    assert isinstance(translate(gexc.TooManyRequests("slow"), "k"), Throttled)
    assert isinstance(translate(gexc.ResourceExhausted("quota"), "k"), Throttled)
    assert isinstance(translate(gexc.ServiceUnavailable("503"), "k"), BackendUnavailable)
    assert isinstance(translate(gexc.InternalServerError("500"), "k"), BackendUnavailable)
    assert isinstance(translate(gexc.Forbidden("iam"), "k"), BackendUnavailable)
    assert translate(ValueError("bug"), "k") is None


@pytest.mark.parametrize("url", ["gs://", "s3://b", "gs:///prefix"])
def test_gcs_bad_url_is_config_error(url: str) -> None:
    from mailpipe.core.errors import ConfigError

    with pytest.raises(ConfigError):
        GcsStore.from_url(url)


# --- publisher contract over the Pub/Sub emulator ---


def pull(subscription: str, want: int, timeout: float = 20.0) -> list[Any]:
    from google.cloud import pubsub_v1

    subscriber, got = pubsub_v1.SubscriberClient(), []
    with subscriber:
        while len(got) < want:
            resp = subscriber.pull(subscription=subscription, max_messages=10, timeout=timeout)
            got += [m.message for m in resp.received_messages]
            if resp.received_messages:
                acks = [m.ack_id for m in resp.received_messages]
                subscriber.acknowledge(subscription=subscription, ack_ids=acks)
    return got


@pytest.mark.emulator
def test_pubsub_publish_roundtrip(pubsub_topic: tuple[str, str]) -> None:
    topic, sub = pubsub_topic
    project, name = topic.split("/")[1], topic.split("/")[3]
    publisher = open_publisher(f"pubsub://{project}/{name}")
    body = json.dumps({"id": "0f3c", "emoji": "✉"}, ensure_ascii=False).encode()
    publisher.publish(body, key="0f3c")
    publisher.publish(b"\x00\xffbinary", key="k2")
    got = sorted(pull(sub, 2), key=lambda m: m.attributes["key"])
    expected = [(body, {"key": "0f3c"}), (b"\x00\xffbinary", {"key": "k2"})]
    assert [(m.data, dict(m.attributes)) for m in got] == expected


@pytest.mark.emulator
def test_pubsub_missing_topic_is_transient(pubsub_topic: tuple[str, str]) -> None:
    project = pubsub_topic[0].split("/")[1]
    with pytest.raises(BackendUnavailable):
        PubSubPublisher(project, f"missing-{uuid.uuid4().hex[:6]}", timeout=10).publish(b"x", key="k")


def test_pubsub_url_forms() -> None:
    assert PubSubPublisher.from_url("pubsub://p1/t1").topic_path == "projects/p1/topics/t1"
    assert PubSubPublisher.from_url("pubsub://projects/p1/topics/t1").topic_path == "projects/p1/topics/t1"


# --- the handler as a real functions-framework server, GCS + Pub/Sub emulators behind it ---

MAIL = Path(__file__).parent / "fixtures" / "mail"
ROOT = Path(__file__).resolve().parent.parent


class FunctionServer:
    """``functions-framework --target on_event`` in a subprocess on a free port (killed by pid)."""

    def __init__(
        self, env: dict[str, str], log: Path, source: Path = ROOT / "handlers" / "gcp_function.py"
    ) -> None:
        self.port = free_port()
        argv = [
            str(Path(sys.executable).with_name("functions-framework")),
            "--target",
            "on_event",
            "--signature-type",
            "cloudevent",
            "--source",
            str(source),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        self.emu = Emulator(argv, log, env)
        self.emu.wait_ready(lambda: _listening(self.port), 60, "functions-framework")

    def post(self, event: dict[str, Any], *, binary: bool = True) -> int:
        if binary:  # binary content mode: attributes as ce-* headers, data as the body
            headers = {f"ce-{k}": str(v) for k, v in event.items() if k != "data"}
            headers["Content-Type"] = "application/json"
            body = json.dumps(event["data"]).encode()
        else:  # structured content mode: the whole event as application/cloudevents+json
            headers, body = {"Content-Type": "application/cloudevents+json"}, json.dumps(event).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/", data=body, headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def finalized_event(store: GcsStore, key: str) -> dict[str, Any]:
    """The Eventarc CloudEvent GCS would send for ``key`` (the emulator sends none), from real metadata."""
    from google.cloud import storage

    name = store.prefix + key
    blob = storage.Client().bucket(store.bucket).get_blob(name)
    return {
        "specversion": "1.0",
        "type": events.FINALIZED,
        "id": f"{blob.generation}",
        "source": f"//storage.googleapis.com/projects/_/buckets/{store.bucket}",
        "subject": f"objects/{name}",
        "time": "2026-11-29T07:31:02.118Z",
        "datacontenttype": "application/json",
        "data": blob._properties,
    }


def seed(store: GcsStore, eml: bytes) -> str:
    from mailpipe.core.keys import message_id, raw_key

    key = raw_key(message_id(eml, None))
    store.put(key, eml, content_type="message/rfc822")
    return key


@pytest.fixture
def gcp_function(gcs_env: str, pubsub_topic: tuple[str, str], tmp_path: Path) -> Iterator[Any]:
    """Factory: start the function for a fresh ``gs://bucket/<prefix>`` and the test's topic."""
    servers: list[FunctionServer] = []

    def start(topic: str | None = None) -> tuple[FunctionServer, GcsStore]:
        prefix = f"fn-{uuid.uuid4().hex[:8]}"
        project, name = pubsub_topic[0].split("/")[1], (topic or pubsub_topic[0].split("/")[3])
        env = {
            **os.environ,
            "MAILPIPE_STORE": f"gs://{BUCKET}/{prefix}",
            "MAILPIPE_QUEUE": f"pubsub://{project}/{name}",
        }
        servers.append(FunctionServer(env, tmp_path / f"ff-{len(servers)}.log"))
        return servers[-1], GcsStore(BUCKET, prefix)

    yield start
    for server in servers:
        server.emu.stop()


@pytest.mark.emulator
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "structured"])
def test_function_server_parses_and_publishes(
    gcp_function: Any, pubsub_topic: tuple[str, str], binary: bool
) -> None:
    server, store = gcp_function()
    key = seed(store, (MAIL / "mixed.eml").read_bytes())
    mid = key[4:-4]
    event = finalized_event(store, key)
    assert server.post(event, binary=binary) == 200
    doc = json.loads(store.get(f"parsed/{mid}.json"))
    assert (doc["id"], doc["raw_key"]) == (mid, key)
    [note] = pull(pubsub_topic[1], 1)
    assert (json.loads(note.data)["id"], note.attributes["key"]) == (mid, mid)
    before = store.get(f"parsed/{mid}.json")
    assert server.post(event, binary=binary) == 200  # redelivery: same bytes, same keys
    assert store.get(f"parsed/{mid}.json") == before
    assert sorted(store.list("parsed/")) == [f"parsed/{mid}.json"]
    # Pub/Sub has no publish-side dedupe: a redelivery repeats the notification byte for byte, same ``key``.
    [again] = pull(pubsub_topic[1], 1)
    assert (again.data, dict(again.attributes)) == (note.data, dict(note.attributes))


@pytest.mark.emulator
def test_function_server_quarantines_and_acks_bad_events(gcp_function: Any) -> None:
    server, store = gcp_function()
    bad = {
        "specversion": "1.0",
        "type": events.FINALIZED,
        "id": "bad-1",
        "source": "//storage.googleapis.com/x",
        "data": {"bucket": BUCKET},
    }  # no object name
    assert server.post(bad) == 200
    [qkey] = store.list("quarantine/")
    assert json.loads(store.get(qkey))["reason"] == "bad_event"
    missing = finalized_event(store, seed(store, b"Subject: gone\r\n\r\nx\r\n"))
    missing["data"] = {**missing["data"], "name": f"{store.prefix}raw/{'0' * 32}.eml"}
    assert server.post(missing) == 200  # object vanished: permanent, quarantined, acknowledged
    assert f"quarantine/{'0' * 32}.json" in set(store.list("quarantine/"))
    other = {**missing, "data": {**missing["data"], "bucket": "someone-elses-bucket"}}
    assert server.post(other) == 200
    assert len(list(store.list("quarantine/"))) == 3


@pytest.mark.emulator
def test_function_server_transient_failure_is_500(gcp_function: Any) -> None:
    server, store = gcp_function(topic=f"missing-{uuid.uuid4().hex[:6]}")
    key = seed(store, (MAIL / "plain.eml").read_bytes())
    assert server.post(finalized_event(store, key)) == 500  # Eventarc/Pub/Sub redelivers, then dead-letters
    assert list(store.list("quarantine/")) == []


class _Refusing:
    """A client whose uploads fail with 412, as real GCS answers ifGenerationMatch=0 on an existing object
    (the emulator cannot: it ignores the precondition)."""

    def bucket(self, name: str) -> Any:
        return self

    def blob(self, name: str) -> Any:
        return self

    def upload_from_file(self, *args: Any, **kwargs: Any) -> None:
        from google.api_core.exceptions import PreconditionFailed

        assert kwargs["if_generation_match"] == 0
        raise PreconditionFailed("At least one of the pre-conditions you specified did not hold.")


@pytest.mark.parametrize("content_type", ["text/plain", "message/rfc822"])
def test_gcs_if_absent_precondition_failure_returns_false(content_type: str) -> None:
    store = GcsStore(BUCKET, client=_Refusing())
    assert store.put("k", b"x", content_type=content_type, if_absent=True) is False


@pytest.mark.emulator
def test_function_server_accepts_gcs_notification_via_pubsub(gcp_function: Any) -> None:
    """The Pub/Sub variant: a GCS notification (OBJECT_FINALIZE) wrapped in a messagePublished CloudEvent."""
    import base64

    server, store = gcp_function()
    key = seed(store, (MAIL / "alternative.eml").read_bytes())
    obj = finalized_event(store, key)["data"]
    attributes = {"bucketId": obj["bucket"], "objectId": obj["name"], "eventType": "OBJECT_FINALIZE",
                  "payloadFormat": "JSON_API_V1", "objectGeneration": str(obj["generation"])}  # fmt: skip
    message = {"attributes": attributes, "data": base64.b64encode(json.dumps(obj).encode()).decode(),
               "messageId": "4242", "publishTime": "2026-11-29T07:31:02.402Z"}  # fmt: skip
    event = {"specversion": "1.0", "type": events.PUBSUB_PUBLISHED, "id": "4242",
             "source": "//pubsub.googleapis.com/projects/p/topics/gcs-notifications",
             "data": {"message": message, "subscription": "projects/p/subscriptions/s", "deliveryAttempt": 2}}
    assert server.post(event) == 200
    assert json.loads(store.get(f"parsed/{key[4:-4]}.json"))["raw_key"] == key


@pytest.mark.emulator
def test_function_logs_carry_the_event_id_and_metric_lines(gcp_function: Any, tmp_path: Path) -> None:
    """Every log line of an invocation names its CloudEvent id; at its end one ``metric`` line per series
    (what a log-based metric counts: filter jsonPayload.metric, value jsonPayload.sum)."""
    server, store = gcp_function()
    key = seed(store, (MAIL / "mixed.eml").read_bytes())
    event = finalized_event(store, key)
    assert server.post(event) == 200
    lines = [json.loads(ln) for ln in (tmp_path / "ff-0.log").read_text().splitlines() if ln.startswith("{")]
    mine = [ln for ln in lines if ln.get("request_id") == event["id"]]
    assert any(ln["message"] == "parsed" for ln in mine)
    [done] = [ln for ln in mine if ln.get("metric") == "mailpipe_messages_total"]
    assert (done["outcome"], done["count"], done["sum"]) == ("done", 1, 1.0)
    [took] = [ln for ln in mine if ln.get("metric") == "mailpipe_parse_seconds"]
    assert took["count"] == 1 and 0 < took["sum"] == took["max"] < 60
