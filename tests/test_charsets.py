"""Charsets a real mailbox contains, in bodies and RFC 2047 headers; aliases, lying and unknown charsets."""

from __future__ import annotations

import base64

import pytest

from mailpipe.core.mime.charsets import decode, resolve
from mailpipe.core.mime.encodings import decode_words
from mailpipe.core.mime.parser import parse
from mailpipe.core.model import dumps

SAMPLES = [
    # (declared charset, codec used to produce the bytes, text)
    ("iso-2022-jp", "iso2022_jp", "日本語のテキスト"),
    ("shift_jis", "cp932", "日本語①のテキスト"),  # ① exists only in the cp932 superset
    ("euc-jp", "euc_jp", "日本語"),
    ("gb2312", "gb18030", "中文测试𠀀"),  # a gb18030-only character under a gb2312 label
    ("gbk", "gbk", "中文測試"),
    ("gb18030", "gb18030", "中文"),
    ("big5", "big5hkscs", "香港增補字符集㐵"),
    ("euc-kr", "cp949", "한국어 똠방각하"),  # 똠 only in cp949 (UHC)
    ("ks_c_5601-1987", "cp949", "한국어"),
    ("koi8-r", "koi8_r", "Привет, мир"),
    ("koi8-u", "koi8_u", "Привіт, світ ґ"),
    ("windows-1250", "cp1250", "Příliš žluťoučký kůň"),
    ("windows-1251", "cp1251", "Съешь же ещё"),
    ("windows-1252", "cp1252", "Café “quoted” €"),
    ("windows-1253", "cp1253", "Ελληνικά"),
    ("windows-1254", "cp1254", "Türkçe ğış"),
    ("windows-1255", "cp1255", "עברית"),
    ("windows-1256", "cp1256", "العربية"),
    ("windows-1257", "cp1257", "Lietuvių ąčę"),
    ("windows-1258", "cp1258", "Ti\u00ea\u0301ng"),
    ("iso-8859-1", "latin-1", "Grüße"),
    ("iso-8859-2", "iso8859_2", "Zażółć gęślą"),
    ("iso-8859-5", "iso8859_5", "Кириллица"),
    ("iso-8859-7", "iso8859_7", "Ελληνικά"),
    ("iso-8859-8-i", "iso8859_8", "עברית"),
    ("iso-8859-9", "iso8859_9", "Türkçe"),
    ("iso-8859-15", "iso8859_15", "€uro œ"),
    ("utf-7", "utf-7", "Hi Mom -☺-!"),
    ("unicode-1-1-utf-7", "utf-7", "日本語"),
    ("utf8", "utf-8", "ünïcødé ✓"),
    ("UTF-8", "utf-8", "emoji 🎉"),
    ("utf-16", "utf-16", "wide"),
]


@pytest.mark.parametrize(("declared", "codec", "text"), SAMPLES)
def test_body_charsets(declared: str, codec: str, text: str) -> None:
    body = text.encode(codec)
    raw = (
        f'Content-Type: text/plain; charset="{declared}"\nContent-Transfer-Encoding: base64\n\n'.encode()
        + base64.encodebytes(body)
    )
    msg = parse(raw).message
    assert msg.text == text
    assert not [d for d in msg.defects if d.kind == "charset_fallback"]


@pytest.mark.parametrize(("declared", "codec", "text"), [s for s in SAMPLES if s[1] not in ("utf-16",)])
def test_encoded_word_charsets(declared: str, codec: str, text: str) -> None:
    word = base64.b64encode(text.encode(codec)).decode()
    assert decode_words(f"=?{declared}?B?{word}?=") == text
    q = "".join(f"={b:02X}" for b in text.encode(codec))
    assert decode_words(f"=?{declared}?Q?{q}?=") == text


def test_iso2022jp_encoded_words_split_mid_character() -> None:
    raw = "日本語のテストです".encode("iso2022_jp")
    cut = 9  # inside the escape-sequence run of double-byte characters
    words = [base64.b64encode(raw[:cut]).decode(), base64.b64encode(raw[cut:]).decode()]
    header = f"=?ISO-2022-JP?B?{words[0]}?=\r\n =?iso-2022-jp?B?{words[1]}?="
    msg = parse(f"Subject: {header}\n\nx\n".encode()).message
    assert msg.subject == "日本語のテストです"


def test_utf8_encoded_words_split_mid_character_and_across_encodings() -> None:
    raw = "é✓".encode()
    first_byte = f"={raw[0]:02X}"  # half of "é" in Q encoding, the rest of the text in a B word
    header = f"=?utf-8?q?{first_byte}?= =?UTF-8?B?{base64.b64encode(raw[1:]).decode()}?="
    assert decode_words(header) == "é✓"


def test_whitespace_between_words_of_different_charsets_is_dropped() -> None:
    assert decode_words("=?iso-8859-1?q?a=E9?= =?utf-8?q?=C3=A9?= tail") == "aéé tail"
    assert decode_words("x =?utf-8?q?a?=  y") == "x a  y"


def test_raw_utf8_headers_rfc6532() -> None:
    msg = parse("From: Jörg <jörg@münchen.example>\nSubject: Grüße ✓\n\nx\n".encode()).message
    assert msg.subject == "Grüße ✓"
    assert (msg.from_[0].name, msg.from_[0].address) == ("Jörg", "jörg@münchen.example")
    assert msg.defects == ()


def test_raw_8bit_latin1_header_falls_back_with_defect() -> None:
    msg = parse(b"Subject: Gr\xfc\xdfe\n\nx\n").message
    assert msg.subject == "Grüße"
    assert any(d.kind == "charset_fallback" and "windows-1252" in d.detail for d in msg.defects)


def test_lying_charset_declared_utf8_with_latin1_bytes() -> None:
    raw = b"Content-Type: text/plain; charset=utf-8\n\nna\xefve caf\xe9\n"
    msg = parse(raw).message
    assert msg.text == "naïve café\n"
    (d,) = msg.defects
    assert (
        d.kind == "charset_fallback"
        and d.detail == "declared 'utf-8'; decoded as windows-1252 with replacement"
    )


def test_lying_charset_declared_latin1_is_trusted_but_declared_ascii_with_utf8_is_read_as_utf8() -> None:
    assert parse("Content-Type: text/plain; charset=us-ascii\n\nüber\n".encode()).message.text == "über\n"
    assert parse("Content-Type: text/plain\n\nüber\n".encode()).message.text == "über\n"


def test_declared_multibyte_charset_with_utf8_bytes_falls_back_to_utf8() -> None:
    msg = parse("Content-Type: text/plain; charset=iso-2022-jp\n\nこんにちは\n".encode()).message
    assert msg.text == "こんにちは\n"
    assert any(d.kind == "charset_fallback" and "decoded as utf-8" in d.detail for d in msg.defects)


@pytest.mark.parametrize(
    "charset",
    [
        "x-unknown",
        "foo-bar-9",
        "unknown-8bit",
        "base64",
        "rot13",
        "hex",
        "idna",
        "unicode_escape",
        "a" * 100,
        "\x00",
    ],
)
def test_unknown_or_non_text_charsets_fall_back(charset: str) -> None:
    text, fallback = decode("Olá".encode("latin-1"), charset)
    assert text == "Olá" and fallback and "windows-1252" in fallback
    text, fallback = decode("Olá ✓".encode(), charset)
    assert text == "Olá ✓" and fallback and "utf-8" in fallback


def test_aliases_resolve_to_supersets() -> None:
    assert resolve("gb2312") == ("gb18030",)
    assert resolve("BIG5")[0] == "big5hkscs"
    assert resolve("Shift_JIS")[0] == "cp932"
    assert resolve("EUC-KR") == ("cp949",)
    assert resolve("ks_c_5601-1987") == ("cp949",)
    assert resolve('"utf8"') == ("utf-8",)
    assert resolve("x-unknown") == ()
    assert resolve(None) == ()


def test_decode_never_raises_on_random_bytes() -> None:
    junk = bytes(range(256)) * 3
    for cs in ["utf-8", "iso-2022-jp", "shift_jis", "utf-16", "utf-7", "gb2312", "big5", None]:
        text, _ = decode(junk, cs)
        assert isinstance(text, str)


def test_utf7_lone_surrogates_become_replacement_characters() -> None:
    msg = parse(b"Subject: =?utf-7?q?+2D0-?=\nContent-Type: text/plain; charset=utf-7\n\n+2D0-\n").message
    assert msg.subject == "\ufffd" and msg.text == "\ufffd\n"
    dumps(msg.to_dict())  # the canonical UTF-8 JSON encoding must not fail


def test_html_without_declared_charset_uses_its_meta_charset() -> None:
    meta = '<meta http-equiv="Content-Type" content="text/html; charset=windows-1251">'
    html = f"<html><head>{meta}</head>Привет"
    msg = parse(b"Content-Type: text/html\n\n" + html.encode("cp1251")).message
    assert msg.html == html and msg.defects == ()
    msg = parse(b"Content-Type: text/html\n\n<meta charset='shift_jis'>" + "日本".encode("cp932")).message
    assert msg.html == "<meta charset='shift_jis'>日本"
