"""`mailpipe serve` as a subprocess: SMTP in (smtplib, swaks); raw, envelope, parsed, notification out."""

from __future__ import annotations

import json
import shutil
import smtplib
import socket
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from conftest import ServeProcess, _free_port, wait_for

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.e2e
SCHEMA = Path(__file__).resolve().parent.parent / "schema" / "parsed-message.json"
MAX = 200_000


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    base = tmp_path_factory.mktemp("serve")
    extra = [
        "--domains",
        "example.com,exämple.com",
        "--max-message-bytes",
        str(MAX),
        "--max-recipients",
        "60",
    ]
    proc = ServeProcess(base, _free_port(), extra).start()
    yield proc
    assert proc.stop() == 0  # SIGTERM is a clean shutdown


def _validator() -> Any:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text())
    return jsonschema.Draft202012Validator(schema)


def _delivered(serve: ServeProcess, mid: str) -> tuple[bytes, dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Wait (bounded) for the worker; return raw bytes, envelope, parsed JSON and the notification."""
    note_path = serve.queue_dir / f"{mid}.json"
    wait_for(note_path.exists, 20, f"notification {mid}")
    mail = serve.store_dir
    raw = (mail / "raw" / f"{mid}.eml").read_bytes()
    env = json.loads((mail / "raw" / f"{mid}.envelope.json").read_bytes())
    doc = json.loads((mail / "parsed" / f"{mid}.json").read_bytes())
    if SCHEMA.exists():
        errors = [e.message for e in _validator().iter_errors(doc)]
        assert errors == []
    return raw, env, doc, json.loads(note_path.read_bytes())


def _send(serve: ServeProcess, sender: str, rcpts: list[str], data: bytes, **kw: Any) -> str:
    with smtplib.SMTP("127.0.0.1", serve.port, timeout=20) as c:
        c.ehlo("e2e.test")
        assert c.mail(sender, kw.get("mail_options", []))[0] == 250
        for r in rcpts:
            assert c.rcpt(r)[0] == 250
        code, reply = c.data(data)
    assert code == 250, reply
    return reply.decode().rsplit(" ", 1)[-1]


def test_plain_message_end_to_end(serve: ServeProcess) -> None:
    data = (
        b"From: Ann <ann@sender.org>\r\nTo: bob@example.com\r\nSubject: plain one\r\n\r\nHello.\r\n..dot\r\n"
    )
    mid = _send(serve, "ann@sender.org", ["bob@example.com"], data)
    raw, env, doc, note = _delivered(serve, mid)
    assert raw == data
    assert (env["mail_from"], env["rcpt_to"], env["helo"]) == (
        "ann@sender.org",
        ["bob@example.com"],
        "e2e.test",
    )
    assert (doc["id"], doc["subject"], doc["raw_key"]) == (mid, "plain one", f"raw/{mid}.eml")
    assert doc["text"].startswith("Hello.")
    assert note["parsed_key"] == f"parsed/{mid}.json" and note["attachment_keys"] == []


def test_multipart_with_attachments(serve: ServeProcess) -> None:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "ann@sender.org", "bob@example.com", "files"
    m.set_content("see attached")
    m.add_attachment(
        bytes(range(256)) * 40, maintype="application", subtype="octet-stream", filename="blob.bin"
    )
    m.add_attachment(b"%PDF-1.4\n", maintype="application", subtype="pdf", filename="r\u00e9sum\u00e9.pdf")
    data = m.as_bytes(policy=m.policy.clone(linesep="\r\n"))
    mid = _send(serve, "ann@sender.org", ["bob@example.com"], data)
    _, _, doc, note = _delivered(serve, mid)
    keys = [a["key"] for a in doc["attachments"]]
    assert sorted(keys) == note["attachment_keys"] and len(keys) == 2
    assert (serve.store_dir / keys[0]).read_bytes() == bytes(range(256)) * 40


def test_8bit_and_smtputf8(serve: ServeProcess) -> None:
    data = "From: zoë@sender.org\r\nTo: jörg@exämple.com\r\nSubject: ünï\r\n\r\ncafé €\r\n".encode()
    mid = _send(
        serve, "zoë@sender.org", ["jörg@exämple.com"], data, mail_options=["SMTPUTF8", "BODY=8BITMIME"]
    )
    raw, env, doc, _ = _delivered(serve, mid)
    assert raw == data and env["rcpt_to"] == ["jörg@exämple.com"]
    assert doc["subject"] == "ünï" and "café €" in doc["text"]


def _swaks(serve: ServeProcess, *args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("swaks") is None:
        pytest.skip("swaks binary missing (Debian package swaks, deps/apt-test.txt)")
    cmd = ["swaks", "--server", "127.0.0.1", "--port", str(serve.port), "--helo", "swaks.test", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def _queued(output: str) -> str:
    line = next(x for x in output.splitlines() if "queued as" in x)
    return line.rsplit(" ", 1)[-1]


def test_swaks_many_recipients_with_pipelining(serve: ServeProcess) -> None:
    rcpts = [f"user{n}@example.com" for n in range(50)]
    res = _swaks(
        serve,
        "--from",
        "ann@sender.org",
        "--to",
        ",".join(rcpts),
        "--pipeline",
        "--header",
        "Subject: fifty",
        "--body",
        "to many",
    )
    assert res.returncode == 0, res.stdout + res.stderr
    _, env, doc, _ = _delivered(serve, _queued(res.stdout))
    assert env["rcpt_to"] == rcpts and doc["subject"] == "fifty"


def test_swaks_attachment(serve: ServeProcess, tmp_path: Path) -> None:
    att = tmp_path / "notes.txt"
    att.write_bytes(b"attached text\n" * 100)
    res = _swaks(serve, "--from", "ann@sender.org", "--to", "bob@example.com", "--attach", str(att))
    assert res.returncode == 0, res.stdout + res.stderr
    _, _, doc, note = _delivered(serve, _queued(res.stdout))
    assert len(note["attachment_keys"]) >= 1 and doc["attachments"]


def test_swaks_oversize_552(serve: ServeProcess, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * (MAX + 10))
    res = _swaks(serve, "--from", "ann@sender.org", "--to", "bob@example.com", "--attach", str(big))
    assert res.returncode != 0 and "<** 552" in res.stdout, res.stdout


def test_swaks_unknown_domain_550(serve: ServeProcess) -> None:
    res = _swaks(serve, "--from", "ann@sender.org", "--to", "someone@relay-target.org")
    assert res.returncode != 0 and "<** 550" in res.stdout, res.stdout


def test_smuggling_attempt_is_not_two_messages(serve: ServeProcess) -> None:
    before = set((serve.store_dir / "raw").iterdir())
    payload = (
        b"EHLO x\r\nMAIL FROM:<ann@sender.org>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n"
        b"Subject: one\r\n\r\nbody\n.\nMAIL FROM:<evil@sender.org>\r\nRCPT TO:<bob@example.com>\r\n"
        b"DATA\r\nSubject: smuggled\r\n\r\nx\r\n.\r\nQUIT\r\n"
    )
    with socket.create_connection(("127.0.0.1", serve.port), timeout=10) as s:
        s.sendall(payload)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    codes = [line[:3] for line in data.split(b"\r\n") if line]
    assert codes[-2:] == [b"554", b"221"] and codes.count(b"354") == 1, data
    assert set((serve.store_dir / "raw").iterdir()) == before


def test_log_lines_are_json_and_carry_no_secrets(serve: ServeProcess) -> None:
    data = b"From: Secret Person <secret.person@sender.org>\r\nSubject: SUBJ-XYZZY\r\n\r\nBODY-PLUGH\r\n"
    mid = _send(serve, "secret.person@sender.org", ["hidden.rcpt@example.com"], data)
    _delivered(serve, mid)
    lines = serve.log_lines()
    docs = [json.loads(line) for line in lines]  # every line is one JSON object
    assert any(d.get("id") == mid and d["message"] == "accepted" for d in docs)
    assert any(d.get("id") == mid and d["message"] == "parsed" for d in docs)
    for line in lines:
        for secret in ("SUBJ-XYZZY", "BODY-PLUGH", "secret.person@", "hidden.rcpt@", "ann@sender"):
            assert secret not in line, line


def test_local_mode_says_so_at_start_up(serve_process: Any) -> None:
    proc = serve_process()
    wait_for(lambda: any("local mode" in line for line in proc.log_lines()), 10, "local mode log line")
    with smtplib.SMTP("127.0.0.1", proc.port, timeout=10) as c:
        assert c.sendmail("a@sender.org", ["x@any-domain.test"], b"Subject: x\r\n\r\ny\r\n") == {}


def test_shared_listen_socket_is_tcp_so_replies_are_not_delayed() -> None:
    from mailpipe.providers.smtp.server import bind

    sock = bind("127.0.0.1:0")  # asyncio sets TCP_NODELAY on accepted sockets only for proto TCP
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()


RULES = """\
customers:
  acme:
    domains: [example.com]
    rules:
      - name: vip
        when: {recipient: vip@example.com}
        actions: [{tag: vip}]
"""


@pytest.mark.parametrize("spelling", ["yml", "json"])
def test_serve_applies_routing_rules_and_enrichers(serve_process: Any, tmp_path: Path, spelling: str) -> None:
    """The rules a user writes (YAML) and the JSON the deploy tooling compiles them to both work in serve."""
    import yaml

    rules = tmp_path / f"rules.{spelling}"
    rules.write_text(RULES if spelling == "yml" else json.dumps(yaml.safe_load(RULES)))
    proc = serve_process("--domains", "example.com", "--rules", str(rules), "--enrich", "links")
    mid = _send(
        proc, "ann@sender.org", ["vip@example.com"], b"Subject: r\r\n\r\nsee https://example.org/x\r\n"
    )
    _, _, doc, note = _delivered(proc, mid)
    assert note["tags"] == ["vip"] and doc["tags"] == ["vip"]
    assert doc["enrichments"]["links"]["status"] == "ok"


def test_bad_rules_file_fails_start_up_with_exit_2(tmp_path: Path) -> None:
    rules = tmp_path / "bad.yml"
    rules.write_text(RULES.replace("{tag: vip}", "{forward: nowhere}"))
    args = [
        sys.executable,
        "-m",
        "mailpipe.handlers.cli",
        "serve",
        "--listen",
        f"127.0.0.1:{_free_port()}",
        "--store",
        f"file://{tmp_path}/m",
        "--queue",
        f"file://{tmp_path}/q",
        "--rules",
        str(rules),
    ]
    res = subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=Path(__file__).parent.parent)
    assert res.returncode == 2 and "bad.yml:7" in res.stderr, res.stderr
