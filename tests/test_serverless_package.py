"""serverless.yml, offline: `serverless package --stage dev` (osls, Serverless Framework v3 line) must build a
CloudFormation template that cfn-lint passes with zero errors, wired as docs/stages.md says, and a bundle that
holds only what the function imports (boto3 comes with the Lambda runtime).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from emulators_aws import *  # noqa: F403 - the moto fixtures (bucket)
from emulators_aws import client, lambda_sqs_event, notify_bucket_to_queue, receive_all

ROOT = Path(__file__).resolve().parent.parent
SLS = ROOT / "node_modules" / ".bin" / "serverless"
CFN_LINT = Path(sys.executable).parent / "cfn-lint"
RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six"}


@functools.cache
def _no_network() -> list[str]:
    """``unshare -n`` (an empty network namespace) where permitted: proves that packaging is offline."""
    ok = (
        shutil.which("unshare")
        and subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0
    )
    return ["unshare", "-n"] if ok else []


def package(stage: str, out: Path, *, build: bool = True) -> subprocess.CompletedProcess[str]:
    if shutil.which("node") is None:
        pytest.skip("node is not installed (Debian package nodejs): the Serverless Framework needs it")
    assert SLS.exists(), (
        f"{SLS} missing: run `make install-test` (npm ci installs osls from package-lock.json)"
    )
    env = {
        "PATH": os.environ["PATH"], "HOME": str(out.parent), "SLS_TELEMETRY_DISABLED": "1",
        "SLS_NOTIFICATIONS_MODE": "off", "AWS_ACCESS_KEY_ID": "offline", "AWS_SECRET_ACCESS_KEY": "offline",
    }  # fmt: skip
    # serverless.yml reads build/<stage>/aws.json (rules/enrichment files, secret references, queues, layers)
    if build:
        built = subprocess.run([sys.executable, "-m", "deploy.build_bundle", stage], cwd=ROOT, capture_output=True,
                               text=True, timeout=120, check=False)  # fmt: skip
        if built.returncode != 0:
            return built
    args = [*_no_network(), str(SLS), "package", "--stage", stage, "--package", str(out)]
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sls") / "dev"
    proc = package("dev", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


@pytest.fixture(scope="module")
def template(dev: Path) -> dict[str, Any]:
    return json.loads((dev / "cloudformation-template-update-stack.json").read_text())  # type: ignore[no-any-return]


def test_cfn_lint_has_zero_errors(dev: Path) -> None:
    assert CFN_LINT.exists(), "cfn-lint missing: run `make install-test` (dev extra)"
    proc = subprocess.run(
        [str(CFN_LINT), str(dev / "cloudformation-template-update-stack.json")],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_bucket_notifies_the_inbox_queue_for_raw_eml_only(template: dict[str, Any]) -> None:
    res = template["Resources"]
    (cfg,) = res["MailBucket"]["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    assert cfg["Event"] == "s3:ObjectCreated:*" and cfg["Queue"] == {"Fn::GetAtt": ["InboxQueue", "Arn"]}
    assert cfg["Filter"]["S3Key"]["Rules"] == [
        {"Name": "prefix", "Value": "raw/"},
        {"Name": "suffix", "Value": ".eml"},
    ]
    assert res["MailBucket"]["Properties"]["BucketName"] == "mailpipe-dev-mail"
    assert res["MailBucket"]["DependsOn"] == ["InboxQueuePolicy"]
    (stmt,) = res["InboxQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert stmt["Principal"] == {"Service": "s3.amazonaws.com"} and stmt["Action"] == "sqs:SendMessage"
    assert stmt["Condition"]["ArnLike"] == {"aws:SourceArn": "arn:aws:s3:::mailpipe-dev-mail"}


def test_inbox_has_a_dead_letter_queue_and_the_function_reports_partial_failures(
    template: dict[str, Any],
) -> None:
    res = template["Resources"]
    inbox = res["InboxQueue"]["Properties"]
    assert inbox["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["InboxDeadLetterQueue", "Arn"]},
        "maxReceiveCount": 5,
    }
    assert inbox["VisibilityTimeout"] >= 6 * res["ParseLambdaFunction"]["Properties"]["Timeout"]
    mapping = res["ParseEventSourceMappingSQSInboxQueue"]["Properties"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"] and mapping["BatchSize"] == 10
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["InboxQueue", "Arn"]}
    assert res["DestinationQueue"]["Properties"]["QueueName"] == "mailpipe-dev-parsed"
    alarm = res["InboxDeadLetterAlarm"]["Properties"]
    assert alarm["Dimensions"][0]["Value"] == {"Fn::GetAtt": ["InboxDeadLetterQueue", "QueueName"]}


def test_function_settings_come_from_the_stage(template: dict[str, Any]) -> None:
    fn = template["Resources"]["ParseLambdaFunction"]["Properties"]
    assert (fn["MemorySize"], fn["Timeout"], fn["Handler"]) == (512, 60, "mailpipe/handlers/aws_lambda.handle")
    env = fn["Environment"]["Variables"]
    assert env["MAILPIPE_STORE"] == "s3://mailpipe-dev-mail"
    assert env["MAILPIPE_QUEUE"] == {"Ref": "DestinationQueue"}
    assert env["MAILPIPE_MAX_MESSAGE_BYTES"] == "26214400"
    assert env["MAILPIPE_ENRICHERS"] == {"Fn::Join": [",", ["attachment_hashes", "links"]]}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_iam_is_least_privilege(template: dict[str, Any]) -> None:
    role = template["Resources"]["IamRoleLambdaExecution"]["Properties"]
    statements = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]]
    ours = {
        ",".join(_as_list(s["Action"])): _as_list(s["Resource"])
        for s in statements
        if not s["Action"][0].startswith("logs:")
    }
    bucket = "arn:aws:s3:::mailpipe-dev-mail"
    assert ours == {
        "s3:GetObject": [f"{bucket}/raw/*"],
        "s3:PutObject": [f"{bucket}/{p}/*" for p in ("parsed", "att", "quarantine")],
        "s3:ListBucket": [bucket],  # so a missing key is 404 (quarantine), not 403 (retry)
        "sqs:SendMessage,sqs:GetQueueUrl": [{"Fn::GetAtt": ["DestinationQueue", "Arn"]}],
        "sqs:ReceiveMessage,sqs:DeleteMessage,sqs:GetQueueAttributes": [
            {"Fn::GetAtt": ["InboxQueue", "Arn"]}
        ],
    }


def test_the_artifact_is_the_built_zip(dev: Path) -> None:
    """serverless.yml packages nothing itself: its artifact is deploy.build_bundle's zip."""
    state = json.loads((dev / "serverless-state.json").read_text())
    assert state["package"]["artifact"] == "aws.zip"
    assert state["service"]["functions"]["parse"]["handler"] == "mailpipe/handlers/aws_lambda.handle"


def bundle_zip(stage: str) -> zipfile.ZipFile:
    return zipfile.ZipFile(ROOT / "build" / stage / "aws.zip")


def test_bundle_holds_only_what_the_function_needs(dev: Path) -> None:
    names = bundle_zip("dev").namelist()
    assert (
        "mailpipe/handlers/aws_lambda.py" in names
        and "mailpipe/core/pipeline.py" in names
        and "mailpipe/providers/aws/clients.py" in names
    )
    allowed = (
        "mailpipe/__init__.py",
        "mailpipe/core/",
        "mailpipe/providers/aws/",
        "mailpipe/providers/__init__.py",
        "mailpipe/handlers/__init__.py",
        "mailpipe/handlers/compose.py",
        "mailpipe/handlers/aws_lambda.py",
        "mailpipe/enrichers/",
        "build/dev/stage/",  # the stage's rules.json / enrich.json (dev has neither)
    )
    assert not [n for n in names if n.startswith("mailpipe/enrichers/data/")]  # test signatures stay out
    assert [n for n in names if not n.startswith(allowed)] == []
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_bundle_imports_with_only_the_runtime_sdk(dev: Path, tmp_path: Path) -> None:
    bundle_zip("dev").extractall(tmp_path)
    probe = (
        "import sys, json; before = set(sys.modules); sys.path.insert(0, sys.argv[1]);"
        "import os, mailpipe.handlers.aws_lambda as h; from mailpipe.core.enrich.run import load_enricher;"
        "[load_enricher(n) for n in os.environ['MAILPIPE_ENRICHERS'].split(',')];"
        "r = h.handle({'Records': []}, None);"
        "new = {m: getattr(v, '__file__', None) for m, v in sys.modules.items() if m not in before};"
        "print(json.dumps([r, new]))"
    )
    env = {
        **os.environ,
        "MAILPIPE_STORE": "s3://b",
        "MAILPIPE_QUEUE": "sqs://q",
        "MAILPIPE_ENRICHERS": "attachment_hashes,links,autoreply,bounce,reply,crypto,uuencode",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
    proc = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path)], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    result, modules = json.loads(proc.stdout)
    assert result == {"batchItemFailures": []}
    stdlib = Path(os.__file__).parent
    foreign = {
        m.split(".")[0] for m, f in modules.items()
        if f and not Path(f).is_relative_to(tmp_path) and not Path(f).is_relative_to(stdlib)
    }  # fmt: skip
    assert foreign <= RUNTIME_PROVIDED, f"imports not in the bundle nor the Lambda runtime: {foreign}"
    assert modules["mailpipe.core"].startswith(str(tmp_path))


@pytest.fixture(scope="module")
def acme(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sls") / "acme"
    proc = package("acme", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def test_worked_example_stage_packages(acme: Path) -> None:
    tpl = json.loads((acme / "cloudformation-template-update-stack.json").read_text())
    fn = tpl["Resources"]["ParseLambdaFunction"]["Properties"]
    assert (fn["MemorySize"], fn["Timeout"]) == (1024, 120)
    assert tpl["Resources"]["MailBucket"]["Properties"]["BucketName"] == "acme-inbound-mail"
    assert CFN_LINT.exists(), "cfn-lint missing: run `make install-test` (dev extra)"
    lint = subprocess.run([str(CFN_LINT), str(acme / "cloudformation-template-update-stack.json")],
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_acme_function_gets_its_rules_enrichment_and_secret_references(acme: Path, tmp_path: Path) -> None:
    tpl = json.loads((acme / "cloudformation-template-update-stack.json").read_text())
    env = tpl["Resources"]["ParseLambdaFunction"]["Properties"]["Environment"]["Variables"]
    assert env["MAILPIPE_RULES"] == "build/acme/stage/rules.json"
    assert env["MAILPIPE_ENRICH_CONFIG"] == "build/acme/stage/enrich.json"
    assert env["MAILPIPE_ENRICHERS"] == {"Fn::Join": [",", ["attachment_hashes", "links"]]}
    for name in ("ACME_HELPDESK_WEBHOOK_SECRET", "ACME_CRM_WEBHOOK_SECRET"):  # references, never values
        assert env[name] == f"{{{{resolve:secretsmanager:mailpipe/acme/{name}}}}}"
    assert "whsec_" not in json.dumps(tpl)
    role = tpl["Resources"]["IamRoleLambdaExecution"]["Properties"]
    [send] = [s for p in role["Policies"] for s in p["PolicyDocument"]["Statement"]
              if "sqs:SendMessage" in _as_list(s["Action"])]  # fmt: skip
    arn = "arn:aws:sqs:${AWS::Region}:${AWS::AccountId}:"
    assert send["Resource"][1:] == [{"Fn::Sub": arn + "acme-billing"}, {"Fn::Sub": arn + "acme-support"}]
    bundle_zip("acme").extractall(tmp_path)
    rules = json.loads((tmp_path / "build/acme/stage/rules.json").read_text())
    assert rules["customers"]["acme"]["destinations"]["billing"] == "sqs://acme-billing"
    assert json.loads((tmp_path / "build/acme/stage/enrich.json").read_text())["links"]["trusted"]


def test_acme_bundle_starts_with_its_rules_from_the_zip(acme: Path, tmp_path: Path) -> None:
    """The zip's handler composes the pipeline with the JSON rules (stdlib only, no PyYAML) and refuses to
    start while a secret the rules name is missing."""
    bundle_zip("acme").extractall(tmp_path)
    probe = ("import sys; sys.meta_path[:] = [f for f in sys.meta_path if '__editable__' not in "
             "type(f).__module__]; sys.path.insert(0, sys.argv[1]); import mailpipe.handlers.aws_lambda as h;"
             "print(sorted(h.PIPELINE.router.config.customers), 'yaml' in sys.modules)")  # fmt: skip
    tpl = json.loads((acme / "cloudformation-template-update-stack.json").read_text())
    env = {k: v for k, v in tpl["Resources"]["ParseLambdaFunction"]["Properties"]["Environment"]["Variables"]
           .items() if isinstance(v, str) and not v.startswith("{{")}  # fmt: skip
    env.update(PATH=os.environ["PATH"], MAILPIPE_QUEUE="sqs://q", AWS_DEFAULT_REGION="us-east-1",
               ACME_HELPDESK_WEBHOOK_SECRET="whsec_" + "A" * 44)  # fmt: skip
    run = functools.partial(subprocess.run, [sys.executable, "-c", probe, str(tmp_path)], cwd="/",
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    missing = run(env=env)
    assert missing.returncode != 0 and "ACME_CRM_WEBHOOK_SECRET is unset" in missing.stderr
    ok = run(env={**env, "ACME_CRM_WEBHOOK_SECRET": "whsec_" + "B" * 44})
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert ok.stdout.split() == ["['acme']", "False"]


def test_a_stale_or_missing_build_is_refused(dev: Path, tmp_path: Path) -> None:
    """serverless.yml reads build/<stage>/aws.json through deploy/sls_built.js, which refuses one built from
    another stages.yml or rules file (a stage the build refused has none)."""
    built = ROOT / "build" / "dev" / "aws.json"
    good = built.read_text()
    try:
        built.write_text(good.replace('"stamp": "', '"stamp": "0'))
        proc = package("dev", tmp_path / "stale", build=False)
        assert proc.returncode != 0 and "build/dev/aws.json is stale" in proc.stdout + proc.stderr
        built.unlink()
        proc = package("dev", tmp_path / "missing", build=False)
        assert proc.returncode != 0 and "build/dev/aws.json is missing" in proc.stdout + proc.stderr
    finally:
        built.write_text(good)


def test_a_non_aws_stage_is_refused(tmp_path: Path) -> None:
    proc = package("globex", tmp_path / "globex")
    assert proc.returncode != 0
    assert "deploysOnlyCloudAws" in proc.stdout + proc.stderr  # the guard in serverless.yml custom:


INVOICE = (
    b"From: Supplier <ar@supplier.example>\r\nTo: billing@in.acme.example\r\nSubject: Invoice 2024-0042\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
    b"Please find the invoice attached.\r\n--b\r\nContent-Type: application/pdf\r\n"
    b"Content-Disposition: attachment; filename=inv.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"JVBERi0xLjQKJSVFT0YK\r\n--b--\r\n"
)
SERVE = (
    "import json, sys; sys.meta_path[:] = [f for f in sys.meta_path if '__editable__' not in type(f).__module__];"
    "sys.path.insert(0, sys.argv[1]); import mailpipe.handlers.aws_lambda as h;"
    "print(json.dumps(h.handle(json.load(sys.stdin))))"
)


@pytest.mark.emulator
def test_acme_zip_routes_an_event_to_its_rules_queue(acme: Path, tmp_path: Path, bucket: str) -> None:
    """The packaged zip, with the template's environment (secrets as the platform resolves them), parses an
    S3 -> SQS event on moto and its rules/acme.yml `invoices` rule publishes to sqs://acme-billing."""
    from mailpipe.core.keys import envelope_key, message_id, raw_key

    sqs, s3 = client("sqs"), client("s3")
    billing = sqs.create_queue(QueueName="acme-billing")["QueueUrl"]  # the queue rules/acme.yml names
    inbox, dest = (sqs.create_queue(QueueName=f"mp-{n}-{os.getpid()}")["QueueUrl"] for n in ("inbox", "dest"))
    arn = notify_bucket_to_queue(bucket, inbox)
    key = raw_key(message_id(INVOICE, None))
    envelope = {"mail_from": "ar@supplier.example", "rcpt_to": ["billing@in.acme.example"]}
    s3.put_object(Bucket=bucket, Key=envelope_key(key[4:-4]), Body=json.dumps(envelope).encode())
    s3.put_object(Bucket=bucket, Key=key, Body=INVOICE)
    event = lambda_sqs_event(receive_all(inbox), arn)
    bundle_zip("acme").extractall(tmp_path)
    tpl = json.loads((acme / "cloudformation-template-update-stack.json").read_text())
    variables = tpl["Resources"]["ParseLambdaFunction"]["Properties"]["Environment"]["Variables"]
    env = {**os.environ, **{k: v for k, v in variables.items() if isinstance(v, str) and not v.startswith("{{")},
           "MAILPIPE_STORE": f"s3://{bucket}", "MAILPIPE_QUEUE": "sqs://" + dest.rsplit("/", 1)[1],
           "MAILPIPE_ENRICHERS": "attachment_hashes,links",
           "ACME_HELPDESK_WEBHOOK_SECRET": "whsec_" + "A" * 44,
           "ACME_CRM_WEBHOOK_SECRET": "whsec_" + "B" * 44}  # fmt: skip
    out = subprocess.run([sys.executable, "-c", SERVE, str(tmp_path)], cwd="/", env=env, input=json.dumps(event),
                         capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    *emf, result = out.stdout.splitlines()
    assert out.returncode == 0 and json.loads(result) == {"batchItemFailures": []}, out.stderr[-3000:]
    docs = [json.loads(line) for line in emf]  # CloudWatch Embedded Metric Format, one document per series
    [done] = [d for d in docs if "mailpipe_messages_total" in d]
    assert (done["outcome"], done["mailpipe_messages_total"]) == ("done", 1.0)
    assert done["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "mailpipe"
    assert done["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["function", "outcome"]]
    assert {d["action"] for d in docs if "mailpipe_routing_deliveries_total" in d} >= {"publish"}
    [routed] = [json.loads(m["Body"]) for m in receive_all(billing)]
    assert (routed["customer"], routed["tags"]) == ("acme", ["invoice"])
    assert routed["message"]["routing"][0]["rule"] == "invoices"
    assert json.loads(receive_all(dest)[0]["Body"])["tags"] == ["invoice"]  # the default notification too
