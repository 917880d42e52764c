"""What the service benchmarks share: a private project (pipelines tree, state, home), users
made with the CLI a user types, a real `datahub serve` and a real dagster-webserver on
loopback, sign-in, percentiles.

Everything lives under bench/_work/service/<name>/ and is rebuilt by every run (the pipelines
tree is copied from the cached generated one, so the Registry's first commit is fresh)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import ROOT, VENV_BIN, WORK
from bench.load.gen_pipelines import generate

SERVICE_WORK = WORK / "service"
DATAHUB = VENV_BIN / "datahub"
PASSWORD = "bench-password-0123456789"  # a throwaway project's users; never a real secret


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100): the smallest value with at least q % of the
    values at or below it (p95 of 20 values = the 19th smallest)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(values: list[float], digits: int = 4) -> dict:
    """n, p50, p95, p99, min, max of `values` (seconds)."""
    return {
        "n": len(values),
        "p50": round(percentile(values, 50), digits),
        "p95": round(percentile(values, 95), digits),
        "p99": round(percentile(values, 99), digits),
        "min": round(min(values), digits) if values else None,
        "max": round(max(values), digits) if values else None,
    }


@dataclass
class Project:
    """A private project: its pipelines tree (a copy), home, data dir and state database."""

    name: str
    root: Path
    pipelines: Path
    manifest: dict
    extra_env: dict[str, str] = field(default_factory=dict)

    def manifest_apps(self) -> list[str]:
        return sorted(d.name for d in self.pipelines.iterdir() if d.is_dir())

    @property
    def home(self) -> Path:
        return self.root / "home"

    def env(self) -> dict[str, str]:
        """The environment of every command and server of this project."""
        drop = ("DATAHUB_CATALOG_URI", "DATAHUB_WAREHOUSE", "DATAHUB_STATE_URI")
        env = {k: v for k, v in os.environ.items() if k not in drop}
        env.update(
            DATAHUB_HOME=str(self.home),
            DAGSTER_HOME=str(self.home / "dagster"),
            DATAHUB_DATA_DIR=str(self.root / "data"),
            DATAHUB_PIPELINES_DIR=str(self.pipelines),
            DATAHUB_STATE_URI=f"sqlite:///{self.home / 'hub.db'}",
        )
        env.update(self.extra_env)
        return env


def project(name: str, n: int, per_app: int = 50) -> Project:
    """A fresh project of `n` generated pipelines (bench/load/gen_pipelines.py, `per_app` per
    app) under bench/_work/service/<name>/."""
    manifest = generate(n, per_app, out=WORK / "load" / f"pipelines_{n}_per{per_app}")
    root = SERVICE_WORK / name
    if root.exists():
        shutil.rmtree(root)
    pipelines = root / "pipelines"
    shutil.copytree(manifest["dir"], pipelines, ignore=shutil.ignore_patterns("_manifest.json"))
    (root / "home" / "dagster").mkdir(parents=True)
    (root / "data").mkdir()
    shutil.copy(ROOT / "dagster.yaml", root / "home" / "dagster" / "dagster.yaml")
    return Project(name, root, pipelines, manifest)


def cli(p: Project, *argv: str, stdin: str | None = None, timeout: float = 300) -> str:
    """Run `datahub ARGV` in the project; its stdout; raises with its output on failure."""
    proc = subprocess.run(
        [str(DATAHUB), *argv],
        input=stdin,
        env=p.env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"`datahub {' '.join(argv)}` exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        )
    return proc.stdout


def add_user(
    p: Project, name: str, grants: dict[str, str] | None = None, admin: bool = False
) -> None:
    """`datahub users add NAME --password-stdin` and one `datahub users grant` per app."""
    flags = ["--admin"] if admin else []
    cli(p, "users", "add", name, *flags, "--password-stdin", stdin=PASSWORD)
    for app, role in (grants or {}).items():
        cli(p, "users", "grant", name, "--app", app, "--role", role)


def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> float:
    """Seconds until `url` answers 200; raises (with the log's tail) when the process dies or
    the time is up."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    return time.perf_counter() - start
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"no answer from {url} in {timeout} s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def _process(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        proc = subprocess.Popen(
            argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)


@dataclass
class Server:
    url: str
    started_s: float
    pid: int


@contextlib.contextmanager
def serve(p: Project, timeout: float = 300) -> Iterator[Server]:
    """`datahub serve --host 127.0.0.1 --port P` in the project, until /api/v1/health is 200."""
    port = free_port()
    argv = [str(DATAHUB), "serve", "--host", "127.0.0.1", "--port", str(port)]
    with _process(argv, p.env(), p.root / "serve.log") as proc:
        url = f"http://127.0.0.1:{port}"
        started = _wait_http(f"{url}/api/v1/health", proc, p.root / "serve.log", timeout)
        yield Server(url, round(started, 3), proc.pid)


@contextlib.contextmanager
def dagster_webserver(p: Project, timeout: float = 900) -> Iterator[Server]:
    """A real dagster-webserver over the project's tree (the repository's workspace.yaml:
    code location `datahub`), until /server_info is 200 and the location has loaded."""
    port = free_port()
    argv = [
        str(VENV_BIN / "dagster-webserver"),
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-w",
        str(ROOT / "workspace.yaml"),
    ]
    log = p.root / "dagster-webserver.log"
    with _process(argv, p.env(), log) as proc:
        url = f"http://127.0.0.1:{port}"
        start = time.perf_counter()
        _wait_http(f"{url}/server_info", proc, log, timeout)
        while location_status(url) != "LOADED":
            if time.perf_counter() - start > timeout:
                raise RuntimeError(f"code location not loaded in {timeout} s:\n{log.read_text()}")
            time.sleep(0.5)
        yield Server(url, round(time.perf_counter() - start, 3), proc.pid)


def graphql(url: str, query: str, variables: dict | None = None, timeout: float = 60) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(
        f"{url}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


def location_status(url: str) -> str | None:
    """The load status of the webserver's code location `datahub` (LOADING, LOADED)."""
    query = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"
    try:
        data = graphql(url, query)
    except OSError:
        return None
    entries = (data.get("data") or {}).get("workspaceOrError", {}).get("locationEntries", [])
    return next((e["loadStatus"] for e in entries if e["name"] == "datahub"), None)


def asset_visible(url: str, key: list[str]) -> bool:
    """Whether Dagster's GraphQL `assetNodes` lists the asset `key` (what the UI shows)."""
    query = "query($keys: [AssetKeyInput!]) { assetNodes(assetKeys: $keys) { assetKey { path } } }"
    try:
        data = graphql(url, query, {"keys": [{"path": key}]})
    except OSError:
        return False
    nodes = (data.get("data") or {}).get("assetNodes") or []
    return any(n["assetKey"]["path"] == key for n in nodes)


def request_json(
    method: str, url: str, token: str | None = None, body: dict | None = None, timeout: float = 600
) -> tuple[int, dict | list]:
    """(status, JSON answer) of one API call."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        text = exc.read()
        try:
            return exc.code, json.loads(text)
        except ValueError:
            return exc.code, {"detail": text.decode(errors="replace")}


def sign_in(server: Server, username: str) -> str:
    """An access token from POST /api/v1/auth/token (OAuth2 password form)."""
    form = urllib.parse.urlencode({"username": username, "password": PASSWORD}).encode()
    req = urllib.request.Request(
        f"{server.url}/api/v1/auth/token",
        data=form,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())["access_token"]
