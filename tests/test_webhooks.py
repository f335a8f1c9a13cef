"""Signed webhook delivery against a real HTTP receiver on a free loopback port.

The receiver verifies every Standard Webhooks signature and follows a script (5xx, a hang past the client
timeout, a dropped connection, 4xx, 2xx), so retries, backoff, dead-letters and idempotent redelivery are
proven over real sockets. Backoff is made tiny through the webhook config (no fake clock).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import socket
import time
from typing import TYPE_CHECKING, Any

import pytest
from routing_mail import SECRET, Receiver, parsed

from mailpipe.core.log import JsonFormatter
from mailpipe.core.routing.dispatch import Dispatcher
from mailpipe.core.routing.plan import plan
from mailpipe.core.routing.rules import load_config
from mailpipe.core.routing.webhooks import WebhookTarget, backoff_delay, deliver, sign, verify
from mailpipe.handlers.cli import main as cli_main
from mailpipe.providers.local.memory import MemoryStore
from mailpipe.providers.local.store import FolderStore

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def closed_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]  # bound, never listening: connections are refused


def target(url: str, **kw: Any) -> WebhookTarget:
    opts: dict[str, Any] = {"timeout": 0.3, "attempts": 4, "backoff": 0.02, "backoff_max": 0.05, **kw}
    return WebhookTarget(name="app", url=url, secret=SECRET, **opts)


def test_standard_webhooks_reference_vector() -> None:
    """The example from the Standard Webhooks spec / reference libraries."""
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    sig = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert sig == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert verify(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", f"v0,xx {sig}", body, now=1614265331)
    assert not verify(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", sig, body + b" ", now=1614265331)
    assert not verify(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", sig, body, now=1614265330 + 301)


def test_retries_5xx_hang_drop_and_garbage_then_succeeds() -> None:
    with Receiver([500, "hang", "drop", "garbage", 200]) as rx:
        res = deliver(target(rx.url, attempts=5), "msg_1", b'{"a":1}', "application/json")
    assert res.ok and res.attempts == 5 and res.status == 200
    assert len(rx.requests) == 5
    assert all(r["valid"] for r in rx.requests)  # every attempt freshly and correctly signed
    assert {r["headers"]["webhook-id"] for r in rx.requests} == {"msg_1"}
    assert {r["body"] for r in rx.requests} == {b'{"a":1}'}
    # exponential backoff with equal jitter: retry n waits in [b*2^(n-1)/2, b*2^(n-1)], capped at backoff_max
    for n, d in enumerate(res.delays, start=1):
        base = min(0.05, 0.02 * 2 ** (n - 1))
        assert base / 2 <= d <= base
    gaps = [b["at"] - a["at"] for a, b in zip(rx.requests, rx.requests[1:], strict=False)]
    assert all(g >= d for g, d in zip(gaps, res.delays, strict=True))


def test_backoff_is_exponential_capped_and_jittered() -> None:
    t = target("http://x", backoff=1.0, backoff_max=8.0)
    assert [backoff_delay(t, n, lambda: 1.0) for n in range(1, 6)] == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert [backoff_delay(t, n, lambda: 0.0) for n in range(1, 4)] == [0.5, 1.0, 2.0]


def test_client_errors_are_not_retried() -> None:
    with Receiver([400]) as rx:
        res = deliver(target(rx.url), "msg_2", b"{}", "application/json")
    assert not res.ok and res.attempts == 1 and res.status == 400


def test_receiver_rejects_a_wrong_secret() -> None:
    other = "whsec_" + base64.b64encode(b"another-secret-key-32-bytes-long").decode()
    with Receiver([], secret=other) as rx:
        res = deliver(target(rx.url), "msg_3", b"{}", "application/json")
    assert rx.requests and not rx.requests[0]["valid"] and res.status == 401 and res.attempts == 1


def _config(url: str, fmt: str = "mailpipe") -> Any:
    hook = {
        "url": url,
        "secret_env": "HOOK_SECRET",
        "format": fmt,
        "timeout": 0.3,
        "attempts": 3,
        "backoff": 0.01,
        "backoff_max": 0.02,
    }
    return load_config(
        {
            "customers": {
                "acme": {
                    "domains": ["acme.example"],
                    "webhooks": {"app": hook},
                    "rules": [{"name": "all-mail", "actions": [{"webhook": "app"}]}],
                }
            }
        },
        {"HOOK_SECRET": SECRET},
    )


def _run(config: Any, store: MemoryStore) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    doc, payloads = parsed(rcpts=("billing@acme.example",))
    p = plan(doc, config)
    p.annotate(doc)
    return Dispatcher(store, publisher_for=lambda u: None, payloads=payloads).execute(p, doc, config), doc  # type: ignore[arg-type,return-value]


def test_refused_connection_dead_letters_and_loses_nothing(closed_port: int, memory_url: str) -> None:
    store = MemoryStore.from_url(memory_url)
    outcomes, doc = _run(_config(f"http://127.0.0.1:{closed_port}/hook"), store)
    assert [(o["status"], o["attempts"]) for o in outcomes] == [("dead_lettered", 3)]
    whid = f"msg_{doc['id']}_acme_all-mail"
    dead = json.loads(store.get(f"deadletter/{whid}/app.json"))
    assert dead["webhook_id"] == whid and dead["attempts"] == 3 and "refused" in dead["error"].lower()
    outbox = json.loads(store.get(dead["outbox_key"]))  # the exact body is kept for a replay
    event = json.loads(base64.b64decode(outbox["body"]))
    assert event["id"] == doc["id"] and event["message"]["subject"] == doc["subject"]
    assert event["parsed_key"] == f"routed/acme/{doc['id']}.json" and store.exists(event["parsed_key"])


def test_redelivery_posts_the_same_payload_once(closed_port: int, memory_url: str) -> None:
    store = MemoryStore.from_url(memory_url)
    _run(_config(f"http://127.0.0.1:{closed_port}/hook"), store)  # first run: receiver down, dead-lettered
    with Receiver([503]) as rx:
        # the message is redelivered after the receiver came back and the format was even changed:
        outcomes, _ = _run(_config(rx.url, fmt="postmark"), store)
        again, _ = _run(_config(rx.url), store)
    assert [o["status"] for o in outcomes] == ["delivered"] and outcomes[0]["attempts"] == 2
    assert [o["status"] for o in again] == ["already_delivered"]
    assert len(rx.requests) == 2 and rx.requests[0]["body"] == rx.requests[1]["body"]
    assert json.loads(rx.requests[0]["body"])["type"] == "mail.received"  # the stored (first) payload
    assert len({r["headers"]["webhook-id"] for r in rx.requests}) == 1


def test_secrets_never_logged_nor_recorded(closed_port: int, memory_url: str) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    old = root.level
    root.setLevel(logging.DEBUG)
    try:
        store = MemoryStore.from_url(memory_url)
        config = _config(f"http://user:pa55word@127.0.0.1:{closed_port}/hook")
        _run(config, store)
    finally:
        root.removeHandler(handler)
        root.setLevel(old)
    dead = b"".join(store.get(k) for k in store.list("deadletter/"))
    for text in (stream.getvalue(), dead.decode(), repr(config)):
        assert SECRET not in text and SECRET[6:] not in text and "pa55word" not in text
    assert "webhook attempt" in stream.getvalue()


def test_webhook_verify_cli(tmp_path: Any, capsys: Any) -> None:
    body = tmp_path / "body.json"
    body.write_bytes(b'{"hello":"world"}')
    ts = str(int(time.time()))
    sig = sign(SECRET, "msg_cli", int(ts), body.read_bytes())
    args = ["webhook-verify", "--secret", SECRET, "--id", "msg_cli", "--timestamp", ts, "--body", str(body)]
    assert cli_main([*args, "--signature", sig]) == 0
    assert cli_main([*args, "--signature", "v1,AAAA"]) == 1


def test_dead_letters_are_replayed_once_the_receiver_is_back(
    closed_port: int, tmp_path: Any, capsysbinary: Any
) -> None:
    store_url = f"file://{tmp_path}/store"
    store = FolderStore.from_url(store_url)
    _run(_config(f"http://127.0.0.1:{closed_port}/hook"), store)  # type: ignore[arg-type]
    (dead_key,) = store.list("deadletter/")
    with Receiver([]) as rx:
        rules = tmp_path / "rules.yml"
        rules.write_text(
            json.dumps(
                {
                    "customers": {
                        "acme": {
                            "domains": ["acme.example"],
                            "webhooks": {"app": {"url": rx.url, "secret_env": "HOOK_SECRET"}},
                            "rules": [{"name": "all-mail", "actions": [{"webhook": "app"}]}],
                        }
                    }
                }
            )
        )  # JSON is YAML
        os.environ["HOOK_SECRET"] = SECRET
        assert cli_main(["webhook-replay", "--store", store_url, "--rules", str(rules)]) == 0
        assert cli_main(["webhook-replay", "--store", store_url, "--rules", str(rules)]) == 0  # nothing left
        outcomes, _ = _run(_config(rx.url), store)  # type: ignore[arg-type]  # the message is redelivered
    lines = capsysbinary.readouterr().out.splitlines()
    assert [json.loads(x)["status"] for x in lines] == ["delivered"]
    assert len(rx.requests) == 1 and rx.requests[0]["valid"]
    saved = json.loads(store.get(json.loads(store.get(dead_key))["outbox_key"]))
    assert rx.requests[0]["body"] == base64.b64decode(saved["body"])  # the exact stored body
    assert [o["status"] for o in outcomes] == ["already_delivered"]


def test_large_mailpipe_events_go_by_reference() -> None:
    from mailpipe.core.routing.dispatch import mailpipe_payload

    doc, _ = parsed(rcpts=("billing@acme.example",))
    view = {**doc, "customer": "acme", "tags": ["t"]}
    small = json.loads(mailpipe_payload(view, "routed/acme/x.json", 1_000_000))
    large = json.loads(mailpipe_payload(view, "routed/acme/x.json", 500))
    assert small["message"]["id"] == doc["id"]
    assert large["message"] is None and large["parsed_key"] == "routed/acme/x.json" and large["tags"] == ["t"]
