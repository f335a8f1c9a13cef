"""schema/parsed-message.json: a valid draft 2020-12 schema that accepts every parser output and rejects
documents that break the contract."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from mailpipe.core.mime.parser import parse
from mailpipe.core.model import Envelope

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "schema/parsed-message.json").read_text())
VALIDATOR = Draft202012Validator(SCHEMA)


def sample() -> dict:
    env = Envelope(mail_from="s@example.com", rcpt_to=("r@example.org",), tls=True)
    raw = (ROOT / "tests/fixtures/mail/mixed.eml").read_bytes()
    return json.loads(json.dumps(parse(raw, envelope=env).message.to_dict()))


def test_schema_is_valid_draft_2020_12() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_every_fixture_validates() -> None:
    for path in sorted((ROOT / "tests/fixtures/mail").glob("*.eml")):
        VALIDATOR.validate(json.loads(json.dumps(parse(path.read_bytes()).message.to_dict())))


def test_nested_and_enveloped_sample_validates() -> None:
    doc = sample()
    assert doc["envelope"]["tls"] is True and doc["messages"]
    VALIDATOR.validate(doc)


@pytest.mark.parametrize(
    "breakage",
    [
        lambda d: d.pop("subject"),
        lambda d: d.update(schema="mailpipe/parsed-message@2"),
        lambda d: d.update(date="Tue, 1 Jul 2003"),
        lambda d: d["from"].append({"name": "x"}),
        lambda d: d["attachments"][0].update(sha256="xyz"),
        lambda d: d["attachments"][0].update(key="att/../../etc/passwd"),
        lambda d: d["attachments"][0].update(size=-1),
        lambda d: d["defects"].append({"part": "", "kind": "Bad Kind", "detail": ""}),
        lambda d: d["messages"][0].pop("text"),
        lambda d: d["envelope"].pop("rcpt_to"),
        lambda d: d["headers"].append({"name": "X"}),
    ],
)
def test_contract_breakages_are_rejected(breakage: object) -> None:
    doc = copy.deepcopy(sample())
    breakage(doc)  # type: ignore[operator]
    with pytest.raises(ValidationError):
        VALIDATOR.validate(doc)


def test_extra_top_level_fields_are_allowed() -> None:
    doc = sample()
    doc["raw_key"] = "raw/x.eml"
    VALIDATOR.validate(doc)
