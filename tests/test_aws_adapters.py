"""S3Store and SqsPublisher against moto server: the store contract, a publisher contract, error translation.

Only error paths moto cannot produce (throttling codes, 5xx) use botocore's Stubber (STYLE.md rule 12).
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from typing import Any

import pytest
from botocore.stub import Stubber
from contract_store import BoundedStoreContract
from emulators_aws import *  # noqa: F403 - the moto fixtures
from emulators_aws import REGION, client, receive_all

from mailpipe.core.errors import BackendUnavailable, MessageTooLarge, ObjectNotFound, Throttled, TransientError
from mailpipe.core.model import Limits
from mailpipe.core.settings import Settings
from mailpipe.providers import open_publisher, open_store
from mailpipe.providers.aws.clients import S3Store, SqsPublisher

pytestmark = pytest.mark.emulator


class TestS3Store(BoundedStoreContract):
    @pytest.fixture
    def store(self, bucket: str) -> Any:
        return open_store(f"s3://{bucket}")


class TestS3StoreUnderPrefix(BoundedStoreContract):
    @pytest.fixture
    def store(self, bucket: str) -> Any:
        return open_store(f"s3://{bucket}/tenants/acme/")


def test_prefix_maps_to_the_full_s3_key(bucket: str) -> None:
    store = open_store(f"s3://{bucket}/tenants/acme")
    store.put("raw/a.eml", b"x", content_type="message/rfc822")
    assert client("s3").get_object(Bucket=bucket, Key="tenants/acme/raw/a.eml")["Body"].read() == b"x"
    head = client("s3").head_object(Bucket=bucket, Key="tenants/acme/raw/a.eml")
    assert head["ContentType"] == "message/rfc822"
    assert list(store.list("raw/")) == ["raw/a.eml"]


def test_list_paginates_past_1000_keys(bucket: str) -> None:
    s3 = client("s3")
    for n in range(1005):
        s3.put_object(Bucket=bucket, Key=f"p/{n:05d}", Body=b"")
    assert len(list(open_store(f"s3://{bucket}").list("p/"))) == 1005


# --- publisher contract (SQS) ---


def test_publish_by_name_delivers_body_and_key(queue_url: str) -> None:
    name = queue_url.rsplit("/", 1)[1]
    body = json.dumps({"schema": "mailpipe/notification@1", "id": "é✓"}, ensure_ascii=False).encode()
    open_publisher(f"sqs://{name}").publish(body, key="parsed/abc.json")
    (msg,) = receive_all(queue_url)
    assert msg["Body"].encode() == body
    assert msg["MessageAttributes"]["key"]["StringValue"] == "parsed/abc.json"


def test_publish_by_queue_url(queue_url: str) -> None:
    SqsPublisher(queue_url).publish(b"{}", key="k")
    assert [m["Body"] for m in receive_all(queue_url)] == ["{}"]


def test_fifo_queue_drops_a_republished_key(aws_env: str) -> None:
    url = client("sqs").create_queue(
        QueueName=f"mp-{uuid.uuid4().hex[:8]}.fifo", Attributes={"FifoQueue": "true"}
    )
    pub = open_publisher(f"sqs://{url['QueueUrl'].rsplit('/', 1)[1]}")
    pub.publish(b'{"n":1}', key="parsed/x.json")
    pub.publish(b'{"n":1}', key="parsed/x.json")
    pub.publish(b'{"n":2}', key="parsed/y.json")
    assert sorted(m["Body"] for m in receive_all(url["QueueUrl"], expect=3, wait=3)) == ['{"n":1}', '{"n":2}']


def test_publish_to_missing_queue_is_transient(aws_env: str) -> None:
    with pytest.raises(BackendUnavailable):
        open_publisher("sqs://no-such-queue").publish(b"{}", key="k")


def test_https_queue_url_sets_the_region() -> None:
    pub = SqsPublisher.from_url("https://sqs.ap-southeast-2.amazonaws.com/123456789012/q")
    assert pub._region == "ap-southeast-2"
    assert SqsPublisher.from_url("sqs://q")._region is None


# --- error translation ---


def test_missing_bucket_is_transient_not_permanent(aws_env: str) -> None:
    store = open_store("s3://no-such-bucket-here")
    with pytest.raises(BackendUnavailable):
        store.get("raw/a.eml")
    with pytest.raises(BackendUnavailable):
        store.put("raw/a.eml", b"x", content_type="message/rfc822")


def test_missing_key_is_object_not_found(bucket: str) -> None:
    with pytest.raises(ObjectNotFound):
        open_store(f"s3://{bucket}").get("raw/missing.eml")


def test_endpoint_down_is_backend_unavailable(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # discard port: connection refused
    with pytest.raises(BackendUnavailable):
        open_store("s3://b").get("raw/a.eml")
    with pytest.raises(BackendUnavailable):
        open_publisher("sqs://q").publish(b"{}", key="k")


def test_service_specific_endpoint_variables_win(
    bucket: str, queue_url: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", moto_endpoint)
    store = open_store(f"s3://{bucket}")
    store.put("k", b"v", content_type="text/plain")
    assert store.get("k") == b"v"
    open_publisher(f"sqs://{queue_url.rsplit('/', 1)[1]}").publish(b"{}", key="k")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)  # for the test's own client
    assert [m["Body"] for m in receive_all(queue_url)] == ["{}"]


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("SlowDown", 503, Throttled),
        ("ThrottlingException", 400, Throttled),
        ("InternalError", 500, BackendUnavailable),
        ("AccessDenied", 403, BackendUnavailable),
        ("NoSuchKey", 404, ObjectNotFound),
    ],
)
def test_client_errors_translate(code: str, status: int, expected: type[Exception]) -> None:
    import boto3

    s3 = boto3.session.Session("a", "b", region_name=REGION).client("s3")
    with Stubber(s3) as stub:
        stub.add_client_error("get_object", service_error_code=code, http_status_code=status)
        with pytest.raises(expected):
            S3Store("b", client=s3).get("raw/a.eml")


def test_precondition_failed_only_means_false_with_if_absent() -> None:
    import boto3

    s3 = boto3.session.Session("a", "b", region_name=REGION).client("s3")
    with Stubber(s3) as stub:
        stub.add_client_error("put_object", service_error_code="PreconditionFailed", http_status_code=412)
        assert S3Store("b", client=s3).put("k", b"x", if_absent=True) is False
        stub.add_client_error("put_object", service_error_code="PreconditionFailed", http_status_code=412)
        with pytest.raises(TransientError):
            S3Store("b", client=s3).put("k", b"x")


def test_adapters_build_without_importing_boto3() -> None:
    code = (
        "import sys; from mailpipe.providers import open_store, open_publisher;"
        "open_store('s3://b/p'); open_publisher('sqs://q');"
        "assert 'boto3' not in sys.modules, 'boto3 imported eagerly'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_get_refuses_an_object_over_the_size_bound(bucket: str) -> None:
    client("s3").put_object(Bucket=bucket, Key="raw/huge.eml", Body=b"x" * 3000)
    store = S3Store.from_url(f"s3://{bucket}", Settings(limits=Limits(max_message_bytes=1000)))
    assert store.max_bytes == 2000
    with pytest.raises(MessageTooLarge):  # permanent: quarantined, instead of an out-of-memory function
        store.get("raw/huge.eml")
    assert open_store(f"s3://{bucket}").get("raw/huge.eml") == b"x" * 3000  # no settings: no bound


def test_put_sets_a_content_type(bucket: str) -> None:
    store = open_store(f"s3://{bucket}")
    store.put("a.json", b"{}", content_type="application/json")
    store.put("b.bin", b"\0")
    s3 = client("s3")
    assert s3.head_object(Bucket=bucket, Key="a.json")["ContentType"] == "application/json"
    assert s3.head_object(Bucket=bucket, Key="b.bin")["ContentType"] == "application/octet-stream"


def test_oversized_notification_is_permanent_not_retried_forever(queue_url: str) -> None:
    pub = SqsPublisher(queue_url)
    pub.publish(b'"' + b"x" * (1024 * 1024 - 100) + b'"', key="k")  # just fits
    with pytest.raises(MessageTooLarge):
        pub.publish(b'"' + b"x" * (1024 * 1024) + b'"', key="k")
    assert len(receive_all(queue_url)) == 1
