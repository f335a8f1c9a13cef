"""Shared by the local adapters: the key guard and the object-created notifier."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailpipe.core.errors import InvalidKey
from mailpipe.core.keys import RAW_SUFFIX
from mailpipe.core.keys import check_key as core_check_key

if TYPE_CHECKING:
    from mailpipe.core.ports import ObjectCreatedListener

TMP_PREFIX = ".tmp-"


def check_key(key: str) -> list[str]:
    """The key's path segments. Raises InvalidKey for empty, absolute, dot or temp-file segments."""
    parts = core_check_key(key).split("/")
    if parts[-1].startswith(TMP_PREFIX):
        raise InvalidKey(f"reserved key name {key!r}")
    return parts


class Notifier:
    """Listeners for the object-created event of ``.eml`` keys (a bucket notification stand-in)."""

    def __init__(self) -> None:
        self.listeners: list[ObjectCreatedListener] = []

    def add_listener(self, listener: ObjectCreatedListener) -> None:
        """Call ``listener(key)`` after each newly created ``.eml`` object (not on if_absent no-ops)."""
        self.listeners.append(listener)

    def notify_created(self, key: str) -> None:
        if key.endswith(RAW_SUFFIX):
            for listener in list(self.listeners):
                listener(key)
