"""The actions contract of the SMTP session: what ``Session`` asks its driver (the listener in
``mailpipe.providers.smtp``) to do before the dialogue goes on. Plain values, no I/O."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Deliver:
    """Store ``raw`` for the transaction, then ``resume`` with the reply (250 / 451 / ...)."""

    mail_from: str  # "" for the null sender <>
    rcpt_to: tuple[str, ...]
    raw: bytes
    helo: str


@dataclass(frozen=True)
class StartTLS:
    """The 220 went out: upgrade the transport, then call ``tls_started`` (or ``resume`` if it failed)."""


@dataclass(frozen=True)
class Close:
    """Close the connection once the replies are written."""


Action = Deliver | StartTLS | Close


@dataclass
class Step:
    """What one ``receive``/``resume`` asks of the caller: write ``out``, then carry out ``action`` (if any)."""

    out: bytes = b""
    action: Action | None = None
