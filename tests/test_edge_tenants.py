"""One edge, a store per recipient domain (per customer): routing rules, configuration, and the real edge on
loopback with two folder stores, and with a folder store plus an S3 bucket on moto server."""

from __future__ import annotations

import json
import os
import smtplib
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest
from conftest import ROOT, _free_port, wait_port
from emulators_aws import *  # noqa: F403 - the moto fixtures
from emulators_aws import REGION, client

from mailpipe.core.edge.tenants import StoreRoutes
from mailpipe.core.errors import BackendUnavailable, ConfigError
from mailpipe.core.keys import envelope_key, message_id, raw_key
from mailpipe.core.model import Envelope
from mailpipe.core.settings import Settings
from mailpipe.providers import open_store
from mailpipe.providers.local.store import FolderStore

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from conftest import Edge

# No To/Cc header names a recipient: like a Bcc, only the envelope says who the message was for.
MSG = b"From: a@sender.org\r\nTo: undisclosed-recipients:;\r\nSubject: t\r\n\r\nHello\r\n"
ACME, GLOBEX = ["x@acme.example", "Y@Acme.Example"], ["z@globex.example"]


def _routes(mapping: dict[str, str], stores: dict[str, Any], opened: list[str] | None = None) -> StoreRoutes:
    def opener(url: str) -> Any:
        if opened is not None:
            opened.append(url)
        return stores[url]

    return StoreRoutes(mapping, "file://unused", opener)


def _copies(store: Any) -> dict[str, Envelope]:
    """message id -> envelope of every message in ``store``; fails on an .eml without its envelope."""
    ids = sorted(k[4:-4] for k in store.list("raw/") if k.endswith(".eml"))
    return {mid: Envelope.from_dict(json.loads(store.get(envelope_key(mid)))) for mid in ids}


def _everything(store: FolderStore) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(store.root.rglob("*")) if p.is_file())


# --- routing rules ---


def test_exact_wildcard_and_idn_matching() -> None:
    routes = _routes(
        {"example.com": "file://a", "*.example.com": "file://b", "*.eu.example.com": "file://c",
         "bücher.example": "file://d"},
        {},
    )  # fmt: skip
    assert routes.url_for("example.com") == "file://a"
    assert routes.url_for("EXAMPLE.COM.") == "file://a"
    assert routes.url_for("mx.example.com") == "file://b"
    assert routes.url_for("a.b.example.com") == "file://b"  # any depth
    assert routes.url_for("x.eu.example.com") == "file://c"  # the longer wildcard wins
    assert routes.url_for("eu.example.com") == "file://b"
    assert routes.url_for("xn--bcher-kva.example") == "file://d"  # either spelling
    assert routes.url_for("notexample.com") is None
    assert routes.url_for("example.org") is None
    assert _routes({}, {}).url_for("anything.test") == "file://unused"  # nothing configured: local mode


def test_an_exact_entry_beats_a_wildcard() -> None:
    routes = _routes({"*.example.com": "file://wild", "vip.example.com": "file://vip"}, {})
    assert (routes.url_for("vip.example.com"), routes.url_for("x.vip.example.com")) == ("file://vip", "file://wild")


def test_split_keeps_order_and_drops_unroutable() -> None:
    routes = _routes({"acme.example": "file://a", "globex.example": "file://g"}, {})
    assert routes.split([*ACME, "q@other.org", *GLOBEX]) == {"file://a": tuple(ACME), "file://g": tuple(GLOBEX)}


def test_settings_map_from_env_and_domains() -> None:
    s = Settings.from_env(
        {"MAILPIPE_DOMAIN_STORES": "acme.example=s3://b1, *.globex.example=gs://b2",
         "MAILPIPE_DOMAINS": "own.example", "MAILPIPE_STORE": "file:///srv/mail"}
    )  # fmt: skip
    assert s.store_map() == {"own.example": "file:///srv/mail", "acme.example": "s3://b1", "*.globex.example": "gs://b2"}


@pytest.mark.parametrize(
    "env",
    [
        {"MAILPIPE_DOMAIN_STORES": "acme.example=s3://b1,ACME.example.=s3://b2"},  # one domain, two stores
        {"MAILPIPE_DOMAINS": "acme.example", "MAILPIPE_DOMAIN_STORES": "acme.example=s3://other"},
        {"MAILPIPE_DOMAIN_STORES": "acme.example"},
        {"MAILPIPE_DOMAIN_STORES": "acme.example=b1"},
        {"MAILPIPE_DOMAIN_STORES": "*.=s3://b1"},
    ],
)
def test_bad_maps_are_config_errors(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        Settings.from_env(env)


def test_the_same_domain_twice_with_the_same_store_is_fine() -> None:
    s = Settings.from_env({"MAILPIPE_DOMAIN_STORES": "acme.example=s3://b1,acme.example=s3://b1"})
    assert s.store_map() == {"acme.example": "s3://b1"}


def _edge_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailpipe.handlers.edge", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["--domain-store", "a.example=ftp://x"], {}, "unknown store URL scheme 'ftp'"),
        (["--domain-store", "a.example=file:///x", "--domain-store", "a.example=file:///y"], {}, "two stores"),
        (["--domain-store", "a.example=file:///x"], {"MAILPIPE_DOMAIN_STORES": "a.example=s3://y"}, "two stores"),
        (["--domain-store", "nonsense"], {}, "--domain-store: expected DOMAIN=SCHEME://"),
    ],
)
def test_the_edge_refuses_a_bad_map_at_start_up(args: list[str], env: dict[str, str], says: str) -> None:
    proc = _edge_cli(*args, "--listen", "127.0.0.1:0", env=env)
    assert proc.returncode == 2, proc.stderr
    assert says in proc.stderr


# --- the real edge on loopback ---


def _send(e: Edge, rcpts: list[str], msg: bytes = MSG) -> tuple[int, bytes, dict[str, tuple[int, bytes]]]:
    with e.client() as c:
        c.ehlo("client.test")
        c.mail("a@sender.org")
        refused = {r: c.rcpt(r) for r in rcpts}
        code, reply = c.data(msg)
    return code, reply, {r: res for r, res in refused.items() if res[0] != 250}


def test_two_folder_stores_each_get_only_their_recipients(edge: Callable[..., Edge], tmp_path: Path) -> None:
    a, g = FolderStore(tmp_path / "acme"), FolderStore(tmp_path / "globex")
    opened: list[str] = []
    routes = _routes({"acme.example": "file://a", "*.globex.example": "file://g", "globex.example": "file://g"},
                     {"file://a": a, "file://g": g}, opened)  # fmt: skip
    e = edge(store=routes)
    code, reply, refused = _send(e, [ACME[0], *GLOBEX, "w@eu.globex.example", "q@other.org", ACME[1]])
    assert code == 250
    assert set(refused) == {"q@other.org"} and refused["q@other.org"][0] == 550  # never relays
    (acme_env,), (globex_env,) = _copies(a).values(), _copies(g).values()
    assert acme_env.rcpt_to == tuple(ACME)
    assert globex_env.rcpt_to == (*GLOBEX, "w@eu.globex.example")
    ids = reply.decode().rsplit(" ", 1)[-1].split(",")
    assert ids == [message_id(MSG, acme_env), message_id(MSG, globex_env)]
    assert a.get(raw_key(ids[0])) == g.get(raw_key(ids[1])) == MSG  # the same bytes, stored once per customer
    # privacy: nothing in one customer's store names another customer's recipient
    assert b"globex" not in _everything(a).lower() and b"acme" not in _everything(g).lower()
    assert sorted(opened) == ["file://a", "file://g"]  # each store opened once, on first use
    _send(e, ["n@acme.example"])
    assert sorted(opened) == ["file://a", "file://g"]


def test_550_for_unmapped_domains_and_nothing_stored(edge: Callable[..., Edge], tmp_path: Path) -> None:
    a = FolderStore(tmp_path / "acme")
    e = edge(store=_routes({"acme.example": "file://a"}, {"file://a": a}))
    with e.client() as c:
        c.ehlo("x")
        c.mail("a@sender.org")
        assert c.rcpt("x@other.org")[0] == 550
        assert c.rcpt("x@sub.acme.example")[0] == 550  # exact entries do not cover subdomains
        with pytest.raises(smtplib.SMTPDataError) as refused:
            c.data(MSG)
        assert refused.value.smtp_code == 503  # no valid recipient: no DATA
    assert _copies(a) == {}


class FlakyFolder(FolderStore):
    """A real FolderStore whose first ``failures`` writes fail (fault injection, not a mock)."""

    def __init__(self, root: Path, failures: int) -> None:
        super().__init__(root)
        self.failures = failures

    def _maybe_fail(self) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise BackendUnavailable("injected: disk unavailable")

    def put(self, key: str, data: bytes, *, content_type: str = "", if_absent: bool = False) -> bool:
        self._maybe_fail()
        return super().put(key, data, content_type=content_type, if_absent=if_absent)

    def put_many(self, items: list[tuple[str, bytes, str]], *, if_absent: bool = False) -> list[bool]:
        self._maybe_fail()
        return super().put_many(items, if_absent=if_absent)


def test_451_when_one_store_fails_then_the_retry_stores_nothing_twice(
    edge: Callable[..., Edge], tmp_path: Path
) -> None:
    a, g = FolderStore(tmp_path / "acme"), FlakyFolder(tmp_path / "globex", failures=1)
    e = edge(store=_routes({"acme.example": "file://a", "globex.example": "file://g"}, {"file://a": a, "file://g": g}))
    code, reply, _ = _send(e, [*ACME, *GLOBEX])
    assert (code, reply[:5]) == (451, b"4.3.0")  # one copy failed: the sender must retry, no 250
    assert len(_copies(a)) == 1 and _copies(g) == {}  # the failed store has nothing half-written
    code, reply, _ = _send(e, [*ACME, *GLOBEX])  # the sender's retry: same bytes, same envelope
    assert code == 250
    assert [len(_copies(a)), len(_copies(g))] == [1, 1]  # content-addressed: no duplicate in acme
    assert reply.decode().rsplit(" ", 1)[-1].split(",") == [*_copies(a), *_copies(g)]


def test_451_when_a_store_cannot_be_opened(edge: Callable[..., Edge], tmp_path: Path) -> None:
    def opener(url: str) -> Any:
        raise BackendUnavailable("cannot reach the store")

    e = edge(store=StoreRoutes({"acme.example": "file://a"}, "file://unused", opener))
    assert _send(e, ACME)[0] == 451


# --- a folder store plus S3 on moto ---


def test_folder_and_s3_customers(edge: Callable[..., Edge], tmp_path: Path, bucket: str) -> None:
    s = Settings.from_env(
        {}, listen="127.0.0.1:0", domains=("acme.example",), store_url=f"file://{tmp_path / 'acme'}",
        domain_stores=(f"globex.example=s3://{bucket}/tenants/globex",),
    )  # fmt: skip
    e = edge(store=StoreRoutes(s.store_map(), s.store_url, lambda url: open_store(url, s)), **_fields(s))
    code, reply, _ = _send(e, [*ACME, *GLOBEX])
    assert code == 250
    acme_copies, s3_copies = _copies(open_store(s.store_url)), _copies(open_store(f"s3://{bucket}/tenants/globex"))
    assert reply.decode().rsplit(" ", 1)[-1].split(",") == [*acme_copies, *s3_copies]
    (acme_env,), (globex_env,) = acme_copies.values(), s3_copies.values()
    assert (acme_env.rcpt_to, globex_env.rcpt_to) == (tuple(ACME), tuple(GLOBEX))
    keys = [o["Key"] for o in client("s3").list_objects_v2(Bucket=bucket)["Contents"]]
    assert all(k.startswith("tenants/globex/raw/") for k in keys) and len(keys) == 2


def _fields(s: Settings) -> dict[str, Any]:
    return {"domains": s.domains, "store_url": s.store_url, "domain_stores": s.domain_stores}


def test_451_when_the_s3_endpoint_is_down(
    edge: Callable[..., Edge], tmp_path: Path, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{_free_port()}")  # nothing listens there
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    a = FolderStore(tmp_path / "acme")
    routes = StoreRoutes({"acme.example": "file://a", "globex.example": f"s3://{bucket}"}, "file://unused",
                         lambda url: a if url == "file://a" else open_store(url))  # fmt: skip
    code, reply, _ = _send(edge(store=routes), [*ACME, *GLOBEX])
    assert (code, reply[:5]) == (451, b"4.3.0")
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    assert "Contents" not in client("s3").list_objects_v2(Bucket=bucket)  # moto itself has nothing


def test_stages_file_routes_each_stage_to_its_bucket(aws_env: str, tmp_path: Path) -> None:
    """``python -m mailpipe.handlers.edge --stages FILE``: two AWS customers, each bucket gets its own copy."""
    s3 = client("s3")
    for b in ("acme-mail", "globex-mail"):
        s3.create_bucket(Bucket=b, CreateBucketConfiguration={"LocationConstraint": REGION})
    stage = "cloud: aws\n    region: eu-west-1\n    queue: q\n    function: {memory: 512, timeout: 60}\n" \
            "    aws: {batch_size: 1, max_receive_count: 5, visibility_timeout: 60}\n"  # fmt: skip
    stages = tmp_path / "stages.yml"
    stages.write_text(
        f"stages:\n  acme:\n    {stage}    bucket: acme-mail\n    domains: [acme.example]\n"
        f"  globex:\n    {stage}    bucket: globex-mail\n    domains: [globex.example]\n"
    )
    port = _free_port()
    log = open(tmp_path / "edge.log", "wb")  # noqa: SIM115 - owned by the child
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailpipe.handlers.edge", "--stages", str(stages), "--listen", f"127.0.0.1:{port}"],
        cwd=ROOT, stdout=log, stderr=log,
    )  # fmt: skip
    log.close()
    try:
        wait_port(port)
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
            assert c.sendmail("a@sender.org", [*ACME, *GLOBEX, "q@other.org"], MSG) == {
                "q@other.org": (550, b"5.7.1 Recipient domain not served here; relaying denied")
            }
    finally:
        proc.terminate()
        assert proc.wait(15) == 0  # SIGTERM: a clean stop
    (acme_env,) = _copies(open_store("s3://acme-mail")).values()
    (globex_env,) = _copies(open_store("s3://globex-mail")).values()
    assert (acme_env.rcpt_to, globex_env.rcpt_to) == (tuple(ACME), tuple(GLOBEX))


def test_serve_refuses_a_store_per_domain_before_binding(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mailpipe.handlers.cli", "serve", "--listen", f"127.0.0.1:{_free_port()}",
         "--store", f"file://{tmp_path / 'mail'}", "--queue", f"file://{tmp_path / 'queue'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "MAILPIPE_DOMAIN_STORES": f"acme.example=file://{tmp_path / 'acme'}"},
    )  # fmt: skip
    assert proc.returncode == 2 and "mailpipe edge" in proc.stderr, proc.stderr
