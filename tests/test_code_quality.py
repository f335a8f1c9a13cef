"""Lint runs as a test (as the Azure Functions library does): the whole tree stays ruff-clean, and core/,
providers/, handlers/, deploy/ and enrichers/ stay ``mypy --strict`` clean."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_clean() -> None:
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff is not None, "ruff is in the dev extra: `make test` installs it"
    proc = subprocess.run([ruff, "check", "--output-format", "concise", "."], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("package", ["core", "providers", "handlers", "deploy", "enrichers"])
def test_package_is_mypy_strict_clean(package: str) -> None:
    """Strict typing on the contract (core/), the adapters and entry points (STYLE rule 13), and deploy/, which
    handlers/cli.py imports, and enrichers/, whose results feed the typed core. SDKs and enricher engines without
    types are declared once, in pyproject.toml [tool.mypy]."""
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", package],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
