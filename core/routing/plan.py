"""Routing plan: each envelope recipient evaluated under its own customer's rules. Pure, stdlib only.

``plan(doc, config)`` never does I/O. ``Plan.annotate(doc)`` records the outcome in the parsed JSON
(``routing`` and ``tags``); ``dispatch.execute`` then carries out the publish/webhook/quarantine actions.
Recipients are read from the SMTP envelope only, never from the To: header. A recipient whose plan contains
``quarantine`` or ``drop`` has its publish and webhook actions cancelled, wherever they appear in the list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mailpipe.core.routing.facts import Ctx, Facts

if TYPE_CHECKING:
    from mailpipe.core.routing.rules import Action, RoutingConfig

DELIVERING = ("publish", "webhook")


@dataclass(frozen=True, slots=True)
class RecipientRoute:
    """One envelope recipient: its customer (None if no customer owns the domain) and the rules it matched."""

    recipient: str
    customer: str | None
    hits: tuple[tuple[str, tuple[Action, ...]], ...]  # (rule name, actions with captures filled in)

    @property
    def disposition(self) -> str:
        kinds = {a.kind for _, acts in self.hits for a in acts}
        return "quarantine" if "quarantine" in kinds else "drop" if "drop" in kinds else "deliver"

    def records(self) -> list[dict[str, Any]]:
        cancelled = self.disposition != "deliver"
        if not self.hits:
            return [{"recipient": self.recipient, "customer": self.customer, "rule": None, "actions": []}]
        return [
            {"recipient": self.recipient, "customer": self.customer, "rule": rule,
             "actions": [_record(a, cancelled and a.kind in DELIVERING) for a in acts]}
            for rule, acts in self.hits
        ]


def _record(a: Action, cancelled: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"action": a.kind, "status": "cancelled" if cancelled else "planned"}
    if a.arg:
        out["target" if a.kind in DELIVERING else "tag" if a.kind == "tag" else "reason"] = a.arg
    return out


@dataclass(frozen=True, slots=True)
class Delivery:
    """One publish or webhook to carry out; deduplicated per (customer, rule, kind, target)."""

    customer: str
    rule: str
    kind: str
    target: str
    recipients: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    message_id: str
    routes: tuple[RecipientRoute, ...]

    @property
    def disposition(self) -> str:
        """quarantine if any recipient is quarantined; drop if every recipient is dropped; else deliver.

        The pipeline publishes its default notification only for "deliver".
        """
        ds = [r.disposition for r in self.routes]
        if "quarantine" in ds:
            return "quarantine"
        return "drop" if ds and all(d == "drop" for d in ds) else "deliver"

    def tags(self, customer: str | None = None) -> list[str]:
        """Sorted tags, of all customers or of one."""
        return sorted({a.arg for r in self.routes if customer in (None, r.customer)
                       for _, acts in r.hits for a in acts if a.kind == "tag"})

    def records(self, customer: str | None = None) -> list[dict[str, Any]]:
        return [x for r in self.routes if customer in (None, r.customer) for x in r.records()]

    def annotate(self, doc: dict[str, Any]) -> None:
        """Write ``routing`` (what matched, what was planned) and ``tags`` into the parsed dict."""
        doc["routing"] = self.records()
        doc["tags"] = self.tags()

    def deliveries(self) -> list[Delivery]:
        """The publish/webhook actions to carry out, in rule order, each once per customer and rule."""
        found: dict[tuple[str, str, str, str], list[str]] = {}
        for r in self.routes:
            if r.customer is None or r.disposition != "deliver":
                continue
            for rule, acts in r.hits:
                for a in acts:
                    if a.kind in DELIVERING:
                        found.setdefault((r.customer, rule, a.kind, a.arg), []).append(r.recipient)
        return [Delivery(c, rule, k, t, tuple(rs)) for (c, rule, k, t), rs in found.items()]

    def customer_view(self, doc: dict[str, Any], customer: str) -> dict[str, Any]:
        """The parsed dict as one customer may see it: only its envelope recipients, routing and tags."""
        mine = [r.recipient for r in self.routes if r.customer == customer]
        view = dict(doc)
        if doc.get("envelope"):
            view["envelope"] = {**doc["envelope"], "rcpt_to": mine}
        view.update(customer=customer, routing=self.records(customer), tags=self.tags(customer))
        return view


def plan(doc: dict[str, Any], config: RoutingConfig) -> Plan:
    """Evaluate every envelope recipient of the parsed dict under its customer's rules. No I/O; never raises
    for message content (a rule can only fail to match)."""
    facts = Facts(doc)
    rcpts = (doc.get("envelope") or {}).get("rcpt_to") or []
    routes = []
    for rcpt in dict.fromkeys(str(r) for r in rcpts):
        cust = config.customer_for(rcpt)
        if cust is None:
            routes.append(RecipientRoute(rcpt, None, ()))
            continue
        hits = cust.evaluate(Ctx(facts, rcpt))
        routes.append(RecipientRoute(rcpt, cust.name, tuple(
            (rule.name, tuple(a.render(caps) for a in rule.actions)) for rule, caps in hits
        )))
    return Plan(str(doc.get("id") or ""), tuple(routes))
