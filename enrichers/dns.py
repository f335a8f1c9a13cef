"""DNS behind a tiny interface, so SPF/DKIM/DMARC can be verified against recorded answers in tests.

``query(name, rtype)`` returns strings: TXT records (character-strings already joined), A/AAAA addresses,
MX as ``"10 mx.example.com"``, PTR names. No record: ``[]``. A timeout or server failure raises
``BackendUnavailable`` (transient: the message is retried).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from mailpipe.core.errors import BackendUnavailable

if TYPE_CHECKING:
    from collections.abc import Mapping


class Resolver(Protocol):
    def query(self, name: str, rtype: str) -> list[str]:
        """Records of ``rtype`` at ``name``; ``[]`` when none. Raises BackendUnavailable."""
        ...


class DictResolver:
    """Answers from a dict ``{(name, rtype): [values]}``; names are case-insensitive, no trailing dot."""

    def __init__(self, records: Mapping[tuple[str, str], list[str]]) -> None:
        self._records = {(n.lower().rstrip("."), t.upper()): list(v) for (n, t), v in records.items()}

    def query(self, name: str, rtype: str) -> list[str]:
        return list(self._records.get((name.lower().rstrip("."), rtype.upper()), []))


class SystemResolver:
    """The host's resolver through dnspython (the ``auth`` extra)."""

    def __init__(self, timeout: float = 5.0) -> None:
        self.timeout = timeout

    def query(self, name: str, rtype: str) -> list[str]:
        import dns.exception
        import dns.resolver

        try:
            answer = dns.resolver.resolve(name, rtype, lifetime=self.timeout, raise_on_no_answer=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
            raise BackendUnavailable(f"dns {rtype} {name}: {exc}") from exc
        if rtype.upper() == "TXT":
            return [b"".join(r.strings).decode("utf-8", "replace") for r in answer]
        return [r.to_text().rstrip(".") for r in answer]
