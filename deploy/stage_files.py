"""What a stage ships besides code (docs/stages.md): its routing rules, compiled to JSON so the function reads
them with the stdlib (no PyYAML in any bundle), its per-enricher settings as JSON, the secrets and queues the
rules name, and the pip extras its enrichers need.

In every bundle the files sit at ``stage/rules.json`` and ``stage/enrich.json`` (AWS: under
``build/<stage>/``, the folder serverless.yml packages); MAILPIPE_RULES / MAILPIPE_ENRICH_CONFIG name them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from deploy import ROOT
from mailpipe.core.routing.webhooks import PLACEHOLDER_SECRET
from mailpipe.providers.yaml.stages import StageError

if TYPE_CHECKING:
    from pathlib import Path

    from mailpipe.providers.yaml.stages import Stage

FILES = "stage"  # the folder, inside a bundle, holding rules.json and enrich.json
# enricher -> the pyproject extra its Python packages come from (the others are stdlib only)
EXTRAS = {"malware": "malware", "ocr": "ocr", "language": "nlp", "sentiment": "nlp", "auth": "auth",
          "calendar": "messy", "tnef": "messy"}  # fmt: skip
# enricher -> what a function platform cannot pip-install (it needs a container image or a service)
SYSTEM = {"ocr": "the tesseract and pdftoppm programs (Debian tesseract-ocr, poppler-utils)"}
# cloud -> the destination schemes its function bundle can publish to (the other providers are not in it)
SCHEMES = {"aws": ("sqs", "https"), "gcp": ("pubsub",), "azure": ("azqueue",)}


@dataclass(frozen=True)
class Rules:
    """A stage's validated rules: the document, the env vars it reads secrets from, its destination URLs."""

    doc: dict[str, Any]
    secrets: tuple[str, ...]
    destinations: tuple[str, ...]


def read_rules(stage: Stage) -> Rules | None:
    """Load and validate the stage's rules file (file:line errors); None when the stage has none.
    Raises StageError naming the stage."""
    if not stage.rules:
        return None
    import yaml

    from mailpipe.core.errors import ConfigError
    from mailpipe.core.routing.load import load_text
    from mailpipe.providers.yaml.rules import read

    path = ROOT / stage.rules
    try:
        text = path.read_text(encoding="utf-8")
        doc = yaml.safe_load(text)
        names = secret_names(doc)
        load_text(text, source=stage.rules, reader=read, env=dict.fromkeys(names, PLACEHOLDER_SECRET))
    except (OSError, yaml.YAMLError, ConfigError, ValueError, TypeError, AttributeError) as exc:
        raise StageError(f"stage {stage.name!r}: rules {stage.rules}: {exc}") from exc
    dests = sorted({u for c in doc["customers"].values() for u in (c.get("destinations") or {}).values()})
    foreign = [u for u in dests if urlsplit(u).scheme not in SCHEMES[stage.cloud]]
    if foreign:
        raise StageError(f"stage {stage.name!r}: rules {stage.rules}: a {stage.cloud} function publishes to "
                         f"{', '.join(s + '://' for s in SCHEMES[stage.cloud])} only, not {foreign}")
    return Rules(doc, tuple(names), tuple(dests))


def secret_names(doc: Any) -> list[str]:
    """Every ``secret_env`` / ``signing_key_env`` variable a rules document names, sorted."""
    found: set[str] = set()
    for customer in (doc.get("customers") or {}).values():
        for hook in ((customer or {}).get("webhooks") or {}).values():
            found.update(str(hook[k]) for k in ("secret_env", "signing_key_env") if k in (hook or {}))
    return sorted(found)


def extras(stage: Stage) -> list[str]:
    """The pyproject extras the stage's enrichers need (``rules`` needs none: it ships as JSON)."""
    return sorted({EXTRAS[n] for n in stage.enrichers if n in EXTRAS})


def write(stage: Stage, dest: Path) -> tuple[dict[str, str], Rules | None]:
    """``dest/stage/rules.json`` and ``dest/stage/enrich.json`` as the stage needs them; returns the
    MAILPIPE_RULES / MAILPIPE_ENRICH_CONFIG entries (paths relative to ``dest``) and the rules."""
    rules = read_rules(stage)
    env: dict[str, str] = {}
    if rules is None and not stage.enrichment:
        return env, rules
    (dest / FILES).mkdir(parents=True, exist_ok=True)
    if rules is not None:
        (dest / FILES / "rules.json").write_text(json.dumps(rules.doc, indent=1, sort_keys=True) + "\n")
        env["MAILPIPE_RULES"] = f"{FILES}/rules.json"
    if stage.enrichment:
        (dest / FILES / "enrich.json").write_text(json.dumps(stage.enrichment, indent=1, sort_keys=True) + "\n")
        env["MAILPIPE_ENRICH_CONFIG"] = f"{FILES}/enrich.json"
    return env, rules


def sqs_arns(destinations: tuple[str, ...]) -> list[dict[str, str]]:
    """CloudFormation ARNs of the ``sqs://NAME`` / SQS https URL destinations (others are not SQS)."""
    arns = []
    for url in destinations:
        parts = urlsplit(url)
        if parts.scheme == "sqs":
            name = (parts.netloc + parts.path).strip("/")
            arns.append({"Fn::Sub": f"arn:aws:sqs:${{AWS::Region}}:${{AWS::AccountId}}:{name}"})
        elif parts.scheme == "https" and (parts.hostname or "").startswith("sqs."):
            region = (parts.hostname or "").split(".")[1]
            account, name = parts.path.strip("/").split("/")[:2]
            arns.append({"Fn::Sub": f"arn:aws:sqs:{region}:{account}:{name}"})
    return arns
