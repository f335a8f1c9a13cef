"""Recipient domains -> store URLs: the ``DOMAIN=URL`` entries of the settings, validated at start-up.

Entries come from ``MAILPIPE_DOMAIN_STORES="example.com=s3://b1,*.other.org=gs://b2"``, the edge's
``--domain-store DOMAIN=URL`` and ``--stages stages.yml``. ``mailpipe.core.edge.tenants`` routes recipients with
the resulting map (docs/edge.md).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from mailpipe.core.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Iterable


def domain_forms(domain: str) -> set[str]:
    """A domain as written plus its IDNA (xn--) or Unicode twin, so either spelling matches."""
    forms = {domain}
    with contextlib.suppress(UnicodeError):
        forms.add(domain.encode("idna").decode("ascii"))
        forms.add(domain.encode("ascii").decode("idna"))
    return forms


def norm(domain: str) -> str:
    return domain.strip().lower().strip(".")


def parse_entries(entries: Iterable[str], source: str) -> list[tuple[str, str]]:
    """``DOMAIN=URL`` strings -> pairs. Raises ConfigError naming ``source`` for a malformed entry."""
    pairs = []
    for entry in entries:
        domain, sep, url = entry.partition("=")
        domain, url = norm(domain), url.strip()
        wild = domain.removeprefix("*.")
        if not sep or not wild or not url or "*" in wild or "://" not in url:
            raise ConfigError(f"{source}: expected DOMAIN=SCHEME://..., got {entry!r}")
        pairs.append((domain, url))
    return pairs


def merge(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """One domain -> URL map. Raises ConfigError when a domain is given two different stores."""
    mapping: dict[str, str] = {}
    for domain, url in pairs:
        key = norm(domain)
        if mapping.get(key, url) != url:
            raise ConfigError(f"domain {key!r} is mapped to two stores: {mapping[key]} and {url}")
        mapping[key] = url
    return mapping
