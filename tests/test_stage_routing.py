"""Per-stage routing rules and enrichers reach the deployed functions (docs/stages.md, `rules:` / `enrichers:` /
`enrichment:`): the generated artifacts of every cloud carry MAILPIPE_RULES / MAILPIPE_ENRICHERS /
MAILPIPE_ENRICH_CONFIG and the files, the rules' secrets only as references, and a built GCP / Azure bundle
routes a real event through its rules to a second queue on the emulators. Offline; no cloud is contacted.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
import uuid
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from emulators_azure import ACCOUNT, CONTAINER
from emulators_gcp import PUBSUB_PROJECT
from test_gcp import BUCKET, FunctionServer, finalized_event, pull

from deploy import ROOT
from deploy.build_bundle import build
from deploy.build_bundle import main as build_main
from mailpipe.core.keys import envelope_key, message_id, raw_key
from mailpipe.providers.yaml.stages import StageError, get

if TYPE_CHECKING:
    from pathlib import Path

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()  # what the platform resolves the reference to
MAIL = b"From: A <a@example.com>\r\nTo: billing@in.test.example\r\nSubject: Invoice 42\r\n\r\nSee https://x.example/\r\n"
RULES = """
customers:
  cust:
    domains: [in.test.example]
    destinations: {{billing: "{dest}"}}
    webhooks:
      crm: {{url: "https://crm.test.example/hook", secret_env: CUST_CRM_SECRET, format: mailpipe}}
    rules:
      - name: invoices
        when: {{subject: '(?i)invoice'}}
        actions: [{{tag: invoice}}, {{publish: billing}}]
"""


def stages_file(tmp_path: Path, stage: str, dest: str, **changes: Any) -> Path:
    """A copy of stages.yml whose ``stage`` routes by a rules file publishing to ``dest``."""
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES.format(dest=dest))
    doc = yaml.safe_load((ROOT / "stages.yml").read_text())
    spec = doc["stages"][stage]
    spec.update(rules=str(rules), enrichers=["links"], enrichment={"links": {"trusted": ["in.test.example"]}})
    spec.update(changes)
    path = tmp_path / "stages.yml"
    path.write_text(yaml.safe_dump(doc))
    return path


def no_secret_values(base: Path) -> None:
    """No secret value in any generated file (the rules name env vars; the code mentions ``whsec_`` only)."""
    files = [p for p in base.rglob("*") if p.is_file() and p.suffix not in (".zip", ".py")]
    assert files and not [p for p in files if "whsec_" in p.read_text(errors="replace")]


def seed_with_envelope(store: Any) -> tuple[str, str]:
    key = raw_key(message_id(MAIL, None))
    mid = key[4:-4]
    envelope = {"mail_from": "a@example.com", "rcpt_to": ["billing@in.test.example"]}
    store.put(envelope_key(mid), json.dumps(envelope).encode(), content_type="application/json")
    store.put(key, MAIL, content_type="message/rfc822")
    return key, mid


def assert_routed(doc: dict[str, Any]) -> None:
    assert doc["tags"] == ["invoice"]
    [route] = doc["routing"]
    assert (route["customer"], route["rule"]) == ("cust", "invoices")
    assert doc["enrichments"]["links"]["status"] == "ok"


# --- deploy-time validation ---


def test_bad_enricher_name_fails_at_deploy_time_naming_the_stage(tmp_path: Path, capsys: Any) -> None:
    path = stages_file(tmp_path, "globex", "pubsub://p/t", enrichers=["auth_results", "links"])
    with pytest.raises(StageError, match=r"stage 'globex': unknown enrichers \['auth_results'\]"):
        get("globex", path)
    assert build_main(["globex", "--stages", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "stage 'globex': unknown enrichers" in capsys.readouterr().err


def test_enrichment_for_an_unlisted_enricher_and_a_bad_rules_file_are_refused(tmp_path: Path) -> None:
    path = stages_file(tmp_path, "globex", "pubsub://p/t", enrichment={"ocr": {"dpi": 200}})
    with pytest.raises(StageError, match=r"stage 'globex': enrichment for enrichers not listed: \['ocr'\]"):
        get("globex", path)
    path = stages_file(tmp_path, "globex", "pubsub://p/t")
    (tmp_path / "rules.yml").write_text(RULES.format(dest="pubsub://p/t").replace("{publish: billing}",
                                                                                  "{publish: nowhere}"))
    with pytest.raises(StageError, match=r"stage 'globex': rules .*rules.yml:\d+: .*unknown publish target"):
        build("globex", path, tmp_path / "out")
    path = stages_file(tmp_path, "globex", "sqs://billing")  # the GCP bundle has no SQS adapter
    with pytest.raises(StageError, match=r"stage 'globex': .*a gcp function publishes to pubsub:// only"):
        build("globex", path, tmp_path / "out")


# --- AWS ---


def test_aws_heavy_enrichers_need_a_layer(tmp_path: Path) -> None:
    path = stages_file(tmp_path, "acme", "sqs://acme-billing", enrichers=["links", "language"], enrichment={})
    with pytest.raises(StageError, match=r"stage 'acme': .*mailpipe\[nlp\].*aws.layers"):
        build("acme", path, tmp_path / "out")
    layer = "arn:aws:lambda:us-east-1:123456789012:layer:mailpipe-nlp:3"
    doc = yaml.safe_load(path.read_text())
    doc["stages"]["acme"]["aws"]["layers"] = [layer]
    path.write_text(yaml.safe_dump(doc))
    base = build("acme", path, tmp_path / "out")
    assert json.loads((base / "aws.json").read_text())["layers"] == [layer]


def test_aws_stage_files_secrets_and_queues(tmp_path: Path) -> None:
    path = stages_file(tmp_path, "acme", "sqs://acme-billing")
    base = build("acme", path, tmp_path / "out")
    doc = json.loads((base / "aws.json").read_text())
    assert doc["environment"] == {
        "MAILPIPE_RULES": "out/acme/stage/rules.json",
        "MAILPIPE_ENRICH_CONFIG": "out/acme/stage/enrich.json",
        "CUST_CRM_SECRET": "{{resolve:secretsmanager:mailpipe/acme/CUST_CRM_SECRET}}",
    }
    assert doc["sendQueues"][1] == {"Fn::Sub": "arn:aws:sqs:${AWS::Region}:${AWS::AccountId}:acme-billing"}
    assert json.loads((base / "stage" / "enrich.json").read_text()) == {"links": {"trusted": ["in.test.example"]}}
    no_secret_values(base)


# --- GCP ---


def test_gcp_env_bundle_and_secret_references(tmp_path: Path) -> None:
    path = stages_file(tmp_path, "globex", "pubsub://globex-mail-prod/billing")
    base = build("globex", path, tmp_path / "out")
    env = yaml.safe_load((base / "env.gcp.yaml").read_text())
    assert env["MAILPIPE_RULES"] == "stage/rules.json" and env["MAILPIPE_ENRICHERS"] == "links"
    assert env["MAILPIPE_ENRICH_CONFIG"] == "stage/enrich.json"
    assert (base / "gcp" / "stage" / "rules.json").is_file()
    assert (base / "gcp" / "mailpipe" / "enrichers" / "links.py").is_file()
    assert not (base / "gcp" / "mailpipe" / "enrichers" / "data").exists()
    assert "CUST_CRM_SECRET" not in env
    [deploy] = [c["run"] for c in json.loads((base / "deploy.json").read_text())["commands"]
                if c["run"][:3] == ["gcloud", "functions", "deploy"]]  # fmt: skip
    secret = "projects/globex-mail-prod/secrets/mailpipe-globex-cust-crm-secret:latest"
    assert f"--set-secrets=CUST_CRM_SECRET={secret}" in deploy
    grants = {tuple(c["run"][1:4]): c["run"] for c in json.loads((base / "deploy.json").read_text())["commands"]
              if "add-iam-policy-binding" in c["run"]}  # fmt: skip
    assert "--role=roles/secretmanager.secretAccessor" in grants[("secrets", "add-iam-policy-binding",
                                                                   "mailpipe-globex-cust-crm-secret")]
    assert "--role=roles/pubsub.publisher" in grants[("pubsub", "topics", "add-iam-policy-binding")]
    assert subprocess.run(["bash", "-n", str(base / "deploy.sh")], check=False).returncode == 0
    no_secret_values(base)


def test_heavy_enrichers_bring_their_extras_and_ocr_is_refused(tmp_path: Path) -> None:
    path = stages_file(tmp_path, "globex", "pubsub://p/t", enrichers=["malware", "language", "auth"], enrichment={})
    reqs = (build("globex", path, tmp_path / "out") / "gcp" / "requirements.txt").read_text().split()
    assert {"yara-python>=4.5", "lingua-language-detector>=2.0", "vaderSentiment>=3.3", "dkimpy>=1.1"} <= set(reqs)
    assert "functions-framework>=3.5" in reqs
    path = stages_file(tmp_path, "globex", "pubsub://p/t", enrichers=["ocr"], enrichment={})
    with pytest.raises(StageError, match=r"stage 'globex': a gcp function cannot carry ocr: .*tesseract"):
        build("globex", path, tmp_path / "out")


@pytest.mark.emulator
def test_gcp_bundle_routes_an_event_through_its_rules(
    tmp_path: Path, gcs_env: str, pubsub_topic: tuple[str, str]
) -> None:
    from google.cloud import pubsub_v1

    from mailpipe.providers.gcp.clients import GcsStore

    second = f"billing-{uuid.uuid4().hex[:8]}"
    topic = pubsub_v1.PublisherClient().create_topic(name=f"projects/{PUBSUB_PROJECT}/topics/{second}").name
    sub = pubsub_v1.SubscriberClient().create_subscription(
        name=f"projects/{PUBSUB_PROJECT}/subscriptions/{second}", topic=topic).name  # fmt: skip
    base = build("globex", stages_file(tmp_path, "globex", f"pubsub://{PUBSUB_PROJECT}/{second}"), tmp_path / "out")
    prefix = f"routed-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, **yaml.safe_load((base / "env.gcp.yaml").read_text()), "CUST_CRM_SECRET": SECRET,
           "MAILPIPE_STORE": f"gs://{BUCKET}/{prefix}",
           "MAILPIPE_QUEUE": f"pubsub://{PUBSUB_PROJECT}/{pubsub_topic[0].split('/')[3]}"}  # fmt: skip
    (tmp_path / "run").mkdir()  # the server's cwd is not the bundle: MAILPIPE_RULES resolves in the bundle
    server = FunctionServer(env, tmp_path / "run" / "ff.log", source=base / "gcp" / "main.py")
    try:
        store = GcsStore(BUCKET, prefix)
        key, mid = seed_with_envelope(store)
        assert server.post(finalized_event(store, key)) == 200
        assert_routed(json.loads(store.get(f"parsed/{mid}.json")))
        [event] = [json.loads(m.data) for m in pull(sub, 1)]
        assert (event["type"], event["customer"], event["tags"]) == ("mail.received", "cust", ["invoice"])
        assert json.loads(pull(pubsub_topic[1], 1)[0].data)["tags"] == ["invoice"]  # default notification
    finally:
        server.emu.stop()


# --- Azure ---


def test_azure_app_settings_carry_files_and_key_vault_references(tmp_path: Path) -> None:
    path = stages_file(tmp_path, "initech", "azqueue://initechmailpipe/billing")
    with pytest.raises(StageError, match=r"stage 'initech': .*CUST_CRM_SECRET.*azure.key_vault"):
        build("initech", path, tmp_path / "out")
    doc = yaml.safe_load(path.read_text())
    doc["stages"]["initech"]["azure"]["key_vault"] = "initech-kv"
    path.write_text(yaml.safe_dump(doc))
    base = build("initech", path, tmp_path / "out")
    template = json.loads((base / "azuredeploy.json").read_text())
    [site] = [r for r in template["resources"] if r["type"] == "Microsoft.Web/sites"]
    settings = {s["name"]: s["value"] for s in site["properties"]["siteConfig"]["appSettings"]}
    assert settings["MAILPIPE_RULES"] == "stage/rules.json" and settings["MAILPIPE_ENRICHERS"] == "links"
    assert settings["MAILPIPE_ENRICH_CONFIG"] == "stage/enrich.json"
    uri = "https://initech-kv.vault.azure.net/secrets/cust-crm-secret/"
    assert settings["CUST_CRM_SECRET"] == f"@Microsoft.KeyVault(SecretUri={uri})"
    import zipfile

    with zipfile.ZipFile(base / "azure.zip") as zf:
        assert {"stage/rules.json", "stage/enrich.json", "mailpipe/enrichers/links.py"} <= set(zf.namelist())
    commands = [c["run"] for c in json.loads((base / "deploy.json").read_text())["commands"]]
    assert any(c[:3] == ["az", "role", "assignment"] and "Key Vault Secrets User" in c for c in commands)
    assert subprocess.run(["bash", "-n", str(base / "deploy.sh")], check=False).returncode == 0
    no_secret_values(base)


SERVE = textwrap.dedent("""
    import json, os, sys
    sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in type(f).__module__]
    sys.path.insert(0, sys.argv[1])
    import function_app
    from types import SimpleNamespace
    from azure.functions.queue import QueueMessage
    [fn] = function_app.app.get_functions()
    fn.get_user_function()(QueueMessage(id="m-1", body=sys.stdin.buffer.read(), dequeue_count=1),
                           SimpleNamespace(invocation_id="invocation-1"))
    print("served")
""")


@pytest.mark.emulator
def test_azure_bundle_routes_an_event_through_its_rules(
    tmp_path: Path, azure_env: str, azure_queue: str
) -> None:
    from azure.storage.queue import QueueClient
    from test_azure import grid_event

    from mailpipe.providers.azure.clients import BlobStore

    second = f"billing-{uuid.uuid4().hex[:8]}"
    client = QueueClient.from_connection_string(azure_env, second)
    client.create_queue()
    path = stages_file(tmp_path, "initech", f"azqueue://{ACCOUNT}/{second}")
    doc = yaml.safe_load(path.read_text())
    doc["stages"]["initech"]["azure"]["key_vault"] = "initech-kv"
    path.write_text(yaml.safe_dump(doc))
    base = build("initech", path, tmp_path / "out")
    [site] = [r for r in json.loads((base / "azuredeploy.json").read_text())["resources"]
              if r["type"] == "Microsoft.Web/sites"]  # fmt: skip
    settings = {s["name"]: s["value"] for s in site["properties"]["siteConfig"]["appSettings"]}
    prefix = f"routed-{uuid.uuid4().hex[:8]}"
    store = BlobStore(ACCOUNT, CONTAINER, prefix)
    key, mid = seed_with_envelope(store)
    env = {**os.environ, **{k: v for k, v in settings.items() if k.startswith("MAILPIPE_")},
           "CUST_CRM_SECRET": SECRET, "MAILPIPE_STORE": f"azblob://{ACCOUNT}/{CONTAINER}/{prefix}",
           "MAILPIPE_QUEUE": f"azqueue://{ACCOUNT}/{azure_queue}"}  # fmt: skip
    try:
        out = subprocess.run(
            [sys.executable, "-c", SERVE, str(base / "azure")], cwd=tmp_path, env=env,
            input=json.dumps(grid_event(store, key)).encode(), capture_output=True, timeout=120,
        )  # fmt: skip
        assert out.returncode == 0 and out.stdout.strip().endswith(b"served"), out.stderr[-3000:]
        assert_routed(json.loads(store.get(f"parsed/{mid}.json")))
        [msg] = list(client.receive_messages())
        body = msg.content if msg.content.startswith("{") else base64.b64decode(msg.content).decode()
        assert (json.loads(body)["customer"], json.loads(body)["tags"]) == ("cust", ["invoice"])
    finally:
        client.delete_queue()
