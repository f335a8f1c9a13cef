"""handlers.compose, the composition root: file settings relative to the bundle, rules in either spelling."""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import Any

import pytest

from mailpipe.core.errors import ConfigError
from mailpipe.handlers.compose import bundle_path, load_rules

ROOT = Path(__file__).resolve().parent.parent
RULES = "customers:\n  acme:\n    domains: [acme.example]\n    rules: []\n"


def test_a_relative_file_setting_resolves_against_the_bundle_root(monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)  # platforms do not all start a function in its code folder
    assert bundle_path("rules/acme.yml") == str(ROOT / "rules" / "acme.yml")  # the checkout is the root here
    assert bundle_path("/abs/rules.json") == "/abs/rules.json" and bundle_path(None) is None


def test_anything_but_json_is_yaml(tmp_path: Path) -> None:
    (tmp_path / "acme.rules").write_text(RULES)
    assert set(load_rules(str(tmp_path / "acme.rules"), {}).customers) == {"acme"}


def test_yaml_rules_without_the_yaml_reader_are_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A function bundle ships no YAML reader: a .yml MAILPIPE_RULES fails start-up with one line (exit 2)."""
    real_import = builtins.__import__

    def no_yaml_reader(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "mailpipe.providers.yaml.rules":
            raise ModuleNotFoundError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    (tmp_path / "acme.yml").write_text(RULES)
    monkeypatch.setattr(builtins, "__import__", no_yaml_reader)
    with pytest.raises(ConfigError, match=r"acme\.yml: YAML rules need .*compiled \.json"):
        load_rules(str(tmp_path / "acme.yml"), {})
