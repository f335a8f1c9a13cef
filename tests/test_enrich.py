"""The enrichment framework: result shape, isolation of failing/slow steps, transient outages, the registry
and third-party plug-ins (entry point group ``mailpipe.enrichers``), and ``mailpipe parse --enrich``."""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

from mailpipe.core.enrich import registry
from mailpipe.core.enrich.contract import Context, Skip
from mailpipe.core.enrich.registry import load_enricher, parse_names
from mailpipe.core.enrich.run import run_enrichers
from mailpipe.core.enrich.view import build_view
from mailpipe.core.errors import BackendUnavailable, ConfigError, TransientError
from mailpipe.handlers.cli import main
from tests.enrich_mail import message, raw

if TYPE_CHECKING:
    from pathlib import Path

    from mailpipe.core.enrich.view import MessageView

RAW = raw(
    message("Hello world, this is the body of the message.", attachments=(("a.bin", "x/y", b"\x00\x01"),))
)
RELEASE = threading.Event()


class Step:
    name, version, wants, timeout, max_bytes = "step", "3", frozenset({"text"}), 5.0, 1000
    behaviour = "ok"

    def run(self, view: MessageView, ctx: Context) -> dict[str, Any]:
        if self.behaviour == "crash":
            raise ZeroDivisionError("boom")
        if self.behaviour == "slow":
            RELEASE.wait(10)
        if self.behaviour == "skip":
            raise Skip("nothing for me")
        if self.behaviour == "down":
            raise BackendUnavailable("engine down")
        return {"text": view.text, "parts": [p.filename for p in view.parts], "seen": sorted(ctx.results)}


def make(name: str, behaviour: str) -> type[Step]:
    return type(name, (Step,), {"name": name, "behaviour": behaviour})


@pytest.fixture
def steps(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("good", "crash", "slow", "skip", "down"):
        monkeypatch.setitem(registry.BUILTIN, name, (f"tests.test_enrich:{name.upper()}", ""))


GOOD, CRASH, SLOW, SKIP, DOWN = (
    make(n, n if n != "good" else "ok") for n in ("good", "crash", "slow", "skip", "down")
)


def test_result_shape_and_order(steps: None) -> None:
    out = run_enrichers({}, {}, RAW, ["skip", "good"])
    assert set(out["good"]) == {"version", "status", "result", "error", "duration_ms"}
    assert out["good"]["status"] == "ok" and out["good"]["version"] == "3" and out["good"]["error"] is None
    assert out["good"]["result"] == {
        "text": "Hello world, this is the body of the message.\n",
        "parts": ["a.bin"],
        "seen": ["skip"],
    }
    assert out["skip"] == {
        "version": "3",
        "status": "skipped",
        "result": None,
        "error": "nothing for me",
        "duration_ms": out["skip"]["duration_ms"],
    }


def test_crash_and_timeout_do_not_lose_the_others(steps: None) -> None:
    RELEASE.clear()
    start = time.monotonic()
    out = run_enrichers({}, {}, RAW, ["crash", "slow", "good"], {"slow": {"timeout": 0.2}})
    RELEASE.set()
    assert out["crash"]["status"] == "error" and out["crash"]["error"] == "ZeroDivisionError: boom"
    assert out["slow"]["status"] == "timeout" and out["slow"]["result"] is None
    assert out["good"]["status"] == "ok"
    assert time.monotonic() - start < 5


def test_engine_outage_is_transient(steps: None) -> None:
    with pytest.raises(TransientError):
        run_enrichers({}, {}, RAW, ["good", "down"])


def test_unknown_enricher_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"unknown enricher 'nope'.*malware"):
        run_enrichers({}, {}, RAW, ["nope"])


def test_parse_names() -> None:
    assert parse_names(" malware, ocr,,malware ") == ["malware", "ocr"]
    assert parse_names(None) == [] and parse_names(["a", "b"]) == ["a", "b"]


def test_document_view_prefers_parsed_document_over_raw() -> None:
    doc = {
        "text": "parsed",
        "html": None,
        "headers": [{"name": "Received", "value": "x"}],
        "attachments": [
            {"key": "k1", "part": "2", "filename": "f", "content_type": "a/b"},
            {"key": "missing", "part": "3", "filename": "g", "content_type": "a/b"},
        ],
    }
    view = build_view(doc, {"k1": b"data"}, RAW)
    assert view.text == "parsed" and [p.data for p in view.parts] == [b"data"]
    assert view.header_values("received") == ["x"]
    fallback = build_view({}, {}, RAW)
    assert fallback.text.startswith("Hello world") and fallback.parts[0].data == b"\x00\x01"


PLUGIN = """
class Shout:
    name, version, wants, timeout, max_bytes = "shout", "0.1", frozenset({"text"}), 5.0, 10_000

    def run(self, view, ctx):
        return {"loud": (view.text or "").upper()[: ctx.config.get("chars", 5)]}
"""


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A third-party package installed on sys.path with an entry point in group mailpipe.enrichers."""
    (tmp_path / "mailpipe_shout.py").write_text(PLUGIN)
    meta = tmp_path / "mailpipe_shout-0.1.dist-info"
    meta.mkdir()
    (meta / "METADATA").write_text("Metadata-Version: 2.1\nName: mailpipe-shout\nVersion: 0.1\n")
    (meta / "entry_points.txt").write_text("[mailpipe.enrichers]\nshout = mailpipe_shout:Shout\n")
    monkeypatch.syspath_prepend(str(tmp_path))


def test_third_party_plugin_through_entry_point(plugin: None) -> None:
    assert "shout" in registry.available()
    assert load_enricher("shout").version == "0.1"
    out = run_enrichers({}, {}, RAW, ["shout"], {"shout": {"chars": 11}})
    assert out["shout"]["result"] == {"loud": "HELLO WORLD"}


def test_cli_parse_with_enrich(
    plugin: None, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    eml = tmp_path / "m.eml"
    eml.write_bytes(RAW)
    conf = tmp_path / "enrich.json"
    conf.write_text(json.dumps({"shout": {"chars": 3}}))
    assert main(["parse", str(eml), "--enrich", "shout,language", "--enrich-config", str(conf)]) == 0
    doc = json.loads(capsysbinary.readouterr().out)
    assert doc["enrichments"]["shout"]["result"] == {"loud": "HEL"}
    assert doc["enrichments"]["language"]["result"]["language"] == "en"


def test_cli_bad_enrich_config_or_name_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    eml = tmp_path / "m.eml"
    eml.write_bytes(RAW)
    (tmp_path / "bad.json").write_text("[1, 2]")
    assert main(["parse", str(eml), "--enrich", "links", "--enrich-config", str(tmp_path / "bad.json")]) == 2
    assert main(["parse", str(eml), "--enrich", "nope"]) == 2
    assert "unknown enricher 'nope'" in capsys.readouterr().err


def test_cli_engine_down_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    eml = tmp_path / "m.eml"
    eml.write_bytes(RAW)
    conf = tmp_path / "c.json"
    conf.write_text(json.dumps({"malware": {"clamd": f"unix:{tmp_path}/none.sock"}}))
    assert main(["parse", str(eml), "--enrich", "malware", "--enrich-config", str(conf)]) == 1
    assert "enrichment engine unavailable" in capsys.readouterr().err


def test_an_enricher_is_not_started_without_the_parts_it_wants() -> None:
    out = run_enrichers({}, {}, raw(message("just text")), ["ocr", "tnef"])
    assert out["ocr"]["status"] == "skipped" and out["ocr"]["error"] == "message has no attachments"
    assert out["ocr"]["duration_ms"] == 0 and out["tnef"]["status"] == "skipped"


def test_settings_name_the_enrichers_and_their_config(tmp_path: Path) -> None:
    from mailpipe.core.enrich.registry import load_config
    from mailpipe.core.settings import Settings

    conf = tmp_path / "enrich.json"
    conf.write_text(json.dumps({"links": {"trusted": ["acme.example"]}}))
    s = Settings.from_env({"MAILPIPE_ENRICHERS": "links, auth", "MAILPIPE_ENRICH_CONFIG": str(conf)})
    assert s.enrichers == ("links", "auth") and load_config(s.enrich_config_file) == {
        "links": {"trusted": ["acme.example"]}
    }
    assert Settings.from_env({}).enrichers == ()


class NotJson(Step):
    name = "notjson"

    def run(self, view: MessageView, ctx: Context) -> dict[str, Any]:
        return {"when": {1, 2}}


def test_a_result_that_is_not_json_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.BUILTIN, "notjson", ("tests.test_enrich:NotJson", ""))
    out = run_enrichers({}, {}, RAW, ["notjson"])["notjson"]
    assert out["status"] == "error" and out["error"].startswith("TypeError: Object of type set")


class NeedsEngines(Step):
    name = "needs"
    requires = ("json", "no_such_module_xyz")
    programs = ("no-such-program-xyz",)


def test_missing_engine_fails_at_load_with_the_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.BUILTIN, "needs", ("tests.test_enrich:NeedsEngines", "pip install x"))
    with pytest.raises(
        ConfigError, match="'needs' is missing no_such_module_xyz, no-such-program-xyz: pip install x"
    ):
        load_enricher("needs")
    for name in registry.BUILTIN:  # everything this project ships is installed by its own set-up
        if name not in {"good", "crash", "slow", "skip", "down", "needs", "notjson"}:
            load_enricher(name)
