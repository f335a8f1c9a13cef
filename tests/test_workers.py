"""``mailpipe serve --workers N``: parsing in N processes per SMTP process; past ``--max-backlog`` messages
stored but not parsed the edge answers 451 (nothing stored) until the workers catch up; a message failing
transiently is retried ``MAILPIPE_MAX_ATTEMPTS`` times, then quarantined with the reason (and redriven)."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import wait_for

ROOT = Path(__file__).resolve().parent.parent


def parse_children(pid: int) -> list[int]:
    """The serve process's multiprocessing children that run a parse worker (spawn_main), not its tracker."""
    kids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids += [int(p) for p in (task / "children").read_text().split()]
    return [k for k in kids if b"spawn_main" in Path(f"/proc/{k}/cmdline").read_bytes()]


def send(port: int, n: int) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as smtp:
        smtp.sendmail("ann@example.org", ["billing@acme.example"], f"Subject: m{n}\r\n\r\nbody {n}\r\n".encode())


def parsed(serve: Any) -> int:
    return len(list((serve.store_dir / "parsed").glob("*.json")))


def test_two_workers_parse_everything(serve_process: Any) -> None:
    serve = serve_process("--domains", "acme.example", "--edge-processes", "1", "--workers", "2")
    assert serve.proc is not None
    wait_for(lambda: len(parse_children(serve.proc.pid)) == 2, 20, "two parse processes")
    for n in range(40):
        send(serve.port, n)
    wait_for(lambda: parsed(serve) == 40, 30, "all 40 parsed")
    assert len(list(serve.queue_dir.glob("*.json"))) == 40


def test_a_full_backlog_is_answered_451_until_the_workers_catch_up(serve_process: Any) -> None:
    serve = serve_process("--domains", "acme.example", "--edge-processes", "1", "--max-backlog", "3")
    assert serve.proc is not None
    wait_for(lambda: len(parse_children(serve.proc.pid)) == 1, 20, "the parse process")
    (worker,) = parse_children(serve.proc.pid)
    os.kill(worker, signal.SIGSTOP)  # parsing stalls: the backlog grows
    try:
        for n in range(3):
            send(serve.port, n)
        with pytest.raises(smtplib.SMTPDataError) as refused:
            send(serve.port, 3)
        assert refused.value.smtp_code == 451 and b"4.3.2" in refused.value.smtp_error
        assert len(list((serve.store_dir / "raw").glob("*.eml"))) == 3  # the refused one was not stored
    finally:
        os.kill(worker, signal.SIGCONT)
    wait_for(lambda: parsed(serve) == 3, 30, "the backlog parsed")
    wait_for(lambda: _accepts(serve.port, 4), 10, "accepting again")
    wait_for(lambda: parsed(serve) == 4, 30, "the new one parsed")
    assert any('"reason": "backlog_full"' in line for line in serve.log_lines())


def _accepts(port: int, n: int) -> bool:
    try:
        send(port, n)
    except smtplib.SMTPDataError:
        return False
    return True


def test_transient_failures_are_capped_then_quarantined_and_redriven(
    tmp_path: Path, serve_process: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    down = tmp_path / "enrich-down.json"
    down.write_text(json.dumps({"malware": {"clamd": "tcp://127.0.0.1:1"}}))  # nothing listens: clamd is down
    monkeypatch.setenv("MAILPIPE_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("MAILPIPE_ENRICH_CONFIG", str(down))
    serve = serve_process("--domains", "acme.example", "--enrich", "malware")
    send(serve.port, 1)
    qdir = serve.store_dir / "quarantine"
    wait_for(lambda: list(qdir.glob("*.json")), 30, "the quarantine record")
    (record,) = [json.loads(p.read_text()) for p in qdir.glob("*.json")]
    assert record["reason"] == "retries_exhausted" and record["attempts"] == 2
    assert record["detail"].startswith("2 attempts failed transiently; last: ") and "clamd" in record["detail"]
    assert not list((serve.store_dir / "parsed").glob("*.json"))
    serve.stop()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPIPE_")}
    listed = subprocess.run([sys.executable, "-m", "mailpipe", "dlq", "list", "--store", f"file://{serve.store_dir}"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    entry = json.loads(listed.stdout)
    assert (entry["reason"], entry["attempts"]) == ("retries_exhausted", 2), listed.stderr
    # clamd "fixed" (here: the enricher dropped): the redrive parses it through the normal path
    redrive = subprocess.run([sys.executable, "-m", "mailpipe", "dlq", "redrive", "--store",
                              f"file://{serve.store_dir}", "--queue", f"file://{serve.queue_dir}"],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert redrive.returncode == 0, redrive.stderr
    assert len(list((serve.store_dir / "parsed").glob("*.json"))) == 1
