"""``links``: URLs, domains and IP addresses in the bodies (text and HTML), and the parsed ``Received`` chain.

Stdlib only. HTML links whose visible text names another host than their target are listed as ``deceptive``
(the classic phishing tell). Config::

    links: {trusted: ["mx.example.com", "example.com"], max_urls: 500}
"""

from __future__ import annotations

import ipaddress
import re
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mailpipe.enrichers.received import chain

if TYPE_CHECKING:
    from mailpipe.core.enrich.contract import Context
    from mailpipe.core.enrich.view import MessageView

_URL = re.compile(r"""\b(?:(?:https?|ftp)://(?:\[[0-9a-f:.]+\])?|www\.)[^\s<>"'`{}|\\^\[\]]+""", re.I)
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?!\.?\d)")
_HOSTLIKE = re.compile(r"^(?:https?://)?([a-z0-9-]+(?:\.[a-z0-9-]+)+)(?:[/:?#]|$)", re.I)


class _Anchors(HTMLParser):
    """Collects link targets (href/src/action) and the visible text of each ``<a>``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.targets: list[str] = []
        self.anchors: list[tuple[str, str]] = []
        self.text: list[str] = []
        self._open: list[tuple[str, list[str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("href", "src", "action") and value:
                self.targets.append(value.strip())
                if tag == "a" and name == "href":
                    self._open.append((value.strip(), []))

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open:
            href, words = self._open.pop()
            self.anchors.append((href, "".join(words).strip()))

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        for _, words in self._open:
            words.append(data)


class LinksEnricher:
    name = "links"
    version = "1"
    wants = frozenset({"text", "html", "headers", "envelope"})
    timeout = 10.0
    max_bytes = 2 * 1024 * 1024  # of body text scanned

    def run(self, view: MessageView, ctx: Context) -> dict[str, Any]:
        html = _Anchors()
        if view.html:
            html.feed(view.html[: self.max_bytes])
            html.close()
        body = (view.text or "")[: self.max_bytes] + "\n" + " ".join(html.text)[: self.max_bytes]
        urls = list(
            dict.fromkeys([*html.targets, *(m.group(0).rstrip(".,;:!?)") for m in _URL.finditer(body))])
        )
        urls = [u for u in urls if _is_web(u)][: int(ctx.config.get("max_urls", 500))]
        hosts = [h for h in (_host(u) for u in urls) if h]
        ips = {h for h in hosts if _ip(h)} | {ip for m in _IPV4.finditer(body) if (ip := _ip(m.group(0)))}
        trusted = tuple(ctx.config.get("trusted") or ())
        envelope = view.envelope or {}
        return {
            "urls": [{"url": u, "host": _host(u)} for u in urls],
            "domains": sorted({h for h in hosts if not _ip(h)}),
            "ips": sorted(ips),
            "deceptive": _deceptive(html.anchors),
            "received": {
                **chain(view.header_values("Received"), trusted),
                "edge_client_ip": envelope.get("client_ip"),
            },
        }


def _is_web(url: str) -> bool:
    low = url.lower()
    return low.startswith(("http://", "https://", "ftp://", "www.", "//"))


def _host(url: str) -> str | None:
    if url.lower().startswith("www."):
        url = "http://" + url
    try:
        host = urlsplit(url).hostname
    except ValueError:  # "http://[bad" : an unparseable netloc is no host
        return None
    return host.rstrip(".") if host else None


def _ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _deceptive(anchors: list[tuple[str, str]]) -> list[dict[str, str]]:
    out = []
    for href, text in anchors:
        shown = _HOSTLIKE.match(text.strip())
        target = _host(href)
        if shown and target and _is_web(href):
            shown_host = shown.group(1).lower().removeprefix("www.")
            real = target.lower().removeprefix("www.")
            if real != shown_host and not real.endswith("." + shown_host):
                out.append({"text": text[:200], "href": href[:500], "target_host": target})
    return out
