"""Routing configuration: customers, their destinations, webhooks and ordered rules. Stdlib only.

``load_config(doc, env)`` takes an already-loaded dict (YAML/JSON; format in docs/rules.md) and validates
it at start-up, raising ``RuleError`` (a ``ConfigError``) whose ``path`` names the bad field. A rule may only
name its own customer's destinations and webhooks, so no rule sends one customer's mail elsewhere.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mailpipe.core.routing.conditions import compile_condition
from mailpipe.core.routing.validate import RuleError, keys, mapping, name_ok, webhook_target

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mailpipe.core.routing.conditions import Pred
    from mailpipe.core.routing.facts import Ctx
    from mailpipe.core.routing.validate import Path
    from mailpipe.core.routing.webhooks import WebhookTarget

BARE_ACTIONS = ("drop", "stop", "quarantine")


@dataclass(frozen=True, slots=True)
class Action:
    """``kind`` is publish | webhook | tag | quarantine | drop | stop; ``arg`` a name, tag or reason."""

    kind: str
    arg: str = ""

    def render(self, captures: Mapping[str, str]) -> Action:
        """Fill ``{capture}`` placeholders (tags only); unknown names become empty strings."""
        if self.kind != "tag" or "{" not in self.arg:
            return self
        return Action("tag", self.arg.format_map(_Blank(captures)))


class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


@dataclass(frozen=True, slots=True)
class Rule:
    """A compiled rule. ``need_rcpt`` / ``need_tag``: exact recipients / plus tags its top-level conjunction
    requires (None: any), so ``evaluate`` skips it without calling the predicate."""

    name: str
    when: Pred
    actions: tuple[Action, ...]
    stop: bool
    need_rcpt: frozenset[str] | None = None
    need_tag: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class Customer:
    name: str
    domains: frozenset[str]
    destinations: Mapping[str, str]  # name -> queue URL (any scheme providers.open_publisher knows)
    webhooks: Mapping[str, WebhookTarget]
    rules: tuple[Rule, ...]

    def evaluate(self, ctx: Ctx) -> list[tuple[Rule, dict[str, str]]]:
        """The rules that match ``ctx``, in order, with their regex captures; stops after a ``stop`` rule."""
        hits: list[tuple[Rule, dict[str, str]]] = []
        rcpt, tag = ctx.recipient, ctx.tag
        for rule in self.rules:
            if (rule.need_rcpt is not None and rcpt not in rule.need_rcpt) or (
                rule.need_tag is not None and tag not in rule.need_tag
            ):
                continue
            if ctx.captures:
                ctx.captures = {}
            if rule.when(ctx):
                hits.append((rule, ctx.captures))
                if rule.stop:
                    break
        return hits


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    customers: Mapping[str, Customer]
    by_domain: Mapping[str, Customer]

    def customer_for(self, recipient: str) -> Customer | None:
        """The customer owning the envelope recipient's domain (exact, case-insensitive), or None."""
        return self.by_domain.get(recipient.rpartition("@")[2].lower())


def load_config(doc: Any, env: Mapping[str, str] | None = None) -> RoutingConfig:
    """Validate and compile a routing document. Secrets named by ``secret_env`` are read from ``env``."""
    env = {} if env is None else env
    keys(doc, ("customers",), (), required=("customers",))
    customers = mapping(doc["customers"], ("customers",))
    built: dict[str, Customer] = {}
    by_domain: dict[str, Customer] = {}
    for name, spec in customers.items():
        path: Path = ("customers", name)
        name_ok(name, path)
        cust = _customer(name, spec, path, env)
        for d in cust.domains:
            if d in by_domain:
                raise RuleError((*path, "domains"), f"domain {d} already belongs to {by_domain[d].name}")
            by_domain[d] = cust
        built[name] = cust
    return RoutingConfig(built, by_domain)


def _customer(name: str, spec: Any, path: Path, env: Mapping[str, str]) -> Customer:
    keys(spec, ("domains", "destinations", "webhooks", "rules"), path, required=("domains", "rules"))
    domains = spec["domains"]
    if not isinstance(domains, list) or not domains or not all(isinstance(d, str) and d for d in domains):
        raise RuleError((*path, "domains"), "expected a non-empty list of domains")
    dests = mapping(spec.get("destinations") or {}, (*path, "destinations"))
    for k, v in dests.items():
        name_ok(k, (*path, "destinations", k))
        if not isinstance(v, str) or "://" not in v:
            raise RuleError((*path, "destinations", k), "expected a queue URL such as sqs://name or file://dir")
    hooks = mapping(spec.get("webhooks") or {}, (*path, "webhooks"))
    webhooks = {k: webhook_target(k, v, (*path, "webhooks", k), env) for k, v in hooks.items()}
    rules_spec = spec["rules"]
    if not isinstance(rules_spec, list):
        raise RuleError((*path, "rules"), "expected a list of rules")
    rules = tuple(_rule(r, (*path, "rules", i), dests, webhooks) for i, r in enumerate(rules_spec))
    seen: set[str] = set()
    for i, r in enumerate(rules):
        if r.name in seen:
            raise RuleError((*path, "rules", i, "name"), f"duplicate rule name {r.name!r}")
        seen.add(r.name)
    return Customer(name, frozenset(d.lower().strip(".") for d in domains), dict(dests), webhooks, rules)


def _rule(spec: Any, path: Path, dests: Mapping[str, Any], hooks: Mapping[str, Any]) -> Rule:
    keys(spec, ("name", "when", "actions", "description"), path, required=("name", "actions"))
    name_ok(spec["name"], (*path, "name"))
    when = compile_condition(spec["when"], (*path, "when")) if "when" in spec else (lambda c: True)
    acts = spec["actions"]
    if not isinstance(acts, list) or not acts:
        raise RuleError((*path, "actions"), "expected a non-empty list of actions")
    actions = [a for i, x in enumerate(acts) for a in _action(x, (*path, "actions", i), dests, hooks)]
    return Rule(spec["name"], when, tuple(a for a in actions if a.kind != "stop"),
                any(a.kind == "stop" for a in actions), _need(spec, "recipient"), _need(spec, "tag"))


def _need(spec: dict[str, Any], leaf: str) -> frozenset[str] | None:
    """The values a top-level conjunct ``leaf`` (in ``when`` or its ``all`` list) demands, else None."""
    when = spec.get("when")
    conjuncts = [when, *when.get("all", [])] if isinstance(when, dict) else []
    for c in conjuncts:
        v = c.get(leaf) if isinstance(c, dict) else None
        if isinstance(v, str | list) and v:
            return frozenset(x.lower() for x in (v if isinstance(v, list) else [v]))
    return None


def _action(spec: Any, path: Path, dests: Mapping[str, Any], hooks: Mapping[str, Any]) -> list[Action]:
    if isinstance(spec, str) and spec in BARE_ACTIONS:
        return [Action(spec)]
    if not isinstance(spec, dict) or len(spec) != 1:
        raise RuleError(path, "expected publish: NAME, webhook: NAME, tag: T, quarantine: WHY, drop or stop")
    kind, arg = next(iter(spec.items()))
    path = (*path, kind)
    if kind in ("publish", "webhook"):
        known = dests if kind == "publish" else hooks
        if arg not in known:
            have = ", ".join(known) or "none"
            raise RuleError(path, f"unknown {kind} target {arg!r}; this customer has: {have}")
        return [Action(kind, arg)]
    if kind == "tag":
        tags = arg if isinstance(arg, list) else [arg]
        if not tags or not all(isinstance(t, str) and t and _template_ok(t) for t in tags):
            raise RuleError(path, "expected a tag or a list of tags ({name} inserts a regex capture)")
        return [Action("tag", t) for t in tags]
    if kind == "quarantine" and isinstance(arg, str | bool):
        return [Action("quarantine", arg if isinstance(arg, str) else "")]
    if kind in ("drop", "stop") and arg is True:
        return [Action(kind)]
    raise RuleError(path, f"unknown or malformed action {kind!r}")


def _template_ok(tag: str) -> bool:
    try:
        return all(f is None or f.isidentifier() for _, f, _, _ in string.Formatter().parse(tag))
    except ValueError:
        return False
