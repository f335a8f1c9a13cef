"""The edge on each cloud: the container definition, its health probe, and the run commands the deploy tool
generates from a stage. Docker is not available here, so the image is never built: what can be checked offline
is (the Containerfile's sources and extras exist; the entrypoint and the probe run; the generated commands
carry the right env, image, port and health check; the edge started with exactly that env accepts mail)."""

from __future__ import annotations

import json
import os
import re
import shlex
import smtplib
import subprocess
import sys
import tomllib
from typing import TYPE_CHECKING

import pytest
from conftest import ROOT, _free_port, wait_port
from emulators_aws import *  # noqa: F403 - the moto fixtures
from emulators_aws import REGION, client

from deploy import edge as edge_deploy
from mailpipe.core.keys import envelope_key
from mailpipe.providers.yaml.stages import StageError, get

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from conftest import Edge

CONTAINERFILE = ROOT / "deploy" / "edge" / "Containerfile"
MSG = b"From: a@sender.org\r\nTo: b@dev.mailpipe.test\r\nSubject: t\r\n\r\nHello\r\n"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Containerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", CONTAINERFILE.read_text())
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in lines]


def test_containerfile_copies_existing_sources_and_installs_real_extras() -> None:
    ins = _instructions()
    assert ins[0] == ("FROM", "python:3.12-slim")
    for _, args in (i for i in ins if i[0] == "COPY"):
        *sources, _dest = args.split()
        for src in sources:
            assert (ROOT / src).exists(), src
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = packages["project"]["optional-dependencies"]
    (install,) = [a for i, a in ins if i == "RUN" and "pip install" in a]
    assert '"/src[smtp,${CLOUD}]"' in install and "rm -rf /src" in install
    assert {"smtp", "aws", "gcp", "azure", "local"} <= set(extras)
    for top in packages["tool"]["setuptools"]["package-dir"].values():  # every folder of the wheel is copied
        assert any(a.startswith(top + "/") for i, a in ins if i == "COPY"), top
    # the build-context allowlist lets every COPY source through
    ignore = set((CONTAINERFILE.parent / "Containerfile.dockerignore").read_text().splitlines())
    sources = [src for i, a in ins if i == "COPY" for src in a.split()[:-1]]
    assert {"mailpipe/", "schema/", "core/", "providers/", "handlers/", "enrichers/", "README.md"} <= set(sources)
    assert {f"!{src}" for src in sources} <= ignore


def test_containerfile_runs_the_edge_as_a_non_root_user_on_port_25() -> None:
    ins = dict(_instructions())
    assert ins["USER"] not in ("root", "0")
    assert ins["EXPOSE"] == "25"
    assert "cap_net_bind_service=+ep" in next(a for i, a in _instructions() if i == "RUN")
    assert json.loads(ins["ENTRYPOINT"]) == ["python", "-m", "mailpipe.handlers.edge"]
    probe = json.loads(ins["HEALTHCHECK"].split("CMD", 1)[1])
    assert probe == edge_deploy.CHECK
    assert "MAILPIPE_LISTEN=0.0.0.0:25" in ins["ENV"]


def _module(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mailpipe.handlers.edge", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60, env={**os.environ, **(env or {})})  # fmt: skip


def test_entrypoint_help_works_outside_the_checkout(tmp_path: Path) -> None:
    # the image runs from /opt/mailpipe with an installed package; here: another cwd, package on PYTHONPATH
    proc = _module("--help", env={"PYTHONPATH": str(ROOT)}, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for flag in ("--domain-store", "--stages", "--check", "--listen"):
        assert flag in proc.stdout


def test_check_probe_healthy_down_and_busy(edge: Callable[..., Edge]) -> None:
    e = edge(max_connections=1)
    assert _module("--check", f"127.0.0.1:{e.port}").returncode == 0
    assert _module("--check", env={"MAILPIPE_LISTEN": f"0.0.0.0:{e.port}"}).returncode == 0  # port from env
    with smtplib.SMTP("127.0.0.1", e.port, timeout=10):  # the one allowed session: the next one gets 421
        busy = _module("--check", f"127.0.0.1:{e.port}")
    assert (busy.returncode, busy.stdout.split(":")[0]) == (0, "healthy (busy")
    down = _module("--check", f"127.0.0.1:{_free_port()}")
    assert down.returncode == 1 and "unhealthy" in down.stderr


# --- generated run commands ---


def _deploy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "deploy" / "mailpipe-deploy"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def _docker_env(output: str) -> tuple[dict[str, str], list[str]]:
    line = next(ln for ln in output.splitlines() if ln.startswith("# docker run "))
    argv = shlex.split(line[2:])
    env = dict(argv[i + 1].split("=", 1) for i, a in enumerate(argv) if a == "-e")
    return env, argv


@pytest.mark.parametrize("name", ["acme", "globex", "initech"])
def test_edge_output_runs_the_image_with_the_stage_env(name: str) -> None:
    stage = get(name)
    proc = _deploy(name, "--edge")
    assert proc.returncode == 0, proc.stderr
    env, argv = _docker_env(proc.stdout)
    assert env == edge_deploy.edge_env(stage)
    assert {**stage.settings_env(), "MAILPIPE_LISTEN": "0.0.0.0:25"}.items() <= env.items()
    assert argv[-1] == f"mailpipe-edge:{stage.cloud}" and "25:25" in argv
    assert f"--build-arg CLOUD={stage.cloud}" in proc.stdout


def test_aws_task_definition_has_image_port_env_and_health_check() -> None:
    stage = get("acme")
    out = _deploy("acme", "--edge").stdout
    task = json.loads(out.split("<<EOF\n", 1)[1].split("\nEOF\n", 1)[0])
    assert task == edge_deploy.task_definition(stage)
    (c,) = task["containerDefinitions"]
    assert task["requiresCompatibilities"] == ["FARGATE"] and task["networkMode"] == "awsvpc"
    assert c["portMappings"] == [{"containerPort": 25, "protocol": "tcp"}]
    assert {e["name"]: e["value"] for e in c["environment"]} == edge_deploy.edge_env(stage)
    assert c["healthCheck"]["command"] == ["CMD", "python", "-m", "mailpipe.handlers.edge", "--check"]
    for needed in ("create-load-balancer", "--type network", "--protocol TCP --port 25", "preserve_client_ip",
                   "--launch-type FARGATE", "containerPort=25", "register-task-definition"):  # fmt: skip
        assert needed in out, needed


def test_gcp_container_vm_and_azure_container_instance_commands() -> None:
    gcp = _deploy("globex", "--edge").stdout
    vm = shlex.split(next(ln for ln in gcp.splitlines() if "create-with-container" in ln))
    env = vm[vm.index("--container-env") + 1]
    assert env.startswith("^|^")  # MAILPIPE_DOMAINS may hold commas
    assert dict(p.split("=", 1) for p in env[3:].split("|")) == edge_deploy.edge_env(get("globex"))
    assert "--allow tcp:25" in gcp and vm[vm.index("--container-image") + 1] == "mailpipe-edge:gcp"
    azure = _deploy("initech", "--edge").stdout
    aci = shlex.split(next(ln for ln in azure.splitlines() if "az container create" in ln).split("$(", 1)[1])
    assert aci[aci.index("--ports") + 1] == "25" and aci[aci.index("--image") + 1] == "mailpipe-edge:azure"
    start = aci.index("--environment-variables") + 1
    pairs = aci[start : aci.index("--query")]
    assert dict(p.split("=", 1) for p in pairs) == edge_deploy.edge_env(get("initech"))
    assert "Storage Blob Data Contributor" in azure


def test_edge_block_options_and_errors(tmp_path: Path) -> None:
    base = get("acme")
    from dataclasses import replace

    tuned = replace(base, edge={"image": "123.dkr.ecr.us-east-1.amazonaws.com/edge:1", "hostname": "mx.acme.example",
                                "tls_cert": "/run/secrets/tls.crt", "tls_key": "/run/secrets/tls.key"})  # fmt: skip
    env = edge_deploy.edge_env(tuned)
    assert env["MAILPIPE_TLS_CERT"] == "/run/secrets/tls.crt" and env["MAILPIPE_HOSTNAME"] == "mx.acme.example"
    assert edge_deploy.run_command(tuned, "podman")[:2] == ["podman", "run"]
    assert edge_deploy.run_command(tuned)[-1].endswith("/edge:1")
    with pytest.raises(StageError, match="unknown edge keys"):
        edge_deploy.edge_env(replace(base, edge={"imagee": "x"}))
    with pytest.raises(StageError, match="go together"):
        edge_deploy.edge_env(replace(base, edge={"tls_cert": "/x"}))


# --- the edge started with exactly the generated env accepts mail ---


@pytest.fixture
def edge_process(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], int]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(env: dict[str, str]) -> int:
        port = _free_port()
        env = {**env, "MAILPIPE_LISTEN": f"127.0.0.1:{port}"}  # the one change: loopback, not 0.0.0.0:25
        with open(tmp_path / "edge.log", "ab") as log:
            procs.append(subprocess.Popen([sys.executable, "-m", "mailpipe.handlers.edge"], cwd=ROOT, stdout=log,
                                          stderr=log, env={**os.environ, **env}))  # fmt: skip
        wait_port(port)
        return port

    yield start
    for proc in procs:
        proc.terminate()
        assert proc.wait(15) == 0


def _send_and_refuse(port: int) -> str:
    assert _module("--check", f"127.0.0.1:{port}").returncode == 0  # the container's health check
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
        c.ehlo("client.test")
        c.mail("a@sender.org")
        assert c.rcpt("x@elsewhere.org")[0] == 550
        assert c.rcpt("b@dev.mailpipe.test")[0] == 250
        code, reply = c.data(MSG)
    assert code == 250, reply
    return reply.decode().rsplit(" ", 1)[-1]


def test_generated_env_edge_stores_in_the_stage_bucket(aws_env: str, edge_process: Callable[..., int]) -> None:
    stage = get("dev")  # s3://mailpipe-dev-mail on moto: the dev stage's env exactly, plus where AWS is
    client("s3").create_bucket(Bucket=stage.bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    mid = _send_and_refuse(edge_process(edge_deploy.edge_env(stage)))
    body = client("s3").get_object(Bucket=stage.bucket, Key=f"raw/{mid}.eml")["Body"].read()
    assert body == MSG
    env = json.loads(client("s3").get_object(Bucket=stage.bucket, Key=envelope_key(mid))["Body"].read())
    assert env["rcpt_to"] == ["b@dev.mailpipe.test"]


def test_generated_env_edge_on_a_local_folder_variant(tmp_path: Path, edge_process: Callable[..., int]) -> None:
    env = {**edge_deploy.edge_env(get("dev")), "MAILPIPE_STORE": f"file://{tmp_path / 'mail'}"}
    mid = _send_and_refuse(edge_process(env))
    assert (tmp_path / "mail" / "raw" / f"{mid}.eml").read_bytes() == MSG


def test_edge_output_gives_the_shared_map_the_edge_reads_without_pyyaml() -> None:
    from mailpipe.core.settings import Settings
    from mailpipe.providers.yaml.stages import domain_store_entries

    out = _deploy("dev", "--edge").stdout
    line = next(ln for ln in out.splitlines() if "MAILPIPE_DOMAIN_STORES=" in ln)
    value = line.split("MAILPIPE_DOMAIN_STORES=", 1)[1]
    assert value.split(",") == domain_store_entries(ROOT / "stages.yml")  # the same as --stages stages.yml
    mapping = Settings.from_env({"MAILPIPE_DOMAIN_STORES": value}).store_map()
    assert mapping["support.acme.example"] == "s3://acme-inbound-mail"
    assert mapping["mx.initech.example"] == "azblob://initechmailpipe/inbound"
