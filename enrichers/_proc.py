"""Run an engine's command line as a subprocess with a wall-time limit and a memory cap (its resource budget).

A crash or hang of the engine costs one subprocess, never the parse function.
"""

from __future__ import annotations

import os
import resource
import subprocess


class EngineFailed(Exception):
    """The engine exited non-zero, timed out, or is not installed. Permanent for this input."""


def run(
    cmd: list[str],
    *,
    timeout: float,
    memory_mb: int = 1024,
    stdin: bytes | None = None,
    env: dict[str, str] | None = None,
) -> bytes:
    """Run ``cmd`` (``env`` is added to ours); return its stdout. Raises EngineFailed."""
    limit = memory_mb * 1024 * 1024
    full_env = {**os.environ, **env} if env else None

    def cap() -> None:  # runs in the child before exec
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    try:
        done = subprocess.run(
            cmd, input=stdin, capture_output=True, timeout=timeout, preexec_fn=cap, check=False, env=full_env
        )
    except FileNotFoundError as exc:
        raise EngineFailed(f"{cmd[0]} is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise EngineFailed(f"{cmd[0]} timed out after {timeout:g} s") from exc
    except OSError as exc:  # e.g. ENOMEM: the memory cap is too small for the engine to even start
        raise EngineFailed(f"{cmd[0]} could not start: {exc}") from exc
    if done.returncode != 0:
        err = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        raise EngineFailed(f"{cmd[0]} exited {done.returncode}: {err[0][:200]}")
    return done.stdout
