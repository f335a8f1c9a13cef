"""The ``ocr`` enricher with the real engines: pypdf, poppler ``pdftoppm`` and Tesseract (deps/apt-test.txt).

The scanned invoice is generated here: rendered to an image with Pillow and a real TTF font (DejaVu Sans),
then wrapped in a PDF that has no text layer, exactly what a scanner or a "print to PDF as image" produces.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from tests.enrich_mail import enrich, message, raw

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
pytestmark = pytest.mark.skipif(
    not (shutil.which("tesseract") and shutil.which("pdftoppm") and FONT.exists()),
    reason="tesseract-ocr, poppler-utils or fonts-dejavu-core missing (deps/apt-test.txt)",
)

INVOICE_LINES = [
    "ACME Supplies Ltd.",
    "12 Harbour Road, Bristol",
    "",
    "INVOICE",
    "Invoice Number: INV-2024-0042",
    "Invoice Date: 2024-03-15",
    "Bill to: Globex Corporation",
    "",
    "Widgets            10 x 12.50      125.00",
    "Gadgets             3 x 45.00      135.00",
    "",
    "Subtotal: 260.00",
    "VAT 20%: 52.00",
    "Total: EUR 312.00",
]


def invoice_image(dpi: int = 150) -> Image.Image:
    """An A4 page at ``dpi`` with the invoice printed in 11 pt DejaVu Sans."""
    width, height = int(8.27 * dpi), int(11.69 * dpi)
    img = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(img)
    font = ImageFont.truetype(str(FONT), size=int(11 / 72 * dpi * 1.4))
    y = dpi
    for line in INVOICE_LINES:
        draw.text((dpi, y), line, font=font, fill=0)
        y += int(font.size * 1.6)
    return img


def scanned_pdf(pages: int = 1) -> bytes:
    """A PDF whose pages are images only (Pillow's PDF writer emits no text layer)."""
    buf = io.BytesIO()
    imgs = [invoice_image() for _ in range(pages)]
    imgs[0].save(buf, format="PDF", resolution=150, save_all=True, append_images=imgs[1:])
    return buf.getvalue()


def text_pdf(text: str) -> bytes:
    """A minimal one-page PDF with a real text layer (Helvetica), offsets computed for a valid xref table."""
    stream = b"BT /F1 12 Tf 72 720 Td (" + text.encode("latin-1") + b") Tj ET"
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


def ocr(*attachments: tuple[str, str, bytes], **conf: object) -> dict:
    out = enrich(raw(message(attachments=attachments)), ["ocr"], {"ocr": conf})["ocr"]
    assert out["status"] == "ok", out
    return out["result"]


def test_scanned_invoice_pdf_is_read_and_fields_extracted() -> None:
    res = ocr(("scan.pdf", "application/pdf", scanned_pdf()))
    page = res["documents"][0]["pages"][0]
    assert page["source"] == "ocr" and page["confidence"] > 0.7
    assert page["language"] == "en" and page["model"] == "eng"
    assert "INV-2024-0042" in page["text"]
    assert res["invoice"] == {
        "number": "INV-2024-0042",
        "date": "2024-03-15",
        "total": "312.00",
        "currency": "EUR",
        "object": "2 scan.pdf",
    }


def test_text_layer_is_used_before_ocr() -> None:
    res = ocr(("t.pdf", "application/pdf", text_pdf("Invoice No: A-77 Date: 01/02/2024 Total: $ 99.95")))
    page = res["documents"][0]["pages"][0]
    assert page["source"] == "text" and "A-77" in page["text"]
    assert res["invoice"]["number"] == "A-77" and res["invoice"]["total"] == "99.95"
    assert res["invoice"]["currency"] == "USD"


def test_image_attachment_and_page_limit() -> None:
    png = io.BytesIO()
    invoice_image().save(png, format="PNG")
    res = ocr(
        ("photo.png", "image/png", png.getvalue()),
        ("two.pdf", "application/pdf", scanned_pdf(2)),
        max_pages=1,
    )
    image, pdf = res["documents"]
    assert image["type"] == "image" and "Globex" in image["pages"][0]["text"]
    assert pdf["page_count"] == 2 and len(pdf["pages"]) == 1


def test_broken_pdf_is_a_document_error_not_a_lost_message() -> None:
    res = ocr(("bad.pdf", "application/pdf", b"%PDF-1.4\nthis is not a pdf"))
    assert res["documents"][0]["error"] and res["invoice"] is None


def test_no_pdf_or_image_is_skipped() -> None:
    out = enrich(raw(message(attachments=(("a.txt", "text/plain", b"x"),))), ["ocr"], {})["ocr"]
    assert out["status"] == "skipped" and out["error"] == "no PDF or image attachment"


def test_engine_time_and_memory_budgets_are_enforced() -> None:
    pdf = ("scan.pdf", "application/pdf", scanned_pdf())
    slow = ocr(pdf, page_timeout=0.001)["documents"][0]
    assert "timed out after 0.001 s" in slow["error"]
    starved = ocr(pdf, memory_mb=8)["documents"][0]
    assert starved["error"].startswith("EngineFailed: pdftoppm") and starved["pages"] == []
