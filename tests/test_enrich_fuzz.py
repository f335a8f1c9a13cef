"""No input crashes enrichment: random and mutated messages through every stdlib enricher (and ``auth``'s
header parsers) never raise, and every step ends ``ok`` or ``skipped``: an ``error`` here is a bug of ours."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.enrich_mail import enrich, message, raw

NAMES = ["links", "autoreply", "bounce", "reply", "crypto", "uuencode", "auth"]
SEED = raw(
    message(
        "Hi https://x.example/a 10.0.0.1\n> quoted\n-- \nsig\nbegin 644 a.bin\n#86)C\n`\nend\n",
        html='<a href="http://y.example">www.z.example</a>',
        headers=(
            ("Received", "from a (a [192.0.2.1]) by mx.acme.example with ESMTP; 1 Jan 2024 0:0:0 +0000"),
            ("Authentication-Results", "mx; spf=pass smtp.mailfrom=a@b"),
            ("ARC-Seal", "i=1; cv=none; d=r.example"),
        ),
    )
)


def check(data: bytes) -> None:
    out = enrich(data, NAMES)
    bad = {n: r["error"] for n, r in out.items() if r["status"] not in ("ok", "skipped")}
    assert not bad, bad


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_random_bytes(data: bytes) -> None:
    check(data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(SEED) - 1), st.binary(min_size=1, max_size=8)), max_size=6))
def test_mutated_message(edits: list[tuple[int, bytes]]) -> None:
    data = bytearray(SEED)
    for pos, chunk in edits:
        data[pos : pos + len(chunk)] = chunk
    check(bytes(data))


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300))
def test_random_header_values(value: str) -> None:
    from mailpipe.enrichers.authresults import arc_summary, parse_authentication_results
    from mailpipe.enrichers.received import chain

    parse_authentication_results(value)
    arc_summary([value], [value], [value])
    chain([value, value], ("acme.example",))
