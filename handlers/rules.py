"""``mailpipe rules test``: what the routing rules would do with one message, without doing it.

The message is parsed (and enriched with ``--enrich``) exactly as the pipeline does, planned under the rules, and
the plan is carried out by the real dispatcher against an in-memory store, a recording publisher and a webhook
sender that records instead of posting: the output shows every matched rule, tag and disposition, and the exact
bodies that would be published and posted (signed as they would be). Nothing leaves the process.

Exit codes: 0 the report was printed (one JSON document on stdout); 1 the message could not be read; 2 bad rules
or options.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import argparse

    from mailpipe.core.ports import Publisher


class _Recorder:
    """The publishes and webhook posts of a dry run, in order."""

    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []
        self.posted: list[dict[str, Any]] = []

    def publisher_for(self, url: str) -> Publisher:
        recorder = self

        class _Publisher:
            def publish(self, body: bytes, *, key: str) -> None:
                recorder.published.append({"url": url, "key": key, "body": _show(body)})

        return _Publisher()

    def send(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        parts = urlsplit(url)
        netloc = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")  # never the credentials
        safe = parts._replace(netloc=netloc).geturl()
        self.posted.append({"url": safe, "headers": dict(sorted(headers.items())), "body": _show(body)})
        return 200


def _show(body: bytes) -> Any:
    """A body as the receiver would read it: JSON as JSON, other text as text, binary as base64."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        import base64

        return {"base64": base64.b64encode(body).decode()}
    try:
        return json.loads(text)
    except ValueError:
        return text


def command(args: argparse.Namespace) -> int:
    """The ``rules test`` verb. Raises ConfigError (exit 2) for bad rules, enrichers or options."""
    from mailpipe.core.domains import norm
    from mailpipe.core.errors import ConfigError
    from mailpipe.core.mime.parser import parse
    from mailpipe.core.model import Envelope
    from mailpipe.core.routing.dispatch import Dispatcher, Router
    from mailpipe.core.settings import Settings
    from mailpipe.handlers.compose import load_rules
    from mailpipe.providers.local.memory import MemoryStore
    from mailpipe.providers.yaml.stages import _PlaceholderSecrets

    env = _PlaceholderSecrets(os.environ) if args.placeholder_secrets else None
    config = load_rules(args.rules, env)
    try:
        raw = sys.stdin.buffer.read() if args.message == "-" else Path(args.message).read_bytes()
    except OSError as exc:
        print(f"mailpipe rules test: cannot read {args.message}: {exc.strerror}", file=sys.stderr)
        return 1
    rcpts = tuple(args.rcpt or ())
    if not rcpts:
        raise ConfigError("rules test needs the envelope recipients: --rcpt ADDRESS (repeatable)")
    if any("@" not in r or not norm(r.rpartition("@")[2]) for r in rcpts):
        raise ConfigError(f"--rcpt takes addresses (local@domain), got {list(rcpts)}")
    result = parse(raw, limits=Settings.from_env().limits, envelope=Envelope(args.mail_from, rcpts))
    doc = result.message.to_dict()
    if args.enrich:
        from mailpipe.core.enrich.registry import parse_names
        from mailpipe.core.enrich.run import run_enrichers

        doc["enrichments"] = run_enrichers(doc, result.payloads, raw, parse_names(args.enrich), {})
    recorder = _Recorder()
    store = MemoryStore.from_url(f"memory://rules-test-{uuid.uuid4().hex}")
    dispatcher = Dispatcher(store, recorder.publisher_for, send=recorder.send, sleep=lambda _s: None)
    router = Router(config, dispatcher)
    plan = router.plan(doc)
    dry = {"published": "would_publish", "delivered": "would_post"}
    outcomes = [{**o, "status": dry.get(o["status"], o["status"])} for o in router.act(plan, doc, result.payloads)]
    report = {
        "id": doc["id"], "disposition": plan.disposition, "tags": doc.get("tags", []),
        "routing": doc.get("routing"), "outcomes": outcomes, "published": recorder.published,
        "webhooks": recorder.posted, "quarantined": plan.disposition == "quarantine",
    }  # fmt: skip
    sys.stdout.write(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``rules test`` on the ``mailpipe`` command line."""
    rp = sub.add_parser("rules", help="routing rules tools")
    verbs = rp.add_subparsers(dest="rules_command", required=True)
    tp = verbs.add_parser("test", help="what the rules would do with a message (nothing is sent)")
    tp.add_argument("message", metavar="MESSAGE.eml", help="an RFC 5322 message file ('-' for stdin)")
    tp.add_argument("--rules", required=True, help="routing rules file (YAML or compiled JSON)")
    tp.add_argument("--rcpt", action="append", metavar="ADDRESS", help="an envelope recipient (repeatable)")
    tp.add_argument("--mail-from", default="", metavar="ADDRESS", help="the envelope sender (default <>)")
    tp.add_argument("--enrich", metavar="NAME,...", help="run these enrichers first (rules may test verdicts)")
    tp.add_argument("--placeholder-secrets", action="store_true",
                    help="sign with a placeholder where a secret_env variable is unset (bodies stay exact)")
    tp.set_defaults(func=command)
