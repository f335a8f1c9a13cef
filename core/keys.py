"""Deterministic, content-addressed storage keys. Same input, same key: every write is safe to repeat.

Layout of a store:
  raw/<id>.eml                 the raw RFC 5322 bytes exactly as received (immutable; its creation triggers parsing)
  raw/<id>.envelope.json       the SMTP envelope, written before the .eml
  parsed/<id>.json             the canonical parsed JSON (its current version)
  parsed/<id>/<version>.json   earlier and replayed versions of it (``mailpipe replay``), named by processed_by
  att/<id>/<n>-<safe-name>     decoded attachment bytes
  att/<id>/<p>.<k>-<safe-name> files an enricher derived (winmail.dat, uuencode): the k-th from attachment <p>,
                               or from the text body when <p> is ``body`` (core/enrich/derived.py)
  quarantine/<id>.json         permanent failures, with the reason
  retry/<id>.json              the last transient failure of a message (reason, error, attempt): shown by
                               ``mailpipe dlq`` for a message a cloud queue dead-lettered
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from typing import TYPE_CHECKING

from mailpipe.core.errors import InvalidKey

if TYPE_CHECKING:
    from mailpipe.core.model import Envelope

RAW_PREFIX = "raw/"
PARSED_PREFIX = "parsed/"
ATTACHMENT_PREFIX = "att/"
QUARANTINE_PREFIX = "quarantine/"
RAW_SUFFIX = ".eml"
ENVELOPE_SUFFIX = ".envelope.json"

_ID_RE = re.compile(r"^[0-9a-f]{32}$")
_ATT_INDEX_RE = re.compile(r"^att/[0-9a-f]{32}/([0-9]+)-")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_NAME = 100


def check_key(key: str) -> str:
    """Return ``key`` if every store accepts it; raise InvalidKey for an empty, absolute, ``.``/``..`` or empty
    segment, a NUL or a backslash. One rule for all adapters, so every store accepts the same key set."""
    if not key or "\0" in key or "\\" in key or any(p in ("", ".", "..") for p in key.split("/")):
        raise InvalidKey(f"invalid key {key!r}")
    return key


def message_id(raw: bytes, envelope: Envelope | None) -> str:
    """Stable id of a delivery: the hash of the raw bytes and the envelope's identity.

    A sender's retry (same bytes, same MAIL FROM and RCPT TOs) gets the same id and is stored once; two deliveries
    of identical bytes to different envelopes get different ids, so both envelopes are kept. Time, client IP and
    HELO are not part of the identity (a retry may come from another host of the same MTA).
    """
    h = hashlib.sha256()
    if envelope is not None:
        ident = json.dumps([envelope.mail_from.lower(), sorted(r.lower() for r in envelope.rcpt_to)])
        h.update(b"envelope\0" + ident.encode() + b"\0")
    h.update(raw)
    return h.hexdigest()[:32]


def is_message_id(value: str) -> bool:
    return bool(_ID_RE.match(value))


def raw_key(mid: str) -> str:
    return f"{RAW_PREFIX}{mid}{RAW_SUFFIX}"


def envelope_key(mid: str) -> str:
    return f"{RAW_PREFIX}{mid}{ENVELOPE_SUFFIX}"


def parsed_key(mid: str) -> str:
    return f"{PARSED_PREFIX}{mid}.json"


_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


def version_key(mid: str, version: str) -> str:
    """Key of one version of a message's parsed JSON (``parsed/<id>/<version>.json``); raises InvalidKey for a
    version name outside ``[A-Za-z0-9._-]`` (200 at most)."""
    if not _VERSION_RE.match(version):
        raise InvalidKey(f"invalid version name {version!r}")
    return f"{PARSED_PREFIX}{mid}/{version}.json"


def id_from_parsed_key(key: str) -> str | None:
    """The message id of a ``parsed/<id>.json`` key (the current version), or None for any other key."""
    if key.startswith(PARSED_PREFIX) and key.endswith(".json"):
        mid = key[len(PARSED_PREFIX) : -len(".json")]
        return mid if is_message_id(mid) else None
    return None


def retry_key(mid: str) -> str:
    return f"retry/{mid}.json"


def quarantine_key(mid: str) -> str:
    return f"{QUARANTINE_PREFIX}{mid}.json"


def id_from_raw_key(key: str) -> str | None:
    """The message id of a ``raw/<id>.eml`` key, or None for any other key."""
    if key.startswith(RAW_PREFIX) and key.endswith(RAW_SUFFIX):
        mid = key[len(RAW_PREFIX) : -len(RAW_SUFFIX)]
        return mid if is_message_id(mid) else None
    return None


def safe_name(filename: str | None, fallback: str) -> str:
    """A filename reduced to a safe key segment: ASCII ``[A-Za-z0-9._-]``, no leading dots, at most 100 chars.

    Attachment filenames are data, never paths: ``../../x``, ``/etc/passwd``, NUL, CR/LF and huge names all map to a
    harmless single segment.
    """
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    name = _UNSAFE.sub("_", name).strip("._-")
    if len(name) > MAX_NAME:
        _stem, dot, ext = name.rpartition(".")
        ext = ext[:16] if dot and len(ext) <= 16 else ""
        name = name[: MAX_NAME - len(ext) - 1].rstrip("._-") + ("." + ext if ext else "")
    return name or fallback


def attachment_key(mid: str, index: int, filename: str | None) -> str:
    """Key of the ``index``-th attachment (0-based, document order incl. nested messages) of message ``mid``."""
    return f"{ATTACHMENT_PREFIX}{mid}/{index}-{safe_name(filename, f'part-{index}.bin')}"


def attachment_index(key: str | None) -> int | None:
    """The index ``n`` of an ``att/<id>/<n>-<name>`` key, or None for any other key (derived ones included)."""
    match = _ATT_INDEX_RE.match(key or "")
    return int(match.group(1)) if match else None


def derived_key(mid: str, parent: int | None, n: int, filename: str | None) -> str:
    """Key of the ``n``-th (1-based) file derived from attachment ``parent`` (None: from the text body).

    Deterministic: the same message, enrichers and config give the same keys; reprocessing rewrites nothing.
    """
    label = "body" if parent is None else str(parent)
    return f"{ATTACHMENT_PREFIX}{mid}/{label}.{n}-{safe_name(filename, f'file-{n}.bin')}"
