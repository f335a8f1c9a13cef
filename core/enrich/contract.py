"""The enrichment contract: what an enricher is (``Enricher``), what it is given (``Context``), and how it says it
has nothing to do (``Skip``). Every enricher -- built-in (``mailpipe.enrichers``) or a plug-in -- imports from
here, ``view`` (what it reads), ``derived`` (``guess_type``) and ``core.errors`` only (tests/test_layers.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from mailpipe.core.enrich.derived import Derivations, DerivedLimits

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mailpipe.core.enrich.derived import Derived, Stage
    from mailpipe.core.enrich.view import MessageView, Part


class Skip(Exception):
    """Raised by an enricher that has nothing to do; its message is the result's ``error``."""


class Enricher(Protocol):
    """The contract of one enrichment step."""

    name: str
    version: str
    wants: frozenset[str]  # subset of {"text", "html", "headers", "attachments", "raw", "envelope"}
    timeout: float  # seconds of wall time before the step is recorded as "timeout"
    max_bytes: int  # input budget: larger inputs are cut or skipped by the step

    def run(self, view: MessageView, ctx: Context) -> dict[str, Any]:
        """Return the JSON-able result. Raise Skip, TransientError (outage), or anything (error)."""
        ...


@dataclass(slots=True)
class Context:
    """Per-run context: the enricher's own config section, the results of the steps before it, and where the
    files it derives go (``derived``)."""

    config: Mapping[str, Any]
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    stage: Stage | None = None

    def derive(
        self, parent: Part | None, filename: str | None, content_type: str, data: bytes
    ) -> dict[str, Any] | None:
        """Hand back a file found in ``parent`` (None: the text body) to be stored as a derived attachment.
        Returns the entry for the result (``key``, ``filename``, ``content_type``, ``size``, ``sha256``,
        ``derived_from``), or None when the message's derived-file budget is spent (``truncated`` is then set)."""
        if self.stage is None:
            self.stage = Derivations(None, DerivedLimits()).stage("")
        return self.stage.add(parent, filename, content_type, data)

    @property
    def truncated(self) -> bool:
        """True when a ``derive`` call was refused by the per-message caps."""
        return self.stage is not None and self.stage.truncated

    @property
    def derived(self) -> tuple[Derived, ...]:
        """The files the steps before this one derived (a scanner may read them)."""
        return tuple(self.stage.owner.files) if self.stage is not None else ()
