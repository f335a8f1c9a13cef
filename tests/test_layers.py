"""Dependencies point inward (STYLE rule 1), checked by an AST scan of every import, lazy ones included.

core/            imports only the standard library and core
providers/<x>/   imports core, its own package and its SDK; never another provider, never handlers
providers/*.py   the registry: imports adapters lazily (importlib), never a provider module directly
handlers/        composition roots: may import core, providers and third-party entry-point libraries
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STDLIB = set(sys.stdlib_module_names) | {"__future__"}
FIRST_PARTY = {"core", "providers", "handlers", "enrichers"}


def imports(path: Path) -> list[str]:
    """Absolute module names imported anywhere in ``path`` (relative imports are resolved)."""
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            found.append(".".join([*base, *([node.module] if node.module else [])]))
    return found


def sources(top: str) -> list[Path]:
    return sorted((ROOT / top).rglob("*.py"))


def violations_core(path: Path) -> list[str]:
    return [m for m in imports(path) if m.split(".")[0] not in STDLIB | {"core"}]


def violations_provider(path: Path) -> list[str]:
    rel = path.relative_to(ROOT / "providers").parts
    own = rel[0] if len(rel) > 1 else None
    allowed = f"providers.{own}"
    return [
        m
        for m in imports(path)
        if m.split(".")[0] in {"handlers", "enrichers"}
        or (m.split(".")[0] == "providers" and (own is None or not (m + ".").startswith(allowed + ".")))
    ]


def violations_handler(path: Path) -> list[str]:
    return [m for m in imports(path) if m.split(".")[0] == "enrichers"]


@pytest.mark.parametrize("path", sources("core"), ids=lambda p: p.name)
def test_core_imports_only_stdlib_and_core(path: Path) -> None:
    assert violations_core(path) == []


@pytest.mark.parametrize("path", sources("providers"), ids=lambda p: str(p.relative_to(ROOT)))
def test_providers_never_import_each_other(path: Path) -> None:
    assert violations_provider(path) == []


@pytest.mark.parametrize("path", sources("handlers"), ids=lambda p: p.name)
def test_handlers_compose_core_and_providers(path: Path) -> None:
    assert violations_handler(path) == []


def test_the_scanner_catches_violations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks can fail: a fake tree with one violation of each rule."""
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    for rel, text in {
        "core/bad.py": "import boto3\nfrom providers.local import store\n",
        "core/ok.py": "import json\nfrom . import keys\nfrom core.model import Envelope\n",
        "providers/aws/bad.py": "from providers.gcp import clients\nfrom ..local import store\n",
        "providers/aws/ok.py": "import boto3\nfrom core.errors import X\nfrom .events import decode\n",
    }.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    assert violations_core(tmp_path / "core/bad.py") == ["boto3", "providers.local"]
    assert violations_core(tmp_path / "core/ok.py") == []
    assert violations_provider(tmp_path / "providers/aws/bad.py") == ["providers.gcp", "providers.local"]
    assert violations_provider(tmp_path / "providers/aws/ok.py") == []
