"""The public JSON Schemas (draft 2020-12), shipped in the wheel as ``mailpipe.schema``.

``parsed_message()`` is the contract of every ``parsed/<sha256>.json`` document (``"mailpipe/parsed-message@1"``).
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any


def parsed_message() -> dict[str, Any]:
    """The schema of the parsed-message document, as a dict. Reads a file shipped with the package."""
    doc: dict[str, Any] = json.loads(files(__package__).joinpath("parsed-message.json").read_text("utf-8"))
    return doc
