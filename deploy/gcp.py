"""GCP stages: Cloud Functions gen2 behind an Eventarc GCS trigger, deployed by generated gcloud commands.

``commands(stage, root)`` (for ``mailpipe-deploy``) builds the bundle and runs the generated
build/STAGE/deploy.sh. The function retries on failure (``--retry``: a raised error -> 500 -> redelivery
with backoff), and the Eventarc trigger's Pub/Sub subscription gets a dead-letter topic after
``gcp.max_delivery_attempts`` (default 5). Eventarc cannot filter on a suffix: every finalized object invokes
the function, which ignores keys other than ``raw/<id>.eml`` (Outcome.IGNORED, acknowledged).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from mailpipe.providers.yaml.stages import Stage

NEEDS_FIRST = (
    "the Google Cloud CLI logged in (`gcloud auth login`) as a user allowed to enable services, create "
    "buckets, topics and functions and set IAM policy on the project (roles/owner, or editor + IAM admin), "
    "and billing enabled"
)

RUNTIME = "python311"
APIS = [
    "cloudfunctions.googleapis.com",
    "run.googleapis.com",
    "cloudbuild.googleapis.com",
    "eventarc.googleapis.com",
    "pubsub.googleapis.com",
    "storage.googleapis.com",
    "artifactregistry.googleapis.com",
]
FINALIZED = "google.cloud.storage.object.v1.finalized"
MAIN_PY = '''"""Cloud Functions entry point: target ``on_event`` (a CloudEvent function)."""

from mailpipe.handlers.gcp_function import on_event

__all__ = ["on_event"]
'''


def names(stage_name: str) -> dict[str, str]:
    """Resource names derived from the stage name."""
    return {"function": f"mailpipe-{stage_name}-parse", "dead_letter": f"mailpipe-{stage_name}-dead-letter"}


def secret_id(stage: Stage, name: str) -> str:
    """The Secret Manager secret holding env var ``name`` of a stage: ``mailpipe-<stage>-<name>``."""
    return f"mailpipe-{stage.name}-{name.lower().replace('_', '-')}"


def deploy_args(stage: Stage, source: str, env_file: str, secrets: tuple[str, ...] = ()) -> list[str]:
    """``gcloud functions deploy`` for the parse function, from the stage; the rules' secrets are Secret
    Manager references (``--set-secrets``), never values."""
    gcp = stage.extra
    args = [
        "gcloud",
        "functions",
        "deploy",
        names(stage.name)["function"],
        "--gen2",
        f"--project={gcp['project']}",
        f"--region={stage.region}",
        f"--runtime={RUNTIME}",
        f"--source={source}",
        "--entry-point=on_event",
        f"--trigger-event-filters=type={FINALIZED}",
        f"--trigger-event-filters=bucket={stage.bucket}",
        f"--trigger-location={gcp.get('bucket_location', stage.region)}",
        "--retry",
        f"--memory={stage.memory}Mi",
        f"--timeout={stage.timeout}s",
        f"--env-vars-file={env_file}",
    ]
    if secrets:
        pid = gcp["project"]
        refs = ",".join(f"{n}=projects/{pid}/secrets/{secret_id(stage, n)}:latest" for n in secrets)
        args.append(f"--set-secrets={refs}")
    if gcp.get("max_instances"):
        args.append(f"--max-instances={int(gcp['max_instances'])}")
    if gcp.get("service_account"):
        args += [
            f"--service-account={gcp['service_account']}",
            f"--trigger-service-account={gcp['service_account']}",
        ]
    return args


def commands(stage: Stage, root: Path) -> list[list[str]]:
    """What ``mailpipe-deploy`` runs: build the bundle and descriptors, then the generated deploy.sh."""
    return [
        [sys.executable, "-m", "deploy.build_bundle", stage.name],
        ["bash", f"build/{stage.name}/deploy.sh"],
    ]


def gcloud(words: str, *args: str) -> list[str]:
    """``gcloud WORDS... ARGS...`` as an argv list."""
    return ["gcloud", *words.split(" "), *args]


def shell_commands(
    stage: Stage, source: str, env_file: str, secrets: tuple[str, ...] = (), topics: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """Every command of deploy.sh, in order; ``unless`` guards a create that already happened."""
    return [*_setup(stage), *_grants(stage, secrets, topics), {"run": deploy_args(stage, source, env_file, secrets)},
            *_dead_letter(stage)]  # fmt: skip


def _grants(stage: Stage, secrets: tuple[str, ...], topics: tuple[str, ...]) -> list[dict[str, Any]]:
    """The runtime service account may read the rules' secrets (which must exist) and publish to their
    ``pubsub://PROJECT/TOPIC`` destinations."""
    pid = stage.extra["project"]
    account = stage.extra.get("service_account") or (
        f"$(gcloud projects describe {pid} --format=value\\(projectNumber\\))-compute@developer.gserviceaccount.com")
    member = f"--member=serviceAccount:{account}"
    out = [{"run": gcloud("services enable", "secretmanager.googleapis.com", f"--project={pid}")}] if secrets else []
    out += [{"run": gcloud("secrets add-iam-policy-binding", secret_id(stage, n), f"--project={pid}", member,
                           "--role=roles/secretmanager.secretAccessor")} for n in secrets]  # fmt: skip
    for url in topics:
        project, _, topic = url.removeprefix("pubsub://").partition("/")
        out.append({"run": gcloud("pubsub topics add-iam-policy-binding", topic, f"--project={project}", member,
                                  "--role=roles/pubsub.publisher")})  # fmt: skip
    return out


def _setup(stage: Stage) -> list[dict[str, Any]]:
    """APIs, bucket, topics, and the GCS service agent's right to publish (Eventarc's GCS trigger uses it)."""
    pid, bucket = stage.extra["project"], f"gs://{stage.bucket}"
    project = f"--project={pid}"
    agent = f"--member=serviceAccount:$(gcloud storage service-agent {project})"
    topics = [
        {"run": gcloud("pubsub topics create", topic, project),
         "unless": gcloud("pubsub topics describe", topic, project)}
        for topic in (stage.queue, names(stage.name)["dead_letter"])
    ]  # fmt: skip
    return [
        {"run": gcloud("services enable", *APIS, project)},
        {"run": gcloud("storage buckets create", bucket, f"--location={stage.region}", project,
                       "--uniform-bucket-level-access"),
         "unless": gcloud("storage buckets describe", bucket, project)},
        *topics,
        {"run": gcloud("projects add-iam-policy-binding", pid, "--role=roles/pubsub.publisher", agent,
                       "--condition=None")},
    ]  # fmt: skip


def _dead_letter(stage: Stage) -> list[dict[str, Any]]:
    """The dead-letter topic on the Eventarc trigger's subscription, and Pub/Sub's right to forward to it."""
    pid, region, n = stage.extra["project"], stage.region, names(stage.name)
    project = f"--project={pid}"
    trigger = (f"$(gcloud functions describe {n['function']} --gen2 --region={region} {project} "
               "--format=value\\(eventTrigger.trigger\\))")
    subscription = (f"$(gcloud eventarc triggers describe {trigger} --location={region} {project} "
                    "--format=value\\(transport.pubsub.subscription\\))")
    number = f"$(gcloud projects describe {pid} --format=value\\(projectNumber\\))"
    attempts = int(stage.extra.get("max_delivery_attempts", 5))
    agent = f"--member=serviceAccount:service-{number}@gcp-sa-pubsub.iam.gserviceaccount.com"
    return [
        {"run": gcloud("pubsub subscriptions update", subscription, f"--max-delivery-attempts={attempts}",
                       f"--dead-letter-topic=projects/{pid}/topics/{n['dead_letter']}", project)},
        {"run": gcloud("pubsub topics add-iam-policy-binding", n["dead_letter"], project,
                       "--role=roles/pubsub.publisher", agent)},
    ]  # fmt: skip


def write(stage: Stage, base: Path, bundle: Path) -> list[dict[str, Any]]:
    """main.py into the bundle, env.gcp.yaml beside it; returns deploy.sh's commands (relative to base)."""
    from deploy import stage_files

    (bundle / "main.py").write_text(MAIN_PY)
    files, rules = stage_files.write(stage, bundle)  # stage/rules.json, stage/enrich.json in the bundle
    lines = [f"{k}: {_yaml_str(v)}" for k, v in sorted({**stage.settings_env(), **files}.items())]
    (base / "env.gcp.yaml").write_text("\n".join(lines) + "\n")
    if rules is None:
        return shell_commands(stage, bundle.name, "env.gcp.yaml")
    return shell_commands(stage, bundle.name, "env.gcp.yaml", rules.secrets, rules.destinations)


def _yaml_str(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
