"""Routing-config validation helpers: field-path errors, key checks, webhook targets. Stdlib only."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from mailpipe.core.errors import ConfigError
from mailpipe.core.routing.webhooks import FORMATS, WebhookTarget, decode_secret

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

Path = tuple[str | int, ...]
NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class RuleError(ConfigError):
    """A bad rule. ``path`` names the field (``("customers", "acme", "rules", 2, "when", "subject")``)."""

    def __init__(self, path: Path, message: str) -> None:
        self.path, self.detail = path, message
        super().__init__(f"{dotted(path)}: {message}")


def dotted(path: Path) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def webhook_target(name: str, spec: Any, path: Path, env: Mapping[str, str]) -> WebhookTarget:
    opts = ("url", "secret_env", "secret", "format", "timeout", "attempts", "backoff", "backoff_max",
            "inline_max", "signing_key_env")
    keys(spec, opts, path, required=("url",))
    name_ok(name, path)
    url = spec["url"]
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise RuleError((*path, "url"), "expected an http:// or https:// URL")
    secret = _secret(spec, path, env)
    fmt = spec.get("format", "mailpipe")
    if fmt not in FORMATS:
        raise RuleError((*path, "format"), f"expected one of {', '.join(FORMATS)}")
    nums: dict[str, Any] = {}
    for key, typ, lo in (("timeout", float, 0.001), ("attempts", int, 1), ("backoff", float, 0.0),
                         ("backoff_max", float, 0.0), ("inline_max", int, 0)):
        if key in spec:
            v = spec[key]
            bad = isinstance(v, bool) or not isinstance(v, int | float) or v < lo
            if bad or (typ is int and v != int(v)):
                raise RuleError((*path, key), f"expected a number >= {lo}")
            nums[key] = typ(v)
    signing = env.get(str(spec.get("signing_key_env")))
    if (fmt == "mailgun" or "signing_key_env" in spec) and not signing:
        raise RuleError((*path, "signing_key_env"), "format mailgun needs signing_key_env (a set variable)")
    return WebhookTarget(name=name, url=url, secret=secret, format=fmt, signing_key=signing, **nums)


def _secret(spec: dict[str, Any], path: Path, env: Mapping[str, str]) -> str:
    if ("secret_env" in spec) == ("secret" in spec):
        raise RuleError(path, "give exactly one of secret_env (recommended) or secret")
    where = (*path, "secret_env") if "secret_env" in spec else (*path, "secret")
    value = env.get(str(spec["secret_env"]), "") if "secret_env" in spec else spec["secret"]
    if not value:
        raise RuleError(where, f"environment variable {spec.get('secret_env')} is unset or empty")
    try:
        decode_secret(str(value))
    except ValueError as exc:
        raise RuleError(where, str(exc)) from None
    return str(value)


def keys(spec: Any, allowed: tuple[str, ...], path: Path, *, required: tuple[str, ...]) -> None:
    if not isinstance(spec, dict):
        raise RuleError(path, "expected a mapping")
    for k in spec:
        if k not in allowed:
            raise RuleError((*path, k), f"unknown field; expected one of {', '.join(allowed)}")
    for k in required:
        if k not in spec:
            raise RuleError(path, f"missing required field {k!r}")


def mapping(spec: Any, path: Path) -> dict[str, Any]:
    keys(spec, tuple(spec) if isinstance(spec, dict) else (), path, required=())
    return dict(spec)


def name_ok(name: Any, path: Path) -> None:
    if not isinstance(name, str) or not NAME.match(name):
        raise RuleError(path, f"bad name {name!r}: use lower-case letters, digits, '-' and '_'")


# Leaf argument checkers used by mailpipe.core.routing.conditions: each returns the compiled value or raises RuleError.

def strings_arg(v: Any, path: Path) -> frozenset[str]:
    items = v if isinstance(v, list) else [v]
    if not items or not all(isinstance(x, str) and x for x in items):
        raise RuleError(path, "expected a non-empty string or a list of them")
    return frozenset(x.lower() for x in items)


def regex_arg(v: Any, path: Path) -> re.Pattern[str]:
    if not isinstance(v, str):
        raise RuleError(path, "expected a regular expression string")
    try:
        return re.compile(v)
    except re.error as exc:
        raise RuleError(path, f"bad regular expression: {exc}") from None


def range_arg(v: Any, path: Path) -> Callable[[Any], bool]:
    num = (int, float)
    if isinstance(v, num) and not isinstance(v, bool):
        return lambda x: x == v
    if isinstance(v, dict) and v and set(v) <= {"min", "max"} and all(
        isinstance(x, num) and not isinstance(x, bool) for x in v.values()
    ):
        lo, hi = v.get("min", float("-inf")), v.get("max", float("inf"))
        return lambda x: isinstance(x, num) and not isinstance(x, bool) and lo <= x <= hi
    raise RuleError(path, "expected a number or {min: N, max: N}")


def bool_arg(v: Any, path: Path) -> bool:
    if not isinstance(v, bool):
        raise RuleError(path, "expected true or false")
    return v
