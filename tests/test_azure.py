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
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from contract_store import StoreContract
from emulators_azure import ACCOUNT, CONTAINER, connection_string
from emulators_gcp import free_port

from core.errors import BackendUnavailable, ConfigError, MalformedEvent, ObjectNotFound, Throttled
from core.ports import Delivery, ObjectRef
from providers import open_publisher, open_store
from providers.azure import events
from providers.azure.clients import BlobStore, QueuePublisher
from providers.azure.sdk import translate

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
class TestBlobStore(StoreContract):
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
