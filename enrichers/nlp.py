"""``language`` (lingua, restricted to a configured set) and ``sentiment`` (VADER, English only).

Both read the body: the text part, else the HTML part with its tags stripped; quoted lines (``>``) are
dropped. lingua with every language loaded costs about 1 GB, so only the configured languages are loaded.

Config::

    language:  {languages: ["en", "fr", "de", "es", "it", "nl", "pt"], min_chars: 20, segments: false}
    sentiment: {}   # English only: any other detected language gives status "skipped"
"""

from __future__ import annotations

import functools
import html as html_lib
import re
from typing import TYPE_CHECKING, Any, cast

from mailpipe.core.enrich.contract import Context, Skip

if TYPE_CHECKING:
    from mailpipe.core.enrich.view import MessageView

DEFAULT_LANGUAGES = ("en", "fr", "de", "es", "it", "nl", "pt")
MAX_CHARS = 10_000
_TAG = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]+>", re.S | re.I)


def body_text(view: MessageView, limit: int = MAX_CHARS) -> str:
    """The readable body, without quoted history, at most ``limit`` characters."""
    text = view.text or html_lib.unescape(_TAG.sub(" ", (view.html or "")[: limit * 20]))  # markup-heavy HTML
    lines = [ln for ln in text[: limit * 2].splitlines() if not ln.lstrip().startswith(">")]
    return re.sub(r"[ \t]+", " ", "\n".join(lines)).strip()[:limit]


@functools.lru_cache(maxsize=4)
def _detector(codes: tuple[str, ...]) -> Any:
    from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

    langs = [Language.from_iso_code_639_1(getattr(IsoCode639_1, c.upper())) for c in codes]
    if len(langs) < 2:
        raise ValueError("language: configure at least two languages")
    return LanguageDetectorBuilder.from_languages(*langs).build()


def detect(text: str, codes: tuple[str, ...] = DEFAULT_LANGUAGES, segments: bool = False) -> dict[str, Any]:
    """``{"language": "en", "confidence": 0.97, "candidates": [...], "segments": [...]?}``."""
    det = _detector(tuple(sorted(c.lower() for c in codes)))
    values = det.compute_language_confidence_values(text)
    cands = [
        {"language": v.language.iso_code_639_1.name.lower(), "confidence": round(v.value, 4)}
        for v in values[:3]
        if v.value >= 0.01
    ]
    out: dict[str, Any] = {
        "language": cands[0]["language"] if cands else None,
        "confidence": cands[0]["confidence"] if cands else 0.0,
        "candidates": cands,
    }
    if segments:
        out["segments"] = [
            {
                "language": r.language.iso_code_639_1.name.lower(),
                "start": r.start_index,
                "end": r.end_index,
                "words": r.word_count,
            }
            for r in det.detect_multiple_languages_of(text)
        ]
    return out


class LanguageEnricher:
    name = "language"
    requires = ("lingua",)
    version = "1"
    wants = frozenset({"text", "html"})
    timeout = 30.0
    max_bytes = MAX_CHARS

    def run(self, view: MessageView, ctx: Context) -> dict[str, Any]:
        text = body_text(view)
        if len(text) < int(ctx.config.get("min_chars", 20)):
            raise Skip("body too short to detect a language")
        codes = tuple(ctx.config.get("languages") or DEFAULT_LANGUAGES)
        return detect(text, codes, bool(ctx.config.get("segments", False)))


@functools.lru_cache(maxsize=1)
def _vader() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


class SentimentEnricher:
    name = "sentiment"
    requires = ("lingua", "vaderSentiment")
    version = "1"
    wants = frozenset({"text", "html"})
    timeout = 30.0
    max_bytes = MAX_CHARS

    def run(self, view: MessageView, ctx: Context) -> dict[str, Any]:
        text = body_text(view)
        if not text:
            raise Skip("no body text")
        lang = _language_of(text, ctx)
        if lang != "en":
            raise Skip(f"sentiment is English-only (VADER); body language is {lang or 'unknown'}")
        scores = _vader().polarity_scores(text)
        compound = scores["compound"]
        label = "positive" if compound >= 0.05 else "negative" if compound <= -0.05 else "neutral"
        return {
            "label": label,
            "compound": compound,
            "positive": scores["pos"],
            "negative": scores["neg"],
            "neutral": scores["neu"],
            "language": lang,
        }


def _language_of(text: str, ctx: Context) -> str | None:
    """Reuse the ``language`` step's answer when it ran before; otherwise detect with the default set."""
    prior = ctx.results.get("language") or {}
    if prior.get("status") == "ok":
        return cast("str | None", prior["result"]["language"])
    if prior.get("status") == "skipped" or len(text) < 20:
        return "en" if ctx.config.get("assume_english") else None
    return cast("str | None", detect(text, tuple(ctx.config.get("languages") or DEFAULT_LANGUAGES))["language"])
