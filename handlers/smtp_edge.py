"""``python -m handlers.smtp_edge``: the SMTP edge alone (the cloud shape: the bucket event triggers parsing).

Replies: 250 stored; 421 busy/timeout; 451 store failed (retry); 452 too many recipients; 550 domain not
served (never relays); 552 too big; 554 bare CR/LF (smuggling) or line too long. See providers/smtp/edge.py.
"""

from __future__ import annotations

import asyncio
import sys

from core.log import configure
from core.settings import Settings
from providers import open_store
from providers.smtp.edge import start_edge


async def _serve(settings: Settings) -> None:
    server = await start_edge(settings, open_store(settings.store_url, settings))
    async with server:
        await server.serve_forever()


def main() -> int:
    settings = Settings.from_env()
    configure(settings.log_level)
    asyncio.run(_serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
