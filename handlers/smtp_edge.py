"""``python -m handlers.smtp_edge``: the SMTP edge alone (cloud shape); options: ``mailpipe edge --help``.
Replies: 250 stored in every customer's store; 421 busy/timeout; 451 a store failed (retry); 452 too many
recipients; 550 domain not served (never relays); 552 too big; 554 bare CR/LF, long line. Exit 2: bad config.
"""

from __future__ import annotations

import sys

from core.log import configure
from core.settings import Settings  # noqa: TC001 - the entry point's one input
from core.tenants import StoreRoutes
from handlers.cli import main
from providers import check_store_url, open_store
from providers.smtp.edge import run_loop, serve_until_signal


def run(settings: Settings) -> int:
    """Validate every store URL (ConfigError), then serve until SIGTERM; each store opens on first use."""
    configure(settings.log_level)
    routes = StoreRoutes(settings.store_map(), settings.store_url, lambda url: open_store(url, settings))
    for url in routes.urls:
        check_store_url(url)
    run_loop(serve_until_signal(settings, routes), settings)
    return 0


if __name__ == "__main__":
    sys.exit(main(["edge", *sys.argv[1:]]))
