"""Test helpers for routing/webhooks/projections: one realistic message, parsed by the real MIME parser."""

from __future__ import annotations

import base64
import functools
import socket
import threading
import time
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from mailpipe.core.mime.parser import parse
from mailpipe.core.model import Envelope
from mailpipe.core.routing.webhooks import verify

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
SUBJECT = "Invoice 42 \u2013 M\u00e4rz"  # non-ASCII on purpose (RFC 2047 round trip)
TEXT = "Hello,\nplease find invoice 42 attached.\n"
HTML = '<p>Hello,</p><p>please find <b>invoice 42</b> attached.</p><img src="cid:logo@pay.example">'


@functools.cache
def raw_message() -> bytes:
    """multipart/mixed: text + html (related, inline PNG) + a PDF; two customers in To/Cc.

    Cached: the same bytes every call (MIME boundaries are random per build, and the message id hashes them).
    """
    m = EmailMessage()
    m["From"] = "Alice Payer <alice@pay.example>"
    m["To"] = "Billing <billing+inv@acme.example>, Bob <bob@globex.example>"
    m["Cc"] = "Carol <carol@pay.example>"
    m["Subject"] = SUBJECT
    m["Message-ID"] = "<inv42@pay.example>"
    m["Date"] = "Sun, 29 Nov 2026 07:00:00 +0000"
    m["X-Priority"] = "1"
    m.set_content(TEXT)
    m.add_alternative(HTML, subtype="html")
    html_part = m.get_payload()[1]
    html_part.add_related(PNG, maintype="image", subtype="png", cid="<logo@pay.example>", filename="logo.png")
    m.add_attachment(PDF, maintype="application", subtype="pdf", filename="invoice 42.pdf")
    return m.as_bytes()


def parsed(
    raw: bytes | None = None,
    rcpts: tuple[str, ...] = ("billing+inv@acme.example", "bob@globex.example"),
    sender: str = "bounces+x@pay.example",
    enrichments: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """(canonical parsed dict, attachment payloads by key), as the pipeline builds them."""
    env = Envelope(mail_from=sender, rcpt_to=rcpts, client_ip="192.0.2.7")
    result = parse(raw or raw_message(), envelope=env)
    doc = result.message.to_dict()
    doc["raw_key"] = f"raw/{doc['id']}.eml"
    if enrichments:
        doc["enrichments"] = enrichments
    return doc, dict(result.payloads)


class Receiver:
    """A real HTTP server; ``script`` says how to answer each POST in turn (then 200 forever)."""

    def __init__(self, script: list[Any], secret: str = SECRET) -> None:
        self.script, self.secret, self.requests = list(script), secret, []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                h = {k.lower(): v for k, v in self.headers.items()}
                ok = verify(receiver.secret, h.get("webhook-id", ""), h.get("webhook-timestamp", ""),
                            h.get("webhook-signature", ""), body)
                receiver.requests.append({"headers": h, "body": body, "valid": ok, "at": time.monotonic()})
                action = receiver.script.pop(0) if receiver.script else 200
                if action == "hang":
                    time.sleep(0.6)  # longer than the client timeout
                    return
                if action == "garbage":
                    self.wfile.write(b"NOT HTTP AT ALL\r\n\r\n")
                    self.close_connection = True
                    return
                if action == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.send_response(action if ok else 401)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"

    def __enter__(self) -> Receiver:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
