"""Deterministic synthetic mail mix for ``bench.parse``: ``python -m bench.gen_mix [--count N] [--scale X]``.

The mix: 70 % small newsletters (multipart/alternative, quoted-printable, encoded-word subjects), 20 %
messages with 1-3 attachments of 0.1-2 MB (base64), 10 % big messages of 5-20 MB built from nested forwards
(message/rfc822 inside message/rfc822, each level carrying attachments). ``--scale`` multiplies every size
(attachments, big totals) so ``--quick`` runs stay small. Same seed + count + scale -> byte-identical files.
Written to ``bench/out/mix-s<seed>-n<count>-x<scale>/`` with a manifest; an existing complete set is reused.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
from pathlib import Path

from bench import OUT_DIR

MB = 1024 * 1024
WORDS = [
    "mail",
    "pipeline",
    "parser",
    "inbound",
    "weekly",
    "offer",
    "update",
    "news",
    "release",
    "notes",
    "team",
    "invoice",
    "report",
    "schedule",
    "meeting",
    "summary",
    "garden",
    "bicycle",
    "coffee",
    "river",
    "mountain",
    "café",
    "naïve",
    "Grüße",
    "übung",
]
SUBJECTS = (
    "Weekly digest",
    "Your invoice",
    "Fwd: project files",
    "Réunion de lundi",
    "Скидки недели",
    "今週のニュース",
    "Release notes",
    "Re: holiday photos",
)
TYPES = (
    ("application/pdf", "pdf"),
    ("image/jpeg", "jpg"),
    ("application/zip", "zip"),
    ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "docx"),
)


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def _qp(text: str) -> bytes:
    import quopri

    return quopri.encodestring(text.encode("utf-8")).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _b64(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def _subject(rng: random.Random) -> bytes:
    s = rng.choice(SUBJECTS)
    if s.isascii():
        return s.encode()
    return b"=?utf-8?b?" + base64.b64encode(s.encode("utf-8")) + b"?="


def _headers(rng: random.Random, i: int, ctype: bytes, depth: int = 0) -> bytes:
    user = f"user{rng.randrange(1000)}"
    hops = b"".join(
        f"Received: from mx{h}.sender.example (mx{h}.sender.example [192.0.2.{h + 1}])\r\n"
        f"\tby mx.bench.test with ESMTPS id {rng.getrandbits(48):x}; "
        f"Mon, 2 Mar 2026 10:0{h}:00 +0000\r\n".encode()
        for h in range(rng.randrange(2, 6))
    )
    return (
        hops
        + (
            f"DKIM-Signature: v=1; a=rsa-sha256; d=sender.example; s=s1; bh={rng.getrandbits(128):x};\r\n"
            f"\tb={base64.b64encode(rng.randbytes(96)).decode()}\r\n"
            f'From: "Sender {i}" <news@sender.example>\r\n'
            f'To: {user}@bench.test, "Ünïcode Name" <other{depth}@bench.test>\r\n'
            f"Cc: team@bench.test\r\n"
            f"Date: Mon, 2 Mar 2026 10:{i % 60:02d}:00 +0100\r\n"
            f"Message-ID: <{i}.{depth}.{rng.getrandbits(64):x}@sender.example>\r\n"
            f"List-Unsubscribe: <mailto:unsub@sender.example?subject={i}>\r\n"
            "MIME-Version: 1.0\r\n"
        ).encode()
        + b"Subject: "
        + _subject(rng)
        + b"\r\nContent-Type: "
        + ctype
        + b"\r\n"
    )


def _alternative(rng: random.Random, size: int) -> tuple[bytes, bytes]:
    """A text/plain + text/html pair of about ``size`` bytes; returns (content-type, body)."""
    b = f"alt-{rng.getrandbits(64):x}".encode()
    text = "\n".join(_words(rng, 12) for _ in range(max(1, size // 200)))
    html = (
        "<html><body>"
        + "".join(f'<p style="color:#333">{_words(rng, 12)}</p>' for _ in range(max(1, size // 160)))
        + "</body></html>"
    )
    body = (
        b"--" + b + b"\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: "
        b"quoted-printable\r\n\r\n" + _qp(text) + b"\r\n--" + b + b"\r\nContent-Type: text/html; charset="
        b"utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        + _qp(html)
        + b"\r\n--"
        + b
        + b"--\r\n"
    )
    return b'multipart/alternative; boundary="' + b + b'"', body


def _attachment(rng: random.Random, size: int) -> bytes:
    mime, ext = rng.choice(TYPES)
    name = f"file-{rng.getrandbits(32):x}.{ext}"
    disp = (
        f'attachment; filename="{name}"'
        if rng.random() < 0.7
        else f"attachment; filename*=utf-8''r%C3%A9sum%C3%A9-{name}"
    )
    return (
        f'Content-Type: {mime}; name="{name}"\r\nContent-Disposition: {disp}\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n"
    ).encode() + _b64(rng.randbytes(size))


def _mixed(parts: list[bytes], rng: random.Random) -> tuple[bytes, bytes]:
    b = f"mix-{rng.getrandbits(64):x}".encode()
    body = b"".join(b"--" + b + b"\r\n" + p + b"\r\n" for p in parts) + b"--" + b + b"--\r\n"
    return b'multipart/mixed; boundary="' + b + b'"', body


def _part(ctype: bytes, body: bytes) -> bytes:
    return b"Content-Type: " + ctype + b"\r\n\r\n" + body


def newsletter(rng: random.Random, i: int) -> bytes:
    ctype, body = _alternative(rng, rng.randrange(4_000, 60_000))
    return _headers(rng, i, ctype) + b"\r\n" + body


def with_attachments(rng: random.Random, i: int, scale: float) -> bytes:
    parts = [_part(*_alternative(rng, rng.randrange(1_000, 8_000)))]
    parts += [
        _attachment(rng, int(rng.uniform(0.1, 2.0) * MB * scale * 0.75)) for _ in range(rng.randint(1, 3))
    ]
    ctype, body = _mixed(parts, rng)
    return _headers(rng, i, ctype) + b"\r\n" + body


def forward_chain(rng: random.Random, i: int, total: int, depth: int) -> bytes:
    """A message whose attachments hold ``total`` decoded bytes, forwarding one nested ``depth`` deep."""
    share = total if depth == 0 else total // (depth + 1)
    n = rng.randint(1, 2)
    parts = [_part(*_alternative(rng, rng.randrange(1_000, 6_000)))]
    parts += [_attachment(rng, share // n) for _ in range(n)]
    if depth > 0:
        inner = forward_chain(rng, i, total - share, depth - 1)
        disp = b"Content-Disposition: attachment\r\n" if rng.random() < 0.5 else b""
        parts.append(b"Content-Type: message/rfc822\r\n" + disp + b"\r\n" + inner)
    ctype, body = _mixed(parts, rng)
    return _headers(rng, i, ctype, depth) + b"\r\n" + body


def mix_dir(seed: int, count: int, scale: float, root: Path = OUT_DIR) -> Path:
    return root / f"mix-s{seed}-n{count}-x{scale:g}"


def generate(seed: int = 1, count: int = 100, scale: float = 1.0, root: Path = OUT_DIR) -> Path:
    """Write the mix under ``root`` (if not already complete) and return its directory. Deterministic in
    seed, count and scale."""
    out = mix_dir(seed, count, scale, root)
    manifest = out / "manifest.json"
    if manifest.exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    n_big, n_att = round(count * 0.10), round(count * 0.20)
    kinds = ["big"] * n_big + ["attach"] * n_att + ["news"] * (count - n_big - n_att)
    rng.shuffle(kinds)
    files = []
    for i, kind in enumerate(kinds):
        if kind == "news":
            raw = newsletter(rng, i)
        elif kind == "attach":
            raw = with_attachments(rng, i, scale)
        else:
            total = int(rng.uniform(5, 20) * MB * scale * 0.75)  # 0.75: base64 grows bytes by 4/3
            raw = forward_chain(rng, i, total, rng.randint(1, 3))
        name = f"mix-{i:04d}-{kind}.eml"
        (out / name).write_bytes(raw)
        files.append({"name": name, "kind": kind, "bytes": len(raw)})
    manifest.write_text(json.dumps({"seed": seed, "count": count, "scale": scale, "files": files}, indent=1))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--scale", type=float, default=1.0, help="size multiplier for attachments/big messages")
    ap.add_argument("--out", type=Path, default=OUT_DIR, help="directory the mix is written under")
    a = ap.parse_args()
    out = generate(a.seed, a.count, a.scale, a.out)
    files = json.loads((out / "manifest.json").read_text())["files"]
    total = sum(f["bytes"] for f in files)
    print(
        f"{out}: {len(files)} messages, {total / MB:.1f} MiB, "
        f"largest {max(f['bytes'] for f in files) / MB:.1f} MiB"
    )


if __name__ == "__main__":
    main()
