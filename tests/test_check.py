"""``mailpipe check``, ``mailpipe rules test`` and the start-up refusal, run as a user runs them (the CLI in a
subprocess): every problem reported on its own line with file:line, exit 2, no traceback; a dry run of the rules
shows what would be published and posted without sending anything."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INVOICE = (
    b"From: Supplier <ar@supplier.example>\r\nTo: billing@in.acme.example\r\nSubject: Invoice 2024-0042\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
    b"Please find the invoice attached.\r\n--b\r\nContent-Type: application/pdf\r\n"
    b"Content-Disposition: attachment; filename=inv.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"JVBERi0xLjQKJSVFT0YK\r\n--b--\r\n"
)
BAD_RULES = ("customers:\n  acme:\n    domains: [acme.example]\n    rules:\n"
             "      - {name: x, when: {nosuch: 1}, actions: [drop]}\n")


def mailpipe(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MAILPIPE_") and not k.startswith("ACME_")}
    return subprocess.run([sys.executable, "-m", "mailpipe", *args], cwd=cwd, env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def problem_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    return proc.stderr.strip().splitlines()


def test_the_repository_configuration_checks_clean() -> None:
    proc = mailpipe("check", "--stages", "stages.yml", "--rules", "rules/acme.yml",
                    env={"ACME_HELPDESK_WEBHOOK_SECRET": "whsec_" + "A" * 44,
                         "ACME_CRM_WEBHOOK_SECRET": "whsec_" + "B" * 44})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "mailpipe check: ok (rules rules/acme.yml, stages stages.yml)"


def test_every_problem_of_a_stages_file_is_reported_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "bad.yml").write_text(BAD_RULES)
    stages = (ROOT / "stages.yml").read_text()
    dev = "    cloud: aws\n    region: eu-west-1\n"
    stages = stages.replace(dev, dev + "    colour: red\n")
    stages = stages.replace("domains: [mail.globex.example]", "domains: [in.acme.example]")  # acme's domain
    stages = stages.replace("rules: rules/acme.yml", "rules: rules/bad.yml")
    (tmp_path / "stages.yml").write_text(stages)
    lines = problem_lines(mailpipe("check", "--stages", str(tmp_path / "stages.yml")))
    assert len(lines) == 3, lines
    assert f"{tmp_path / 'stages.yml'}:20: stage 'dev': unknown keys ['colour']" in lines[0]
    assert "domain 'in.acme.example' is mapped to two stores" in lines[1]
    assert lines[2].startswith("mailpipe check: stage 'acme': rules/bad.yml:5: customers.acme.rules[0].when")


def test_settings_rules_and_enrichers_are_all_reported(tmp_path: Path) -> None:
    (tmp_path / "bad.yml").write_text(BAD_RULES)
    proc = mailpipe("check", "--rules", str(tmp_path / "bad.yml"), "--enrich", "links,nosuch", "--queue", "kafka://t",
                    env={"MAILPIPE_MAX_PARTS": "many"})  # fmt: skip
    lines = problem_lines(proc)
    assert len(lines) == 4, lines
    assert "MAILPIPE_MAX_PARTS" in lines[0]
    assert "unknown queue URL scheme 'kafka'" in lines[1]
    assert f"{tmp_path / 'bad.yml'}:5: customers.acme.rules[0].when" in lines[2]
    assert "unknown enricher 'nosuch'" in lines[3]


def test_serve_refuses_to_start_naming_every_problem(tmp_path: Path) -> None:
    (tmp_path / "bad.yml").write_text(BAD_RULES)
    proc = mailpipe("serve", "--listen", "127.0.0.1:1", "--store", f"file://{tmp_path}/m", "--queue", "nope://q",
                    "--rules", str(tmp_path / "bad.yml"), "--enrich", "nosuch", cwd=tmp_path)  # fmt: skip
    lines = problem_lines(proc)
    assert len(lines) == 3 and all(ln.startswith("mailpipe: configuration error: ") for ln in lines), lines
    assert not (tmp_path / "m").exists()  # nothing was started


def test_rules_test_shows_what_would_be_sent_and_sends_nothing(tmp_path: Path) -> None:
    (tmp_path / "inv.eml").write_bytes(INVOICE)
    proc = mailpipe("rules", "test", str(tmp_path / "inv.eml"), "--rules", "rules/acme.yml", "--placeholder-secrets",
                    "--rcpt", "billing@in.acme.example", "--rcpt", "sales@support.acme.example")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["disposition"] == "deliver" and report["tags"] == ["invoice", "team-sales"]
    assert [(o["rule"], o["action"], o["status"]) for o in report["outcomes"]] == [
        ("invoices", "publish", "would_publish"), ("support-team", "webhook", "would_post"),
        ("support-team", "publish", "would_publish")]  # fmt: skip
    assert [p["url"] for p in report["published"]] == ["sqs://acme-billing", "sqs://acme-support"]
    assert report["published"][0]["body"]["type"] == "mail.received"
    (hook,) = report["webhooks"]
    assert hook["url"] == "https://helpdesk.acme.example/inbound/postmark/"
    assert {"webhook-id", "webhook-signature", "webhook-timestamp"} <= set(hook["headers"])
    assert hook["body"]["From"] == "ar@supplier.example" and hook["body"]["Subject"] == "Invoice 2024-0042"


def test_rules_test_without_a_secret_or_recipient_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "inv.eml").write_bytes(INVOICE)
    (line,) = problem_lines(mailpipe("rules", "test", str(tmp_path / "inv.eml"), "--rules", "rules/acme.yml",
                                     "--rcpt", "billing@in.acme.example"))  # fmt: skip
    assert "ACME_HELPDESK_WEBHOOK_SECRET is unset or empty" in line
    (line,) = problem_lines(mailpipe("rules", "test", str(tmp_path / "inv.eml"), "--rules", "rules/acme.yml",
                                     "--placeholder-secrets"))  # fmt: skip
    assert "--rcpt" in line


def test_the_edge_refuses_naming_every_bad_store() -> None:
    proc = mailpipe("edge", "--listen", "127.0.0.1:1", "--domain-store", "a.example=nope://x",
                    "--domain-store", "b.example=kafka://y")  # fmt: skip
    lines = problem_lines(proc)
    assert len(lines) == 2 and "'kafka'" in lines[0] and "'nope'" in lines[1], lines
