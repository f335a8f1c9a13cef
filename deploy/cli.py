"""``mailpipe-deploy STAGE [--dry-run | --env | --edge]``: deploy one customer stage on its cloud.

Exit codes: 0 deployed (or printed); 1 a deploy command failed; 2 bad usage, unknown stage, bad stages.yml.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import subprocess
import sys
from typing import TYPE_CHECKING

from deploy import ROOT
from mailpipe.providers.yaml.stages import StageError, get

if TYPE_CHECKING:
    from collections.abc import Sequence

# cloud -> module with ``commands(stage: Stage, root: Path) -> list[list[str]]`` and ``NEEDS_FIRST: str``
# (what the cloud needs before a deploy can work; printed when a command fails)
DEPLOYERS = {"aws": "deploy.aws", "gcp": "deploy.gcp", "azure": "deploy.azure"}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mailpipe-deploy", description=__doc__.split("\n")[0])
    p.add_argument("stage", help="a stage of stages.yml")
    p.add_argument("--dry-run", action="store_true", help="print the commands instead of running them")
    p.add_argument(
        "--env", action="store_true", help="print the stage's MAILPIPE_* settings (edge --env-file)"
    )
    p.add_argument(
        "--edge", action="store_true", help="print the SMTP edge's run command and cloud service (docs/edge.md)"
    )
    args = p.parse_args(argv)
    try:
        stage = get(args.stage, ROOT / "stages.yml")
        if args.env:
            print("\n".join(f"{k}={v}" for k, v in stage.settings_env().items()))
            return 0
        if args.edge:
            from deploy.edge import render
            from mailpipe.providers.yaml.stages import load

            print(render(stage, load(ROOT / "stages.yml").values()), end="")
            return 0
        deployer = importlib.import_module(DEPLOYERS[stage.cloud])
    except StageError as exc:
        print(f"mailpipe-deploy: {exc}", file=sys.stderr)
        return 2
    except ImportError:
        print(f"mailpipe-deploy: no deployer for cloud {stage.cloud!r} yet", file=sys.stderr)
        return 2
    for cmd in deployer.commands(stage, ROOT):
        print("+ " + shlex.join(cmd), flush=True)
        if not args.dry_run and subprocess.run(cmd, cwd=ROOT, check=False).returncode != 0:
            print(
                f"mailpipe-deploy: failed; {stage.cloud} needs first: {deployer.NEEDS_FIRST}", file=sys.stderr
            )
            return 1
    return 0
