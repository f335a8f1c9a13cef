"""``links``: URLs/domains/IPs from text and HTML bodies, deceptive anchors, and the ``Received`` chain."""

from __future__ import annotations

from mailpipe.core.enrich.run import run_enrichers
from mailpipe.core.mime.parser import parse
from mailpipe.enrichers.received import chain, parse_hop
from tests.enrich_mail import enrich, message, raw

POSTFIX = (
    "from mail-ed1.example.org (mail-ed1.example.org [203.0.113.7]) (using TLSv1.3 with cipher "
    "TLS_AES_256_GCM_SHA384 (256/256 bits)) (No client certificate requested) by mx.acme.example (Postfix) "
    "with ESMTPS id 4ABC123 for <bob@acme.example>; Tue, 5 Mar 2024 10:00:00 +0000"
)
INTERNAL = (
    "from mx.acme.example (mx.acme.example [10.0.0.5]) by store.acme.example with LMTP id x; "
    "5 Mar 2024 10:00:01 +0000"
)
ORIGIN = (
    "from [192.168.1.20] (helo=laptop) by mail-ed1.example.org with ESMTPSA; Tue, 5 Mar 2024 09:59:58 +0000"
)


def test_postfix_hop_fields_ignore_comments() -> None:
    assert parse_hop(POSTFIX) == {
        "from": "mail-ed1.example.org",
        "from_ip": "203.0.113.7",
        "by": "mx.acme.example",
        "with": "ESMTPS",
        "id": "4ABC123",
        "for": "bob@acme.example",
        "time": "2024-03-05T10:00:00+00:00",
    }
    assert parse_hop("from [IPv6:2001:db8::1] by x.y with SMTP; not a date")["from_ip"] == "2001:db8::1"
    assert parse_hop("garbage") == dict.fromkeys(("from", "from_ip", "by", "with", "id", "for", "time"))


def test_client_ip_is_from_the_lowest_trusted_hop() -> None:
    hops = [INTERNAL, POSTFIX, ORIGIN]
    trusted = chain(hops, ("acme.example",))
    assert trusted["trusted_hops"] == 2 and trusted["client_ip"] == "203.0.113.7"
    assert trusted["client_helo"] == "mail-ed1.example.org"
    assert chain(hops)["client_ip"] == "10.0.0.5"  # nothing configured: only the top hop is trusted
    assert chain([ORIGIN], ("acme.example",))["client_ip"] is None  # no hop of ours: nothing trustworthy
    assert [h["by"] for h in trusted["hops"]] == [
        "store.acme.example",
        "mx.acme.example",
        "mail-ed1.example.org",
    ]


def test_urls_domains_ips_and_deceptive_links() -> None:
    html = (
        '<p>Pay at <a href="https://evil.example.net/login?x=1">www.paypal.com</a> or '
        '<a href="https://docs.acme.example/a">acme.example</a>, logo <img src="http://198.51.100.9/l.png">'
        "<style>a{}</style> mirror https://mirror.example.org/file.zip.</p>"
    )
    msg = message(
        "Visit www.acme.example/help, or http://[2001:db8::2]:8080/x. Server 192.0.2.44.",
        html=html,
        headers=(("Received", INTERNAL), ("Received", POSTFIX)),
    )
    res = enrich(raw(msg), ["links"], {"links": {"trusted": ["acme.example"]}})["links"]["result"]
    assert res["domains"] == [
        "docs.acme.example",
        "evil.example.net",
        "mirror.example.org",
        "www.acme.example",
        "www.paypal.com",
    ]
    assert res["ips"] == ["192.0.2.44", "198.51.100.9", "2001:db8::2"]
    assert {"url": "https://mirror.example.org/file.zip", "host": "mirror.example.org"} in res["urls"]
    assert res["deceptive"] == [
        {
            "text": "www.paypal.com",
            "href": "https://evil.example.net/login?x=1",
            "target_host": "evil.example.net",
        }
    ]
    assert res["received"]["client_ip"] == "203.0.113.7" and len(res["received"]["hops"]) == 2


def test_envelope_client_ip_is_reported() -> None:
    from mailpipe.core.model import Envelope

    data = raw(message("no links here"))
    result = parse(data, envelope=Envelope("a@x.example", ("b@y.example",), client_ip="198.51.100.1"))
    res = run_enrichers(result.message.to_dict(), result.payloads, data, ["links"])["links"]["result"]
    assert res["received"]["edge_client_ip"] == "198.51.100.1" and res["urls"] == []
