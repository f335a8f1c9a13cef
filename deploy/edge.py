"""The SMTP edge of a stage on its cloud: ``mailpipe-deploy <stage> --edge`` (docs/edge.md).

The parse functions cannot listen on port 25, so the edge runs as a container (deploy/edge/Containerfile):
AWS ECS Fargate behind a Network Load Balancer (TCP:25), GCP a Compute Engine container VM (Cloud Run takes
only HTTP(S)/gRPC, never raw TCP:25), Azure Container Instances (``--ports 25``). Every variant runs with the
same environment, ``edge_env(stage)``: the stage's MAILPIPE_* settings plus the edge's own.
"""

from __future__ import annotations

import json
import shlex
from typing import TYPE_CHECKING, Any

from mailpipe.providers.yaml.stages import StageError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from mailpipe.providers.yaml.stages import Stage

PORT = 25
CHECK = ["python", "-m", "mailpipe.handlers.edge", "--check"]
# stage `edge:` keys -> default (None: computed from the stage)
KEYS: dict[str, Any] = {
    "image": None,  # default mailpipe-edge:<cloud>, as built by the Containerfile's example
    "hostname": None,  # the MX host's name (banner, EHLO; its DNS A record and TLS cert); default: first domain
    "tls_cert": None,  # PEM paths inside the container (a secret mount): STARTTLS
    "tls_key": None,
    "instances": 2,  # ECS desired count
    "cpu": 512,  # Fargate CPU units / ACI cores * 1024
    "memory": 1024,  # MB
    "machine_type": "e2-small",  # GCP
    "zone": None,  # GCP; default <region>-b
}


def options(stage: Stage) -> dict[str, Any]:
    """The stage's ``edge:`` block with defaults filled in. Raises StageError for an unknown key."""
    unknown = sorted(set(stage.edge) - set(KEYS))
    if unknown:
        raise StageError(f"stage {stage.name!r}: unknown edge keys {unknown}; known: {sorted(KEYS)}")
    if ("tls_cert" in stage.edge) != ("tls_key" in stage.edge):
        raise StageError(f"stage {stage.name!r}: edge.tls_cert and edge.tls_key go together")
    opts = {**KEYS, **stage.edge}
    opts["image"] = opts["image"] or f"mailpipe-edge:{stage.cloud}"
    opts["hostname"] = opts["hostname"] or stage.domains[0]
    opts["zone"] = opts["zone"] or f"{stage.region}-b"
    return opts


def edge_env(stage: Stage) -> dict[str, str]:
    """The edge container's whole environment: the stage's settings, the listen port, host name and TLS."""
    opts = options(stage)
    env = {**stage.settings_env(), "MAILPIPE_LISTEN": f"0.0.0.0:{PORT}", "MAILPIPE_HOSTNAME": opts["hostname"]}
    if opts["tls_cert"]:
        env |= {"MAILPIPE_TLS_CERT": opts["tls_cert"], "MAILPIPE_TLS_KEY": opts["tls_key"]}
    return env


def run_command(stage: Stage, engine: str = "docker") -> list[str]:
    """``docker run`` (or ``podman run``) of the edge on one host with the stage's environment."""
    env = [arg for k, v in edge_env(stage).items() for arg in ("-e", f"{k}={v}")]
    return [engine, "run", "-d", "--name", f"mailpipe-{stage.name}-edge", "--restart", "unless-stopped",
            "-p", f"{PORT}:{PORT}", *env, options(stage)["image"]]  # fmt: skip


def task_definition(stage: Stage) -> dict[str, Any]:
    """The ECS Fargate task definition (``aws ecs register-task-definition --cli-input-json``)."""
    opts = options(stage)
    return {
        "family": f"mailpipe-{stage.name}-edge",
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "cpu": str(opts["cpu"]),
        "memory": str(opts["memory"]),
        "executionRoleArn": "${EXECUTION_ROLE_ARN}",
        "taskRoleArn": "${TASK_ROLE_ARN}",
        "containerDefinitions": [{
            "name": "edge",
            "image": opts["image"],
            "essential": True,
            "portMappings": [{"containerPort": PORT, "protocol": "tcp"}],
            "environment": [{"name": k, "value": v} for k, v in edge_env(stage).items()],
            "healthCheck": {"command": ["CMD", *CHECK], "interval": 30, "timeout": 10, "retries": 3,
                            "startPeriod": 10},
            "stopTimeout": 120,
            "logConfiguration": {"logDriver": "awslogs", "options": {
                "awslogs-group": f"/mailpipe/{stage.name}/edge", "awslogs-region": stage.region,
                "awslogs-stream-prefix": "edge", "awslogs-create-group": "true"}},
        }],
    }  # fmt: skip


def _aws(stage: Stage) -> list[str]:
    name, region, opts = f"mailpipe-{stage.name}-edge", stage.region, options(stage)
    task = json.dumps(task_definition(stage), indent=2)
    return [
        "# needs: VPC_ID, SUBNETS (comma-separated, public), SECURITY_GROUP (TCP 25 open), EXECUTION_ROLE_ARN,",
        f"# TASK_ROLE_ARN (s3:PutObject on {stage.bucket}/raw/*)",
        f"mkdir -p build/{stage.name}",
        f"aws ecs create-cluster --region {region} --cluster-name {name}",
        f"cat > build/{stage.name}/edge-task.json <<EOF\n{task}\nEOF",
        f"aws ecs register-task-definition --region {region} --cli-input-json file://build/{stage.name}/edge-task.json",
        f"LB_ARN=$(aws elbv2 create-load-balancer --region {region} --name {name} --type network "
        "--scheme internet-facing --subnets ${SUBNETS//,/ } --query 'LoadBalancers[0].LoadBalancerArn' --output text)",
        f"TG_ARN=$(aws elbv2 create-target-group --region {region} --name {name} --protocol TCP --port {PORT} "
        "--target-type ip --vpc-id $VPC_ID --health-check-protocol TCP "
        "--query 'TargetGroups[0].TargetGroupArn' --output text)",
        # the edge records the sender's IP (SPF, abuse): keep it through the NLB (off by default for IP targets)
        f"aws elbv2 modify-target-group-attributes --region {region} --target-group-arn $TG_ARN "
        "--attributes Key=preserve_client_ip.enabled,Value=true",
        f"aws elbv2 create-listener --region {region} --load-balancer-arn $LB_ARN --protocol TCP --port {PORT} "
        "--default-actions Type=forward,TargetGroupArn=$TG_ARN",
        f"aws ecs create-service --region {region} --cluster {name} --service-name {name} "
        f"--task-definition {name} --launch-type FARGATE --desired-count {opts['instances']} "
        "--network-configuration 'awsvpcConfiguration={subnets=['$SUBNETS'],securityGroups=['$SECURITY_GROUP'],"
        "assignPublicIp=ENABLED}' "
        f"--load-balancers targetGroupArn=$TG_ARN,containerName=edge,containerPort={PORT} "
        "--health-check-grace-period-seconds 30",
    ]


def _gcp(stage: Stage) -> list[str]:
    name, project, opts = f"mailpipe-{stage.name}-edge", stage.extra["project"], options(stage)
    # `gcloud topic escaping`: a ^|^ prefix makes | the separator, as values (MAILPIPE_DOMAINS) hold commas
    env = "^|^" + "|".join(f"{k}={v}" for k, v in edge_env(stage).items())
    where = f"--project {project}"
    return [
        f"# needs: the image in Artifact Registry ({opts['image']}); the VM's service account may write to "
        f"gs://{stage.bucket} (roles/storage.objectCreator)",
        f"gcloud compute addresses create {name} {where} --region {stage.region}",
        f"gcloud compute firewall-rules create {name}-smtp {where} --allow tcp:{PORT} --target-tags {name}",
        f"gcloud compute instances create-with-container {name} {where} --zone {opts['zone']} "
        f"--machine-type {opts['machine_type']} --address {name} --tags {name} "
        f"--scopes storage-rw --container-image {opts['image']} --container-restart-policy always "
        f"--container-env {shlex.quote(env)}",
    ]


def _azure(stage: Stage) -> list[str]:
    name, group, opts = f"mailpipe-{stage.name}-edge", stage.extra["resource_group"], options(stage)
    env = " ".join(shlex.quote(f"{k}={v}") for k, v in edge_env(stage).items())
    account = stage.extra["storage_account"]
    return [
        f"# needs: the image in a registry ACI can pull ({opts['image']}; --registry-* flags for ACR)",
        f"PRINCIPAL=$(az container create --resource-group {group} --name {name} --image {opts['image']} "
        f"--os-type Linux --ports {PORT} --protocol TCP --ip-address Public --dns-name-label {name} "
        f"--cpu {max(1, opts['cpu'] // 1024)} --memory {opts['memory'] / 1024:g} --restart-policy Always "
        f"--assign-identity --environment-variables {env} --query identity.principalId --output tsv)",
        f"az role assignment create --assignee $PRINCIPAL --role 'Storage Blob Data Contributor' --scope "
        f"$(az storage account show --resource-group {group} --name {account} --query id --output tsv)",
    ]


def shared_map(stages: Iterable[Stage]) -> str:
    """MAILPIPE_DOMAIN_STORES for one edge serving every stage (each stage's domains -> its store)."""
    return ",".join(f"{d}={s.store_url}" for s in stages for d in s.domains)


def render(stage: Stage, every: Iterable[Stage] = ()) -> str:
    """What ``--edge`` prints: a shell script, the single-host run command and the cloud's managed service."""
    cloud = {"aws": _aws, "gcp": _gcp, "azure": _azure}[stage.cloud](stage)
    shared = [f"# one edge for every stage instead: MAILPIPE_DOMAIN_STORES={shared_map(every)}"] if every else []
    return "\n".join([
        "#!/usr/bin/env bash",
        f"# mailpipe edge for stage {stage.name} ({stage.cloud}); docs/edge.md",
        "# build: docker build -f deploy/edge/Containerfile --build-arg CLOUD="
        f"{stage.cloud} -t {options(stage)['image']} .",
        "# one host (docker or podman):",
        "# " + shlex.join(run_command(stage)),
        *shared,
        f"# managed ({stage.cloud}):",
        "set -euo pipefail",
        *cloud,
    ]) + "\n"  # fmt: skip
