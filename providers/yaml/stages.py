"""stages.yml -> validated Stage values (format: docs/stages.md). StageError names the stage and the key.

Read by the deploy tooling (deploy/) and by the installed edge (``mailpipe edge --stages stages.yml``: every
stage's domains -> its store). Needs PyYAML (the ``rules`` extra)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from mailpipe.core.model import Limits

STAGES_FILE = Path("stages.yml")  # the default: relative to the working directory, as the deploy tool runs
CLOUDS = ("aws", "gcp", "azure")
NAME = re.compile(r"^[a-z][a-z0-9-]{1,30}$")
KEYS = {"cloud", "region", "bucket", "queue", "domains", "enrichers", "enrichment", "rules", "limits", "function",
        "edge", *CLOUDS}
REQUIRED = {
    "aws": ("batch_size", "max_receive_count", "visibility_timeout"),
    "gcp": ("project",),
    "azure": ("resource_group", "storage_account", "app_name"),
}


class StageError(ValueError):
    """stages.yml is missing, unreadable, or a stage is incomplete or inconsistent."""


@dataclass(frozen=True)
class Stage:
    """One customer deployment. ``extra`` is the stage's own cloud block (``aws:``, ``gcp:``, ``azure:``)."""

    name: str
    cloud: str
    region: str
    bucket: str
    queue: str
    domains: tuple[str, ...]
    memory: int
    timeout: int
    enrichers: tuple[str, ...] = ()
    enrichment: dict[str, dict[str, Any]] = field(default_factory=dict)  # enricher -> its settings
    rules: str | None = None  # routing rules file, relative to the repo root (docs/rules.md)
    limits: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    edge: dict[str, Any] = field(default_factory=dict)

    @property
    def store_url(self) -> str:
        account = self.extra.get("storage_account", "")
        return {"aws": f"s3://{self.bucket}", "gcp": f"gs://{self.bucket}"}.get(
            self.cloud, f"azblob://{account}/{self.bucket}"
        )

    @property
    def queue_url(self) -> str:
        return {
            "aws": f"sqs://{self.queue}",
            "gcp": f"pubsub://{self.extra.get('project', '')}/{self.queue}",
            "azure": f"azqueue://{self.extra.get('storage_account', '')}/{self.queue}",
        }[self.cloud]

    def settings_env(self) -> dict[str, str]:
        """The MAILPIPE_* environment every component of this stage runs with (functions and the edge)."""
        env = {"MAILPIPE_STORE": self.store_url, "MAILPIPE_QUEUE": self.queue_url}
        env["MAILPIPE_DOMAINS"] = ",".join(self.domains)
        if self.enrichers:
            env["MAILPIPE_ENRICHERS"] = ",".join(self.enrichers)
        env.update({f"MAILPIPE_{k.upper()}": str(v) for k, v in sorted(self.limits.items())})
        return env


def load(path: Path | None = None) -> dict[str, Stage]:
    """All stages of ``path`` (default: ./stages.yml). Raises StageError."""
    try:
        import yaml  # merge keys (<<: *defaults) are supported
    except ImportError as exc:
        raise StageError("reading stages.yml needs PyYAML: pip install 'mailpipe[rules]'") from exc
    path = path or STAGES_FILE
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise StageError(f"{path}: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("stages"), dict):
        raise StageError(f"{path}: needs a top-level `stages:` mapping")
    return {name: _stage(str(name), spec) for name, spec in doc["stages"].items()}


def get(name: str, path: Path | None = None) -> Stage:
    stages = load(path)
    if name not in stages:
        raise StageError(f"unknown stage {name!r}; known: {', '.join(sorted(stages))}")
    return stages[name]


def _stage(name: str, spec: Any) -> Stage:
    def need(ok: bool, what: str) -> None:
        if not ok:
            raise StageError(f"stage {name!r}: {what}")

    need(bool(NAME.match(name)), "name must match [a-z][a-z0-9-]{1,30}")
    need(isinstance(spec, dict), "must be a mapping")
    need(not set(spec) - KEYS, f"unknown keys {sorted(set(spec) - KEYS)}")
    need(spec.get("cloud") in CLOUDS, f"cloud must be one of {CLOUDS}")
    for key in ("region", "bucket", "queue"):
        need(isinstance(spec.get(key), str) and bool(spec[key]), f"`{key}` is required")
    need(
        isinstance(spec.get("domains"), list) and bool(spec["domains"]), "`domains` must be a non-empty list"
    )
    fn = spec.get("function") or {}
    need(
        all(isinstance(fn.get(k), int) and fn[k] > 0 for k in ("memory", "timeout")),
        "function.memory/timeout",
    )
    limits = spec.get("limits") or {}
    need(set(limits) <= {f.name for f in fields(Limits)}, f"unknown limits {sorted(set(limits))}")
    extra = spec.get(spec["cloud"]) or {}
    missing = [k for k in REQUIRED[spec["cloud"]] if k not in extra]
    need(not missing, f"`{spec['cloud']}:` block needs {missing}")
    need(not [c for c in CLOUDS if c != spec["cloud"] and c in spec], "has another cloud's block")
    if (
        spec["cloud"] == "aws"
    ):  # Lambda refuses an SQS trigger whose visibility timeout is below the function's
        need(
            extra["visibility_timeout"] >= fn["timeout"], "aws.visibility_timeout must be >= function.timeout"
        )
    enrichers, enrichment = _enrichers(spec, need)
    rules = spec.get("rules")
    need(rules is None or (isinstance(rules, str) and rules.endswith((".yml", ".yaml"))),
         "`rules` is the path of a rules/<name>.yml file (docs/rules.md)")  # fmt: skip
    return Stage(
        name=name, cloud=spec["cloud"], region=spec["region"], bucket=spec["bucket"], queue=spec["queue"],
        domains=tuple(spec["domains"]), memory=fn["memory"], timeout=fn["timeout"],
        enrichers=enrichers, enrichment=enrichment, rules=rules, limits=dict(limits), extra=dict(extra),
        edge=dict(spec.get("edge") or {}),
    )  # fmt: skip


def _enrichers(spec: dict[str, Any], need: Any) -> tuple[tuple[str, ...], dict[str, dict[str, Any]]]:
    """``enrichers`` checked against the registry (built-ins and installed plug-ins) and ``enrichment``
    (settings per listed enricher), so a typo fails the deploy, not the function's cold start."""
    from mailpipe.core.enrich.registry import available

    names, conf = spec.get("enrichers") or [], spec.get("enrichment") or {}
    need(isinstance(names, list) and all(isinstance(n, str) for n in names), "`enrichers` must be a list of names")
    known = available()
    unknown = [n for n in names if n not in known]
    need(not unknown, f"unknown enrichers {unknown}; known: {', '.join(known)}")
    need(isinstance(conf, dict) and all(isinstance(v, dict) for v in conf.values()),
         "`enrichment` maps an enricher name to its settings (a mapping)")  # fmt: skip
    need(not set(conf) - set(names), f"enrichment for enrichers not listed: {sorted(set(conf) - set(names))}")
    return tuple(dict.fromkeys(names)), {k: dict(v) for k, v in conf.items()}


def domain_store_entries(path: str | Path) -> list[str]:
    """``DOMAIN=STORE-URL`` for every domain of every stage of ``path`` (the edge's ``--stages``).

    Raises ConfigError (the edge exits 2) for an invalid file; a domain in two stages is caught by the edge."""
    from mailpipe.core.errors import ConfigError

    try:
        stages = load(Path(path))
    except StageError as exc:
        raise ConfigError(str(exc)) from exc
    return [f"{domain}={stage.store_url}" for stage in stages.values() for domain in stage.domains]


class _PlaceholderSecrets(dict[str, str]):
    """The environment, with a well-formed placeholder for every secret it lacks (deploy resolves them)."""

    def get(self, key: str, default: str | None = None) -> str:  # type: ignore[override]
        from mailpipe.core.routing.webhooks import PLACEHOLDER_SECRET

        return super().get(key) or PLACEHOLDER_SECRET


def problems(path: str | Path) -> list[str]:
    """Every problem of a stages file, one line each (``stages.yml:12: stage 'acme': ...``), [] when it is valid:
    each stage's keys, a domain given to two stages, and each stage's rules file (relative to the stages file;
    secrets are checked for their names only: the deploy resolves them). Reads files; never raises for content."""
    from mailpipe.core.domains import merge, parse_entries
    from mailpipe.core.errors import ConfigError
    from mailpipe.core.routing.load import load_text
    from mailpipe.providers.yaml.rules import read

    path = Path(path)
    try:
        doc, lines = read(path.read_text(encoding="utf-8"), str(path))
    except (OSError, UnicodeDecodeError) as exc:
        return [f"{path}: cannot read: {exc}"]
    except ConfigError as exc:
        return [str(exc)]
    if not isinstance(doc, dict) or not isinstance(doc.get("stages"), dict):
        return [f"{path}: needs a top-level `stages:` mapping"]
    out, valid = [], []
    for name, spec in doc["stages"].items():
        try:
            valid.append(_stage(str(name), spec))
        except StageError as exc:
            out.append(f"{path}:{lines.get(('stages', name), 1)}: {exc}")
    try:
        merge(parse_entries([f"{d}={s.store_url}" for s in valid for d in s.domains], str(path)))
    except ConfigError as exc:
        out.append(f"{path}: {exc}")
    for stage in (s for s in valid if s.rules):
        rules = path.parent / str(stage.rules)
        try:
            load_text(rules.read_text(encoding="utf-8"), source=str(stage.rules), reader=read,
                      env=_PlaceholderSecrets(os.environ))  # fmt: skip
        except (OSError, UnicodeDecodeError) as exc:
            out.append(f"{path}:{lines.get(('stages', stage.name, 'rules'), 1)}: stage {stage.name!r}: rules: {exc}")
        except ConfigError as exc:
            out.append(f"stage {stage.name!r}: {exc}")
    return out
