"""AWS stages deploy with the Serverless Framework (osls, v3 line): serverless.yml reads stages.yml."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from deploy.stages import Stage

NEEDS_FIRST = (
    "AWS credentials for the target account (AWS_PROFILE or the standard AWS_* variables) allowed to use "
    "CloudFormation, S3, SQS, Lambda, IAM and CloudWatch Logs, and `make install-test` (npm ci installs osls)"
)


def commands(stage: Stage, root: Path) -> list[list[str]]:
    """``serverless deploy --stage <stage> --region <region>`` run from the repo root."""
    return [[str(root / "node_modules" / ".bin" / "serverless"), "deploy", "--stage", stage.name,
             "--region", stage.region]]  # fmt: skip
