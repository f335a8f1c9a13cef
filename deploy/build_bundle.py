"""Build the deployable bundle and native deploy descriptors of one stage of stages.yml (any cloud).

    python -m deploy.build_bundle STAGE [--stages stages.yml] [--out build]

Every bundle holds the one import package ``mailpipe/`` (the repo's core/, providers/__init__.py + the cloud's
provider, handlers/ compose + the cloud's handler, enrichers/) and the platform's entry file at its root.

GCP   -> build/STAGE/gcp/ (main.py with target ``on_event``, requirements.txt, mailpipe/), env.gcp.yaml,
         deploy.sh + deploy.json: the gcloud commands (APIs, bucket, topics, IAM,
         ``gcloud functions deploy --gen2`` with an Eventarc finalize trigger and --retry, dead-letter topic).
Azure -> build/STAGE/azure/ (function_app.py, host.json, requirements.txt, mailpipe/), azure.zip,
         azuredeploy.json (ARM: storage, queues + poison queue, Flex Consumption app
         with a managed identity, Event Grid BlobCreated -> queue), deploy.sh + deploy.json.

AWS   -> build/STAGE/aws.zip (handler ``mailpipe/handlers/aws_lambda.handle``; mailpipe/ and the stage's
         build/STAGE/stage/ rules.json, enrich.json; boto3 comes with the runtime) and build/STAGE/aws.json: the
         function's extra environment (MAILPIPE_RULES, MAILPIPE_ENRICH_CONFIG, secret references), the queues it
         may send to and its layers, which serverless.yml reads (``serverless package|deploy`` needs this step
         first; the zip is its ``package.artifact``).

requirements.txt lists the cloud's extra plus the extras of the stage's enrichers; the platform installs them.
The stage's rules file is validated here (file:line errors) and shipped as JSON. Nothing is contacted.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shlex
import shutil
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deploy import ROOT, stage_files
from mailpipe.providers.yaml.stages import StageError, get

if TYPE_CHECKING:
    from mailpipe.providers.yaml.stages import Stage

# repo paths; in a bundle each sits under mailpipe/ (the wheel's layout: pyproject.toml package-dir)
COMMON = ["mailpipe/__init__.py", "core", "providers/__init__.py", "handlers/__init__.py", "handlers/compose.py",
          "enrichers"]  # fmt: skip
SOURCES = {
    "aws": ["providers/aws", "handlers/aws_lambda.py"],
    "gcp": ["providers/gcp", "handlers/gcp_function.py"],
    "azure": ["providers/azure"],  # function_app.py is the handler, at the bundle root
}


def requirements(*extras: str) -> str:
    """The pip requirements of pyproject extras (``mailpipe[x]`` self-references expanded), in order."""
    table = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]

    def expand(extra: str) -> list[str]:
        out = []
        for req in table[extra]:
            if req.startswith("mailpipe["):
                out += [r for sub in req[9:-1].split(",") for r in expand(sub.strip())]
            else:
                out.append(req)
        return out

    return "\n".join(dict.fromkeys(r for e in extras for r in expand(e))) + "\n"


def in_bundle(rel: str) -> str:
    """Where the repo path ``rel`` sits in a bundle: under the import package ``mailpipe/``."""
    return rel if rel.startswith("mailpipe/") else f"mailpipe/{rel}"


def copy_sources(dest: Path, paths: list[str]) -> None:
    """Copy the repo paths ``paths`` into the bundle folder ``dest``, each under ``mailpipe/``."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "py.typed", "data")  # enrichers/data: test signatures
    for rel in paths:
        src, out = ROOT / rel, dest / in_bundle(rel)
        out.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, out, ignore=ignore, dirs_exist_ok=True)
        else:
            shutil.copy2(src, out)


def build(stage_name: str, stages: Path | None = None, out: Path | None = None) -> Path:
    """Write the bundle and descriptors of ``stage_name`` under ``out/STAGE``; return that folder."""
    stage = get(stage_name, stages or ROOT / "stages.yml")
    base = (out or ROOT / "build") / stage_name
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    if stage.cloud == "aws":
        from deploy.aws import write as write_aws

        write_aws(stage, base, stages or ROOT / "stages.yml")
        bundle = base / "aws"
        copy_sources(bundle, COMMON + SOURCES["aws"])
        if (base / "stage").is_dir():  # MAILPIPE_RULES / MAILPIPE_ENRICH_CONFIG name build/STAGE/stage/...
            shutil.copytree(base / "stage", bundle / base.parent.name / base.name / "stage")
        zip_dir(bundle, base / "aws.zip")
        return base
    bundle = base / stage.cloud
    copy_sources(bundle, COMMON + SOURCES[stage.cloud])
    refuse_system_needs(stage)
    (bundle / "requirements.txt").write_text(requirements(stage.cloud, *stage_files.extras(stage)))
    commands = importlib.import_module(f"deploy.{stage.cloud}").write(stage, base, bundle)
    doc = {"stage": stage_name, "cloud": stage.cloud, "commands": commands}
    (base / "deploy.json").write_text(json.dumps(doc, indent=2) + "\n")
    script = [
        "#!/usr/bin/env bash",
        f"# Deploy stage {stage_name} ({stage.cloud}): generated by deploy.build_bundle",
        "set -euo pipefail",
        'cd "$(dirname "$0")"',
        *map(shell_line, commands),
    ]
    (base / "deploy.sh").write_text("\n".join(script) + "\n")
    (base / "deploy.sh").chmod(0o755)
    return base


def refuse_system_needs(stage: Stage) -> None:
    """A function platform pip-installs requirements.txt and nothing else: an enricher needing programs
    (OCR) cannot run there. Raises StageError naming the stage and the way out (docs/enrichers.md)."""
    needs = [f"{n}: {stage_files.SYSTEM[n]}" for n in stage.enrichers if n in stage_files.SYSTEM]
    if needs:
        raise StageError(f"stage {stage.name!r}: a {stage.cloud} function cannot carry {'; '.join(needs)}; "
                         "run that enricher in a container image (docs/enrichers.md, 'Heavy enrichers')")


def shell_line(command: dict[str, Any]) -> str:
    """``run``, skipped when ``unless`` succeeds. An argument holding ``$(...)`` is double-quoted, not
    escaped."""

    def line(argv: list[str]) -> str:
        return " ".join(f'"{a}"' if "$(" in a else shlex.quote(a) for a in argv)

    if command.get("unless"):
        return f"{line(command['unless'])} >/dev/null 2>&1 || {line(command['run'])}"
    return line(command["run"])


def zip_dir(src: Path, dest: Path) -> None:
    """A reproducible zip of ``src``'s contents (sorted entries, fixed timestamps)."""
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(p for p in src.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(str(path.relative_to(src)), date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, path.read_bytes(), zipfile.ZIP_DEFLATED)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.build_bundle", description=__doc__.split("\n")[0])
    parser.add_argument("stage")
    parser.add_argument("--stages", type=Path, help="stages file (default: stages.yml)")
    parser.add_argument("--out", type=Path, help="output folder (default: build/)")
    args = parser.parse_args(argv)
    try:
        base = build(args.stage, args.stages, args.out)
    except StageError as exc:
        print(f"build_bundle: {exc}", file=sys.stderr)
        return 2
    print(base / ("aws.json" if (base / "aws.json").exists() else "deploy.sh"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
