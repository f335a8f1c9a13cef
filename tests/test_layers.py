"""Dependencies point inward (STYLE rules 1 and 16), checked by an AST scan of every import, lazy ones included.

The wheel's one import package is ``mailpipe``; its subpackages are the repository's top-level folders.

core/ (kernel)   errors, ports, model, keys, domains, log, metrics, settings: the standard library and the kernel only;
                 ``pipeline`` joins the concerns, so it may import them too
core/<concern>/  mime, enrich, routing, edge: the standard library, the kernel and itself, never another concern
providers/<x>/   core, its own package and its SDK; never another provider, never handlers or enrichers
providers/*.py   the registry: imports adapters lazily (importlib), never a provider module directly
handlers/        composition roots: core, providers and entry-point libraries; never enrichers, deploy or bench
enrichers/       from core only the enrichment contract, view, derived and errors; never providers or handlers
everywhere       only ``mailpipe.*`` names for our code (no bare ``core``/``handlers``), and no import cycle
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STDLIB = set(sys.stdlib_module_names) | {"__future__"}
PACKAGES = ("core", "providers", "handlers", "enrichers")  # the folders of mailpipe.<name>
KERNEL = {"errors", "ports", "model", "keys", "domains", "quarantine", "log", "metrics", "settings", "pipeline"}
CONCERNS = {"mime", "enrich", "routing", "edge"}
ENRICHER_MAY_USE = ("mailpipe.core.enrich.contract", "mailpipe.core.enrich.view", "mailpipe.core.enrich.derived",
                    "mailpipe.core.errors")  # fmt: skip


def module_name(path: Path) -> str:
    """``core/mime/parser.py`` -> ``mailpipe.core.mime.parser``; ``core/mime/__init__.py`` -> the package."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    parts = parts[:-1] if parts[-1] == "__init__" else parts
    return ".".join(("mailpipe", *parts)) if parts[0] in PACKAGES else ".".join(parts)


def modules() -> dict[str, Path]:
    """Every module of the wheel's packages, by name."""
    found = {"mailpipe": ROOT / "mailpipe" / "__init__.py"}
    for top in PACKAGES:
        found |= {module_name(p): p for p in sorted((ROOT / top).rglob("*.py"))}
    return found


def imports(path: Path, known: dict[str, Path] | None = None) -> list[str]:
    """Absolute module names imported anywhere in ``path`` (relative imports resolved; ``from pkg import mod``
    names the module ``pkg.mod`` when ``known`` has it)."""
    name = module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join([*(package[: len(package) - node.level + 1] if node.level else []),
                             *([node.module] if node.module else [])])  # fmt: skip
            subs = [f"{base}.{a.name}" for a in node.names if known and f"{base}.{a.name}" in known]
            found.extend(subs or [base])
    return found


def sources(top: str) -> list[Path]:
    return sorted((ROOT / top).rglob("*.py"))


def _is(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def violations_core(path: Path) -> list[str]:
    parts = module_name(path).split(".")
    concern = parts[2] if len(parts) > 3 or (len(parts) == 3 and path.name == "__init__.py") else None
    out = []
    for m in imports(path):
        if m.split(".")[0] in STDLIB:
            continue
        if not _is(m, "mailpipe.core"):
            out.append(m)
            continue
        target = m.split(".")[2] if m.count(".") >= 2 else None
        if target in CONCERNS and target != concern and not (concern is None and parts[-1] == "pipeline"):
            out.append(m)  # a concern reaching into another, or the kernel into a concern
    return out


def violations_provider(path: Path) -> list[str]:
    rel = path.relative_to(ROOT / "providers").parts
    own = f"mailpipe.providers.{rel[0]}" if len(rel) > 1 else None
    return [
        m
        for m in imports(path)
        if _is(m, "mailpipe.handlers", "mailpipe.enrichers", "deploy", "bench")
        or (_is(m, "mailpipe.providers") and (own is None or not _is(m, own)))
    ]


def violations_handler(path: Path) -> list[str]:
    return [m for m in imports(path) if _is(m, "mailpipe.enrichers", "deploy", "bench")]


def violations_enricher(path: Path) -> list[str]:
    return [
        m
        for m in imports(path)
        if _is(m, "mailpipe.providers", "mailpipe.handlers", "deploy", "bench")
        or (_is(m, "mailpipe.core") and not _is(m, *ENRICHER_MAY_USE))
    ]


def bare_names(path: Path) -> list[str]:
    """Our code imported under a top-level folder name instead of ``mailpipe.*`` (it would not install)."""
    return [m for m in imports(path) if m.split(".")[0] in PACKAGES]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: {m for m in imports(path, known) if m in known and m != name} for name, path in known.items()}


@pytest.mark.parametrize("path", sources("core"), ids=lambda p: str(p.relative_to(ROOT)))
def test_core_concerns_import_only_the_kernel_and_themselves(path: Path) -> None:
    assert violations_core(path) == []


def test_core_root_holds_only_the_kernel() -> None:
    root = {p.stem for p in (ROOT / "core").glob("*.py")} - {"__init__"}
    folders = {p.name for p in (ROOT / "core").iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert (root, folders) == (KERNEL, CONCERNS)


@pytest.mark.parametrize("path", sources("providers"), ids=lambda p: str(p.relative_to(ROOT)))
def test_providers_never_import_each_other(path: Path) -> None:
    assert violations_provider(path) == []


@pytest.mark.parametrize("path", sources("handlers"), ids=lambda p: p.name)
def test_handlers_compose_core_and_providers(path: Path) -> None:
    assert violations_handler(path) == []


@pytest.mark.parametrize("path", sources("enrichers"), ids=lambda p: p.name)
def test_enrichers_use_only_the_enrichment_contract(path: Path) -> None:
    assert violations_enricher(path) == []


@pytest.mark.parametrize("top", [*PACKAGES, "mailpipe", "schema", "deploy", "bench", "tests"])
def test_our_code_is_imported_as_mailpipe(top: str) -> None:
    assert {str(p.relative_to(ROOT)): bare_names(p) for p in sources(top) if bare_names(p)} == {}


def test_no_import_cycle() -> None:
    graph = import_graph()
    assert len(graph) > 90 and graph["mailpipe.core.pipeline"] >= {"mailpipe.core.mime.parser"}
    assert cycles(graph) == []


def test_the_scanner_catches_violations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks can fail: a fake tree with one violation of each rule."""
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    for rel, text in {
        "core/bad.py": "import boto3\nfrom mailpipe.providers.local import store\nfrom mailpipe.core.mime import x\n",
        "core/pipeline.py": "from mailpipe.core.mime.parser import parse\nfrom .routing import plan\n",
        "core/ok.py": "import json\nfrom . import keys\nfrom mailpipe.core.model import Envelope\n",
        "core/mime/bad.py": "from ..routing import plan\nfrom mailpipe.core.edge.data import x\nfrom . import ok\n",
        "providers/aws/bad.py": "from mailpipe.providers.gcp import clients\nfrom ..local import store\n",
        "providers/aws/ok.py": "import boto3\nfrom mailpipe.core.errors import X\nfrom .events import decode\n",
        "handlers/bad.py": "from deploy.stages import get\nfrom mailpipe.enrichers import ocr\n",
        "enrichers/bad.py": "from mailpipe.core.enrich.run import run_one\nfrom mailpipe.core.errors import X\n",
        "tests/bad.py": "from core.errors import X\nimport mailpipe.core\n",
    }.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    assert violations_core(tmp_path / "core/bad.py") == ["boto3", "mailpipe.providers.local", "mailpipe.core.mime"]
    assert violations_core(tmp_path / "core/pipeline.py") == []
    assert violations_core(tmp_path / "core/ok.py") == []
    assert violations_core(tmp_path / "core/mime/bad.py") == ["mailpipe.core.routing", "mailpipe.core.edge.data"]
    assert violations_provider(tmp_path / "providers/aws/bad.py") == [
        "mailpipe.providers.gcp", "mailpipe.providers.local"]  # fmt: skip
    assert violations_provider(tmp_path / "providers/aws/ok.py") == []
    assert violations_handler(tmp_path / "handlers/bad.py") == ["deploy.stages", "mailpipe.enrichers"]
    assert violations_enricher(tmp_path / "enrichers/bad.py") == ["mailpipe.core.enrich.run"]
    assert bare_names(tmp_path / "tests/bad.py") == ["core.errors"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
