"""GCP and Azure bundles and deploy descriptors, built offline from stages.yml (deploy.build_bundle).

What can be checked without a cloud: the bundle imports from its own files only (the editable install is
hidden), serves real events against the emulators, and the gcloud arguments / ARM template / host.json say
what the stage says. The generated deploy.sh must at least parse (bash -n).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from emulators_azure import ACCOUNT, CONTAINER
from test_gcp import BUCKET, MAIL, FunctionServer, finalized_event, pull, seed

from deploy import ROOT
from deploy import azure as deploy_azure
from deploy import gcp as deploy_gcp
from deploy.build_bundle import build
from mailpipe.providers.gcp.clients import GcsStore
from mailpipe.providers.yaml.stages import StageError, get

# Import the bundle with the repo's editable install hidden, so a file missing from the bundle fails here.
PROBE = textwrap.dedent("""
    import json, sys
    sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in type(f).__module__]
    sys.path.insert(0, ".")
    import {module}
    ours = ("mailpipe", "core", "providers", "handlers", "enrichers", "main", "function_app")
    print(json.dumps({{n: getattr(m, "__file__", None) for n, m in list(sys.modules.items())
                      if n.split(".")[0] in ours}}))
""")


def probe(bundle: Path, module: str, env: dict[str, str]) -> dict[str, str]:
    argv = [sys.executable, "-c", PROBE.format(module=module)]
    env = {**os.environ, **env}
    out = subprocess.run(argv, cwd=bundle, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.splitlines()[-1])  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("build")
    build("globex", out=out)
    build("initech", out=out)
    return out


# --- GCP ---


def test_gcp_bundle_layout_and_env(built: Path) -> None:
    base, stage = built / "globex", get("globex")
    bundle = base / "gcp"
    assert (bundle / "main.py").read_text().count("from mailpipe.handlers.gcp_function import on_event") == 1
    assert (bundle / "requirements.txt").read_text().split() == [
        "google-cloud-storage>=2.14", "google-cloud-pubsub>=2.19", "functions-framework>=3.5"]  # fmt: skip
    assert sorted(p.name for p in bundle.iterdir()) == ["mailpipe", "main.py", "requirements.txt"]
    assert sorted(p.name for p in (bundle / "mailpipe" / "providers").iterdir()) == ["__init__.py", "gcp"]
    assert sorted(p.name for p in (bundle / "mailpipe" / "handlers").iterdir()) == [
        "__init__.py", "compose.py", "gcp_function.py"]  # fmt: skip
    assert yaml.safe_load((base / "env.gcp.yaml").read_text()) == stage.settings_env()
    assert stage.settings_env()["MAILPIPE_QUEUE"] == "pubsub://globex-mail-prod/mailpipe-parsed"


def test_gcp_deploy_arguments(built: Path) -> None:
    commands = [c["run"] for c in json.loads((built / "globex" / "deploy.json").read_text())["commands"]]
    [deploy] = [c for c in commands if c[:3] == ["gcloud", "functions", "deploy"]]
    assert deploy[3] == "mailpipe-globex-parse"
    for arg in (
        "--gen2",
        "--retry",
        "--runtime=python311",
        "--entry-point=on_event",
        "--source=gcp",
        "--region=europe-west1",
        "--project=globex-mail-prod",
        "--trigger-event-filters=type=google.cloud.storage.object.v1.finalized",
        "--trigger-event-filters=bucket=globex-inbound-mail",
        "--trigger-location=europe-west1",
        "--memory=512Mi",
        "--timeout=60s",
        "--max-instances=20",
        "--env-vars-file=env.gcp.yaml",
    ):
        assert arg in deploy, arg
    [dead_letter] = [c for c in commands if c[:4] == ["gcloud", "pubsub", "subscriptions", "update"]]
    assert "--dead-letter-topic=projects/globex-mail-prod/topics/mailpipe-globex-dead-letter" in dead_letter
    assert "--max-delivery-attempts=5" in dead_letter
    assert subprocess.run(["bash", "-n", str(built / "globex" / "deploy.sh")], check=False).returncode == 0


def test_gcp_bundle_imports_from_itself(built: Path) -> None:
    bundle = built / "globex" / "gcp"
    files = probe(bundle, "main", {"MAILPIPE_STORE": "gs://b", "MAILPIPE_QUEUE": "pubsub://p/t"})
    ours = {"main", "mailpipe.handlers.gcp_function", "mailpipe.providers.gcp.clients", "mailpipe.core.pipeline"}
    assert ours <= set(files)
    outside = {n: f for n, f in files.items() if f and not Path(f).resolve().is_relative_to(bundle.resolve())}
    assert outside == {}
    others = ("mailpipe.providers.aws", "mailpipe.providers.azure", "mailpipe.providers.local")
    assert not any(n.startswith(others) for n in files)


@pytest.mark.emulator
def test_gcp_bundle_serves_cloudevents(built: Path, gcs_env: str, pubsub_topic: tuple[str, str]) -> None:
    bundle, prefix = built / "globex" / "gcp", f"bundle-{uuid.uuid4().hex[:8]}"
    project, topic = pubsub_topic[0].split("/")[1], pubsub_topic[0].split("/")[3]
    env = {
        **os.environ,
        "MAILPIPE_STORE": f"gs://{BUCKET}/{prefix}",
        "MAILPIPE_QUEUE": f"pubsub://{project}/{topic}",
    }
    server = FunctionServer(env, bundle / "ff.log", source=bundle / "main.py")  # cwd: the bundle
    try:
        store = GcsStore(BUCKET, prefix)
        key = seed(store, (MAIL / "mixed.eml").read_bytes())
        assert server.post(finalized_event(store, key)) == 200
        assert json.loads(store.get(f"parsed/{key[4:-4]}.json"))["raw_key"] == key
        assert json.loads(pull(pubsub_topic[1], 1)[0].data)["id"] == key[4:-4]
    finally:
        server.emu.stop()


# --- Azure ---


def test_azure_bundle_layout_and_host_json(built: Path) -> None:
    base = built / "initech"
    bundle = base / "azure"
    assert (bundle / "function_app.py").read_text() == (
        ROOT / "handlers" / "azure_queue_function.py"
    ).read_text()
    host = json.loads((bundle / "host.json").read_text())
    assert host["version"] == "2.0" and host["functionTimeout"] == "00:02:00"
    assert host["extensions"]["queues"]["maxDequeueCount"] == 5
    assert host["extensions"]["queues"]["messageEncoding"] == "base64"
    assert host["extensionBundle"]["id"] == "Microsoft.Azure.Functions.ExtensionBundle"
    assert "azure-functions>=1.18" in (bundle / "requirements.txt").read_text().split()
    with zipfile.ZipFile(base / "azure.zip") as zf:
        names = set(zf.namelist())
    assert {"function_app.py", "host.json", "requirements.txt", "mailpipe/core/pipeline.py",
            "mailpipe/handlers/compose.py", "mailpipe/providers/azure/clients.py"} <= names  # fmt: skip
    assert not [n for n in names if n.startswith(("core/", "handlers/", "providers/"))]  # one import package
    assert names == {str(p.relative_to(bundle)) for p in bundle.rglob("*") if p.is_file()}


def resources(template: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r for r in template["resources"] if r["type"] == kind]


def test_azure_arm_template(built: Path) -> None:
    template = json.loads((built / "initech" / "azuredeploy.json").read_text())
    assert template["$schema"].endswith("deploymentTemplate.json#")
    queues = {
        r["name"] for r in resources(template, "Microsoft.Storage/storageAccounts/queueServices/queues")
    }
    assert queues == {f"initechmailpipe/default/{q}" for q in ("initech-events", "initech-events-poison",
                                                                 "mailpipe-parsed")}  # fmt: skip
    [plan] = resources(template, "Microsoft.Web/serverfarms")
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    [site] = resources(template, "Microsoft.Web/sites")
    assert site["identity"] == {"type": "SystemAssigned"}
    config = site["properties"]["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    assert config["scaleAndConcurrency"]["instanceMemoryMB"] == 2048
    settings = {s["name"]: s["value"] for s in site["properties"]["siteConfig"]["appSettings"]}
    assert settings["MAILPIPE_STORE"] == "azblob://initechmailpipe/inbound"
    assert settings["MAILPIPE_QUEUE"] == "azqueue://initechmailpipe/mailpipe-parsed"
    assert settings["MAILPIPE_EVENTS_QUEUE"] == "initech-events"
    assert settings["MAILPIPE_STORAGE__queueServiceUri"] == "https://initechmailpipe.queue.core.windows.net"
    assert "AccountKey" not in json.dumps(template)  # identity only, no secrets in the template
    [sub] = resources(template, "Microsoft.EventGrid/systemTopics/eventSubscriptions")
    props = sub["properties"]
    assert props["destination"]["endpointType"] == "StorageQueue"
    assert props["destination"]["properties"]["queueName"] == "initech-events"
    assert props["filter"] == {
        "includedEventTypes": ["Microsoft.Storage.BlobCreated"],
        "subjectEndsWith": ".eml",
        "subjectBeginsWith": "/blobServices/default/containers/inbound/blobs/raw/",
    }
    assert len(resources(template, "Microsoft.Authorization/roleAssignments")) == 2
    assert subprocess.run(["bash", "-n", str(built / "initech" / "deploy.sh")], check=False).returncode == 0


def test_azure_eventgrid_variant_and_bad_memory(tmp_path: Path) -> None:
    doc = yaml.safe_load((ROOT / "stages.yml").read_text())
    doc["stages"]["initech"]["azure"]["trigger"] = "eventgrid"
    stages = tmp_path / "stages.yml"
    stages.write_text(yaml.safe_dump(doc))
    base = build("initech", stages, tmp_path / "out")
    assert (base / "azure" / "function_app.py").read_text() == (
        ROOT / "handlers" / "azure_function.py"
    ).read_text()
    template = json.loads((base / "azuredeploy.json").read_text())
    assert resources(template, "Microsoft.EventGrid/systemTopics/eventSubscriptions") == []
    last = json.loads((base / "deploy.json").read_text())["commands"][-1]["run"]
    assert last[:5] == ["az", "eventgrid", "system-topic", "event-subscription", "create"]
    assert "azurefunction" in last
    doc["stages"]["initech"]["function"]["memory"] = 1024
    stages.write_text(yaml.safe_dump(doc))
    with pytest.raises(StageError, match="Flex Consumption"):
        build("initech", stages, tmp_path / "out2")


def test_azure_bundle_imports_from_itself(built: Path) -> None:
    bundle = built / "initech" / "azure"
    env = {"MAILPIPE_STORE": "azblob://acct/c", "MAILPIPE_QUEUE": "azqueue://acct/q"}
    files = probe(bundle, "function_app", env)
    assert {"function_app", "mailpipe.providers.azure.clients", "mailpipe.core.pipeline"} <= set(files)
    outside = {n: f for n, f in files.items() if f and not Path(f).resolve().is_relative_to(bundle.resolve())}
    assert outside == {}


SERVE = textwrap.dedent("""
    import json, sys
    sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in type(f).__module__]
    sys.path.insert(0, ".")
    import function_app
    from types import SimpleNamespace
    from azure.functions.queue import QueueMessage
    [fn] = function_app.app.get_functions()
    fn.get_user_function()(QueueMessage(id="m-1", body=sys.stdin.buffer.read(), dequeue_count=1),
                           SimpleNamespace(invocation_id="invocation-1"))
    print("served")
""")


@pytest.mark.emulator
def test_azure_bundle_serves_queue_messages(built: Path, azure_env: str, azure_queue: str) -> None:
    from test_azure import grid_event
    from test_azure import seed as seed_blob

    from mailpipe.providers.azure.clients import BlobStore

    prefix = f"bundle-{uuid.uuid4().hex[:8]}"
    store = BlobStore(ACCOUNT, CONTAINER, prefix)
    key, mid = seed_blob(store, (MAIL / "plain.eml").read_bytes())
    env = {**os.environ, "MAILPIPE_STORE": f"azblob://{ACCOUNT}/{CONTAINER}/{prefix}",
           "MAILPIPE_QUEUE": f"azqueue://{ACCOUNT}/{azure_queue}"}  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-c", SERVE],
        cwd=built / "initech" / "azure",
        env=env,
        input=json.dumps(grid_event(store, key)).encode(),
        capture_output=True,
        timeout=120,
    )
    assert out.returncode == 0 and out.stdout.strip().endswith(b"served"), out.stderr[-3000:]
    assert json.loads(store.get(f"parsed/{mid}.json"))["id"] == mid


# --- one command per stage ---


@pytest.mark.parametrize("stage", ["globex", "initech"])
def test_mailpipe_deploy_dry_run(stage: str) -> None:
    out = subprocess.run([sys.executable, str(ROOT / "deploy" / "mailpipe-deploy"), stage, "--dry-run"],
                         capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [f"+ {sys.executable} -m deploy.build_bundle {stage}",
                                       f"+ bash build/{stage}/deploy.sh"]  # fmt: skip
    module = deploy_gcp if stage == "globex" else deploy_azure
    assert "logged in" in module.NEEDS_FIRST
