"""moto server (S3 + SQS, no Docker) as a session fixture, plus per-test AWS environment and resources.

Use the fixtures in a test module with ``from emulators_aws import *  # noqa: F403`` (``__all__`` names them).
The server runs as a subprocess on 127.0.0.1 with a free port and is killed by pid; each test gets a fresh
state (``POST /moto-api/reset``) and a unique bucket/queue names.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["aws_env", "bucket", "moto_endpoint", "queue_url"]

REGION = "eu-west-1"
MOTO = Path(sys.executable).parent / "moto_server"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/moto-api/", timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


class _Moto:
    """One moto server per test session, shared by every module that star-imports the fixtures (each import
    registers its own session fixture; the reference count stops the server after the last one)."""

    proc: subprocess.Popen[bytes] | None = None
    url = ""
    users = 0

    @classmethod
    def start(cls, log: Path) -> str:
        if cls.proc is None:
            port = _free_port()
            with open(log, "wb") as out:
                cls.proc = subprocess.Popen(
                    [str(MOTO), "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=out
                )
            cls.url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while not _ready(cls.url):
                if cls.proc.poll() is not None or time.monotonic() > deadline:
                    cls.stop(force=True)
                    pytest.fail(f"moto_server did not start: {log.read_text()[-2000:]}")
                time.sleep(0.1)
        cls.users += 1
        return cls.url

    @classmethod
    def stop(cls, force: bool = False) -> None:
        cls.users = 0 if force else cls.users - 1
        if cls.users <= 0 and cls.proc is not None:
            cls.proc.terminate()
            try:
                cls.proc.wait(10)
            except subprocess.TimeoutExpired:
                cls.proc.kill()
                cls.proc.wait(10)
            cls.proc = None


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of the moto server subprocess (S3, SQS and SNS on one loopback port)."""
    if not MOTO.exists():
        pytest.skip(f"moto_server not installed at {MOTO}: run `make install-test` (dev extra: moto[server])")
    yield _Moto.start(tmp_path_factory.mktemp("moto") / "moto.log")
    _Moto.stop()


def moto_reset(url: str) -> None:
    req = urllib.request.Request(f"{url}/moto-api/reset", method="POST", data=b"")
    urllib.request.urlopen(req, timeout=10).close()


@pytest.fixture
def aws_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point botocore at moto through its standard settings only (AWS_ENDPOINT_URL), with fake credentials."""
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    moto_reset(moto_endpoint)
    return moto_endpoint


def client(service: str) -> Any:
    """A plain boto3 client for test setup/inspection (the code under test builds its own)."""
    import boto3

    return boto3.session.Session().client(service, region_name=REGION)


@pytest.fixture
def bucket(aws_env: str) -> str:
    """A fresh, empty bucket."""
    name = f"mp-{uuid.uuid4().hex[:16]}"
    client("s3").create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    return name


@pytest.fixture
def queue_url(aws_env: str) -> str:
    """A fresh SQS queue's URL."""
    return str(client("sqs").create_queue(QueueName=f"mp-{uuid.uuid4().hex[:16]}")["QueueUrl"])


def receive_all(queue_url: str, wait: float = 5.0, expect: int = 1) -> list[dict[str, Any]]:
    """Receive (and delete) messages until ``expect`` arrived or ``wait`` seconds passed."""
    sqs, got = client("sqs"), []
    deadline = time.monotonic() + wait
    while len(got) < expect and time.monotonic() < deadline:
        resp = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
            MessageAttributeNames=["All"], AttributeNames=["All"],
        )  # fmt: skip
        for msg in resp.get("Messages", []):
            got.append(msg)
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=msg["ReceiptHandle"])
    return got


def lambda_sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """The event Lambda's SQS poller builds from received messages.

    Shape: https://docs.aws.amazon.com/lambda/latest/dg/with-sqs.html
    """
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": m.get("MessageAttributes", {}),
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
            for m in messages
        ]
    }


def notify_bucket_to_queue(bucket: str, queue_url: str) -> str:
    """Send ``raw/*.eml`` ObjectCreated events to the queue, as serverless.yml does; return the queue ARN."""
    sqs = client("sqs")
    arn = str(
        sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    )
    rules = [{"Name": "prefix", "Value": "raw/"}, {"Name": "suffix", "Value": ".eml"}]
    client("s3").put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {"QueueArn": arn, "Events": ["s3:ObjectCreated:*"], "Filter": {"Key": {"FilterRules": rules}}}
            ]
        },
    )
    return arn
