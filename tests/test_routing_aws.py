"""Routing to ``sqs://`` destinations through the real registry (providers.open_publisher) and moto SQS."""

from __future__ import annotations

import json

import pytest
from emulators_aws import *  # noqa: F403 - the moto fixtures
from emulators_aws import receive_all
from routing_mail import parsed

from mailpipe.core.routing.dispatch import Dispatcher
from mailpipe.core.routing.plan import plan
from mailpipe.core.routing.rules import load_config
from mailpipe.providers import open_publisher
from mailpipe.providers.local.memory import MemoryStore

pytestmark = pytest.mark.emulator


def test_each_customer_publishes_to_its_own_sqs_queue(queue_url: str, memory_url: str) -> None:
    from emulators_aws import client

    other_url = str(client("sqs").create_queue(QueueName=queue_url.rsplit("/", 1)[1] + "-g")["QueueUrl"])
    config = load_config(
        {
            "customers": {
                c: {
                    "domains": [f"{c}.example"],
                    "destinations": {"q": f"sqs://{url.rsplit('/', 1)[1]}"},
                    "rules": [{"name": "all", "actions": [{"tag": c}, {"publish": "q"}]}],
                }
                for c, url in (("acme", queue_url), ("globex", other_url))
            }
        }
    )
    doc, payloads = parsed(rcpts=("billing+inv@acme.example", "bob@globex.example"))
    p = plan(doc, config)
    p.annotate(doc)
    outcomes = Dispatcher(MemoryStore.from_url(memory_url), open_publisher, payloads).execute(p, doc, config)
    assert [o["status"] for o in outcomes] == ["published", "published"]
    for url, customer in ((queue_url, "acme"), (other_url, "globex")):
        (msg,) = receive_all(url, expect=1)
        event = json.loads(msg["Body"])
        assert event["customer"] == customer and event["tags"] == [customer]
        assert all(r.endswith(f"@{customer}.example") for r in event["message"]["envelope"]["rcpt_to"])
