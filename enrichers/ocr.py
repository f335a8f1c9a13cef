"""``ocr``: the text of PDF and image attachments, page by page, plus invoice fields (``result.invoice``).

PDF pages are read with pypdf first; a page without a text layer is rendered by poppler's ``pdftoppm`` and
read by Tesseract (its CLI, as a subprocess with a time and memory budget). Images go to Tesseract directly.

Config (``config["ocr"]``)::

    languages: "eng"        # Tesseract models ("eng+deu"); each needs its tesseract-ocr-<lang> package
    detect_languages: [en, fr, de, es, it, nl, pt]   # page language by lingua (nlp extra), else None
    dpi: 200                # rendering resolution for scanned pages;  threads: 1 (Tesseract OpenMP threads)
    max_pages: 20           # per document; later pages are counted, not read
    min_text_chars: 20      # a text layer shorter than this counts as "no text layer"
    page_timeout: 60        # seconds per engine call;  memory_mb: 1024 per engine call
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailpipe.core.enrich.contract import Context, Skip
from mailpipe.enrichers import _proc, invoice

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mailpipe.core.enrich.view import MessageView, Part

IMAGE_TYPES = {"image/png", "image/jpeg", "image/tiff", "image/gif", "image/bmp", "image/webp", "image/jpg"}


class OcrEnricher:
    name = "ocr"
    requires = ("pypdf",)
    programs = ("pdftoppm", "tesseract")
    version = "1"
    wants = frozenset({"attachments"})
    timeout = 600.0
    max_bytes = 30 * 1024 * 1024  # per attachment

    def run(self, view: MessageView, ctx: Context) -> dict[str, Any]:
        targets = [p for p in view.parts if _kind(p) and len(p.data) <= self.max_bytes]
        if not targets:
            raise Skip("no PDF or image attachment")
        documents, found = [], None
        with tempfile.TemporaryDirectory(prefix="mailpipe-ocr-") as tmp:
            for n, part in enumerate(targets):
                doc = _document(part, Path(tmp) / str(n), ctx.config)
                _detect_languages(doc["pages"], ctx.config)
                documents.append(doc)
                text = "\n".join(p.get("text") or "" for p in doc["pages"])
                if found is None and (fields := invoice.extract(text)):
                    found = {**fields, "object": doc["object"]}
        return {"documents": documents, "pages": sum(len(d["pages"]) for d in documents), "invoice": found}


def _kind(part: Part) -> str | None:
    name = (part.filename or "").lower()
    if part.content_type == "application/pdf" or name.endswith(".pdf") or part.data[:5] == b"%PDF-":
        return "pdf"
    if part.content_type in IMAGE_TYPES or name.endswith((".png", ".jpg", ".jpeg", ".tif", ".tiff")):
        return "image"
    return None


def _document(part: Part, work: Path, conf: Mapping[str, Any]) -> dict[str, Any]:
    work.mkdir()
    label = f"{part.path} {part.filename}".strip() if part.filename else part.path
    out: dict[str, Any] = {"object": label, "type": _kind(part), "pages": [], "error": None}
    try:
        if out["type"] == "image":
            src = work / "image"
            src.write_bytes(part.data)
            out["pages"].append({"page": 1, **_tesseract(src, conf)})
        else:
            out["pages"], out["page_count"] = _pdf_pages(part.data, work, conf)
    except Exception as exc:  # a broken file is this document's problem, not the message's
        out["error"] = f"{type(exc).__name__}: {exc}"[:300]
    return out


def _pdf_pages(data: bytes, work: Path, conf: Mapping[str, Any]) -> tuple[list[dict[str, Any]], int]:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted:
        reader.decrypt("")  # an owner-password-only PDF opens with the empty user password
    src = work / "doc.pdf"
    src.write_bytes(data)
    pages = []
    for i, page in enumerate(reader.pages[: int(conf.get("max_pages", 20))], 1):
        try:
            text = page.extract_text() or ""
        except Exception:  # a page whose content stream pypdf cannot read is OCR'd instead
            text = ""
        if len(text.strip()) >= int(conf.get("min_text_chars", 20)):
            pages.append(
                {
                    "page": i,
                    "source": "text",
                    "text": text,
                    "confidence": None,
                    "language": None,
                    "model": None,
                }
            )
        else:
            pages.append({"page": i, **_render_and_read(src, i, work, conf)})
    return pages, len(reader.pages)


def _render_and_read(pdf: Path, page: int, work: Path, conf: Mapping[str, Any]) -> dict[str, Any]:
    root = work / f"p{page}"
    # Uncompressed PGM: encoding a PNG cost more than the rendering itself (0.7 s vs 0.08 s a page).
    dpi, num = str(int(conf.get("dpi", 200))), str(page)
    cmd = ["pdftoppm", "-r", dpi, "-f", num, "-l", num, "-gray", "-singlefile", str(pdf), str(root)]
    _proc.run(cmd, **_budget(conf))
    return _tesseract(root.with_suffix(".pgm"), conf)


def _tesseract(image: Path, conf: Mapping[str, Any]) -> dict[str, Any]:
    lang = str(conf.get("languages", "eng"))
    # One OpenMP thread: on a busy 2-core box Tesseract's own threads made a page 4x slower (4.7 vs 1.1 s).
    env = {"OMP_THREAD_LIMIT": str(int(conf.get("threads", 1)))}
    tsv = _proc.run(["tesseract", str(image), "stdout", "-l", lang, "tsv"], env=env, **_budget(conf))
    lines: dict[tuple[str, ...], list[str]] = {}
    confs: list[float] = []
    for row in tsv.decode("utf-8", "replace").splitlines()[1:]:
        cols = row.split("\t")
        if len(cols) == 12 and cols[0] == "5" and cols[11].strip():
            lines.setdefault(tuple(cols[1:5]), []).append(cols[11])
            confs.append(float(cols[10]))
    text = "\n".join(" ".join(words) for words in lines.values())
    confidence = round(sum(confs) / len(confs) / 100, 3) if confs else None
    return {"source": "ocr", "text": text, "confidence": confidence, "language": None, "model": lang}


def _detect_languages(pages: list[dict[str, Any]], conf: Mapping[str, Any]) -> None:
    """Each page's language with lingua (the ``nlp`` extra) over ``detect_languages``; without it, None."""
    from mailpipe.enrichers.nlp import DEFAULT_LANGUAGES, detect

    codes = tuple(conf.get("detect_languages") or DEFAULT_LANGUAGES)
    for page in pages:
        if len((page.get("text") or "").strip()) >= 20:
            try:
                page["language"] = detect(page["text"][:10_000], codes)["language"]
            except ImportError:  # a bundle with OCR but without the nlp extra
                return


def _budget(conf: Mapping[str, Any]) -> dict[str, Any]:
    return {"timeout": float(conf.get("page_timeout", 60)), "memory_mb": int(conf.get("memory_mb", 1024))}
