"""Compatibility projections against a real consumer: django-anymail's inbound webhook views.

A real Django app (anymail's Postmark/Mailgun/SendGrid inbound views, Basic auth + Mailgun signing key) runs
under wsgiref on a free loopback port; mailpipe's Dispatcher POSTs the projected payloads to it over HTTP, and
the test compares what anymail's ``inbound`` signal yields with the original message.
"""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest

django = pytest.importorskip("django", reason="django + django-anymail are in the dev extra")
pytest.importorskip("anymail")

from routing_mail import HTML, PDF, PNG, SECRET, SUBJECT, TEXT, parsed  # noqa: E402

from mailpipe.core.routing import projections  # noqa: E402
from mailpipe.core.routing.dispatch import Dispatcher  # noqa: E402
from mailpipe.core.routing.plan import plan  # noqa: E402
from mailpipe.core.routing.rules import load_config  # noqa: E402
from mailpipe.providers.local.memory import MemoryStore  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Iterator

MAILGUN_KEY = "key-mailgun-signing-test"
BASIC = "hook:s3cret-pass"
SENDGRID_WARNING = "ignore::anymail.exceptions.AnymailNotSupportedWarning"


def _urls() -> list[Any]:
    from anymail.webhooks.mailgun import MailgunInboundWebhookView
    from anymail.webhooks.postmark import PostmarkInboundWebhookView
    from anymail.webhooks.sendgrid import SendGridInboundWebhookView
    from django.urls import path

    return [
        path("postmark/", PostmarkInboundWebhookView.as_view()),
        path("mailgun/", MailgunInboundWebhookView.as_view()),
        path("sendgrid/", SendGridInboundWebhookView.as_view()),
    ]


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def anymail_app() -> Iterator[tuple[str, list[Any]]]:
    """(base URL with Basic-auth credentials, captured inbound events)."""
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            DEBUG=False, SECRET_KEY="test-only", ALLOWED_HOSTS=["127.0.0.1"], MIDDLEWARE=[],
            ROOT_URLCONF=__name__, INSTALLED_APPS=["anymail"], USE_TZ=True,
            ANYMAIL={"WEBHOOK_SECRET": BASIC, "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_KEY},
        )
        django.setup()
    globals()["urlpatterns"] = _urls()  # read by Django's resolver on the first request
    from anymail.signals import inbound
    from django.core.handlers.wsgi import WSGIHandler

    events: list[Any] = []

    def receiver(sender: Any, event: Any, esp_name: str, **kwargs: Any) -> None:
        events.append(event)

    inbound.connect(receiver, weak=False, dispatch_uid="mailpipe-test")
    server = make_server("127.0.0.1", 0, WSGIHandler(), handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://{BASIC}@127.0.0.1:{server.server_port}", events
    server.shutdown()
    server.server_close()
    inbound.disconnect(dispatch_uid="mailpipe-test")


urlpatterns: list[Any] = []


def _route(base: str, fmt: str, monkey_env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Route the test message through a one-rule config whose webhook has format ``fmt``."""
    env = {"ACME_HOOK_SECRET": SECRET, "ACME_MG_KEY": MAILGUN_KEY, **(monkey_env or {})}
    hook: dict[str, Any] = {"url": f"{base}/{fmt}/", "secret_env": "ACME_HOOK_SECRET", "format": fmt,
                            "attempts": 1, "timeout": 10}
    if fmt == "mailgun":
        hook["signing_key_env"] = "ACME_MG_KEY"
    config = load_config({"customers": {
        "acme": {"domains": ["acme.example"], "webhooks": {"app": hook},
                 "rules": [{"name": "to-app", "when": {"recipient_domain": "acme.example"},
                            "actions": [{"webhook": "app"}]}]},
        "globex": {"domains": ["globex.example"], "rules": []},
    }}, env)
    doc, payloads = parsed()
    p = plan(doc, config)
    p.annotate(doc)
    store = MemoryStore(f"proj-{fmt}-{id(config)}")
    return Dispatcher(store, publisher_for=lambda url: None, payloads=payloads).execute(p, doc, config)  # type: ignore[arg-type,return-value]


def _files(message: Any) -> list[tuple[str, str, bytes]]:
    return sorted(
        (part.get_filename(), part.get_content_type(), part.get_content_bytes())
        for part in message.walk() if part.get_filename()
    )


@pytest.mark.filterwarnings(SENDGRID_WARNING)
@pytest.mark.parametrize("fmt", ["postmark", "mailgun", "sendgrid"])
def test_anymail_accepts_projection(anymail_app: tuple[str, list[Any]], fmt: str) -> None:
    base, events = anymail_app
    events.clear()
    outcomes = _route(base, fmt)
    assert [o["status"] for o in outcomes] == ["delivered"], outcomes
    assert len(events) == 1
    msg = events[0].message
    assert msg.subject == SUBJECT
    assert msg.from_email.addr_spec == "alice@pay.example"
    assert [a.addr_spec for a in msg.to] == ["billing+inv@acme.example", "bob@globex.example"]
    assert [a.addr_spec for a in msg.cc] == ["carol@pay.example"]
    # The envelope: only acme's recipient reaches acme's app (globex's stays out), and the bounce sender.
    assert msg.envelope_recipient == "billing+inv@acme.example"
    assert msg.envelope_sender == "bounces+x@pay.example"
    assert msg.text.strip() == TEXT.strip()
    assert msg.html.strip() == HTML.strip()
    assert _files(msg) == sorted([("invoice 42.pdf", "application/pdf", PDF), ("logo.png", "image/png", PNG)])
    assert "logo@pay.example" in msg.content_id_map


@pytest.mark.filterwarnings(SENDGRID_WARNING)
def test_mailgun_wrong_signing_key_is_refused(anymail_app: tuple[str, list[Any]]) -> None:
    """anymail really checks the Mailgun signature: a wrong key gets a 400, no retry, a dead-letter."""
    base, events = anymail_app
    events.clear()
    outcomes = _route(base, "mailgun", {"ACME_MG_KEY": "key-wrong"})
    assert [o["status"] for o in outcomes] == ["dead_lettered"]
    assert outcomes[0]["attempts"] == 1
    assert events == []


def test_projection_shapes_are_deterministic() -> None:
    doc, payloads = parsed()
    view = dict(doc, envelope={**doc["envelope"], "rcpt_to": ["billing+inv@acme.example"]})
    pm = projections.postmark(view, lambda a: payloads.get(a["key"]))
    assert pm["OriginalRecipient"] == "billing+inv@acme.example" and pm["MailboxHash"] == "inv"
    assert pm["Headers"][0] == {"Name": "Return-Path", "Value": "<bounces+x@pay.example>"}
    assert not any(h["Name"].lower() in ("subject", "content-type") for h in pm["Headers"][1:])
    content = lambda a: payloads.get(a["key"])  # noqa: E731
    mg = projections.mailgun(view, content, signing_key=MAILGUN_KEY, timestamp=1700000000)
    fields = dict(mg.fields)
    assert fields["signature"] == projections.mailgun_signature(MAILGUN_KEY, "1700000000", fields["token"])
    assert mg.encode("seed") == mg.encode("seed")
    sg = projections.sendgrid(view, lambda a: payloads.get(a["key"])).to_json()
    envelope = json.loads(dict(sg["fields"])["envelope"])
    assert envelope == {"to": ["billing+inv@acme.example"], "from": "bounces+x@pay.example"}
    assert [f["name"] for f in sg["files"]] == ["attachment1", "attachment2"]


@pytest.mark.parametrize("fmt", ["mailpipe", "postmark", "mailgun", "sendgrid"])
def test_cli_parse_prints_the_projection(fmt: str, tmp_path: Any, capsysbinary: Any) -> None:
    from routing_mail import raw_message

    from mailpipe.handlers.cli import main

    eml = tmp_path / "m.eml"
    eml.write_bytes(raw_message())
    assert main(["parse", str(eml), "--format", fmt]) == 0
    out = json.loads(capsysbinary.readouterr().out)
    if fmt == "mailpipe":
        assert out["subject"] == SUBJECT
    elif fmt == "postmark":
        assert out["Subject"] == SUBJECT
        assert {a["Name"] for a in out["Attachments"]} == {"logo.png", "invoice 42.pdf"}
    else:
        fields = dict(out["fields"])
        assert (fields.get("subject") or "") == SUBJECT
        assert sorted(f["filename"] for f in out["files"]) == ["invoice 42.pdf", "logo.png"]
