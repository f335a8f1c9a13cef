"""The installed product: a wheel built from the checkout installs into a fresh venv and works from any folder,
even one holding a user's own ``handlers/`` or ``core/`` package, because it installs one import name,
``mailpipe`` (pyproject.toml maps the repository's folders below it)."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MAIL = b"From: a@example.org\r\nTo: b@example.com\r\nSubject: wheel\r\nMessage-ID: <w@x>\r\n\r\nhello\r\n"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                    str(ROOT)], check=True, capture_output=True, timeout=300)  # fmt: skip
    (found,) = out.glob("mailpipe-*.whl")
    return found


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with only the wheel (mailpipe has no required dependency); returns its bin/."""
    env_dir = tmp_path_factory.mktemp("venv")
    venv.create(env_dir, with_pip=False)
    bin_dir = env_dir / "bin"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(bin_dir / "python"), "install", "-q", "--no-deps",
                    "--no-index", str(wheel)], check=True, capture_output=True, timeout=300)  # fmt: skip
    return bin_dir


@pytest.fixture
def user_folder(tmp_path: Path) -> Path:
    """Outside the checkout, beside packages named like the repository's folders, which would shadow ours."""
    for name in ("handlers", "core", "providers"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("raise ImportError('the user package was imported')\n")
    (tmp_path / "handlers" / "cli.py").write_text("raise ImportError('the user cli was imported')\n")
    (tmp_path / "msg.eml").write_bytes(MAIL)
    return tmp_path


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("MAILPIPE_", "PYTHON", "VIRTUAL_ENV"))}


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=120)


def test_the_wheel_installs_one_import_name_with_its_data(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"mailpipe", "mailpipe-0.1.0.dist-info"}
    assert {"mailpipe/py.typed", "mailpipe/schema/parsed-message.json", "mailpipe/__main__.py",
            "mailpipe/core/pipeline.py", "mailpipe/handlers/compose.py"} <= set(names)  # fmt: skip
    assert not [n for n in names if n.startswith(("mailpipe/tests", "deploy/", "bench/"))]


def test_pyproject_lists_every_package_folder() -> None:
    """pyproject.toml names its packages explicitly (they are mapped): a new folder must be added there."""
    setup = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setup["packages"])
    found = {"mailpipe"}
    for name, folder in setup["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            found.add(".".join([name, *init.parent.relative_to(ROOT / folder).parts]))
    assert listed == found


def test_version_parse_and_python_m_work_beside_a_users_handlers(installed: Path, user_folder: Path) -> None:
    version = run([str(installed / "mailpipe"), "--version"], user_folder)
    assert version.returncode == 0 and version.stdout.strip() == "mailpipe 0.1.0", version.stderr
    for argv in ([str(installed / "mailpipe")], [str(installed / "python"), "-m", "mailpipe"]):
        proc = run([*argv, "parse", "msg.eml"], user_folder)
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(proc.stdout)
        assert doc["subject"] == "wheel" and doc["schema"] == "mailpipe/parsed-message@1"
    schema = run([str(installed / "python"), "-c", "import mailpipe.schema as s; print(s.parsed_message()['$id'])"],
                 user_folder)  # fmt: skip
    assert schema.returncode == 0 and schema.stdout.strip(), schema.stderr


def test_bad_configuration_exits_2_with_one_line(installed: Path, user_folder: Path) -> None:
    proc = run([str(installed / "mailpipe"), "serve", "--store", "nope://x"], user_folder)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]  # one line


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_stores_and_parses_a_message(installed: Path, user_folder: Path) -> None:
    port = _free_port()
    argv = [str(installed / "mailpipe"), "serve", "--listen", f"127.0.0.1:{port}", "--store", "file://./var/mail",
            "--queue", "file://./var/queue", "--edge-processes", "1"]  # fmt: skip
    log = (user_folder / "serve.log").open("wb")
    proc = subprocess.Popen(argv, cwd=user_folder, env=clean_env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
                    smtp.sendmail("a@example.org", ["b@example.com"], MAIL)
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, (user_folder / "serve.log").read_text()
                time.sleep(0.2)
        parsed = user_folder / "var" / "mail" / "parsed"
        while not list(parsed.glob("*.json")):
            assert time.monotonic() < deadline, (user_folder / "serve.log").read_text()
            time.sleep(0.1)
        (doc_file,) = parsed.glob("*.json")
        assert json.loads(doc_file.read_bytes())["subject"] == "wheel"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, (user_folder / "serve.log").read_text()
        log.close()


def test_the_containers_working_directory_cannot_shadow_the_install(installed: Path, tmp_path: Path) -> None:
    """The edge image runs ``python -m mailpipe.handlers.edge`` with the Containerfile's ENV: PYTHONSAFEPATH
    keeps a ``mailpipe/`` folder in the working directory (a source tree) from hiding the installed package."""
    import shutil

    text = (ROOT / "deploy" / "edge" / "Containerfile").read_text()
    assert "PYTHONSAFEPATH=1" in text
    shutil.copytree(ROOT / "mailpipe", tmp_path / "mailpipe")  # only __init__/__main__: no core, no handlers
    argv = [str(installed / "python"), "-m", "mailpipe.handlers.edge", "--check", f"127.0.0.1:{_free_port()}"]
    shadowed = subprocess.run(argv, cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert shadowed.returncode == 1 and "No module named 'mailpipe.core'" in shadowed.stderr
    safe = subprocess.run(argv, cwd=tmp_path, env={**clean_env(), "PYTHONSAFEPATH": "1"}, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert safe.returncode == 1 and "Traceback" not in safe.stderr, safe.stderr  # a refused probe: unhealthy
