"""Azure adapters against azurite (Blob + Queue) and the event decoders over Event Grid fixtures.

Fixture shapes follow the documented payloads (they are not captures from a live subscription):
- Blob Storage as an Event Grid source, both schemas:
  https://learn.microsoft.com/azure/event-grid/event-schema-blob-storage
- Storage queue as an Event Grid handler: https://learn.microsoft.com/azure/event-grid/handler-storage-queues
- Queue trigger, base64 message encoding and dequeueCount:
  https://learn.microsoft.com/azure/azure-functions/functions-bindings-storage-queue-trigger
"""

from __future__ import annotations

import base64
import importlib.util
import json
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from contract_store import BoundedStoreContract
from emulators_azure import ACCOUNT, CONTAINER, connection_string
from emulators_gcp import free_port

from mailpipe.core.errors import BackendUnavailable, ConfigError, MalformedEvent, ObjectNotFound, Throttled
from mailpipe.core.ports import Delivery, ObjectRef
from mailpipe.providers import open_publisher, open_store
from mailpipe.providers.azure import events
from mailpipe.providers.azure.clients import BlobStore, QueuePublisher
from mailpipe.providers.azure.sdk import translate

EVENTS = Path(__file__).parent / "fixtures" / "events" / "azure"
RAW = "raw/0f3c2a9d8b7e6f5a4c3b2a1908f7e6d5.eml"


def load(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())  # type: ignore[no-any-return]


# --- decoders ---


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        (
            "eventgrid_blob_created.json",
            [Delivery("831e1650-001e-001b-66ab-eeb76e069631", ObjectRef("inbound", RAW, 2417))],
        ),
        (
            "eventgrid_blob_created_odd_name.json",
            [
                Delivery(
                    "831e1650-001e-001b-66ab-eeb76e069632", ObjectRef("inbound", "drop/café a+b%41.eml", 12)
                )
            ],
        ),
        (
            "cloudevent_blob_created.json",
            [Delivery("9aeb0fdf-c01e-0131-0922-9eb54906e209", ObjectRef("inbound", RAW, 2417))],
        ),
        ("eventgrid_blob_deleted.json", []),
    ],
)
def test_decode_recorded_events(fixture: str, expected: list[Delivery]) -> None:
    assert events.decode_event(load(fixture)) == expected


def test_decode_queue_message_carries_dequeue_count() -> None:
    body = json.dumps(load("eventgrid_blob_created.json")).encode()
    want = [Delivery("msg-1", ObjectRef("inbound", RAW, 2417), attempt=4)]
    assert events.decode_queue_message(body, message_id="msg-1", dequeue_count=4) == want
    as_list = json.dumps([load("eventgrid_blob_created.json")]).encode()
    assert events.decode_queue_message(as_list, message_id="msg-1", dequeue_count=4) == want
    twice = base64.b64encode(body)  # a sender that base64-encoded the text itself
    assert events.decode_queue_message(twice, message_id="msg-1", dequeue_count=4) == want


def test_azurite_path_style_url() -> None:
    url = f"http://127.0.0.1:10000/{ACCOUNT}/{CONTAINER}/raw/a%20b.eml"
    assert events.ref_from_url(url) == ObjectRef(CONTAINER, "raw/a b.eml")


def test_decode_blob_trigger_name() -> None:
    assert events.decode_blob("inbound/raw/a b.eml", invocation_id="inv-1", length=3) == [
        Delivery("inv-1", ObjectRef("inbound", "raw/a b.eml", 3))
    ]
    with pytest.raises(MalformedEvent):
        events.decode_blob("no-slash", invocation_id="inv-2")


@pytest.mark.parametrize(
    "bad",
    [
        {"eventType": events.BLOB_CREATED, "id": "1", "data": {}},
        {"eventType": events.BLOB_CREATED, "id": "1", "data": {"url": "https://a.blob.core.windows.net/c"}},
        {"eventType": events.BLOB_CREATED, "id": "1", "data": {"url": "u", "contentLength": "big"}},
        {"eventType": events.BLOB_CREATED, "id": "1", "data": None},
        {"eventType": "Contoso.Custom", "id": "2", "data": {}},
        {"id": "3"},
    ],
)
def test_decode_malformed_raises_malformed_event(bad: dict[str, Any]) -> None:
    with pytest.raises(MalformedEvent):
        events.decode_event(bad)


@pytest.mark.parametrize("body", [b"not json", b"\xff\xfe", b"[1, 2]", b"42"])
def test_decode_malformed_queue_body(body: bytes) -> None:
    with pytest.raises(MalformedEvent):
        events.decode_queue_message(body, message_id="m", dequeue_count=1)


# --- store contract over azurite ---


@pytest.mark.emulator
class TestBlobStore(BoundedStoreContract):
    @pytest.fixture
    def store(self, azure_env: str) -> BlobStore:
        return open_store(f"azblob://{ACCOUNT}/{CONTAINER}")  # type: ignore[return-value]


@pytest.mark.emulator
def test_blob_prefix_and_content_type(azure_env: str) -> None:
    from azure.storage.blob import BlobServiceClient

    sub = f"tenant-{uuid.uuid4().hex[:8]}"
    store = BlobStore.from_url(f"azblob://{ACCOUNT}/{CONTAINER}/{sub}")
    store.put("raw/a.eml", b"Subject: x\r\n\r\n", content_type="message/rfc822")
    assert list(store.list("raw/")) == ["raw/a.eml"]
    props = (
        BlobServiceClient.from_connection_string(azure_env)
        .get_blob_client(CONTAINER, f"{sub}/raw/a.eml")
        .get_blob_properties()
    )
    assert (props.content_settings.content_type, props.size) == ("message/rfc822", 14)


@pytest.mark.emulator
def test_connection_string_for_another_account_is_config_error(azure_env: str) -> None:
    with pytest.raises(ConfigError):
        BlobStore.from_url(f"azblob://someoneelse/{CONTAINER}").get("raw/a.eml")


def test_blob_unreachable_is_backend_unavailable() -> None:
    from azure.storage.blob import ContainerClient

    dead = connection_string(free_port(), free_port())
    store = BlobStore(
        ACCOUNT, CONTAINER, client=ContainerClient.from_connection_string(dead, CONTAINER, retry_total=0)
    )
    with pytest.raises(BackendUnavailable):
        store.get("raw/a.eml")
    with pytest.raises(BackendUnavailable):
        store.put("raw/a.eml", b"x", content_type="text/plain")


def test_error_translation_table() -> None:
    """Status codes azurite cannot produce on demand, through the function the adapters use."""
    from azure.core.exceptions import HttpResponseError, ResourceNotFoundError, ServiceRequestError

    def http(status: int, code: str) -> HttpResponseError:
        exc = HttpResponseError(message=code)
        exc.status_code, exc.error_code = status, code
        return exc

    assert isinstance(translate(ResourceNotFoundError("gone"), "k"), ObjectNotFound)
    assert isinstance(translate(http(503, "ServerBusy"), "k"), Throttled)
    assert isinstance(translate(http(429, "TooManyRequests"), "k"), Throttled)
    assert isinstance(translate(http(500, "InternalError"), "k"), BackendUnavailable)
    assert isinstance(translate(http(403, "AuthorizationFailure"), "k"), BackendUnavailable)
    assert isinstance(translate(ServiceRequestError("refused"), "k"), BackendUnavailable)
    assert translate(ValueError("bug"), "k") is None


@pytest.mark.parametrize("url", ["azblob://acct", "azblob:///c", "s3://b/c"])
def test_blob_bad_url_is_config_error(url: str) -> None:
    with pytest.raises(ConfigError):
        BlobStore.from_url(url)


# --- publisher contract over azurite's queue service ---


def receive_all(conn: str, queue: str) -> list[Any]:
    from azure.storage.queue import QueueClient

    return list(QueueClient.from_connection_string(conn, queue).receive_messages(max_messages=32))


@pytest.mark.emulator
def test_queue_publish_roundtrip_is_base64(azure_env: str, azure_queue: str) -> None:
    body = json.dumps({"id": "0f3c", "emoji": "✉"}, ensure_ascii=False).encode()
    open_publisher(f"azqueue://{ACCOUNT}/{azure_queue}").publish(body, key="0f3c")
    open_publisher(f"azqueue://{ACCOUNT}/{azure_queue}").publish(b"\x00\xffbinary", key="k2")
    texts = sorted(m.content for m in receive_all(azure_env, azure_queue))
    assert sorted(base64.b64decode(t) for t in texts) == sorted([body, b"\x00\xffbinary"])


@pytest.mark.emulator
def test_queue_missing_is_transient(azure_env: str) -> None:
    with pytest.raises(BackendUnavailable):
        QueuePublisher(ACCOUNT, f"missing-{uuid.uuid4().hex[:6]}").publish(b"x", key="k")


def test_queue_bad_url_is_config_error() -> None:
    with pytest.raises(ConfigError):
        QueuePublisher.from_url("azqueue://acct/a/b")


# --- the v2 function apps, loaded and invoked with real azure.functions objects against azurite ---

CTX = SimpleNamespace(invocation_id="invocation-1")  # what the Functions host passes as `context`
ROOT = Path(__file__).resolve().parent.parent
MAIL = Path(__file__).parent / "fixtures" / "mail"


def load_app(path: Path) -> Any:
    """Import a function app file fresh (it composes its pipeline from the environment at import)."""
    spec = importlib.util.spec_from_file_location(f"function_app_{uuid.uuid4().hex[:8]}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def functions(module: Any) -> dict[str, Any]:
    return {f.get_function_name(): f for f in module.app.get_functions()}


def bindings(function: Any) -> list[dict[str, Any]]:
    """The binding JSON the worker sends to the host (function.json's ``bindings``)."""
    return [json.loads(b) for b in function.get_raw_bindings()]


@pytest.fixture
def deployed(azure_env: str, azure_queue: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Factory: load an app for a fresh ``azblob://.../<prefix>`` and the test's queue -> (module, store)."""

    def load(path: Path, queue: str = azure_queue) -> tuple[Any, BlobStore]:
        prefix = f"fn-{uuid.uuid4().hex[:8]}"
        monkeypatch.setenv("MAILPIPE_STORE", f"azblob://{ACCOUNT}/{CONTAINER}/{prefix}")
        monkeypatch.setenv("MAILPIPE_QUEUE", f"azqueue://{ACCOUNT}/{queue}")
        return load_app(path), BlobStore(ACCOUNT, CONTAINER, prefix)

    return load


def seed(store: BlobStore, eml: bytes) -> tuple[str, str]:
    from mailpipe.core.keys import message_id, raw_key

    key = raw_key(message_id(eml, None))
    store.put(key, eml, content_type="message/rfc822")
    return key, key[4:-4]


def grid_event(store: BlobStore, key: str) -> dict[str, Any]:
    """The BlobCreated event Event Grid would send (azurite sends none), from the real blob's URL and size."""
    blob = store._cc().get_blob_client(store.prefix + key)
    props = blob.get_blob_properties()
    return {
        "id": f"eg-{uuid.uuid4()}",
        "topic": f"/subscriptions/0/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/{ACCOUNT}",
        "subject": f"/blobServices/default/containers/{CONTAINER}/blobs/{store.prefix + key}",
        "eventType": events.BLOB_CREATED,
        "eventTime": "2026-11-29T07:31:02.9584103Z",
        "dataVersion": "",
        "metadataVersion": "1",
        "data": {
            "api": "PutBlob",
            "contentType": props.content_settings.content_type,
            "contentLength": props.size,
            "blobType": "BlockBlob",
            "url": blob.url,
        },
    }


def to_func_event(event: dict[str, Any]) -> Any:
    import azure.functions as func

    return func.EventGridEvent(
        id=event["id"],
        data=event["data"],
        topic=event["topic"],
        subject=event["subject"],
        event_type=event["eventType"],
        event_time=None,
        data_version=event["dataVersion"],
    )


def notifications(conn: str, queue: str) -> list[dict[str, Any]]:
    return [json.loads(base64.b64decode(m.content)) for m in receive_all(conn, queue)]


def test_registered_bindings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILPIPE_STORE", "memory://bindings")
    monkeypatch.setenv("MAILPIPE_QUEUE", "memory://bindings")
    grid = functions(load_app(ROOT / "handlers" / "azure_function.py"))
    assert set(grid) == {"on_event_grid", "on_blob"}
    [eg] = bindings(grid["on_event_grid"])
    assert (eg["type"], eg["direction"], eg["name"]) == ("eventGridTrigger", "IN", "event")
    [blob] = bindings(grid["on_blob"])
    assert (blob["type"], blob["path"], blob["connection"], blob["source"]) == (
        "blobTrigger", "%MAILPIPE_CONTAINER%/raw/{name}", "MAILPIPE_STORAGE", "EventGrid")  # fmt: skip
    queue = functions(load_app(ROOT / "handlers" / "azure_queue_function.py"))
    [q] = bindings(queue["on_queue"])
    assert (q["type"], q["direction"], q["queueName"], q["connection"]) == (
        "queueTrigger", "IN", "%MAILPIPE_EVENTS_QUEUE%", "MAILPIPE_STORAGE")  # fmt: skip


@pytest.mark.emulator
def test_event_grid_trigger_parses_and_notifies(deployed: Any, azure_env: str, azure_queue: str) -> None:
    app, store = deployed(ROOT / "handlers" / "azure_function.py")
    key, mid = seed(store, (MAIL / "mixed.eml").read_bytes())
    event = to_func_event(grid_event(store, key))
    on_event_grid = functions(app)["on_event_grid"].get_user_function()  # get_functions() once per app
    on_event_grid(event, CTX)
    doc = json.loads(store.get(f"parsed/{mid}.json"))
    assert (doc["id"], doc["raw_key"]) == (mid, key)
    [first] = notifications(azure_env, azure_queue)
    assert first["id"] == mid
    before = store.get(f"parsed/{mid}.json")
    on_event_grid(event, CTX)  # redelivery: same keys, same bytes
    assert store.get(f"parsed/{mid}.json") == before
    assert list(store.list("parsed/")) == [f"parsed/{mid}.json"]
    assert notifications(azure_env, azure_queue) == [first]  # repeated as-is: consumers dedupe on "id"


@pytest.mark.emulator
def test_blob_trigger_parses(deployed: Any) -> None:
    import azure.functions as func

    app, store = deployed(ROOT / "handlers" / "azure_function.py")
    eml = (MAIL / "alternative.eml").read_bytes()
    key, mid = seed(store, eml)
    blob = func.blob.InputStream(data=eml, name=f"{CONTAINER}/{store.prefix}{key}", length=len(eml), uri=None)
    functions(app)["on_blob"].get_user_function()(blob, CTX)
    assert json.loads(store.get(f"parsed/{mid}.json"))["id"] == mid


@pytest.mark.emulator
def test_queue_trigger_parses_with_dequeue_count(deployed: Any, azure_env: str, azure_queue: str) -> None:
    from azure.functions.queue import QueueMessage

    app, store = deployed(ROOT / "handlers" / "azure_queue_function.py")
    key, mid = seed(store, (MAIL / "plain.eml").read_bytes())
    body = json.dumps(grid_event(store, key)).encode()
    functions(app)["on_queue"].get_user_function()(QueueMessage(id="m-1", body=body, dequeue_count=2), CTX)
    assert json.loads(store.get(f"parsed/{mid}.json"))["id"] == mid
    assert [n["id"] for n in notifications(azure_env, azure_queue)] == [mid]


@pytest.mark.emulator
def test_logs_carry_the_invocation_id_and_metric_lines(deployed: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """Every log line of an invocation names the host's invocation_id; at its end one ``metric`` line per
    series (what a Log Analytics query over the function's traces counts)."""
    from azure.functions.queue import QueueMessage

    app, store = deployed(ROOT / "handlers" / "azure_queue_function.py")
    key, mid = seed(store, (MAIL / "plain.eml").read_bytes())
    body = json.dumps(grid_event(store, key)).encode()
    functions(app)["on_queue"].get_user_function()(QueueMessage(id="m-7", body=body, dequeue_count=1), CTX)
    lines = [json.loads(ln) for ln in capsys.readouterr().err.splitlines() if ln.startswith("{")]
    mine = [ln for ln in lines if ln.get("request_id") == CTX.invocation_id]
    assert any(ln["message"] == "parsed" and ln["id"] == mid for ln in mine)
    [done] = [ln for ln in mine if ln.get("metric") == "mailpipe_messages_total"]
    assert (done["outcome"], done["count"], done["sum"]) == ("done", 1, 1.0)


@pytest.mark.emulator
def test_bad_events_are_quarantined_and_completed(deployed: Any) -> None:
    from azure.functions.queue import QueueMessage

    app, store = deployed(ROOT / "handlers" / "azure_queue_function.py")
    on_queue = functions(app)["on_queue"].get_user_function()
    on_queue(QueueMessage(id="m-bad", body=b"{not json", dequeue_count=1), CTX)  # returns: the message is deleted
    key, _ = seed(store, b"Subject: x\r\n\r\ny\r\n")
    gone = grid_event(store, key)
    gone["data"]["url"] = gone["data"]["url"].replace(key[4:-4], "0" * 32)
    on_queue(QueueMessage(id="m-gone", body=json.dumps(gone).encode(), dequeue_count=1), CTX)
    foreign = grid_event(store, key)
    foreign["data"]["url"] = foreign["data"]["url"].replace(f"/{CONTAINER}/", "/other-container/")
    on_queue(QueueMessage(id="m-foreign", body=json.dumps(foreign).encode(), dequeue_count=1), CTX)
    reasons = sorted(json.loads(store.get(k))["reason"] for k in store.list("quarantine/"))
    assert reasons == ["bad_event", "bad_event", "object_missing"]


@pytest.mark.emulator
def test_transient_failure_raises_for_host_retry(deployed: Any) -> None:
    from azure.functions.queue import QueueMessage

    from mailpipe.core.errors import TransientError

    app, store = deployed(
        ROOT / "handlers" / "azure_queue_function.py", queue=f"missing-{uuid.uuid4().hex[:6]}"
    )
    key, _ = seed(store, (MAIL / "plain.eml").read_bytes())
    message = QueueMessage(id="m-1", body=json.dumps(grid_event(store, key)).encode(), dequeue_count=5)
    with pytest.raises(TransientError):  # the host retries, then moves the message to <queue>-poison
        functions(app)["on_queue"].get_user_function()(message, CTX)
    assert list(store.list("quarantine/")) == []
