"""deploy/mailpipe-deploy: one command per customer stage, whatever its cloud, from stages.yml (offline)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mailpipe.providers.yaml.stages import REQUIRED, StageError, get, load  # noqa: E402

CLI = ROOT / "deploy" / "mailpipe-deploy"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CLI), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_shipped_stages_validate_with_one_worked_example_per_cloud() -> None:
    stages = load()
    assert stages["dev"].cloud == "aws"
    assert {s.cloud for s in stages.values()} == {"aws", "gcp", "azure"}


def test_aws_stage_deploys_with_serverless() -> None:
    proc = run("dev", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        f"+ {sys.executable} -m deploy.build_bundle dev",  # build/dev/aws.json + stage files for serverless.yml
        f"+ {ROOT}/node_modules/.bin/serverless deploy --stage dev --region eu-west-1",
    ]


@pytest.mark.parametrize("stage", ["globex", "initech"])
def test_gcp_and_azure_stages_build_then_run_their_descriptors(stage: str) -> None:
    proc = run(stage, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "build_bundle" in lines[0] and lines[0].endswith(f" {stage}")
    assert lines[1].startswith("+ bash ") and lines[1].endswith(f"build/{stage}/deploy.sh")


def test_unknown_stage_is_a_usage_error() -> None:
    proc = run("nosuch", "--dry-run")
    assert proc.returncode == 2 and "unknown stage 'nosuch'" in proc.stderr and "dev" in proc.stderr


def test_env_gives_the_settings_every_component_of_the_stage_uses() -> None:
    proc = run("initech", "--env")
    env = dict(line.split("=", 1) for line in proc.stdout.splitlines())
    assert env["MAILPIPE_STORE"] == "azblob://initechmailpipe/inbound"
    assert env["MAILPIPE_QUEUE"] == "azqueue://initechmailpipe/mailpipe-parsed"
    assert env["MAILPIPE_DOMAINS"] == "mx.initech.example" and env["MAILPIPE_MAX_PARTS"] == "1000"
    assert get("globex").queue_url == "pubsub://globex-mail-prod/mailpipe-parsed"
    assert get("dev").settings_env()["MAILPIPE_STORE"] == "s3://mailpipe-dev-mail"


def test_serverless_yml_reads_exactly_the_aws_keys_the_validator_requires() -> None:
    used = set(re.findall(r"\$\{self:custom\.stage\.aws\.(\w+)\}", (ROOT / "serverless.yml").read_text()))
    assert used == set(REQUIRED["aws"])


BASE = """
stages:
  s1:
    cloud: aws
    region: eu-west-1
    bucket: b
    queue: q
    domains: [example.com]
    function: {memory: 512, timeout: 60}
    aws: {batch_size: 10, max_receive_count: 5, visibility_timeout: 360}
"""


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("visibility_timeout: 360", "visibility_timeout: 30"), "visibility_timeout"),
        (("max_receive_count: 5, ", ""), "max_receive_count"),
        (("cloud: aws", "cloud: ibm"), "cloud must be one of"),
        (("  s1:", "  S_1:"), "name must match"),
        (("    queue: q\n", ""), "`queue` is required"),
        (("    domains: [example.com]", "    domains: []"), "domains"),
        (("    bucket: b", "    bucket: b\n    color: red"), "unknown keys ['color']"),
        (("    bucket: b", "    bucket: b\n    gcp: {project: p}"), "another cloud"),
        (("    bucket: b", "    bucket: b\n    limits: {max_bananas: 1}"), "unknown limits"),
        (("    bucket: b", "    bucket: b\n    enrichers: [auth_results]"), "stage 's1': unknown enrichers"),
        (("    bucket: b", "    bucket: b\n    enrichers: [links]\n    enrichment: {links: 3}"), "enrichment"),
        (("    bucket: b", "    bucket: b\n    rules: rules/acme.json"), "`rules` is the path"),
    ],
)
def test_invalid_stages_name_the_stage_and_the_key(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    path = tmp_path / "stages.yml"
    path.write_text(BASE.replace(*change))
    with pytest.raises(StageError, match=re.escape(message)):
        load(path)


def test_valid_minimal_stage(tmp_path: Path) -> None:
    path = tmp_path / "stages.yml"
    path.write_text(BASE)
    stage = get("s1", path)
    assert (stage.memory, stage.timeout, stage.extra["batch_size"]) == (512, 60, 10)
