"""``auth``: Authentication-Results/ARC parsing, and a real SPF (pyspf) / DKIM (dkimpy) / DMARC verdict
against recorded DNS answers (a dict resolver), with a message signed here by a freshly generated key."""

from __future__ import annotations

import base64

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mailpipe.core.enrich.run import run_enrichers
from mailpipe.core.mime.parser import parse
from mailpipe.core.model import Envelope
from mailpipe.enrichers.authresults import parse_authentication_results
from mailpipe.enrichers.verify import org_domain
from tests.enrich_mail import message, raw

AR = (
    "mx.acme.example; spf=pass (sender SPF authorized) smtp.mailfrom=alice@example.com; "
    'dkim=pass header.d=example.com header.s=sel header.b="AbC;d"; '
    "dmarc=pass (p=REJECT) header.from=example.com"
)


@pytest.fixture(scope="module")
def key() -> tuple[bytes, str]:
    """(PKCS#1 private key PEM, the public key as a DKIM TXT record)."""
    priv = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = priv.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    spki = priv.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem, "v=DKIM1; k=rsa; p=" + base64.b64encode(spki).decode()


def signed(pem: bytes, body: str = "Hello Bob, the report is attached.") -> bytes:
    data = raw(message(body))
    sig = dkim.sign(
        data, b"sel", b"example.com", pem, include_headers=[b"from", b"to", b"subject", b"message-id"]
    )
    return sig + data


def dns(record: str) -> dict[str, list[str]]:
    return {
        "example.com TXT": ["v=spf1 ip4:203.0.113.0/24 mx -all"],
        "example.com MX": ["10 mail.example.com"],
        "mail.example.com A": ["198.51.100.25"],
        "sel._domainkey.example.com TXT": [record],
        "_dmarc.example.com TXT": ["v=DMARC1; p=reject; adkim=r; aspf=r"],
    }


def verdict(data: bytes, ip: str, record: str, mail_from: str = "alice@example.com") -> dict:
    env = Envelope(mail_from, ("bob@acme.example",), client_ip=ip, helo="mail.example.com")
    doc = parse(data, envelope=env)
    out = run_enrichers(doc.message.to_dict(), doc.payloads, data, ["auth"], {"auth": {"dns": dns(record)}})
    assert out["auth"]["status"] == "ok", out
    return out["auth"]["result"]["verdict"]


def test_signed_message_from_authorised_ip_passes_spf_dkim_dmarc(key: tuple[bytes, str]) -> None:
    v = verdict(signed(key[0]), "203.0.113.9", key[1])
    assert v["spf"]["result"] == "pass" and v["spf"]["domain"] == "example.com"
    assert v["dkim"] == [{"d": "example.com", "s": "sel", "result": "pass", "error": None}]
    assert v["dmarc"] == {
        "result": "pass",
        "policy": "reject",
        "record_domain": "example.com",
        "aligned": ["spf", "dkim"],
        "from_domain": "example.com",
    }


def test_mx_mechanism_and_dkim_alone_carry_dmarc(key: tuple[bytes, str]) -> None:
    v = verdict(signed(key[0]), "198.51.100.25", key[1], mail_from="bounce@other.example")
    assert v["spf"]["result"] == "none"  # other.example publishes nothing
    assert v["dmarc"]["result"] == "pass" and v["dmarc"]["aligned"] == ["dkim"]


def test_tampered_body_and_foreign_ip_fail_dmarc(key: tuple[bytes, str]) -> None:
    data = signed(key[0]).replace(b"the report is attached", b"wire 10,000 EUR today.")
    v = verdict(data, "192.0.2.66", key[1])
    assert v["spf"]["result"] == "fail" and v["dkim"][0]["result"] == "fail"
    assert v["dmarc"]["result"] == "fail" and v["dmarc"]["policy"] == "reject"


def test_wrong_key_in_dns_fails_dkim(key: tuple[bytes, str]) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    spki = other.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    v = verdict(signed(key[0]), "203.0.113.9", "v=DKIM1; k=rsa; p=" + base64.b64encode(spki).decode())
    assert v["dkim"][0]["result"] == "fail" and v["dmarc"]["aligned"] == ["spf"]


def test_header_claims_are_parsed_and_marked_trusted() -> None:
    arc = ("ARC-Seal", "i=1; a=rsa-sha256; t=1; cv=none; d=relay.example; s=arc; b=xyz")
    ams = ("ARC-Message-Signature", "i=1; a=rsa-sha256; d=relay.example; s=arc; h=from; bh=x; b=y")
    aar = ("ARC-Authentication-Results", "i=1; relay.example; spf=fail smtp.mailfrom=x@y.example")
    data = raw(
        message(
            "hi",
            headers=(
                ("Authentication-Results", AR),
                ("Authentication-Results", "evil.example; dkim=pass"),
                arc,
                ams,
                aar,
            ),
        )
    )
    doc = parse(data)
    res = run_enrichers(
        doc.message.to_dict(), doc.payloads, data, ["auth"], {"auth": {"authserv_id": "mx.acme.example"}}
    )["auth"]["result"]
    first, forged = res["authentication_results"]
    assert first["trusted"] and not forged["trusted"] and res["verdict"] is None
    assert [(r["method"], r["result"]) for r in first["results"]] == [
        ("spf", "pass"),
        ("dkim", "pass"),
        ("dmarc", "pass"),
    ]
    assert first["results"][1]["properties"] == {
        "header.d": "example.com",
        "header.s": "sel",
        "header.b": "AbC;d",
    }
    assert res["arc"]["claimed_cv"] == "none" and res["arc"]["instances"][0]["results"]["authserv_id"] == (
        "relay.example"
    )


def test_sloppy_headers_never_raise() -> None:
    assert parse_authentication_results("")["results"] == []
    assert parse_authentication_results('x; ((unbalanced; spf = ; dkim=pass reason="a')["authserv_id"] == "x"
    assert org_domain("a.b.example.co.uk") == "example.co.uk"


def test_unpublished_key_is_permerror(key: tuple[bytes, str]) -> None:
    data = signed(key[0]).replace(b"s=sel;", b"s=gone;")
    v = verdict(data, "203.0.113.9", key[1])
    assert v["dkim"] == [
        {
            "d": "example.com",
            "s": "gone",
            "result": "permerror",
            "error": "no key at gone._domainkey.example.com",
        }
    ]
    assert v["dmarc"]["aligned"] == ["spf"]


def test_arc_chain_is_validated_cryptographically(key: tuple[bytes, str]) -> None:
    ar = ("Authentication-Results", "relay.example; spf=pass smtp.mailfrom=alice@example.com")
    data = raw(message("forwarded by a list", headers=(ar,)))
    sealed = b"".join(dkim.arc_sign(data, b"arc", b"relay.example", key[0], b"relay.example")) + data
    records = {"arc._domainkey.relay.example TXT": [key[1]]}

    def arc(msg: bytes) -> dict:
        env = Envelope(
            "alice@example.com", ("bob@acme.example",), client_ip="203.0.113.9", helo="relay.example"
        )
        doc = parse(msg, envelope=env)
        out = run_enrichers(doc.message.to_dict(), doc.payloads, msg, ["auth"], {"auth": {"dns": records}})
        return out["auth"]["result"]

    good = arc(sealed)
    assert good["verdict"]["arc"] == {"cv": "pass", "reason": "success"}
    assert good["arc"]["claimed_cv"] == "none" and good["arc"]["instances"][0]["seal"]["d"] == "relay.example"
    assert (
        arc(sealed.replace(b"forwarded by a list", b"forwarded by a thief"))["verdict"]["arc"]["cv"] == "fail"
    )
