"""One frozen Settings object, built once at start-up. The only module that names MAILPIPE_* variables.

Precedence: an explicit argument (CLI flag, constructor keyword) beats the environment, which beats the default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

from mailpipe.core.domains import merge, parse_entries
from mailpipe.core.errors import ConfigError
from mailpipe.core.model import Limits

if TYPE_CHECKING:
    from collections.abc import Mapping

ENV_PREFIX = "MAILPIPE_"

# env name -> (field, type). Limits fields are read with the same prefix (MAILPIPE_MAX_PARTS, ...).
_ENV: dict[str, tuple[str, type]] = {
    "MAILPIPE_STORE": ("store_url", str),
    "MAILPIPE_QUEUE": ("queue_url", str),
    "MAILPIPE_LISTEN": ("listen", str),
    "MAILPIPE_DOMAINS": ("domains", tuple),
    "MAILPIPE_DOMAIN_STORES": ("domain_stores", tuple),
    "MAILPIPE_MAX_RECIPIENTS": ("max_recipients", int),
    "MAILPIPE_MAX_CONNECTIONS": ("max_connections", int),
    "MAILPIPE_MAX_LINE_LENGTH": ("max_line_length", int),
    "MAILPIPE_IDLE_TIMEOUT": ("idle_timeout", float),
    "MAILPIPE_SESSION_TIMEOUT": ("session_timeout", float),
    "MAILPIPE_TLS_CERT": ("tls_cert", str),
    "MAILPIPE_TLS_KEY": ("tls_key", str),
    "MAILPIPE_HOSTNAME": ("hostname", str),
    "MAILPIPE_FSYNC": ("fsync", bool),
    "MAILPIPE_EDGE_PROCESSES": ("edge_processes", int),
    "MAILPIPE_EVENT_LOOP": ("event_loop", str),
    "MAILPIPE_LOG_LEVEL": ("log_level", str),
    "MAILPIPE_RULES": ("rules_file", str),
    "MAILPIPE_ENRICHERS": ("enrichers", tuple),
    "MAILPIPE_ENRICH_CONFIG": ("enrich_config_file", str),
    "MAILPIPE_METRICS": ("metrics_listen", str),
    "MAILPIPE_WORKERS": ("workers", int),
    "MAILPIPE_MAX_BACKLOG": ("max_backlog", int),
    "MAILPIPE_MAX_ATTEMPTS": ("max_attempts", int),
}


@dataclass(frozen=True, slots=True)
class Settings:
    """Runtime configuration. Validated on construction; raises ConfigError."""

    store_url: str = "file://./var/mail"
    queue_url: str = "file://./var/queue"
    listen: str = "127.0.0.1:2525"
    domains: tuple[str, ...] = ()  # empty (and no domain_stores): local mode, accept any recipient domain
    domain_stores: tuple[str, ...] = ()  # "DOMAIN=STORE-URL" entries, one store per customer (core.edge.tenants)
    max_recipients: int = 100
    max_connections: int = 200
    max_line_length: int = 4096  # RFC 5321 says 1000; real mail is sloppier, so we allow more
    idle_timeout: float = 300.0  # RFC 5321 4.5.3.2: server timeout >= 5 minutes
    session_timeout: float = 1800.0
    tls_cert: str | None = None
    tls_key: str | None = None
    hostname: str = "mailpipe.local"
    fsync: bool = True
    edge_processes: int = 0  # `mailpipe serve` SMTP processes sharing the listen socket; 0: one per CPU
    event_loop: str = "auto"  # the edge's asyncio loop: auto (uvloop when installed), uvloop, asyncio
    log_level: str = "INFO"
    rules_file: str | None = None  # routing rules YAML (docs/rules.md); None: no routing
    enrichers: tuple[str, ...] = ()  # enricher names, run in order after parsing (docs/enrichers.md)
    enrich_config_file: str | None = None  # JSON: enricher name -> its settings (core.enrich.registry.load_config)
    metrics_listen: str | None = None  # `mailpipe serve`: HOST:PORT of the Prometheus /metrics endpoint
    workers: int = 1  # `mailpipe serve`: parse processes per SMTP process
    max_backlog: int = 10_000  # `mailpipe serve`: stored but unparsed messages before the edge answers 451
    max_attempts: int = 8  # `mailpipe serve`: tries of a transient failure (about 2 minutes), then quarantine
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        for f in ("max_recipients", "max_connections", "max_line_length", "workers", "max_backlog", "max_attempts"):
            if getattr(self, f) < 1:
                raise ConfigError(f"{f} must be >= 1")
        if self.edge_processes < 0:
            raise ConfigError("edge_processes must be >= 0")
        if self.event_loop not in ("auto", "uvloop", "asyncio"):
            raise ConfigError(f"event_loop must be auto, uvloop or asyncio, not {self.event_loop!r}")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("tls_cert and tls_key go together")
        if ":" not in self.listen:
            raise ConfigError(f"listen must be HOST:PORT, got {self.listen!r}")
        if self.metrics_listen is not None and not _host_port(self.metrics_listen):
            raise ConfigError(f"metrics must be HOST:PORT, got {self.metrics_listen!r}")
        object.__setattr__(self, "domains", tuple(d.lower().strip(".") for d in self.domains if d))
        self.store_map()  # a malformed entry or a domain with two stores fails at start-up

    def store_map(self) -> dict[str, str]:
        """Recipient domain -> store URL: ``domains`` go to ``store_url``, plus ``domain_stores``.

        Raises ConfigError for a malformed entry or a domain mapped to two different stores."""
        pairs = [(d, self.store_url) for d in self.domains]
        return merge([*pairs, *parse_entries(self.domain_stores, "MAILPIPE_DOMAIN_STORES")])

    @property
    def max_message_bytes(self) -> int:
        return self.limits.max_message_bytes

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read MAILPIPE_* once; keyword overrides (None means 'not given') win. Raises ConfigError."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name, (attr, typ) in _ENV.items():
            if name in env and env[name] != "":
                values[attr] = _convert(name, env[name], typ)
        limits: dict[str, Any] = {}
        for f in fields(Limits):
            name = ENV_PREFIX + f.name.upper()
            if name in env and env[name] != "":
                limits[f.name] = _convert(name, env[name], int)
        lim_over = {k: overrides.pop(k) for k in list(overrides) if k in {f.name for f in fields(Limits)}}
        limits.update({k: v for k, v in lim_over.items() if v is not None})
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(**values, limits=replace(Limits(), **limits))
        except TypeError as exc:
            raise ConfigError(str(exc)) from exc


def _convert(name: str, raw: str, typ: type) -> Any:
    try:
        if typ is bool:
            if raw.lower() not in {"1", "0", "true", "false", "yes", "no", "on", "off"}:
                raise ValueError(raw)
            return raw.lower() in {"1", "true", "yes", "on"}
        if typ is tuple:
            return tuple(p.strip() for p in raw.split(",") if p.strip())
        return typ(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}: cannot read {raw!r} as {typ.__name__}") from exc


def _host_port(value: str) -> bool:
    host, _, port = value.rpartition(":")
    return bool(host) and port.isdigit() and 0 < int(port) < 65536
