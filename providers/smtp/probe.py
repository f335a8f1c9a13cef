"""The edge's health check: ``python -m mailpipe.handlers.edge --check HOST:PORT`` (the container HEALTHCHECK).

Connects, reads the banner, sends EHLO and NOOP, quits. Exit 0 healthy (a 421 "too many connections" banner
counts as healthy: the server is alive, only busy -- restarting it would drop the sessions it serves), 1 not.
"""

from __future__ import annotations

import smtplib
import sys

PROBE_HELO = "healthcheck.mailpipe.invalid"


def local_target(listen: str) -> str:
    """The address to probe a server listening on ``listen`` from the same host (wildcard -> loopback)."""
    host, _, port = listen.rpartition(":")
    return f"{'127.0.0.1' if host.strip('[]') in ('', '0.0.0.0', '::') else host}:{port}"


def check(target: str, timeout: float = 5.0) -> int:
    """Probe the SMTP server at ``HOST:PORT``; print one line; return the exit code."""
    host, _, port = target.rpartition(":")
    try:
        with smtplib.SMTP(host.strip("[]") or "127.0.0.1", int(port), timeout=timeout) as client:
            ehlo, noop = client.ehlo(PROBE_HELO)[0], client.noop()[0]
    except smtplib.SMTPConnectError as exc:
        if exc.smtp_code == 421:
            print(f"healthy (busy: {target} answered 421)")
            return 0
        print(f"unhealthy: {target} banner {exc.smtp_code}", file=sys.stderr)
        return 1
    except (OSError, smtplib.SMTPException, ValueError) as exc:
        print(f"unhealthy: {target}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if (ehlo, noop) != (250, 250):
        print(f"unhealthy: {target} answered EHLO {ehlo}, NOOP {noop}", file=sys.stderr)
        return 1
    print(f"healthy: {target}")
    return 0
