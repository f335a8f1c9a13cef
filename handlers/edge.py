"""``mailpipe edge`` (also ``python -m mailpipe.handlers.edge``): the SMTP edge alone, the cloud shape -- the
bucket's object-created event runs the parser. A store per recipient domain (per customer).

Replies: 250 stored in every customer's store; 421 busy/timeout; 451 a store failed (retry); 452 too many
recipients; 550 domain not served (never relays); 552 too big; 554 bare CR/LF, long line. Exit 2: bad config.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mailpipe.core.settings import Settings


def run(settings: Settings) -> int:
    """Validate every store URL and reach every store (ConfigError naming each bad or silent one), then serve
    until SIGTERM."""
    from mailpipe.core.edge.tenants import StoreRoutes
    from mailpipe.core.errors import ConfigError
    from mailpipe.core.log import configure
    from mailpipe.providers import check_store_url, open_store
    from mailpipe.providers.smtp.server import run_loop, serve_until_signal

    configure(settings.log_level)
    routes = StoreRoutes(settings.store_map(), settings.store_url, lambda url: open_store(url, settings))
    problems = []
    for url in routes.urls:
        try:
            check_store_url(url)
        except ConfigError as exc:
            problems.append(str(exc))
    if not problems:
        from mailpipe.handlers.check import unreachable

        # every store answers, or is named; each probed is the one the edge then writes to (opened once)
        problems = [p for url in sorted(routes.urls) if (p := unreachable("store", url, routes.store(url)))]
    if problems:
        raise ConfigError("\n".join(problems))  # one line each
    run_loop(serve_until_signal(settings, routes), settings)
    return 0


def command(args: argparse.Namespace) -> int:
    """The ``edge`` verb: ``--check`` probes a running edge; otherwise serve. Raises ConfigError."""
    from mailpipe.core.domains import parse_entries
    from mailpipe.core.settings import Settings

    if args.check is not None:
        from mailpipe.providers.smtp.probe import check, local_target

        return check(args.check or local_target(Settings.from_env().listen))
    settings = Settings.from_env(
        listen=args.listen, store_url=args.store, domains=tuple(filter(None, (args.domains or "").split(","))) or None,
        tls_cert=args.tls_cert, tls_key=args.tls_key, max_message_bytes=args.max_message_bytes,
    )  # fmt: skip
    entries = [f"{d}={u}" for d, u in parse_entries(args.domain_store or [], "--domain-store")]
    if args.stages:
        from mailpipe.providers.yaml.stages import domain_store_entries

        entries += domain_store_entries(args.stages)
    # sources add up; a domain given two different stores is a ConfigError, never a silent override
    return run(replace(settings, domain_stores=(*settings.domain_stores, *entries)))


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``edge`` verb and its options on the ``mailpipe`` command line."""
    ep = sub.add_parser("edge", help="run the SMTP edge alone (the cloud shape: the bucket event parses)")
    ep.add_argument("--listen", help="HOST:PORT (default 127.0.0.1:2525; MAILPIPE_LISTEN)")
    ep.add_argument("--store", help="store of the --domains domains (default file://./var/mail)")
    ep.add_argument("--domains", help="comma-separated recipient domains stored in --store")
    ep.add_argument(
        "--domain-store", action="append", metavar="DOMAIN=URL",
        help="store mail for DOMAIN (or *.DOMAIN) in URL; repeatable (MAILPIPE_DOMAIN_STORES)",
    )  # fmt: skip
    ep.add_argument("--stages", metavar="FILE", help="every stage's domains -> its store (stages.yml; PyYAML)")
    ep.add_argument("--tls-cert", help="PEM certificate for STARTTLS (MAILPIPE_TLS_CERT)")
    ep.add_argument("--tls-key", help="PEM private key for STARTTLS (MAILPIPE_TLS_KEY)")
    ep.add_argument("--max-message-bytes", type=int, help="SIZE limit (default 50 MiB)")
    ep.add_argument(
        "--check", nargs="?", const="", metavar="HOST:PORT",
        help="health probe (default: the --listen port on loopback): EHLO + NOOP; exit 0 healthy, 1 not",
    )  # fmt: skip
    ep.set_defaults(func=command)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mailpipe.handlers.edge [options]``: the same as ``mailpipe edge [options]``."""
    from mailpipe.handlers.compose import exit_code

    parser = argparse.ArgumentParser(prog="mailpipe")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["edge", *(sys.argv[1:] if argv is None else argv)])
    return exit_code(lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
