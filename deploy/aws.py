"""AWS stages deploy with the Serverless Framework (osls, v3 line): serverless.yml reads stages.yml, plus
build/STAGE/aws.json and build/STAGE/stage/ written here by ``python -m deploy.build_bundle STAGE`` (the first
command of ``mailpipe-deploy``): the stage's rules and enrichment files, the function's extra environment
(their paths; the rules' secrets as Secrets Manager dynamic references ``{{resolve:secretsmanager:...}}``, never
values), the queues the rules publish to (IAM) and the Lambda layers carrying enricher extras."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from deploy import stage_files
from mailpipe.providers.yaml.stages import StageError

if TYPE_CHECKING:
    from pathlib import Path

    from mailpipe.providers.yaml.stages import Stage

NEEDS_FIRST = (
    "AWS credentials for the target account (AWS_PROFILE or the standard AWS_* variables) allowed to use "
    "CloudFormation, S3, SQS, Lambda, IAM and CloudWatch Logs, and `make install-test` (npm ci installs osls)"
)


def commands(stage: Stage, root: Path) -> list[list[str]]:
    """Build the stage files, then ``serverless deploy --stage <stage> --region <region>`` from the repo root."""
    return [[sys.executable, "-m", "deploy.build_bundle", stage.name],
            [str(root / "node_modules" / ".bin" / "serverless"), "deploy", "--stage", stage.name,
             "--region", stage.region]]  # fmt: skip


def secret_ref(stage: Stage, name: str) -> str:
    """CloudFormation resolves it at deploy time from Secrets Manager secret ``mailpipe/<stage>/<NAME>``."""
    return f"{{{{resolve:secretsmanager:mailpipe/{stage.name}/{name}}}}}"


def layers(stage: Stage) -> list[str]:
    """``aws.layers``: required when an enricher needs an extra, which the code zip cannot carry. Raises
    StageError naming the stage, the extras and the ways out."""
    arns = stage.extra.get("layers") or []
    need = stage_files.extras(stage)
    if need and not arns:
        raise StageError(
            f"stage {stage.name!r}: enrichers {[n for n in stage.enrichers if n in stage_files.EXTRAS]} need "
            f"mailpipe[{','.join(need)}], which the Lambda zip cannot carry: list a layer with those packages "
            "in aws.layers, or deploy a container-image function (docs/enrichers.md, 'Heavy enrichers')"
        )
    if not isinstance(arns, list) or not all(isinstance(a, str) and a.startswith("arn:") for a in arns):
        raise StageError(f"stage {stage.name!r}: aws.layers is a list of layer version ARNs")
    return arns


def stamp(stages: Path, stage: Stage) -> str:
    """sha256 of stages.yml and the stage's rules file: deploy/sls_built.js refuses an aws.json built from
    other versions of them."""
    import hashlib

    from deploy import ROOT

    digest = hashlib.sha256(stages.read_bytes())
    if stage.rules:
        digest.update((ROOT / stage.rules).read_bytes())
    return digest.hexdigest()


def write(stage: Stage, base: Path, stages: Path) -> dict[str, Any]:
    """``base/stage/`` files and ``base/aws.json`` (what serverless.yml reads, through deploy/sls_built.js);
    returns the aws.json doc."""
    arns = layers(stage)  # refused before anything is written
    files, rules = stage_files.write(stage, base)
    prefix = f"{base.parent.name}/{base.name}"  # build/<stage>: where the files sit in the code zip
    env = {k: f"{prefix}/{v}" for k, v in files.items()}
    env.update({n: secret_ref(stage, n) for n in (rules.secrets if rules else ())})
    queues = [{"Fn::GetAtt": ["DestinationQueue", "Arn"]}, *stage_files.sqs_arns(rules.destinations if rules else ())]
    doc = {"environment": env, "sendQueues": queues, "layers": arns, "rulesFile": stage.rules,
           "stamp": stamp(stages, stage)}  # fmt: skip
    (base / "aws.json").write_text(json.dumps(doc, indent=2) + "\n")
    return doc
