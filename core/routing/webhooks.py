"""Signed webhook delivery (Standard Webhooks): sign, verify, POST with timeouts, retries, backoff and jitter.

Signature: ``webhook-signature: v1,<base64 HMAC-SHA256(key, f"{id}.{timestamp}.{body}")>``, the key being
the base64 part of the ``whsec_...`` secret. Stdlib only; the HTTP sender, sleep, clock and jitter source are
injected so the retry loop is tested against a real server. Secrets never appear in repr() or logs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import http.client
import logging
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from mailpipe.core import metrics

log = logging.getLogger("mailpipe.webhooks")

SECRET_PREFIX = "whsec_"
# A well-formed secret that signs nothing real: lets a check or a dry run validate rules whose secrets live in a
# secret manager (deploy time) or are not set here. Never shipped, never used to send.
PLACEHOLDER_SECRET = SECRET_PREFIX + "A" * 43 + "="
FORMATS = ("mailpipe", "postmark", "mailgun", "sendgrid")
RETRYABLE = frozenset({408, 425, 429}) | frozenset(range(500, 600))

Sender = Callable[[str, bytes, dict[str, str], float], int]
"""(url, body, headers, timeout) -> HTTP status. Raises OSError (incl. TimeoutError) if no status came."""


def decode_secret(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret. Raises ValueError (without echoing the secret)."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("webhook secret must start with whsec_")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("webhook secret is not whsec_ + base64") from None
    if len(key) < 16:
        raise ValueError("webhook secret key must be at least 16 bytes")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for one attempt."""
    mac = hmac.new(decode_secret(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def verify(
    secret: str, msg_id: str, timestamp: str, signature: str, body: bytes, *,
    now: float | None = None, tolerance: int = 300,
) -> bool:
    """True if any ``v1,`` signature in the space-separated header matches and the timestamp is fresh."""
    try:
        ts = int(timestamp)
        expected = sign(secret, msg_id, ts, body)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - ts) > tolerance:
        return False
    return any(hmac.compare_digest(s, expected) for s in signature.split())


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """One configured receiver. ``backoff``: first retry delay (s), doubling up to ``backoff_max``."""

    name: str
    url: str = field(repr=False)  # may carry Basic-auth credentials
    secret: str = field(repr=False)
    format: str = "mailpipe"
    timeout: float = 10.0
    attempts: int = 5
    backoff: float = 1.0
    backoff_max: float = 60.0
    inline_max: int = 256 * 1024
    signing_key: str | None = field(default=None, repr=False)  # Mailgun-form signature key

    @property
    def safe_url(self) -> str:
        """The URL without credentials, for logs and dead-letter records."""
        u = urlsplit(self.url)
        return urlunsplit((u.scheme, (u.hostname or "") + (f":{u.port}" if u.port else ""), u.path, "", ""))


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """How one delivery ended: ``ok`` after a 2xx; else the last status/error (for the dead-letter record)."""

    ok: bool
    attempts: int
    status: int | None
    error: str | None
    delays: tuple[float, ...] = ()


def http_send(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST with urllib; ``https://user:pass@host`` becomes Basic auth (what anymail's receivers expect)."""
    u = urlsplit(url)
    headers = dict(headers)
    if u.username is not None:
        cred = f"{u.username}:{u.password or ''}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(cred).decode()
        netloc = u.hostname + (f":{u.port}" if u.port else "") if u.hostname else ""
        url = urlunsplit((u.scheme, netloc, u.path, u.query, ""))
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read()
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)
    except urllib.error.URLError as exc:
        raise OSError(str(exc.reason)) from None
    except http.client.HTTPException as exc:  # garbage or truncated response: as retryable as a reset
        raise OSError(f"bad HTTP response ({type(exc).__name__})") from None


def backoff_delay(target: WebhookTarget, retry: int, rand: Callable[[], float]) -> float:
    """Delay before retry ``retry`` (1-based): exponential, capped, equal jitter (half fixed, half random)."""
    base = float(min(target.backoff_max, target.backoff * 2 ** (retry - 1)))
    return base / 2 + rand() * base / 2


def deliver(
    target: WebhookTarget, msg_id: str, body: bytes, content_type: str, *,
    send: Sender = http_send, sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time, rand: Callable[[], float] = random.random,
) -> DeliveryResult:
    """POST ``body`` until a 2xx, a non-retryable status or ``target.attempts`` tries. Never raises."""
    status: int | None = None
    error: str | None = None
    delays: list[float] = []
    for attempt in range(1, target.attempts + 1):
        if attempt > 1:
            delays.append(backoff_delay(target, attempt - 1, rand))
            sleep(delays[-1])
        ts = int(clock())
        headers = {
            "content-type": content_type, "user-agent": "mailpipe-webhooks/1",
            "webhook-id": msg_id, "webhook-timestamp": str(ts),
            "webhook-signature": sign(target.secret, msg_id, ts, body),
        }
        try:
            status, error = send(target.url, body, headers, target.timeout), None
        except OSError as exc:  # refused, reset, DNS, TimeoutError
            status, error = None, f"{type(exc).__name__}: {exc}"
        log.info("webhook attempt", extra={"webhook_id": msg_id, "target": target.name, "attempt": attempt,
                                           "status": status, "error": error})
        metrics.inc("mailpipe_webhook_attempts_total", status=metrics.status_class(status))
        if status is not None and 200 <= status < 300:
            return DeliveryResult(True, attempt, status, None, tuple(delays))
        if status is not None and status not in RETRYABLE:
            break
    return DeliveryResult(False, attempt, status, error or f"HTTP {status}", tuple(delays))
