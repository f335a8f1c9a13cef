"""The messy mail as typed results: auto-replies, DSN/feedback reports, stripped reply text, S/MIME/PGP
detection, uuencode, text/calendar invitations (icalendar) and winmail.dat (tnefparse; a TNEF file built
here)."""

from __future__ import annotations

import binascii
import hashlib
import struct

import pytest

from tests.enrich_mail import enrich, message, raw

DSN = b"""From: MAILER-DAEMON@mx.example.org
To: alice@example.com
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

This is the mail system. Your message could not be delivered.

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org
Arrival-Date: Tue, 5 Mar 2024 10:00:00 +0000

Final-Recipient: rfc822; bob@example.org
Original-Recipient: rfc822;bob@example.org
Action: failed
Status: 5.1.1
Remote-MTA: dns; mail.example.org
Diagnostic-Code: smtp; 550 5.1.1 <bob@example.org>: Recipient address
 rejected: User unknown

Final-Recipient: rfc822; carol@example.org
Action: delivered
Status: 2.0.0

--B
Content-Type: text/rfc822-headers

From: alice@example.com
Message-ID: <orig-123@example.com>

--B--
"""

ARF = b"""From: abuse@isp.example
To: postmaster@example.com
Subject: FW: spam report
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="F"

--F
Content-Type: text/plain

This is an email abuse report.
--F
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: SomeGenerator/1.0
Version: 1
Original-Mail-From: <news@example.com>
Source-IP: 192.0.2.1
Reported-Domain: example.com

--F
Content-Type: message/rfc822

From: news@example.com
Message-ID: <spam-9@example.com>
Subject: buy now

hello
--F--
"""

ICS = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//mailpipe//test//EN
METHOD:REQUEST
BEGIN:VEVENT
UID:abc-1@example.com
DTSTAMP:20240301T090000Z
DTSTART:20240305T100000Z
DTEND:20240305T110000Z
SUMMARY:Planning
LOCATION:Room 4
SEQUENCE:2
ORGANIZER;CN=Alice:mailto:alice@example.com
ATTENDEE;CN=Bob;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION:mailto:bob@example.com
ATTENDEE;CN=Carol;PARTSTAT=ACCEPTED:mailto:carol@example.com
END:VEVENT
END:VCALENDAR
"""


def one(data: bytes, name: str) -> dict:
    out = enrich(data, [name])[name]
    assert out["status"] in ("ok", "skipped"), out
    return out


@pytest.mark.parametrize(
    ("headers", "subject", "autoreply", "kind"),
    [
        ((("Auto-Submitted", "auto-replied"),), "Re: hi", True, "auto-replied"),
        ((("X-Autoreply", "yes"),), "Re: hi", True, "auto-reply"),
        ((), "Out of Office: back Monday", True, "out-of-office"),
        ((("Precedence", "bulk"),), "Newsletter", False, "bulk"),
        ((("Auto-Submitted", "no"),), "Re: hi", False, None),
    ],
)
def test_autoreply(headers: tuple, subject: str, autoreply: bool, kind: str | None) -> None:
    res = one(raw(message("I am away.", subject=subject, headers=headers)), "autoreply")["result"]
    assert (res["autoreply"], res["kind"]) == (autoreply, kind)


def test_dsn_recipients_and_original_message_id() -> None:
    res = one(DSN, "bounce")["result"]
    assert res["bounce"] and res["type"] == "dsn" and res["reporting_mta"] == "mx.example.org"
    failed, delivered = res["recipients"]
    assert failed == {
        "recipient": "bob@example.org",
        "original_recipient": "bob@example.org",
        "action": "failed",
        "status": "5.1.1",
        "remote_mta": "mail.example.org",
        "diagnostic_code": "550 5.1.1 <bob@example.org>: Recipient address rejected: User unknown",
    }
    assert delivered["action"] == "delivered" and res["original_message_id"] == "<orig-123@example.com>"


def test_feedback_report_is_not_a_bounce() -> None:
    res = one(ARF, "bounce")["result"]
    assert res["type"] == "feedback" and res["bounce"] is False
    assert res["feedback"]["feedback-type"] == "abuse" and res["feedback"]["source-ip"] == "192.0.2.1"
    assert res["original_message_id"] == "<spam-9@example.com>"
    assert one(raw(message("hello")), "bounce")["status"] == "skipped"


def test_stripped_text_drops_quotes_and_signature() -> None:
    body = (
        "Sounds good, see you Monday.\n\nThanks,\nBob\n-- \nBob Builder | ACME\n\n"
        "On Tue, 5 Mar 2024 at 10:00, Alice <alice@example.com> wrote:\n> Shall we meet?\n> Alice\n"
    )
    res = one(raw(message(body)), "reply")["result"]
    assert res["stripped_text"] == "Sounds good, see you Monday.\n\nThanks,\nBob"
    assert res["signature"] == "-- \nBob Builder | ACME" and res["quoted"]
    outlook = "Yes.\n\nSent from my iPhone\n\n-----Original Message-----\nFrom: x\nSent: y\n\nold"
    assert one(raw(message(outlook)), "reply")["result"]["stripped_text"] == "Yes."


def test_smime_and_pgp_detection() -> None:
    smime = raw(message("signed", attachments=(("smime.p7s", "application/pkcs7-signature", b"\x30\x80"),)))
    res = one(smime, "crypto")["result"]
    assert res["signed"] and not res["encrypted"] and res["scheme"] == "smime"
    pgp = one(raw(message("-----BEGIN PGP MESSAGE-----\nhQEMA\n-----END PGP MESSAGE-----\n")), "crypto")[
        "result"
    ]
    assert pgp["encrypted"] and pgp["scheme"] == "pgp"
    assert one(raw(message("plain")), "crypto")["result"]["scheme"] is None


def test_uuencoded_file_in_body() -> None:
    payload = b"MZ\x90\x00" + bytes(range(256)) * 2
    lines = [binascii.b2a_uu(payload[i : i + 45]).decode() for i in range(0, len(payload), 45)]
    body = "See attached.\n\nbegin 644 tool.exe\n" + "".join(lines) + "`\nend\n"
    res = one(raw(message(body)), "uuencode")["result"]
    (entry,) = res["files"]  # stored as a derived attachment by the pipeline: tests/test_enrich_derived.py
    assert entry["key"].endswith("/body.1-tool.exe") and entry["derived_from"] is None
    assert (entry["filename"], entry["size"], entry["sha256"]) == (
        "tool.exe",
        len(payload),
        hashlib.sha256(payload).hexdigest(),
    )
    assert res["truncated"] is False


def test_calendar_invitation() -> None:
    msg = message("You are invited.")
    msg.add_alternative(ICS, subtype="calendar", params={"method": "REQUEST"})
    res = one(raw(msg), "calendar")["result"]["calendars"][0]
    assert res["method"] == "REQUEST"
    ev = res["events"][0]
    assert (ev["uid"], ev["summary"], ev["location"], ev["sequence"]) == (
        "abc-1@example.com",
        "Planning",
        "Room 4",
        2,
    )
    assert ev["start"] == "2024-03-05T10:00:00+00:00" and ev["end"] == "2024-03-05T11:00:00+00:00"
    assert ev["organizer"]["address"] == "alice@example.com" and ev["organizer"]["name"] == "Alice"
    assert [(a["address"], a["partstat"]) for a in ev["attendees"]] == [
        ("bob@example.com", "NEEDS-ACTION"),
        ("carol@example.com", "ACCEPTED"),
    ]


def tnef_file(body: bytes, files: dict[str, bytes]) -> bytes:
    """A minimal TNEF stream (MS-OXTNEF): version, body, and per file rendering data + title + data."""

    def attr(level: int, attr_id: int, data: bytes) -> bytes:
        return struct.pack("<BII", level, attr_id, len(data)) + data + struct.pack("<H", sum(data) & 0xFFFF)

    out = struct.pack("<IH", 0x223E9F78, 1) + attr(1, 0x00089006, struct.pack("<I", 0x00010000))
    out += attr(1, 0x0002800C, body)
    for name, data in files.items():
        out += attr(2, 0x00069002, bytes(14)) + attr(2, 0x00018010, name.encode() + b"\0")
        out += attr(2, 0x0006800F, data)
    return out


def test_winmail_dat_unpacked() -> None:
    dat = tnef_file(b"Please find the report.", {"report.pdf": b"%PDF-1.4 fake", "notes.txt": b"n" * 100})
    res = one(raw(message("", attachments=(("winmail.dat", "application/ms-tnef", dat),))), "tnef")["result"]
    t = res["tnef"][0]
    assert t["error"] is None and t["body_text"] == "Please find the report." and t["body_html"] is None
    assert [(a["filename"], a["size"], a["content_type"]) for a in t["attachments"]] == [
        ("report.pdf", 13, "application/pdf"),
        ("notes.txt", 100, "text/plain"),
    ]
    broken = one(
        raw(message("", attachments=(("winmail.dat", "application/ms-tnef", b"not a TNEF stream"),))), "tnef"
    )["result"]["tnef"][0]
    assert broken["error"]


def test_raw_fallback_view_sees_delivery_status_and_calendar() -> None:
    from mailpipe.core.enrich.run import run_enrichers

    out = run_enrichers({}, {}, DSN, ["bounce"])["bounce"]["result"]
    assert out["bounce"] and out["recipients"][0]["status"] == "5.1.1"


def test_attachment_hashes_include_zip_entries() -> None:
    from tests.enrich_mail import zipped

    data = raw(message("x", attachments=(("a.zip", "application/zip", zipped({"in.txt": b"abc"})),)))
    files = one(data, "attachment_hashes")["result"]["files"]
    inner = next(f for f in files if f["object"].endswith("a.zip/in.txt"))
    assert inner == {
        "object": inner["object"],
        "size": 3,
        "md5": hashlib.md5(b"abc").hexdigest(),
        "sha1": hashlib.sha1(b"abc").hexdigest(),
        "sha256": hashlib.sha256(b"abc").hexdigest(),
    }
