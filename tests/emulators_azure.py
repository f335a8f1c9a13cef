"""Session fixture for azurite (npm, Blob + Queue, no Docker); loaded by tests/conftest.py (pytest_plugins).

azurite starts in memory on two free loopback ports, is polled until both services answer and is killed by pid
(its own process group) at the end. Adapters reach it only through the standard connection string in
AZURE_STORAGE_CONNECTION_STRING (the well-known devstoreaccount1 account). azurite emits no Event Grid events:
tests build the BlobCreated event from the real blob.
"""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from emulators_gcp import Emulator, free_port

if TYPE_CHECKING:
    from collections.abc import Iterator

ACCOUNT = "devstoreaccount1"
# The documented, public development key of azurite / the storage emulator (not a secret).
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
CONTAINER = "mailpipe-test"
AZURITE = Path(__file__).resolve().parent.parent / "node_modules" / ".bin" / "azurite"


def connection_string(blob_port: int, queue_port: int) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{blob_port}/{ACCOUNT};"
        f"QueueEndpoint=http://127.0.0.1:{queue_port}/{ACCOUNT};"
    )


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=1).close()
    except urllib.error.HTTPError:
        return True  # any HTTP status means the service is listening
    except OSError:
        return False
    return True


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The connection string of a running azurite with the container ``CONTAINER``."""
    exe = str(AZURITE) if AZURITE.exists() else shutil.which("azurite")
    if exe is None:
        pytest.skip("azurite is not installed (npm ci at the repo root; `make test` does it)")
    bport, qport = free_port(), free_port()
    emu = Emulator(
        [
            exe,
            "--inMemoryPersistence",
            "--skipApiVersionCheck",
            "--disableTelemetry",
            "--silent",
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(bport),
            "--queueHost",
            "127.0.0.1",
            "--queuePort",
            str(qport),
            "--tableHost",  # unused, but `azurite` starts it: a free port, or two sessions clash on 10002
            "127.0.0.1",
            "--tablePort",
            str(free_port()),
        ],
        tmp_path_factory.mktemp("azurite-log") / "azurite.log",
    )
    emu.wait_ready(
        lambda: _answers(f"http://127.0.0.1:{bport}/") and _answers(f"http://127.0.0.1:{qport}/"),
        30,
        "azurite",
    )
    conn = connection_string(bport, qport)
    from azure.storage.blob import BlobServiceClient

    BlobServiceClient.from_connection_string(conn).create_container(CONTAINER)
    yield conn
    emu.stop()


@pytest.fixture
def azure_env(azurite: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """AZURE_STORAGE_CONNECTION_STRING set for this test; returns it."""
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite)
    return azurite


@pytest.fixture
def azure_queue(azure_env: str) -> Iterator[str]:
    """A fresh, empty storage queue name (deleted afterwards)."""
    from azure.storage.queue import QueueClient

    name = f"q-{uuid.uuid4().hex[:12]}"
    client = QueueClient.from_connection_string(azure_env, name)
    client.create_queue()
    yield name
    client.delete_queue()
