"""Which store a recipient's mail goes to: one store per recipient domain (per customer).

The map comes from ``MAILPIPE_DOMAIN_STORES="example.com=s3://b1,other.org=gs://b2"``, the edge's
``--domain-store DOMAIN=URL`` / ``--stages stages.yml``, and ``MAILPIPE_DOMAINS`` (those domains go to
``MAILPIPE_STORE``). Matching (docs/edge.md):

- ``example.com`` matches exactly that domain (IDNA and Unicode spellings alike), never a subdomain;
- ``*.example.com`` matches any name below ``example.com`` (any depth), not ``example.com`` itself;
- an exact entry beats a wildcard, a longer wildcard beats a shorter one;
- no entry matches: the recipient is refused (550) -- unless nothing at all is configured (local mode, every
  domain goes to the default store).

A message whose recipients span several stores is stored once per store, each copy with an envelope listing
only that store's recipients (``split``), so one customer never learns another's recipients.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from mailpipe.core.domains import domain_forms, norm

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from mailpipe.core.ports import ObjectStore


class StoreRoutes:
    """Domain -> store URL, and each URL's store, opened on first use and then reused (thread-safe).

    ``opener(url)`` builds a store (``providers.open_store``); it is called at most once per URL.
    With an empty ``mapping`` every domain goes to ``default_url`` (local mode).
    """

    def __init__(self, mapping: Mapping[str, str], default_url: str, opener: Callable[[str], ObjectStore]) -> None:
        self.default_url, self._opener = default_url, opener
        self.exact: dict[str, str] = {}
        self.wild: dict[str, str] = {}
        for domain, url in mapping.items():
            table, name = (self.wild, domain[2:]) if domain.startswith("*.") else (self.exact, domain)
            for form in domain_forms(norm(name)):
                table[form] = url
        self._stores: dict[str, ObjectStore] = {}
        self._lock = threading.Lock()

    @property
    def urls(self) -> list[str]:
        """Every store URL a recipient can be routed to."""
        urls = {*self.exact.values(), *self.wild.values()}
        return sorted(urls) if urls else [self.default_url]

    def url_for(self, domain: str) -> str | None:
        """The store URL for a recipient domain, or None: refuse the recipient."""
        if not self.exact and not self.wild:
            return self.default_url
        forms = domain_forms(norm(domain).strip("[]"))
        for form in forms:
            if form in self.exact:
                return self.exact[form]
        for form in sorted(forms):
            labels = form.split(".")
            for n in range(1, len(labels)):  # longest parent first
                if (url := self.wild.get(".".join(labels[n:]))) is not None:
                    return url
        return None

    def split(self, rcpt_to: Iterable[str]) -> dict[str, tuple[str, ...]]:
        """Recipients grouped by store URL, each group in the order given. Unroutable ones are left out."""
        groups: dict[str, list[str]] = {}
        for rcpt in rcpt_to:
            url = self.url_for(rcpt.rpartition("@")[2])
            if url is not None:
                groups.setdefault(url, []).append(rcpt)
        return {url: tuple(rcpts) for url, rcpts in groups.items()}

    def store(self, url: str) -> ObjectStore:
        """The store for ``url``, opened once. Raises what the opener raises (ConfigError, TransientError)."""
        with self._lock:
            if url not in self._stores:
                self._stores[url] = self._opener(url)
            return self._stores[url]
