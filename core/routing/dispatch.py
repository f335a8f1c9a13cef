"""Carry out a routing plan: per-customer views, publishes, signed webhooks (outbox, dead-letter), quarantine.

Store layout added by routing (all keys derived from the message id, every write safe to repeat):
  routed/<customer>/<id>.json        the customer's view of the parsed JSON (what by-reference payloads name)
  outbox/<webhook-id>/<hook>.json    the exact body of a webhook, written before the first try
  outbox/<webhook-id>/<hook>.done    written after a 2xx: a redelivered message posts nothing twice
  deadletter/<webhook-id>/<hook>.json  after the last failed try: target, attempts, last error, outbox key
  quarantine/<id>.json               when a rule quarantined the message
The webhook id (idempotency key) is ``msg_<id>_<customer>_<rule>``. Publisher errors propagate (transient:
the platform redelivers the message and everything above is repeated safely).
"""

from __future__ import annotations

import base64
import json
import logging
import random
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from mailpipe.core import metrics, quarantine
from mailpipe.core.errors import ObjectNotFound
from mailpipe.core.model import dumps
from mailpipe.core.routing import projections
from mailpipe.core.routing.webhooks import Sender, WebhookTarget, deliver, http_send

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from mailpipe.core.ports import ObjectStore, Publisher
    from mailpipe.core.routing.plan import Delivery, Plan
    from mailpipe.core.routing.rules import RoutingConfig

log = logging.getLogger("mailpipe.routing")
PUBLISH_INLINE_MAX = 200 * 1024  # below the SQS 256 KiB message limit, with room for the envelope


@dataclass
class Dispatcher:
    """The I/O a plan needs. ``publisher_for(url)`` builds a Publisher (the edge passes
    providers.open_publisher); ``payloads`` are attachment bytes by storage key (else read from the store)."""

    store: ObjectStore
    publisher_for: Callable[[str], Publisher]
    payloads: Mapping[str, bytes] = field(default_factory=dict)
    send: Sender = http_send
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.time
    rand: Callable[[], float] = random.random
    _publishers: dict[str, Publisher] = field(default_factory=dict)

    def execute(self, plan: Plan, doc: dict[str, Any], config: RoutingConfig) -> list[dict[str, Any]]:
        """Quarantine if the plan says so, then every delivery once. Returns one outcome dict per delivery."""
        if plan.disposition == "quarantine":
            self._quarantine(plan, doc)
        outcomes = []
        views: dict[str, tuple[dict[str, Any], str]] = {}
        for d in plan.deliveries():
            if d.customer not in views:
                views[d.customer] = self._view(plan, doc, d.customer)
            view, ref = views[d.customer]
            cust = config.customers[d.customer]
            if d.kind == "publish":
                outcomes.append(self._publish(d, view, ref, cust.destinations[d.target]))
            else:
                outcomes.append(self._webhook(d, view, ref, cust.webhooks[d.target]))
        return outcomes

    def _view(self, plan: Plan, doc: dict[str, Any], customer: str) -> tuple[dict[str, Any], str]:
        view = plan.customer_view(doc, customer)
        ref = f"routed/{customer}/{plan.message_id}.json"
        self.store.put(ref, dumps(view), content_type="application/json")
        return view, ref

    def _publish(self, d: Delivery, view: dict[str, Any], ref: str, url: str) -> dict[str, Any]:
        if url not in self._publishers:
            self._publishers[url] = self.publisher_for(url)
        body = mailpipe_payload(view, ref, PUBLISH_INLINE_MAX)
        self._publishers[url].publish(body, key=f"{view['id']}.{d.customer}.{d.target}")
        log.info("routed", extra={"customer": d.customer, "rule": d.rule, "target": d.target})
        return {"customer": d.customer, "rule": d.rule, "action": "publish", "target": d.target,
                "status": "published"}

    def _webhook(self, d: Delivery, view: dict[str, Any], ref: str, hook: WebhookTarget) -> dict[str, Any]:
        whid = f"msg_{view['id']}_{d.customer}_{d.rule}"
        okey, done = f"outbox/{whid}/{hook.name}.json", f"outbox/{whid}/{hook.name}.done"
        out = {"customer": d.customer, "rule": d.rule, "action": "webhook", "target": d.target,
               "webhook_id": whid}
        if self.store.exists(done):
            return {**out, "status": "already_delivered"}
        body, ctype = self._outbox(okey, whid, view, ref, hook)
        res = deliver(hook, whid, body, ctype, send=self.send, sleep=self.sleep, clock=self.clock,
                      rand=self.rand)
        record = {"webhook_id": whid, "customer": d.customer, "rule": d.rule, "webhook": hook.name,
                  "url": hook.safe_url, "attempts": res.attempts, "status": res.status, "error": res.error,
                  "outbox_key": okey, "at": int(self.clock())}
        if res.ok:
            self.store.put(done, dumps(record), content_type="application/json")
            return {**out, "status": "delivered", "attempts": res.attempts}
        self.store.put(f"deadletter/{whid}/{hook.name}.json", dumps(record), content_type="application/json")
        log.warning("webhook dead-lettered", extra={"webhook_id": whid, "attempts": res.attempts,
                                                    "status": res.status})
        return {**out, "status": "dead_lettered", "attempts": res.attempts}

    def _outbox(self, okey: str, whid: str, view: dict[str, Any], ref: str,
                hook: WebhookTarget) -> tuple[bytes, str]:
        """The body stored for this webhook id, creating it once: a retry never sends a different payload."""
        try:
            saved = json.loads(self.store.get(okey))
            return base64.b64decode(saved["body"]), saved["content_type"]
        except ObjectNotFound:
            pass
        body, ctype = build_body(hook, whid, view, ref, self._content, int(self.clock()))
        record = dumps({"content_type": ctype, "body": base64.b64encode(body).decode()})
        if not self.store.put(okey, record, content_type="application/json", if_absent=True):
            return self._outbox(okey, whid, view, ref, hook)  # a concurrent run stored it first: use that one
        return body, ctype

    def _content(self, att: dict[str, Any]) -> bytes | None:
        key = att.get("key")
        if not key:
            return None
        if key in self.payloads:
            return self.payloads[key]
        try:
            return self.store.get(key)
        except ObjectNotFound:
            return None

    def _quarantine(self, plan: Plan, doc: dict[str, Any]) -> None:
        rules = sorted({f"{r.customer}/{rule}" for r in plan.routes for rule, acts in r.hits
                        if any(a.kind == "quarantine" for a in acts)})
        quarantine.put(self.store, plan.message_id, "rule", "quarantined by routing rule " + ", ".join(rules),
                       if_absent=True, raw_key=doc.get("raw_key"))


def mailpipe_payload(view: dict[str, Any], ref: str, inline_max: int) -> bytes:
    """The canonical event: the customer's parsed JSON inline if it fits ``inline_max``, else by reference."""
    event = {"type": "mail.received", "schema": "mailpipe/event@1", "id": view["id"],
             "customer": view.get("customer"), "parsed_key": ref, "tags": view.get("tags", [])}
    full = dumps({**event, "message": view})
    return full if len(full) <= inline_max else dumps({**event, "message": None})


def build_body(hook: WebhookTarget, whid: str, view: dict[str, Any], ref: str,
               content: projections.Content, now: int) -> tuple[bytes, str]:
    """(body, content type) of a webhook in the hook's format."""
    if hook.format == "postmark":
        return dumps(projections.postmark(view, content)), "application/json"
    if hook.format == "mailgun":
        form = projections.mailgun(view, content, signing_key=hook.signing_key or "", timestamp=now)
        return form.encode(whid)
    if hook.format == "sendgrid":
        return projections.sendgrid(view, content).encode(whid)
    return mailpipe_payload(view, ref, hook.inline_max), "application/json"


class Router:
    """What the pipeline holds: a validated RoutingConfig plus the Dispatcher I/O. Two calls per message::

        plan = router.plan(doc)            # pure; adds doc["routing"] and doc["tags"]
        store.put(parsed_key(mid), dumps(doc), ...)
        router.act(plan, doc, payloads)    # quarantine record, publishes, webhooks (publisher errors raise)
        if plan.disposition == "deliver": publish the default notification (with doc["tags"])
    """

    def __init__(self, config: RoutingConfig, dispatcher: Dispatcher) -> None:
        self.config, self.dispatcher = config, dispatcher

    def plan(self, doc: dict[str, Any]) -> Plan:
        from mailpipe.core.routing.plan import plan

        p = plan(doc, self.config)
        p.annotate(doc)
        return p

    def act(self, plan: Plan, doc: dict[str, Any], payloads: Mapping[str, bytes]) -> list[dict[str, Any]]:
        # a per-call copy (sharing the publisher cache) keeps concurrent messages' payloads apart
        results = replace(self.dispatcher, payloads=payloads).execute(plan, doc, self.config)
        for r in results:
            metrics.inc("mailpipe_routing_deliveries_total", action=str(r.get("action")), status=str(r.get("status")))
        return results
