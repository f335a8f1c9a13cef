"""``mailpipe check``: validate everything a start or a deploy would read, and report every problem.

Reads the MAILPIPE_* environment (as ``serve``, ``edge`` and the functions do) plus the files and URLs given on
the command line: store and queue URLs (scheme known, extra installed), the routing rules (file:line), the
enrichers (known, their extras and engines present) and their settings file, and a stages file (every stage, a
domain in two stages, each stage's rules with its secrets as placeholders). Nothing is contacted, unless
``--reach``: then every store and queue named (the rules' destinations too) gets one cheap request, and one
that does not answer is named with its URL and the cause (``serve`` and ``edge`` do this at every start).

Exit codes: 0 all valid (one ``ok`` line on stdout); 2 one line per problem on stderr.
"""

from __future__ import annotations

import sys
from functools import partial
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

    from mailpipe.core.settings import Settings


def settings_problems(settings: Settings) -> list[str]:
    """Every problem in what ``settings`` names: store and queue URLs, rules file, enrichers and their settings
    file. Start-up runs it too, so a bad configuration is refused (exit 2) and never met on a first mail."""
    from mailpipe.core.enrich.registry import load_config, load_enricher
    from mailpipe.handlers.compose import load_rules
    from mailpipe.providers import check_queue_url, check_store_url

    out: list[str] = []
    _collect(out, lambda: check_store_url(settings.store_url))
    for url in sorted(set(settings.store_map().values())):
        _collect(out, partial(check_store_url, url))
    _collect(out, lambda: check_queue_url(settings.queue_url))
    if settings.rules_file:
        _collect(out, lambda: load_rules(str(settings.rules_file)))
    for name in settings.enrichers:
        _collect(out, partial(load_enricher, name))
    if settings.enrich_config_file:
        _collect(out, lambda: load_config(settings.enrich_config_file))
    return list(dict.fromkeys(out))


def reach_problems(settings: Settings) -> list[str]:
    """One line per store or queue that does not answer: ``settings``' stores, its queue and the rules'
    destination queues. Run after settings_problems found none (the URLs are known to be valid)."""
    from mailpipe.core.errors import ConfigError
    from mailpipe.handlers.compose import load_rules
    from mailpipe.providers import open_publisher, open_store

    queues = {settings.queue_url}
    if settings.rules_file:
        config = load_rules(str(settings.rules_file))
        queues |= {url for c in config.customers.values() for url in c.destinations.values()}
    targets: list[tuple[str, str, Callable[..., object]]] = [
        *(("store", url, open_store) for url in sorted({settings.store_url, *settings.store_map().values()})),
        *(("queue", url, open_publisher) for url in sorted(queues)),
    ]
    out = []
    for kind, url, opener in targets:
        try:
            problem = unreachable(kind, url, opener(url, settings))
        except ConfigError as exc:
            problem = f"{kind} {url} cannot be reached: {exc}"
        if problem:
            out.append(problem)
    return out


def unreachable(kind: str, url: str, backend: object) -> str | None:
    """The line naming ``backend`` (a store or publisher already opened for ``url``) when its probe fails; None
    when it answers or has nothing to reach. Probing the object a verb goes on to use opens nothing twice."""
    from mailpipe.core.errors import ConfigError, TransientError
    from mailpipe.core.ports import Probe

    try:
        if isinstance(backend, Probe):
            backend.probe()
    except (TransientError, ConfigError) as exc:
        return f"{kind} {url} cannot be reached: {exc}"
    return None


def _collect(out: list[str], check: Callable[[], Any]) -> None:
    from mailpipe.core.errors import ConfigError

    try:
        check()
    except ConfigError as exc:
        out.append(str(exc))


def command(args: argparse.Namespace) -> int:
    """The ``check`` verb. Returns the exit code; never raises for a user's mistake."""
    from mailpipe.core.errors import ConfigError
    from mailpipe.core.settings import Settings

    given = {"store_url": args.store, "queue_url": args.queue, "rules_file": args.rules,
             "enrich_config_file": args.enrich_config,
             "enrichers": tuple(n for n in (args.enrich or "").split(",") if n) or None}  # fmt: skip
    problems: list[str] = []
    try:
        settings = Settings.from_env(**given)
    except ConfigError as exc:  # the environment is bad: still check what the command line names
        problems.append(str(exc))
        settings = Settings.from_env({}, **given)
    problems += settings_problems(settings)
    if args.reach and not problems:
        problems += reach_problems(settings)
    if args.stages:
        from mailpipe.providers.yaml.stages import problems as stage_problems

        problems += stage_problems(args.stages)
    for line in problems:
        print(f"mailpipe check: {line}", file=sys.stderr)
    if problems:
        return 2
    checked = ", ".join(f"{k} {v}" for k, v in (("rules", args.rules), ("stages", args.stages)) if v)
    print(f"mailpipe check: ok{' (' + checked + ')' if checked else ''}")
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``check`` verb on the ``mailpipe`` command line."""
    cp = sub.add_parser("check", help="validate the configuration, the rules and the stages; report every problem")
    cp.add_argument("--store", help="store URL (default: MAILPIPE_STORE)")
    cp.add_argument("--queue", help="queue URL (default: MAILPIPE_QUEUE)")
    cp.add_argument("--rules", help="routing rules file, YAML or compiled JSON (default: MAILPIPE_RULES)")
    cp.add_argument("--enrich", metavar="NAME,...", help="enrichers (default: MAILPIPE_ENRICHERS)")
    cp.add_argument("--enrich-config", metavar="FILE", help="enricher settings (default: MAILPIPE_ENRICH_CONFIG)")
    cp.add_argument("--stages", metavar="FILE", help="a stages file (stages.yml): every stage and its rules")
    cp.add_argument("--reach", action="store_true", help="also contact every store and queue named (one request)")
    cp.set_defaults(func=command)
