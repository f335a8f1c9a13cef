"""The ``mailpipe`` command line: ``parse`` one or more messages, ``serve`` the local pipeline, ``edge`` the
SMTP edge alone (a store per recipient domain), ``check`` the configuration, ``rules test`` a message against the
rules, ``backfill`` an archive, ``replay`` stored mail through this code again, ``dlq`` quarantined mail,
``webhook-verify`` a signed webhook, ``webhook-replay`` dead-lettered ones (docs/rules.md).

Exit codes: 0 success; 1 an input could not be read (webhook-verify: invalid signature); 2 bad usage or
configuration.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailpipe.handlers import backfill, check, dlq, edge, replay, rules

if TYPE_CHECKING:
    from collections.abc import Sequence


def _parse_cmd(args: argparse.Namespace) -> int:
    from mailpipe.core.mime.parser import parse
    from mailpipe.core.settings import Settings

    limits = Settings.from_env().limits
    names, enrich_config = _enrich_args(args)
    status = 0
    out = sys.stdout.buffer
    for path in args.files:
        try:
            raw = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
        except OSError as exc:
            print(f"mailpipe parse: cannot read {path}: {exc.strerror}", file=sys.stderr)
            status = 1
            continue
        result = parse(raw, limits=limits)
        document = result.message.to_dict()
        if names:
            from mailpipe.core.enrich.run import run_enrichers
            from mailpipe.core.errors import TransientError

            try:
                document["enrichments"] = run_enrichers(document, result.payloads, raw, names, enrich_config)
            except TransientError as exc:
                print(f"mailpipe parse: {path}: enrichment engine unavailable: {exc}", file=sys.stderr)
                status = 1
                continue
        out.write(_render(args.format, document, result.payloads) + b"\n")
        out.flush()
    return status


def _enrich_args(args: argparse.Namespace) -> tuple[list[str], dict[str, Any]]:
    """``--enrich a,b`` and ``--enrich-config FILE.json`` (``{"malware": {"clamd": "unix:/..."}}``)."""
    if not args.enrich:
        return [], {}
    from mailpipe.core.enrich.registry import load_config, parse_names

    return parse_names(args.enrich), load_config(args.enrich_config)


def _render(fmt: str, document: dict[str, Any], payloads: dict[str, bytes]) -> bytes:
    from mailpipe.core.routing.projections import render

    return render(fmt, document, payloads)


def _verify_cmd(args: argparse.Namespace) -> int:
    import os

    from mailpipe.core.routing.webhooks import verify

    secret = args.secret or os.environ.get(args.secret_env or "", "")
    if args.body in (None, "-"):
        body = sys.stdin.buffer.read()
    else:
        with open(args.body, "rb") as f:
            body = f.read()
    ok = bool(secret) and verify(
        secret, args.id, args.timestamp, args.signature, body, tolerance=args.tolerance
    )
    print("valid" if ok else "invalid", file=sys.stderr)
    return 0 if ok else 1


def _replay_cmd(args: argparse.Namespace) -> int:
    from mailpipe.core.model import dumps
    from mailpipe.core.routing.replay import replay_dead_letters
    from mailpipe.handlers.compose import load_rules
    from mailpipe.providers import open_store

    outcomes = replay_dead_letters(open_store(args.store), load_rules(args.rules))
    for outcome in outcomes:
        sys.stdout.buffer.write(dumps(outcome) + b"\n")
    return 0 if all(o["status"] == "delivered" for o in outcomes) else 1


def _serve_cmd(args: argparse.Namespace) -> int:
    from mailpipe.core.settings import Settings
    from mailpipe.handlers.local import serve

    settings = Settings.from_env(
        listen=args.listen,
        store_url=args.store,
        queue_url=args.queue,
        domains=tuple(d for d in (args.domains or "").split(",") if d) or None,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        max_message_bytes=args.max_message_bytes,
        max_recipients=args.max_recipients,
        edge_processes=args.edge_processes,
        rules_file=args.rules,
        enrichers=tuple(n for n in (args.enrich or "").split(",") if n) or None,
        metrics_listen=args.metrics,
        workers=args.workers,
        max_backlog=args.max_backlog,
    )
    problems = check.settings_problems(settings)  # every problem, one line each, before binding the port
    problems = problems or check.reach_problems(settings)  # then a store or queue that does not answer
    for line in problems:
        print(f"mailpipe: configuration error: {line}", file=sys.stderr)
    return 2 if problems else serve(settings)


def build_parser() -> argparse.ArgumentParser:
    from mailpipe import __version__

    p = argparse.ArgumentParser(prog="mailpipe", description="Inbound mail pipeline")
    p.add_argument("--version", action="version", version=f"mailpipe {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    pp = sub.add_parser("parse", help="print the canonical JSON of each message, one line per file")
    pp.add_argument("files", nargs="+", metavar="FILE", help="RFC 5322 message files ('-' for stdin)")
    pp.add_argument("--enrich", metavar="NAME,...", help="run these enrichers (docs/enrichers.md)")
    pp.add_argument("--enrich-config", metavar="FILE", help="JSON file: enricher name -> its settings")
    pp.add_argument(
        "--format",
        default="mailpipe",
        choices=["mailpipe", "postmark", "mailgun", "sendgrid"],
        help="print a webhook projection instead of the canonical JSON (docs/rules.md)",
    )
    pp.set_defaults(func=_parse_cmd)
    vp = sub.add_parser("webhook-verify", help="check a Standard Webhooks signature (0 valid, 1 invalid)")
    vp.add_argument("--secret", help="whsec_... (prefer --secret-env: argv is visible to other users)")
    vp.add_argument("--secret-env", metavar="NAME", help="environment variable holding the whsec_ secret")
    vp.add_argument("--id", required=True, help="the webhook-id header")
    vp.add_argument("--timestamp", required=True, help="the webhook-timestamp header")
    vp.add_argument("--signature", required=True, help="the webhook-signature header")
    vp.add_argument("--body", help="file with the exact request body (default: stdin)")
    vp.add_argument("--tolerance", type=int, default=300, help="max clock skew in seconds (default 300)")
    vp.set_defaults(func=_verify_cmd)
    rp = sub.add_parser("webhook-replay", help="re-send dead-lettered webhooks (exit 1 if any still fail)")
    rp.add_argument("--store", required=True, help="store URL holding deadletter/ and outbox/")
    rp.add_argument("--rules", required=True, help="routing rules file (secrets from the environment)")
    rp.set_defaults(func=_replay_cmd)
    sp = sub.add_parser("serve", help="run the SMTP edge ingester and the parsing worker")
    sp.add_argument("--listen", help="HOST:PORT (default 127.0.0.1:2525)")
    sp.add_argument("--store", help="store URL (default file://./var/mail)")
    sp.add_argument("--queue", help="queue URL (default file://./var/queue)")
    sp.add_argument(
        "--domains", help="comma-separated recipient domains to accept (default: any, local mode)"
    )
    sp.add_argument("--tls-cert", help="PEM certificate for STARTTLS")
    sp.add_argument("--tls-key", help="PEM private key for STARTTLS")
    sp.add_argument("--max-message-bytes", type=int, help="SIZE limit (default 50 MiB)")
    sp.add_argument("--max-recipients", type=int, help="recipients per message (default 100)")
    sp.add_argument("--rules", help="routing rules file (docs/rules.md; default: none, MAILPIPE_RULES)")
    sp.add_argument("--enrich", metavar="NAME,...", help="enrichers to run after parsing (docs/enrichers.md)")
    sp.add_argument("--edge-processes", type=int, help="SMTP processes sharing the port (default: 1 per CPU)")
    sp.add_argument("--metrics", metavar="HOST:PORT", help="serve Prometheus metrics at http://HOST:PORT/metrics")
    sp.add_argument("--workers", type=int, help="parse processes per SMTP process (default 1)")
    sp.add_argument("--max-backlog", type=int, metavar="N",
                    help="messages stored but not parsed before the edge answers 451 (default 10000)")  # fmt: skip
    sp.set_defaults(func=_serve_cmd)
    edge.add_parser(sub)
    check.add_parser(sub)
    backfill.add_parser(sub)
    dlq.add_parser(sub)
    replay.add_parser(sub)
    rules.add_parser(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from mailpipe.handlers.compose import exit_code

    args = build_parser().parse_args(argv)
    return exit_code(lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
