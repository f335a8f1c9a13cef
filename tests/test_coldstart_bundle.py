"""The core bundle bench.coldstart measures (core/ + providers/__init__.py + one provider + one handler):
what it holds, and that each cloud handler imports and builds its SDK clients from it alone, with no
socket opened and nothing outside the stdlib and its own cloud extra. Facts only: the timings and the 2 MB
target live in ``python -m bench.coldstart`` (this is the one test that imports ``bench``, for the bundle's
definition, so the bench and the test cannot drift apart).
"""

from __future__ import annotations

import io
import os
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from bench import coldstart

# botocore/httpsession.py: ``try: from certifi import where`` (falls back to its own CA bundle)
OPTIONAL_IMPORTS = {"certifi"}
SDK_TOPS = ("boto3", "botocore", "google", "azure", "grpc", "functions_framework", "flask")


@pytest.mark.parametrize("cloud", ["aws", "gcp", "azure"])
def test_core_bundle_holds_core_one_provider_its_handlers_and_no_sdk(cloud: str) -> None:
    names = zipfile.ZipFile(io.BytesIO(coldstart.zip_bytes(coldstart.core_bundle_files(cloud)))).namelist()
    allowed = ("mailpipe/core/", f"mailpipe/providers/{cloud}/")
    assert {"mailpipe/core/pipeline.py", "mailpipe/core/settings.py", f"mailpipe/providers/{cloud}/clients.py"} <= set(
        names
    )
    assert [n for n in names if not n.startswith(allowed)] == sorted(
        ["mailpipe/__init__.py", "mailpipe/providers/__init__.py", "mailpipe/handlers/__init__.py",
         "mailpipe/handlers/compose.py", "mailpipe/" + coldstart.CORE_HANDLER[cloud]]
    )  # fmt: skip
    assert not [n for n in names if n.split("/")[0] in SDK_TOPS or "__pycache__" in n or n.endswith(".pyc")]


def _allowed_tops(extra: str) -> set[str]:
    """Top-level import names of the distributions the cloud extra pulls in."""
    dists = coldstart.closure(extra)
    return {top for top, owners in metadata.packages_distributions().items()
            if {o.lower().replace("_", "-") for o in owners} & dists}  # fmt: skip


@pytest.mark.parametrize(
    "handler", ["aws_lambda", "gcp_function", "azure_queue_function", "azure_queue_function, managed identity"]
)
def test_handler_is_ready_from_the_core_bundle_without_network(handler: str, tmp_path: Path) -> None:
    cloud, _, _, ready, auth = coldstart.HANDLERS[handler]
    zipfile.ZipFile(io.BytesIO(coldstart.zip_bytes(coldstart.core_bundle_files(cloud)))).extractall(tmp_path)
    module = "mailpipe.handlers." + (handler.split(",")[0])
    env = coldstart.cloud_env(cloud, tmp_path, coldstart.closed_port(), auth)
    env.pop("MAILPIPE_ENRICHERS", None)  # enrichers/ is not part of the core bundle
    code = coldstart.probe_code(tmp_path, f"import {module} as m", ready, check=True)
    result = coldstart.run_probe(code, env, tmp_path)
    startup = set(coldstart.run_probe(coldstart.probe_code(None, "", check=True), env, tmp_path)["files"])
    assert result["sockets"] == [], "import and client creation must not touch the network"
    ours = ("mailpipe", "core", "providers", "handlers", "enrichers")
    files = {n: f for n, f in result["files"].items() if f}
    assert not [n for n, f in files.items() if n.split(".")[0] in ours and not Path(f).is_relative_to(tmp_path)]
    stdlib = Path(os.__file__).parent
    foreign = {
        n.split(".")[0] for n, f in files.items()
        if n not in startup and not Path(f).is_relative_to(tmp_path) and not Path(f).is_relative_to(stdlib)
        and not Path(f).is_relative_to(Path(sys.base_prefix))
    }  # fmt: skip
    assert foreign - _allowed_tops(coldstart.EXTRAS[cloud]) - OPTIONAL_IMPORTS == set()
