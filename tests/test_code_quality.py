"""Lint runs as a test (as the Azure Functions library does): the whole tree stays ruff-clean, and core/,
providers/, handlers/, deploy/ and enrichers/ stay ``mypy --strict`` clean, checked as the wheel lays them out
(``mailpipe.core`` ...)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_clean() -> None:
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff is not None, "ruff is in the dev extra: `make test` installs it"
    proc = subprocess.run([ruff, "check", "--output-format", "concise", "."], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def wheel_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel's layout as symlinks (``mailpipe/core`` -> ``core/`` ...) plus deploy/: mypy resolves imports
    on the file system and does not run the editable install's import hook."""
    root = tmp_path_factory.mktemp("wheel-tree")
    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    (root / "mailpipe").mkdir()
    for path in (ROOT / "mailpipe").iterdir():
        (root / "mailpipe" / path.name).symlink_to(path)
    for name, folder in mapping.items():
        if name != "mailpipe":
            (root / "mailpipe" / name.split(".", 1)[1]).symlink_to(ROOT / folder)
    (root / "deploy").symlink_to(ROOT / "deploy")
    return root


@pytest.mark.parametrize("package", ["core", "providers", "handlers", "deploy", "enrichers"])
def test_package_is_mypy_strict_clean(package: str, wheel_tree: Path) -> None:
    """Strict typing on the contract (core/), the adapters and entry points (STYLE rule 13), deploy/ and
    enrichers/, whose results feed the typed core. SDKs and enricher engines without types are declared once,
    in pyproject.toml [tool.mypy]."""
    target = package if package == "deploy" else f"mailpipe.{package}"
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--config-file", str(ROOT / "pyproject.toml"),
         "--cache-dir", str(wheel_tree / ".mypy_cache"), "-p", target],
        cwd=wheel_tree, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
