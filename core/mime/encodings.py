"""Transfer encodings (base64, quoted-printable, uuencode) and RFC 2047 encoded words. Stdlib only, lenient.

Every decoder returns the decoded value plus a list of problems (strings) instead of raising.
"""

from __future__ import annotations

import binascii
import re

from mailpipe.core.mime.charsets import decode

_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/]+")
_PAD = re.compile(rb"=")
_B64_PAD_TAIL = re.compile(rb"=[\s=]*+\Z")
_EW = re.compile(r"=\?([^?\s]{1,60})\?([QqBb])\?([^?]*+)\?=")
_NON_ASCII = re.compile(r"([^\x00-\x7f]+)")
_EW_GAP = re.compile(r"[ \t\r\n]*\Z")
_UU_BEGIN = re.compile(rb"^begin(?:-base64)? [0-7]{3,4} [^\r\n]*\r?\n", re.M)


def b64decode(data: bytes | memoryview) -> tuple[bytes, str | None]:
    """Lenient base64: ignores junk characters, repairs padding, keeps data after a premature '='."""
    try:
        out = binascii.a2b_base64(data)
    except (binascii.Error, ValueError):
        return _b64_repair(bytes(data)), "bad base64 padding or length; repaired"
    pad = _PAD.search(data)  # works on memoryviews too: no copy of a large part
    if pad is not None and not _B64_PAD_TAIL.match(data, pad.start()):
        return out, "data after base64 padding ignored"
    return out, None


def _b64_repair(data: bytes) -> bytes:
    out = []
    for chunk in re.split(rb"=+", data):
        clean = _B64_JUNK.sub(b"", chunk)
        if len(clean) % 4 == 1:
            clean = clean[:-1]
        if clean:
            out.append(binascii.a2b_base64(clean + b"=" * (-len(clean) % 4)))
    return b"".join(out)


def qpdecode(data: bytes | memoryview) -> bytes:
    """Quoted-printable (RFC 2045 6.7); invalid escapes are kept literally, as binascii does."""
    return binascii.a2b_qp(data)


def uudecode(data: bytes) -> tuple[bytes, str | None]:
    """x-uuencode bodies: decode the lines between ``begin`` and ``end``; junk lines are skipped."""
    m = _UU_BEGIN.search(data)
    start = m.end() if m else 0
    out, bad = [], 0
    for line in data[start:].splitlines():
        if line.strip() == b"end":
            break
        if not line.strip():
            continue
        try:
            out.append(binascii.a2b_uu(line))
        except binascii.Error:
            bad += 1
    return b"".join(out), (f"{bad} bad uuencode lines skipped" if bad else None)


def transfer_decode(data: bytes | memoryview, cte: str) -> tuple[bytes | memoryview, str | None]:
    """Undo a Content-Transfer-Encoding; unknown encodings pass through with a problem note."""
    if cte in ("", "7bit", "8bit", "binary"):
        return data, None
    if cte == "base64":
        return b64decode(data)
    if cte == "quoted-printable":
        return qpdecode(data), None
    if cte in ("x-uuencode", "uuencode", "x-uue"):
        return uudecode(bytes(data))
    return data, f"unknown transfer encoding {cte[:40]!r}; kept as is"


def _word_bytes(enc: str, text: str) -> tuple[bytes, bool]:
    raw = text.encode("ascii", "replace")
    if enc in "Bb":
        out, problem = b64decode(raw)
        return out, problem is not None
    return binascii.a2b_qp(raw, header=True), False


def decode_words(value: str, problems: list[str] | None = None) -> str:
    """Decode RFC 2047 encoded words in an unfolded header value.

    Whitespace between adjacent encoded words is dropped, and adjacent words of the same charset are joined at
    the byte level before charset decoding (mailers split ISO-2022-JP and UTF-8 words mid-character).
    """
    if "=?" not in value:
        return value
    out: list[str] = []
    pos, run_cs, run, after_word = 0, "", bytearray(), False
    for m in _EW.finditer(value):
        gap = value[pos : m.start()]
        cs = m.group(1).split("*", 1)[0]
        pos = m.end()
        if not (after_word and _EW_GAP.match(gap)):
            _flush(out, run_cs, run, problems)
            run_cs, run = "", bytearray()
            out.append(gap)
        after_word = True
        if not m.group(3).isascii():  # raw 8-bit text inside a word (RFC 6532 mailers): keep it as text
            _flush(out, run_cs, run, problems)
            run_cs, run = "", bytearray()
            out.append(_mixed_word(m.group(2), m.group(3), cs, problems))
            continue
        if cs.lower() != run_cs.lower():
            _flush(out, run_cs, run, problems)
            run_cs, run = cs, bytearray()
        data, bad = _word_bytes(m.group(2), m.group(3))
        if bad and problems is not None:
            problems.append("bad base64 in encoded word")
        run += data
    _flush(out, run_cs, run, problems)
    out.append(value[pos:])
    return "".join(out)


def _mixed_word(enc: str, text: str, cs: str, problems: list[str] | None) -> str:
    out = []
    for chunk in _NON_ASCII.split(text):
        if chunk and chunk.isascii():
            data, _ = _word_bytes(enc, chunk)
            out.append(decode(data, cs)[0])
        else:
            out.append(chunk)
    return "".join(out)


def _flush(out: list[str], cs: str, run: bytearray, problems: list[str] | None) -> None:
    if not cs:
        return
    text, fallback = decode(bytes(run), cs)
    if fallback and problems is not None:
        problems.append(f"encoded word: {fallback}")
    out.append(text)
