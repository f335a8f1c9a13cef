"""``language`` (lingua, a configured language set) and ``sentiment`` (VADER, English only) on real bodies."""

from __future__ import annotations

from tests.enrich_mail import enrich, message, raw

HAPPY = "Thank you so much for the quick delivery! The product is excellent and I love it."
ANGRY = "This is terrible. The parcel arrived broken, support ignored me and I am very angry. Awful service."
FRENCH = "Bonjour, je voudrais annuler ma commande passée hier, car le colis n'est jamais arrivé. Merci."


def run(text: str, names: list[str], conf: dict | None = None, html: str | None = None) -> dict:
    return enrich(raw(message(text, html=html)), names, conf or {})


def test_language_of_english_and_french_bodies() -> None:
    en = run(HAPPY, ["language"])["language"]
    fr = run(FRENCH, ["language"], {"language": {"languages": ["en", "fr", "de"]}})["language"]
    assert en["status"] == "ok" and en["result"]["language"] == "en" and en["result"]["confidence"] > 0.5
    assert fr["result"]["language"] == "fr" and fr["result"]["candidates"][0]["language"] == "fr"


def test_language_segments_of_a_mixed_body() -> None:
    conf = {"language": {"languages": ["en", "fr"], "segments": True}}
    res = run(FRENCH + " " + ANGRY, ["language"], conf)["language"]["result"]
    assert [s["language"] for s in res["segments"]] == ["fr", "en"]


def test_language_restricted_set_only_answers_from_the_set() -> None:
    res = run(FRENCH, ["language"], {"language": {"languages": ["en", "de"]}})["language"]["result"]
    assert res["language"] in {"en", "de"}


def test_sentiment_positive_negative_and_reuses_language() -> None:
    happy = run(HAPPY, ["language", "sentiment"])
    angry = run(ANGRY, ["sentiment"])["sentiment"]
    assert (
        happy["sentiment"]["result"]["label"] == "positive" and happy["sentiment"]["result"]["compound"] > 0.5
    )
    assert angry["status"] == "ok" and angry["result"]["label"] == "negative"


def test_sentiment_skips_other_languages_clearly() -> None:
    out = run(FRENCH, ["language", "sentiment"])["sentiment"]
    assert out["status"] == "skipped" and out["result"] is None
    assert out["error"] == "sentiment is English-only (VADER); body language is fr"


def test_html_only_body_and_quoted_history_dropped() -> None:
    msg = message(HAPPY)
    msg.set_content("<html><body><p>" + ANGRY + "</p><style>p{}</style></body></html>", subtype="html")
    res = enrich(raw(msg), ["sentiment"])["sentiment"]["result"]
    assert res["label"] == "negative"
    quoted = run(HAPPY + "\n\n> " + ANGRY + "\n> " + ANGRY, ["sentiment"])["sentiment"]["result"]
    assert quoted["label"] == "positive"


def test_empty_body_is_skipped() -> None:
    out = run("", ["language", "sentiment"])
    assert out["language"]["status"] == "skipped" and out["sentiment"]["status"] == "skipped"
