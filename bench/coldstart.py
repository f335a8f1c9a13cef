"""Cold start and footprint of the cloud handlers: ``python -m bench.coldstart [--quick] [--reps N] [--strict]
[--out DIR]``.

Import-to-ready, per handler, in a fresh interpreter started from the *built* bundle (AWS: ``serverless
package --stage dev``; GCP/Azure: ``deploy.build_bundle``; the repo tree only when a build fails, noted):
``import`` = the handler module (what the platform's init phase runs), ``ready`` = import + creating the SDK
clients the first invocation would otherwise create lazily (no network: every endpoint is a closed loopback
port). Our code is compiled from source, as deployed (the bundles carry no .pyc and Lambda's /var/task is
read-only); the ``+pyc`` rows show the same bundle precompiled. Peers run in the same round-robin: ``python -c
pass`` and each SDK import alone. One more run per handler with ``-X importtime`` and an audit hook gives the
cost breakdown by top-level package and proves no socket is opened. Footprint: each bundle zipped, its cloud
extra's installed dependency closure (measured from importlib.metadata file lists), and the core bundle
(core/ + providers/__init__.py + one provider + one handler). JSON: bench/out/coldstart.json (or ``--out``).
"""

from __future__ import annotations

import argparse
import compileall
import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import OUT_DIR, REPO_DIR

TARGET_MS = {"aws": 150.0, "gcp": 300.0, "azure": 300.0}
CORE_TARGET_BYTES = 2_000_000
STAGES = {"aws": "dev", "gcp": "globex", "azure": "initech"}
EXTRAS = {"aws": "aws", "gcp": "gcp", "azure": "azure"}
RUNTIME_PROVIDED = {"aws": "boto3 (the Lambda Python runtime ships it)"}
AZ_ACCOUNT = "initechmailpipe"
AZ_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="  # azurite's
# case -> (cloud, bundle, module, ready code, auth). ``ready`` creates what the adapters create on first use.
# ``aws_lambda, import boto3`` is the literal reading ("handler import including boto3", no clients);
# the Azure ``managed identity`` rows are what deploy/azure.py deploys (no connection string: azure-identity).
AZ_READY = "m_ready_azure()"
HANDLERS: dict[str, tuple[str, str, str, str, str]] = {
    "aws_lambda": ("aws", "aws", "mailpipe.handlers.aws_lambda", "m.STORE.client; m.PIPELINE.publisher.client", ""),
    "aws_lambda, import boto3": ("aws", "aws", "mailpipe.handlers.aws_lambda", "import boto3", ""),
    "gcp_function": (
        "gcp", "gcp", "main", "from google.cloud import storage, pubsub_v1; storage.Client(); "
        "pubsub_v1.PublisherClient()", "",
    ),
    "azure_queue_function": ("azure", "azure", "function_app", AZ_READY, "connection string"),
    "azure_queue_function, managed identity": ("azure", "azure", "function_app", AZ_READY, "identity"),
    "azure_function": ("azure", "azure-eventgrid", "function_app", AZ_READY, "connection string"),
}  # fmt: skip
CORE_HANDLER = {"aws": "handlers/aws_lambda.py", "gcp": "handlers/gcp_function.py",
                "azure": "handlers/azure_queue_function.py"}  # fmt: skip
# Not the code as shipped: what the AWS ready time would be with one boto3 Session shared by the S3 and SQS
# clients (providers/aws/sdk.py make_client builds a Session per client; the second one reloads botocore's
# endpoint and credential data). Same Config as make_client. Not judged against a target.
WHAT_IF = {
    "aws_lambda, one boto3 Session (what-if)": (
        "aws", "aws", "mailpipe.handlers.aws_lambda", "import boto3; from botocore.config import Config; "
        "cfg = Config(retries={'mode': 'standard', 'max_attempts': 3}, connect_timeout=5, read_timeout=30); "
        "s = boto3.session.Session(); s.client('s3', config=cfg); s.client('sqs', config=cfg)", "",
    ),
}  # fmt: skip
PYC_ROWS = ("aws_lambda", "gcp_function", "azure_queue_function", "azure_function")
PEERS: dict[str, tuple[str | None, str]] = {
    "python -c pass": (None, ""),
    "import boto3": (None, "import boto3"),
    "import functions_framework": (None, "import functions_framework"),
    "import azure.functions": (None, "import azure.functions"),
    "import core (stdlib only)": ("aws", "import mailpipe.core.pipeline, mailpipe.core.settings, mailpipe.core.log"),
}
AZ_PRELUDE = f"""
def m_ready_azure():
    from azure.storage.blob import ContainerClient
    from azure.storage.queue import QueueClient
    from mailpipe.providers.azure.sdk import make_client
    make_client(ContainerClient, {AZ_ACCOUNT!r}, "blob", container_name="inbound")
    make_client(QueueClient, {AZ_ACCOUNT!r}, "queue", queue_name="mailpipe-parsed")
"""
# A fresh interpreter: hide the repo's editable install so our code comes from the bundle, then time.
PROBE = """
import json, sys, time
sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in type(f).__module__]
if {bundle!r}: sys.path.insert(0, {bundle!r})
{prelude}
{audit}
t0, c0 = time.perf_counter(), time.process_time()
{imp}
t1, c1 = time.perf_counter(), time.process_time()
if {check!r}: sys.stderr.write("COLDSTART-READY\\n")
{ready}
t2, c2 = time.perf_counter(), time.process_time()
files = {{n: getattr(v, "__file__", None) for n, v in list(sys.modules.items())}}
print("COLDSTART " + json.dumps({{"import_ms": (t1 - t0) * 1e3, "import_cpu_ms": (c1 - c0) * 1e3,
    "ready_ms": (t2 - t0) * 1e3, "ready_cpu_ms": (c2 - c0) * 1e3, "files": files if {check!r} else None,
    "sockets": SOCKETS if {check!r} else None}}))
"""
AUDIT = """
SOCKETS = []
sys.addaudithook(lambda ev, a: SOCKETS.append([ev, repr(a)[:120]]) if ev in ("socket.connect",
    "socket.getaddrinfo", "socket.gethostbyname", "socket.sendto") else None)
"""


def closed_port() -> int:
    """A loopback port nobody listens on: any connection attempt is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cloud_env(cloud: str, home: Path, port: int, auth: str = "") -> dict[str, str]:
    """The deployed stage's MAILPIPE_* settings plus dummy credentials and emulator endpoints on ``port``."""
    from mailpipe.providers.yaml.stages import get

    stage = get(STAGES[cloud], REPO_DIR / "stages.yml")
    env = {**base_env(home), **stage.settings_env()}
    local = f"127.0.0.1:{port}"
    if cloud == "aws":  # serverless.yml also sets the enrichers
        env |= {"MAILPIPE_ENRICHERS": ",".join(stage.enrichers), "AWS_DEFAULT_REGION": stage.region,
                "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_ENDPOINT_URL": f"http://{local}",
                "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": str(home / "none"),
                "AWS_SHARED_CREDENTIALS_FILE": str(home / "none")}  # fmt: skip
    elif cloud == "gcp":
        env |= {"STORAGE_EMULATOR_HOST": f"http://{local}", "PUBSUB_EMULATOR_HOST": local,
                "GOOGLE_CLOUD_PROJECT": stage.extra["project"], "GCE_METADATA_HOST": local,
                "GCE_METADATA_IP": local}  # fmt: skip
    elif auth == "identity":  # the app settings of deploy/azure.py; the identity endpoint App Service sets
        token = f"http://{local}/msi/token"
        env |= {"MAILPIPE_EVENTS_QUEUE": "mail-events", "IDENTITY_ENDPOINT": token, "IDENTITY_HEADER": "bench",
                "MSI_ENDPOINT": token, "MSI_SECRET": "bench"}  # fmt: skip
    else:
        endpoints = ";".join(f"{s}Endpoint=http://{local}/{AZ_ACCOUNT}" for s in ("Blob", "Queue"))
        env["AZURE_STORAGE_CONNECTION_STRING"] = (
            f"DefaultEndpointsProtocol=http;AccountName={AZ_ACCOUNT};AccountKey={AZ_KEY};{endpoints};"
        )
        env |= {"MAILPIPE_STORAGE": "AZURE_STORAGE_CONNECTION_STRING", "MAILPIPE_EVENTS_QUEUE": "mail-events"}
    return env


def base_env(home: Path) -> dict[str, str]:
    # PYTHONDONTWRITEBYTECODE: the source bundles stay without .pyc, so every run compiles our code (as Lambda).
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1"}  # fmt: skip


def build_bundles(tmp: Path) -> tuple[dict[str, Path], dict[str, Path], list[str]]:
    """(bundle dirs, zips, notes): aws, gcp, azure (queue trigger, the default) and azure-eventgrid."""
    dirs, zips, notes = {}, {}, []
    try:
        zips["aws"] = package_aws(tmp / "sls")
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        cached = REPO_DIR / "build" / "dev" / "aws.zip"
        if not cached.exists():
            raise
        zips["aws"] = cached
        notes.append(f"aws: serverless package failed ({exc}); used {cached}")
    dirs["aws"] = tmp / "aws"
    zipfile.ZipFile(zips["aws"]).extractall(dirs["aws"])
    from deploy.build_bundle import build, zip_dir

    for key, stage, stages in (("gcp", "globex", None), ("azure", "initech", None),
                               ("azure-eventgrid", "initech", eventgrid_stages(tmp))):  # fmt: skip
        base = build(stage, stages, tmp / key)
        dirs[key] = base / ("gcp" if key == "gcp" else "azure")
        zips[key] = tmp / f"{key}.zip"
        zip_dir(dirs[key], zips[key])
    return dirs, zips, notes


def package_aws(out: Path) -> Path:
    """``serverless package --stage dev`` offline (osls from package.json); the Lambda zip it deploys."""
    sls = REPO_DIR / "node_modules" / ".bin" / "serverless"
    if not sls.exists() or shutil.which("node") is None:
        raise RuntimeError("node_modules/.bin/serverless or node missing (make install-test)")
    env = {**base_env(out.parent), "SLS_TELEMETRY_DISABLED": "1", "SLS_NOTIFICATIONS_MODE": "off",
           "AWS_ACCESS_KEY_ID": "offline", "AWS_SECRET_ACCESS_KEY": "offline"}  # fmt: skip
    from deploy.build_bundle import build

    build("dev")  # build/dev/aws.json: serverless.yml reads the stage's extra environment, queues and layers
    args = [str(sls), "package", "--stage", "dev", "--package", str(out)]
    proc = subprocess.run(args, cwd=REPO_DIR, env=env, capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0:
        raise RuntimeError((proc.stdout + proc.stderr)[-500:])
    return REPO_DIR / "build" / "dev" / "aws.zip"  # serverless.yml's package.artifact


def eventgrid_stages(tmp: Path) -> Path:
    """stages.yml with initech switched to the Event Grid app (handlers/azure_function.py)."""
    import yaml

    doc = yaml.safe_load((REPO_DIR / "stages.yml").read_text())
    doc["stages"]["initech"].setdefault("azure", {})["trigger"] = "eventgrid"
    path = tmp / "stages-eventgrid.yml"
    path.write_text(yaml.safe_dump(doc))
    return path


def precompiled(src: Path, dest: Path) -> Path:
    """A copy of the bundle with .pyc beside the sources (the ``+pyc`` rows)."""
    shutil.copytree(src, dest)
    compileall.compile_dir(dest, quiet=1)
    return dest


def probe_code(bundle: Path | None, imp: str, ready: str = "", *, check: bool = False) -> str:
    prelude = AZ_PRELUDE if AZ_READY in ready else ""
    audit = AUDIT if check else "SOCKETS = None"
    return PROBE.format(bundle=str(bundle or ""), imp=imp, ready=ready or "pass", check=check, prelude=prelude,
                        audit=audit)  # fmt: skip


def run_probe(code: str, env: dict[str, str], cwd: Path, flags: tuple[str, ...] = ()) -> dict[str, Any]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, *flags, "-c", code], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip
    wall = (time.perf_counter() - t0) * 1e3
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("COLDSTART ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"probe failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return {**json.loads(lines[-1][len("COLDSTART ") :]), "process_ms": wall, "stderr": proc.stderr}


def stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return {"median": round(statistics.median(ordered), 1), "p90": round(p90, 1)}


def cases(dirs: dict[str, Path], tmp: Path, port: int) -> dict[str, tuple[str, dict[str, str], Path]]:
    """name -> (probe code, env, cwd): every handler from source and precompiled, then the peers."""
    out = {}
    for name, (cloud, key, module, ready, auth) in {**HANDLERS, **WHAT_IF}.items():
        env = cloud_env(cloud, tmp / "home", port, auth)
        out[name] = (probe_code(dirs[key], f"import {module} as m", ready), env, dirs[key])
        if name not in PYC_ROWS:
            continue
        pyc = tmp / "pyc" / key
        if not pyc.exists():
            precompiled(dirs[key], pyc)
        out[f"{name} +pyc"] = (probe_code(pyc, f"import {module} as m", ready), env, pyc)
    for name, (key, imp) in PEERS.items():
        bundle = dirs[key] if key else None
        out[name] = (probe_code(bundle, imp), base_env(tmp / "home"), bundle or tmp)
    return out


def measure(all_cases: dict[str, tuple[str, dict[str, str], Path]], reps: int) -> dict[str, Any]:
    """Round-robin (rep 1 of every case, then rep 2 ...) so background load hits every case alike."""
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in all_cases}
    for _ in range(reps):
        for name, (code, env, cwd) in all_cases.items():
            samples[name].append(run_probe(code, env, cwd))
    metrics = ("import_ms", "import_cpu_ms", "ready_ms", "ready_cpu_ms", "process_ms")
    return {name: {m: stats([s[m] for s in runs]) for m in metrics} for name, runs in samples.items()}


def breakdown(code: str, env: dict[str, str], cwd: Path, bundle: Path) -> dict[str, Any]:
    """One ``-X importtime`` run with the audit hook: self ms per top-level package in each phase (handler
    import, then ready), sockets opened, our modules loaded from outside the bundle (should be none)."""
    r = run_probe(code, env, cwd, ("-X", "importtime"))
    phases: dict[str, dict[str, float]] = {"import": {}, "ready": {}}
    phase = phases["import"]
    for line in r["stderr"].splitlines():
        if line.startswith("COLDSTART-READY"):
            phase = phases["ready"]
        elif line.startswith("import time:") and "self [us]" not in line:
            self_us, _, name = (p.strip() for p in line[len("import time:") :].split("|"))
            top = name.split(".")[0]
            phase[top] = phase.get(top, 0.0) + int(self_us) / 1e3
    ours = ("mailpipe", "main", "function_app")
    stray = sorted(n for n, f in r["files"].items() if n.split(".")[0] in ours and f and
                   not Path(f).resolve().is_relative_to(bundle.resolve()))  # fmt: skip
    out: dict[str, Any] = {"sockets": r["sockets"], "not_from_bundle": stray}
    for key, per in phases.items():
        out[f"{key}_total_ms"] = round(sum(per.values()), 1)
        out[f"{key}_by_package"] = dict(sorted(((k, round(v, 1)) for k, v in per.items()), key=lambda kv: -kv[1])[:8])
    return out


def zip_bytes(files: list[tuple[str, Path]]) -> bytes:
    """A deflated zip of (name in the archive, file) pairs, as a deployment upload would be."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for arc, path in sorted(files):
            zf.writestr(zipfile.ZipInfo(arc, date_time=(2020, 1, 1, 0, 0, 0)), path.read_bytes(), zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def zipped_size(files: list[tuple[str, Path]]) -> int:
    return len(zip_bytes(files))


def core_bundle_files(cloud: str, root: Path = REPO_DIR) -> list[tuple[str, Path]]:
    """mailpipe/: core/ + providers/__init__.py + providers/<cloud>/ + handlers/ compose + the cloud's handler."""
    from deploy.build_bundle import in_bundle

    out = []
    rels = ["mailpipe/__init__.py", "core", "providers/__init__.py", f"providers/{cloud}", "handlers/__init__.py",
            "handlers/compose.py", CORE_HANDLER[cloud]]  # fmt: skip
    for rel in rels:
        src = root / rel
        paths = [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.is_file())
        out += [(in_bundle(str(p.relative_to(root))), p) for p in paths
                if "__pycache__" not in p.parts and p.suffix != ".pyc"]  # fmt: skip
    return out


def closure(extra: str) -> set[str]:
    """Distribution names an extra of mailpipe pulls in, as installed here (markers evaluated)."""
    from packaging.requirements import Requirement

    todo = [Requirement(r) for r in (metadata.requires("mailpipe") or []) if f'extra == "{extra}"' in r]
    seen: set[str] = set()
    while todo:
        req = todo.pop()
        name = req.name.lower().replace("_", "-")
        if name in seen or name == "mailpipe":
            continue
        seen.add(name)
        for raw in metadata.requires(name) or []:
            sub = Requirement(raw)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in (req.extras or {""})):
                todo.append(sub)
    return seen


def dependency_size(extra: str) -> dict[str, Any]:
    """Installed and zipped size of an extra's dependency closure (no .pyc/__pycache__, as pip would ship)."""
    per = {}
    for name in sorted(closure(extra)):
        dist = metadata.distribution(name)
        files = [(str(f), Path(dist.locate_file(f))) for f in dist.files or []]
        files = [(a, p) for a, p in files if "__pycache__" not in a and p.is_file() and not a.endswith(".pyc")]
        per[name] = {"installed": sum(p.stat().st_size for _, p in files), "zipped": zipped_size(files)}
    top = dict(sorted(per.items(), key=lambda kv: -kv[1]["zipped"])[:5])
    return {"packages": len(per), "installed": sum(v["installed"] for v in per.values()),
            "zipped": sum(v["zipped"] for v in per.values()), "largest": top}  # fmt: skip


def footprint(zips: dict[str, Path]) -> dict[str, Any]:
    out: dict[str, Any] = {"bundles": {}, "core": {}, "deps": {}}
    for key, path in zips.items():
        names = zipfile.ZipFile(path).infolist()
        out["bundles"][key] = {"zipped": path.stat().st_size, "files": len(names),
                               "unzipped": sum(i.file_size for i in names)}  # fmt: skip
    for cloud in TARGET_MS:
        files = core_bundle_files(cloud)
        out["core"][cloud] = {"zipped": zipped_size(files), "files": len(files)}
        out["deps"][cloud] = {**dependency_size(EXTRAS[cloud]), "runtime_provided": RUNTIME_PROVIDED.get(cloud)}
    return out


def targets(times: dict[str, Any], foot: dict[str, Any]) -> dict[str, Any]:
    """Per handler: ready (import + SDK clients) median vs its cloud's target; core bundle zipped vs 2 MB."""
    out: dict[str, Any] = {}
    for name, (cloud, *_) in HANDLERS.items():
        med = times[name]["ready_ms"]["median"]
        out[name] = {"ready_median_ms": med, "target_ms": TARGET_MS[cloud], "ratio": round(med / TARGET_MS[cloud], 2),
                     "met": med < TARGET_MS[cloud]}  # fmt: skip
    for cloud, core in foot["core"].items():
        out[f"core bundle {cloud}"] = {"zipped": core["zipped"], "target": CORE_TARGET_BYTES,
                                       "met": core["zipped"] < CORE_TARGET_BYTES}  # fmt: skip
    return out


def print_report(doc: dict[str, Any]) -> None:
    times, checks = doc["times"], doc["targets"]
    print(f"cold start, fresh interpreter, {doc['reps']} reps (ms, median/p90; CPU = process_time)")
    print(f"{'case':<40}{'import':>14}{'ready':>14}{'ready CPU':>14}{'process':>14}  target")
    for name, t in times.items():
        cells = "".join(f"{t[m]['median']:>7.1f}/{t[m]['p90']:<6.1f}" for m in
                        ("import_ms", "ready_ms", "ready_cpu_ms", "process_ms"))  # fmt: skip
        c = checks.get(name)
        verdict = f"  < {c['target_ms']:.0f}: {'PASS' if c['met'] else 'FAIL'} (x{c['ratio']})" if c else ""
        print(f"{name:<40}{cells}{verdict}")
    print("\nimport breakdown (one -X importtime run: self ms by top-level package, per phase)")
    for name, b in doc["breakdown"].items():
        print(f"  {name}: sockets opened {len(b['sockets'])}, modules not from the bundle {b['not_from_bundle']}")
        for key in ("import", "ready"):
            pkgs = ", ".join(f"{k} {v}" for k, v in b[f"{key}_by_package"].items())
            print(f"    {key:<6} {b[f'{key}_total_ms']:>6} ms: {pkgs}")
    foot = doc["footprint"]
    print("\nfootprint (bytes, zipped)")
    for key, b in foot["bundles"].items():
        print(f"  bundle {key:<16} {b['zipped']:>10,}  ({b['files']} files, {b['unzipped']:,} unzipped)")
    for cloud, c in foot["core"].items():
        ok = "PASS" if checks[f"core bundle {cloud}"]["met"] else "FAIL"
        print(f"  core bundle {cloud:<11} {c['zipped']:>10,}  ({c['files']} files)  < {CORE_TARGET_BYTES:,}: {ok}")
    for cloud, d in foot["deps"].items():
        big = ", ".join(f"{k} {v['zipped'] / 1e6:.1f} MB" for k, v in d["largest"].items())
        note = f"  [runtime-provided: {d['runtime_provided']}]" if d["runtime_provided"] else ""
        print(f"  deps [{EXTRAS[cloud]}] {d['packages']} dists {d['zipped']:>12,} zipped"
              f" ({d['installed']:,} installed): {big}{note}")  # fmt: skip
    for note in doc["notes"]:
        print(f"note: {note}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.coldstart", description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--quick", action="store_true", help="5 reps")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    ap.add_argument("--out", type=Path, default=OUT_DIR, help="directory for the JSON (default bench/out)")
    a = ap.parse_args(argv)
    reps = 5 if a.quick else a.reps
    with tempfile.TemporaryDirectory(prefix="mailpipe-bench-coldstart-") as name:
        tmp = Path(name)
        (tmp / "home").mkdir()
        dirs, zips, notes = build_bundles(tmp)
        port = closed_port()
        all_cases = cases(dirs, tmp, port)
        checks = {h: breakdown(probe_code(dirs[s[1]], f"import {s[2]} as m", s[3], check=True),
                               all_cases[h][1], dirs[s[1]], dirs[s[1]]) for h, s in HANDLERS.items()}  # fmt: skip
        times = measure(all_cases, reps)
        foot = footprint(zips)
    doc = {"bench": "coldstart", "utc": datetime.now(UTC).strftime("%Y-%m-%dT%H%M%SZ"), "reps": reps,
           "python": sys.version.split()[0], "cpus": os.cpu_count(), "load_avg": os.getloadavg(), "notes": notes,
           "times": times, "breakdown": checks, "footprint": foot, "targets": targets(times, foot)}  # fmt: skip
    a.out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(doc, indent=1)
    (a.out / "coldstart.json").write_text(text)
    (a.out / f"coldstart-{doc['utc']}.json").write_text(text)
    print_report(doc)
    print(f"results: {a.out / 'coldstart.json'}")
    missed = [k for k, v in doc["targets"].items() if not v["met"]]
    return 1 if a.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
