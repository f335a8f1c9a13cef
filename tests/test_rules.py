"""Routing rules: conditions, actions, validation errors with file:line, and per-customer isolation.

Messages are parsed by the real mailpipe.core.mime.parser; destinations are real queues (memory:// and file:// through
providers.open_publisher) and webhooks go to a real HTTP receiver.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from routing_mail import SECRET, Receiver, parsed

from mailpipe.core.errors import ConfigError
from mailpipe.core.routing.dispatch import Dispatcher
from mailpipe.core.routing.load import load_text
from mailpipe.core.routing.plan import plan
from mailpipe.core.routing.rules import load_config
from mailpipe.handlers.compose import load_rules, router
from mailpipe.providers import open_publisher
from mailpipe.providers.local.memory import MemoryQueue, MemoryStore
from mailpipe.providers.yaml.rules import read

ROOT = Path(__file__).resolve().parent.parent
ENRICHED = {
    "malware": {"status": "ok", "result": {"verdict": "clean"}},
    "language": {"status": "ok", "result": {"language": "de"}},
    "sentiment": {"status": "ok", "result": {"compound": -0.7}},
    "ocr": {"status": "ok", "result": {"invoice": {"number": "42"}}},
    "autoreply": {"status": "ok", "result": {"autoreply": False}},
    "bounce": {"status": "ok", "result": {"bounce": False}},
}


def _one(when: dict[str, Any], rcpt: str = "billing+inv@acme.example", **kw: Any) -> list[dict[str, Any]]:
    """Route a message to ``rcpt`` through one rule; return its routing records."""
    config = load_config(
        {
            "customers": {
                "acme": {
                    "domains": ["acme.example"],
                    "rules": [{"name": "r", "when": when, "actions": [{"tag": "hit"}]}],
                }
            }
        }
    )
    doc, _ = parsed(rcpts=(rcpt,), enrichments=ENRICHED, **kw)
    p = plan(doc, config)
    p.annotate(doc)
    return doc["routing"]


@pytest.mark.parametrize(
    ("when", "hit"),
    [
        ({"recipient": "billing+inv@acme.example"}, True),
        ({"recipient": "BILLING+INV@acme.example"}, True),
        ({"recipient": "bob@globex.example"}, False),  # in To:, not in the envelope
        ({"recipient_domain": ["other.example", "acme.example"]}, True),
        ({"recipient_regex": r"^billing\+"}, True),
        ({"tag": "inv"}, True),
        ({"tag": True}, True),
        ({"tag": "other"}, False),
        ({"sender": "bounces+x@pay.example"}, True),
        ({"sender": "alice@pay.example"}, False),
        ({"sender_domain": "pay.example"}, True),
        ({"sender_regex": "^bounces"}, True),
        ({"header": {"name": "x-priority", "equals": "1"}}, True),
        ({"header": {"name": "X-Priority", "regex": "^[23]"}}, False),
        ({"header": {"name": "List-Id", "exists": False}}, True),
        ({"subject": r"(?i)invoice \d+"}, True),
        ({"subject": "^Re:"}, False),
        ({"attachment_type": "application/pdf"}, True),
        ({"attachment_type": "image/*"}, True),
        ({"attachment_type": "application/zip"}, False),
        ({"attachment_name": "*.PDF"}, True),
        ({"attachment_name": "*.exe"}, False),
        ({"attachment_count": 2}, True),
        ({"attachment_count": {"min": 3}}, False),
        ({"attachment_size": {"max": 1000}}, True),
        ({"attachment_size": {"min": 100000}}, False),
        ({"malware": "clean"}, True),
        ({"malware": "infected"}, False),
        ({"language": ["en", "de"]}, True),
        ({"sentiment": {"max": -0.5}}, True),
        ({"sentiment": {"min": 0}}, False),
        ({"invoice": True}, True),
        ({"autoreply": True}, False),
        ({"bounce": False}, True),
        ({"enrichment": {"path": "ocr.result.invoice.number", "equals": "42"}}, True),
        ({"enrichment": {"path": "nope.result.x", "exists": True}}, False),
        ({"all": [{"tag": "inv"}, {"malware": "clean"}]}, True),
        ({"any": [{"tag": "x"}, {"subject": "Invoice"}]}, True),
        ({"not": {"malware": "clean"}}, False),
        ({"tag": "inv", "sender_domain": "elsewhere.example"}, False),  # several keys: all of them
    ],
)
def test_condition(when: dict[str, Any], hit: bool) -> None:
    records = _one(when)
    assert (records[0]["rule"] == "r") is hit, records


def test_recipient_comes_from_the_envelope_never_the_to_header() -> None:
    # To: says billing+inv@acme.example and bob@globex.example; the envelope says only this one.
    records = _one({"recipient_domain": "acme.example"}, rcpt="archive@acme.example")
    assert [r["recipient"] for r in records] == ["archive@acme.example"]
    assert _one({"recipient": "billing+inv@acme.example"}, rcpt="archive@acme.example")[0]["rule"] is None


def _config(extra_rules: list[dict[str, Any]] | None = None, **hooks: str) -> Any:
    env = {"ACME_SECRET": SECRET, "GLOBEX_SECRET": SECRET}

    def hook(url: str, name: str) -> dict[str, Any]:
        return {"url": url, "secret_env": name, "attempts": 2, "backoff": 0.01, "timeout": 2}

    return load_config(
        {
            "customers": {
                "acme": {
                    "domains": ["acme.example"],
                    "destinations": {"billing": hooks.get("acme_queue", "memory://acme-billing")},
                    "webhooks": {"app": hook(hooks.get("acme_hook", "http://127.0.0.1:9/"), "ACME_SECRET")},
                    "rules": [
                        *(extra_rules or []),
                        {
                            "name": "capture",
                            "when": {"recipient_regex": r"^(?P<box>[a-z]+)(\+|@)"},
                            "actions": [{"tag": "box-{box}"}],
                        },
                        {
                            "name": "billing",
                            "when": {"attachment_type": "application/pdf"},
                            "actions": [
                                {"tag": "invoice"},
                                {"publish": "billing"},
                                {"webhook": "app"},
                                "stop",
                            ],
                        },
                        {"name": "never", "actions": [{"tag": "after-stop"}]},
                    ],
                },
                "globex": {
                    "domains": ["globex.example"],
                    "destinations": {"inbox": hooks.get("globex_queue", "memory://globex-inbox")},
                    "webhooks": {
                        "app": hook(hooks.get("globex_hook", "http://127.0.0.1:9/"), "GLOBEX_SECRET")
                    },
                    "rules": [
                        {
                            "name": "all",
                            "actions": [{"tag": "globex"}, {"publish": "inbox"}, {"webhook": "app"}],
                        }
                    ],
                },
            }
        },
        env,
    )


def test_multi_customer_message_is_routed_per_recipient_and_isolated(tmp_path: Path) -> None:
    rcpts = ("billing+inv@acme.example", "bob@globex.example", "stranger@unknown.example")
    doc, payloads = parsed(rcpts=rcpts)
    acme_q, globex_q = f"file://{tmp_path}/acme-q", f"memory://globex-{tmp_path.name}"
    store = MemoryStore(f"iso-{tmp_path.name}")
    with Receiver([]) as acme_rx, Receiver([]) as globex_rx:
        config = _config(
            acme_queue=acme_q, globex_queue=globex_q, acme_hook=acme_rx.url, globex_hook=globex_rx.url
        )
        p = plan(doc, config)
        p.annotate(doc)
        outcomes = Dispatcher(store, open_publisher, payloads).execute(p, doc, config)
    assert sorted((o["customer"], o["action"], o["status"]) for o in outcomes) == [
        ("acme", "publish", "published"),
        ("acme", "webhook", "delivered"),
        ("globex", "publish", "published"),
        ("globex", "webhook", "delivered"),
    ]
    # the parsed JSON records everything: who matched what, what was planned, and all tags
    assert doc["tags"] == ["box-billing", "globex", "invoice"]
    assert [(r["recipient"], r["customer"], r["rule"]) for r in doc["routing"]] == [
        ("billing+inv@acme.example", "acme", "capture"),
        ("billing+inv@acme.example", "acme", "billing"),
        ("bob@globex.example", "globex", "all"),
        ("stranger@unknown.example", None, None),
    ]
    acme_files = list((tmp_path / "acme-q").iterdir())
    received = {
        "acme": [json.loads(f.read_bytes()) for f in acme_files]
        + [json.loads(r["body"]) for r in acme_rx.requests],
        "globex": [json.loads(b) for b in MemoryQueue(globex_q[len("memory://") :]).messages.values()]
        + [json.loads(r["body"]) for r in globex_rx.requests],
    }
    for customer, events in received.items():
        assert len(events) == 2, customer
        for event in events:
            m = event["message"]
            assert event["customer"] == m["customer"] == customer
            assert all(r["customer"] == customer for r in m["routing"])
            others = {"acme": "globex", "globex": "acme"}[customer]
            assert others not in json.dumps(m["envelope"]) and "unknown.example" not in json.dumps(
                m["envelope"]
            )
            assert not any(others in t for t in m["tags"])
    assert received["acme"][0]["message"]["envelope"]["rcpt_to"] == ["billing+inv@acme.example"]
    assert received["globex"][0]["message"]["tags"] == ["globex"]


def test_quarantine_cancels_deliveries_and_stop_ends_evaluation(memory_url: str) -> None:
    doc, payloads = parsed(
        rcpts=("billing@acme.example",),
        enrichments={"malware": {"status": "ok", "result": {"verdict": "infected"}}},
    )
    rules = [
        {
            "name": "late-quarantine-is-still-safe",
            "when": {"subject": "Invoice"},
            "actions": [{"publish": "billing"}],
        },
        {"name": "malware", "when": {"malware": "infected"}, "actions": [{"quarantine": "virus"}, "stop"]},
    ]
    config = _config(rules)
    p = plan(doc, config)
    p.annotate(doc)
    assert p.disposition == "quarantine"
    assert [r["rule"] for r in doc["routing"]] == ["late-quarantine-is-still-safe", "malware"]
    assert doc["routing"][0]["actions"] == [{"action": "publish", "status": "cancelled", "target": "billing"}]
    store = MemoryStore.from_url(memory_url)
    assert Dispatcher(store, open_publisher, payloads).execute(p, doc, config) == []
    record = json.loads(store.get(f"quarantine/{doc['id']}.json"))
    assert record["reason"] == "rule" and "acme/malware" in record["detail"]


def test_drop_and_stop() -> None:
    doc, _ = parsed(rcpts=("billing@acme.example",))
    p = plan(doc, _config([{"name": "drop-all", "actions": ["drop", "stop"]}]))
    p.annotate(doc)
    assert p.disposition == "drop" and p.deliveries() == []
    assert [r["rule"] for r in doc["routing"]] == ["drop-all"] and doc["tags"] == []


def test_example_rules_file_is_valid() -> None:
    env = {"ACME_HELPDESK_WEBHOOK_SECRET": SECRET, "ACME_CRM_WEBHOOK_SECRET": SECRET}
    config = load_rules(str(ROOT / "rules" / "acme.yml"), env)
    acme = config.customers["acme"]
    assert [r.name for r in acme.rules] == ["malware", "auto-replies", "invoices", "support-team", "unhappy"]
    doc, _ = parsed(rcpts=("sales@support.acme.example", "x+invoice@in.acme.example"))
    p = plan(doc, config)
    assert p.tags() == ["invoice", "team-sales"]
    assert {(d.rule, d.kind, d.target) for d in p.deliveries()} == {
        ("support-team", "webhook", "helpdesk"),
        ("support-team", "publish", "support"),
        ("invoices", "publish", "billing"),
    }


GOOD = """\
customers:
  acme:
    domains: [acme.example]
    destinations: {billing: memory://b}
    webhooks:
      app: {url: 'https://app.example/hook', secret_env: APP_SECRET}
    rules:
      - name: ok
        when: {subject: invoice}
        actions: [{publish: billing}]
  globex:
    domains: [globex.example]
    destinations: {inbox: memory://g}
    rules: []
"""


@pytest.mark.parametrize(
    ("old", "new", "line", "field"),
    [
        (
            "when: {subject: invoice}",
            "when: {subject: '(unclosed'}",
            9,
            "customers.acme.rules[0].when.subject",
        ),
        ("when: {subject: invoice}", "when: {subjet: invoice}", 9, "customers.acme.rules[0].when.subjet"),
        (
            "actions: [{publish: billing}]",
            "actions: [{publish: inbox}]",
            10,
            "customers.acme.rules[0].actions[0]",
        ),
        ("actions: [{publish: billing}]", "actions: [{forward: billing}]", 10, "rules[0].actions[0].forward"),
        ("secret_env: APP_SECRET", "secret_env: NOT_SET", 6, "customers.acme.webhooks.app.secret_env"),
        ("secret_env: APP_SECRET", "secret: 'hunter2'", 6, "customers.acme.webhooks.app.secret"),
        ("      - name: ok", "      - name: Bad Name", 8, "customers.acme.rules[0].name"),
        ("[globex.example]", "[acme.example]", 12, "customers.globex.domains"),
        ("when: {subject: invoice}", "when: {attachment_size: {max: big}}", 9, "when.attachment_size"),
        ("when: {subject: invoice}", "when: {any: []}", 9, "customers.acme.rules[0].when.any"),
        ("    rules: []", "    rules: []\n    rules: []", 15, "customers.globex"),
        ("    rules: []", "    rules: [", 15, "YAML error"),
    ],
)
def test_bad_rules_fail_with_line_and_field(old: str, new: str, line: int, field: str) -> None:
    text = GOOD.replace(old, new)
    assert text != GOOD
    with pytest.raises(ConfigError) as err:
        load_text(text, source="rules/acme.yml", reader=read, env={"APP_SECRET": SECRET})
    message = str(err.value)
    assert message.startswith(f"rules/acme.yml:{line}:"), message
    assert field in message
    assert "hunter2" not in message and SECRET not in message


def test_good_rules_load() -> None:
    config = load_text(GOOD, source="<rules>", reader=read, env={"APP_SECRET": SECRET})
    assert set(config.customers) == {"acme", "globex"}
    assert config.customer_for("X@ACME.example") is config.customers["acme"]


def test_router_from_a_rules_file_as_the_pipeline_uses_it(tmp_path: Path, memory_url: str) -> None:
    rules = tmp_path / "stage.yml"
    rules.write_text(
        "customers:\n"
        "  acme:\n"
        "    domains: [acme.example]\n"
        f"    destinations: {{billing: 'file://{tmp_path}/billing'}}\n"
        "    rules:\n"
        "      - {name: pdf, when: {attachment_name: '*.pdf'}, actions: [{tag: pdf}, {publish: billing}]}\n"
    )
    router_ = router(str(rules), MemoryStore.from_url(memory_url), env={})
    assert router_ is not None
    doc, payloads = parsed(rcpts=("billing@acme.example",))
    p = router_.plan(doc)
    assert doc["tags"] == ["pdf"] and p.disposition == "deliver"
    assert router_.act(p, doc, payloads)[0]["status"] == "published"
    (event_file,) = (tmp_path / "billing").iterdir()
    event = json.loads(event_file.read_bytes())
    assert event["id"] == doc["id"] and event["tags"] == ["pdf"]
    assert event["message"]["subject"] == doc["subject"]


def test_router_refuses_an_unknown_queue_scheme(tmp_path: Path, memory_url: str) -> None:
    rules = tmp_path / "stage.yml"
    rules.write_text(GOOD.replace("memory://b", "kafka://topic"))
    with pytest.raises(ConfigError, match=r"customers.acme.destinations.billing: unknown queue scheme"):
        store = MemoryStore.from_url(memory_url)
        router(str(rules), store, env={"APP_SECRET": SECRET})


@pytest.mark.parametrize(
    ("headers", "sender", "autoreply", "bounce"),
    [
        ("Auto-Submitted: auto-replied\n", "alice@pay.example", True, False),
        ("Auto-Submitted: no\n", "alice@pay.example", False, False),
        ("X-Autoreply: yes\n", "alice@pay.example", True, False),
        ("Precedence: auto_reply\n", "", True, False),
        ("Content-Type: multipart/report; report-type=delivery-status; boundary=b\n", "", False, True),
        ("", "", False, False),  # a null sender alone is not a bounce
    ],
)
def test_autoreply_and_bounce_without_their_enrichers(
    headers: str, sender: str, autoreply: bool, bounce: bool
) -> None:
    frm = "MAILER-DAEMON@mx.pay.example" if "report" in headers else "alice@pay.example"
    raw = f"From: {frm}\nTo: a@acme.example\nSubject: x\n{headers}\n--b\n\nbody\n--b--\n".encode()
    config = load_config(
        {
            "customers": {
                "acme": {
                    "domains": ["acme.example"],
                    "rules": [
                        {"name": "auto", "when": {"autoreply": True}, "actions": [{"tag": "auto"}]},
                        {"name": "bounce", "when": {"bounce": True}, "actions": [{"tag": "bounce"}]},
                    ],
                }
            }
        }
    )
    doc, _ = parsed(raw, rcpts=("a@acme.example",), sender=sender)
    assert plan(doc, config).tags() == [t for t, on in (("auto", autoreply), ("bounce", bounce)) if on]


def test_enricher_verdict_wins_over_headers() -> None:
    raw = b"From: a@pay.example\nTo: a@acme.example\nAuto-Submitted: auto-generated\n\nbody\n"
    doc, _ = parsed(
        raw, rcpts=("a@acme.example",), enrichments={"autoreply": {"result": {"autoreply": False}}}
    )
    assert _route_tags(doc, {"autoreply": True}) == []


def _route_tags(doc: dict[str, Any], when: dict[str, Any]) -> list[str]:
    config = load_config(
        {
            "customers": {
                "acme": {
                    "domains": ["acme.example"],
                    "rules": [{"name": "r", "when": when, "actions": [{"tag": "hit"}]}],
                }
            }
        }
    )
    return plan(doc, config).tags()


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
EVERY_LEAF = [
    {"recipient": "a@acme.example"},
    {"recipient_domain": "acme.example"},
    {"recipient_regex": "(?P<x>.)"},
    {"tag": True},
    {"sender": "x@y"},
    {"sender_domain": "y"},
    {"sender_regex": "."},
    {"header": {"name": "subject", "regex": "."}},
    {"header": {"name": "x", "in": [1, "a"]}},
    {"subject": "."},
    {"attachment_type": "*"},
    {"attachment_name": "*.pdf"},
    {"attachment_count": {"min": 1}},
    {"attachment_size": {"max": 10}},
    {"malware": "infected"},
    {"language": "en"},
    {"sentiment": {"min": 0}},
    {"invoice": True},
    {"autoreply": True},
    {"bounce": True},
    {"enrichment": {"path": "malware.result", "regex": "x"}},
    {"enrichment": {"path": "a.b", "min": 0, "max": 1}},
]


@settings(max_examples=150, deadline=None)
@given(raw=st.binary(max_size=600), enrichments=st.dictionaries(st.sampled_from(list(ENRICHED)), JSON))
def test_no_message_or_enrichment_shape_makes_routing_raise(raw: bytes, enrichments: dict[str, Any]) -> None:
    config = load_config(
        {
            "customers": {
                "acme": {
                    "domains": ["acme.example"],
                    "rules": [
                        {"name": f"r{i}", "when": {"not": leaf}, "actions": [{"tag": "t-{x}"}]}
                        for i, leaf in enumerate(EVERY_LEAF)
                    ],
                }
            }
        }
    )
    doc, _ = parsed(raw, rcpts=("a+b@acme.example", "x@nowhere.example"), enrichments=enrichments or None)
    p = plan(doc, config)
    p.annotate(doc)
    assert [r["recipient"] for r in doc["routing"]][-1] == "x@nowhere.example"


def test_one_loader_for_yaml_and_json(tmp_path: Path) -> None:
    """The composition root reads a rules file in either spelling: the YAML a user writes and the JSON the
    deploy tooling compiles it to give the same configuration (`mailpipe serve --rules x.json` works too)."""
    import yaml

    env = {"APP_SECRET": SECRET}
    (tmp_path / "r.yml").write_text(GOOD)
    (tmp_path / "r.json").write_text(json.dumps(yaml.safe_load(GOOD)))
    from_yaml, from_json = (load_rules(str(tmp_path / n), env) for n in ("r.yml", "r.json"))
    assert set(from_json.customers) == {"acme", "globex"}
    for name, cust in from_yaml.customers.items():
        twin = from_json.customers[name]
        assert (twin.domains, twin.destinations, twin.webhooks) == (cust.domains, cust.destinations, cust.webhooks)
        assert [r.name for r in twin.rules] == [r.name for r in cust.rules]
    doc, _ = parsed(rcpts=("x@acme.example",))
    assert plan(doc, from_yaml).deliveries() == plan(doc, from_json).deliveries()
    (tmp_path / "bad.json").write_text('{"customers": {"acme": {"domains": [], "rules": []}}}')
    with pytest.raises(ConfigError, match=r"^.*bad\.json: customers\.acme\.domains: "):
        load_rules(str(tmp_path / "bad.json"), env)
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ConfigError, match=r"broken\.json: cannot read routing rules"):
        load_rules(str(tmp_path / "broken.json"), env)



def test_a_merge_key_may_be_overridden_and_keeps_its_lines() -> None:
    """``<<: *defaults`` then an explicit key: YAML's override, not a duplicate (stages.yml does it)."""
    doc, lines = read("a: &x {k: 1, j: 2}\nb:\n  <<: *x\n  k: 3\n", "t.yml")
    assert doc == {"a": {"k": 1, "j": 2}, "b": {"k": 3, "j": 2}}
    assert lines[("b", "k")] == 4 and lines[("b", "j")] == 1
    with pytest.raises(ConfigError, match=r"t\.yml:4: b: duplicate key 'k'"):
        read("a: 1\nb:\n  k: 1\n  k: 2\n", "t.yml")
