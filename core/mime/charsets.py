"""Charset names -> Python codecs, and lenient decoding with a recorded fallback. Stdlib only.

Declared charsets are mapped to the superset real mailers actually emit (gb2312 -> gb18030, big5 -> big5hkscs,
shift_jis -> cp932, euc-kr -> cp949, ...). When the declared charset is unknown or the bytes do not decode
in it, ``decode`` falls back to UTF-8 (if the bytes are valid UTF-8), else to the declared multi-byte codec
with replacement characters, else windows-1252, and reports the charset used so the caller records a defect.
"""

from __future__ import annotations

import codecs
import re
from functools import lru_cache

# Each name maps to the codecs tried strictly, in order (first is the superset we trust).
_ALIASES: dict[str, tuple[str, ...]] = {
    "utf8": ("utf-8",),
    "utf-8": ("utf-8",),
    "us-ascii": ("utf-8",),  # 8-bit bytes in "us-ascii" mail are nearly always UTF-8 (RFC 6532 era)
    "ascii": ("utf-8",),
    "ansi_x3.4-1968": ("utf-8",),
    "gb2312": ("gb18030",),
    "gbk": ("gb18030",),
    "x-gbk": ("gb18030",),
    "cp936": ("gb18030",),
    "euc-cn": ("gb18030",),
    "gb_2312-80": ("gb18030",),
    "csgb2312": ("gb18030",),
    "big5": ("big5hkscs", "cp950"),
    "x-big5": ("big5hkscs", "cp950"),
    "big5-hkscs": ("big5hkscs", "cp950"),
    "cn-big5": ("big5hkscs", "cp950"),
    "shift_jis": ("cp932", "shift_jis_2004"),
    "shift-jis": ("cp932", "shift_jis_2004"),
    "x-sjis": ("cp932", "shift_jis_2004"),
    "sjis": ("cp932", "shift_jis_2004"),
    "ms_kanji": ("cp932",),
    "windows-31j": ("cp932",),
    "csshiftjis": ("cp932",),
    "iso-2022-jp": ("iso2022_jp", "iso2022_jp_ext", "iso2022_jp_2", "iso2022_jp_3"),
    "csiso2022jp": ("iso2022_jp", "iso2022_jp_ext", "iso2022_jp_2"),
    "euc-jp": ("euc_jp", "euc_jis_2004", "cp932"),
    "x-euc-jp": ("euc_jp", "euc_jis_2004"),
    "euc-kr": ("cp949",),
    "ks_c_5601-1987": ("cp949",),
    "ks_c_5601": ("cp949",),
    "ksc5601": ("cp949",),
    "ksc_5601": ("cp949",),
    "x-windows-949": ("cp949",),
    "windows-949": ("cp949",),
    "iso-8859-8-i": ("iso8859_8",),
    "iso-8859-8-e": ("iso8859_8",),
    "iso-8859-6-i": ("iso8859_6",),
    "iso-8859-6-e": ("iso8859_6",),
    "unicode-1-1-utf-7": ("utf-7",),
    "x-unicode-2-0-utf-7": ("utf-7",),
    "utf7": ("utf-7",),
    "tis-620": ("cp874",),
    "windows-874": ("cp874",),
    "x-mac-roman": ("mac_roman",),
    "macintosh": ("mac_roman",),
}
_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?([A-Za-z0-9_.:-]{1,40})""", re.I)
_SURROGATE = re.compile("[\ud800-\udfff]")
# Codecs that are not charsets (or are dangerous/slow on untrusted input) are never used.
_REFUSED = {"unicode_escape", "raw_unicode_escape", "idna", "punycode", "undefined", "mbcs", "oem", "charmap"}
_MULTIBYTE = ("gb", "big5", "cp9", "euc", "iso2022", "shift", "utf_16", "utf_32", "utf-16", "utf-32", "johab")


@lru_cache(maxsize=512)
def resolve(charset: str | None) -> tuple[str, ...]:
    """Codecs to try for a declared charset name; ``()`` when unknown. Pure, cached."""
    if not charset:
        return ()
    name = charset.strip().strip("\"'").lower().split("*", 1)[0].strip()
    if not name or len(name) > 40:
        return ()
    if name in _ALIASES:
        return _ALIASES[name]
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError, TypeError):
        return ()
    if info.name.replace("-", "_") in _REFUSED or not getattr(info, "_is_text_encoding", True):
        return ()
    return (info.name,)


def decode(data: bytes, charset: str | None) -> tuple[str, str | None]:
    """Decode ``data`` declared as ``charset``. Returns (text, fallback) where ``fallback`` is None when the
    declared charset decoded strictly, else a short description of what was used. Never raises."""
    cands = resolve(charset)
    for codec in cands:
        try:
            text = data.decode(codec)
        except (UnicodeError, LookupError):
            continue
        if codec == "utf-7":  # UTF-7 happily decodes lone surrogates, which JSON/UTF-8 output cannot carry
            text = _SURROGATE.sub("\ufffd", text)
        return text, None
    return _fallback(data, charset, cands)


def _fallback(data: bytes, charset: str | None, cands: tuple[str, ...]) -> tuple[str, str]:
    label = f"declared {charset!r}" if charset else "no charset"
    if not cands:
        label = f"unknown charset {charset!r}" if charset else label
    if cands != ("utf-8",):
        try:
            return data.decode("utf-8"), f"{label}; decoded as utf-8"
        except UnicodeError:
            pass
    if cands and cands[0].replace("-", "_").startswith(_MULTIBYTE):
        return data.decode(cands[0], "replace"), f"{label}; decoded as {cands[0]} with replacement"
    return data.decode("cp1252", "replace"), f"{label}; decoded as windows-1252 with replacement"


def decode_header_bytes(data: bytes) -> tuple[str, str | None]:
    """Raw (non encoded-word) header bytes: UTF-8 per RFC 6532, else windows-1252 with a fallback note."""
    try:
        return data.decode("utf-8"), None
    except UnicodeError:
        return data.decode("cp1252", "replace"), "8-bit header is not utf-8; decoded as windows-1252"


def meta_charset(html: bytes) -> str | None:
    """The ``<meta charset>`` of an HTML part that declares none in its header (first 2 KB), like browsers."""
    m = _META_CHARSET.search(html, 0, 2048)
    return m.group(1).decode("ascii") if m else None
