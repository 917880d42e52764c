"""Benchmark 2: `GET /api/v1/apps/{app}/pipelines` at 5,000 pipelines under 20 concurrent
clients, against a real `datahub serve` (uvicorn) on loopback; baseline in the same run:
`GET /api/v1/health` (the floor of the stack: uvicorn, FastAPI, the authorize dependency of
a public route), same clients.

    .venv/bin/python -m bench.service.list_pipelines [--n 5000] [--layout one|spread]
        [--clients 20] [--requests 100] [--seconds 8] [--client httpx,wrk]
        [--workers 1,2] [--before REV] [--rounds 2]

Layouts (say which when quoting a number):
- `one`: ONE app holding all 5,000 pipelines (every answer lists 5,000 pipelines and their
  6,125 asset keys: the largest answer this call can give);
- `spread`: 100 apps of 50 (bench/load's layout), the clients cycling over 4 apps they can
  view (4 different cache entries, answers of 50 pipelines).

Servers (all over the same project, started together, measured in turn): `datahub serve`
of this work tree with each `--workers` count, and with `--before REV` the same command
running the platform code of git revision REV (extracted with `git archive` under
bench/_work/service/src_<rev>/, first on PYTHONPATH): before/after in the same run.

Clients (each a closed loop: `--clients` connections, each sending its next request when the
previous answer is read in full; every request timed from send to the last byte; non-2xx
answers and exceptions are errors):
- `httpx`: one asyncio process of this Python (`--requests` per connection);
- `wrk`: the C load generator (Debian's `wrk`, scripts/ensure_system.sh), one thread,
  `--seconds` long, with bench/service/wrk_report.lua for the percentiles.
Client and server share the machine's cores; each run reports the server's CPU (its process
tree, /proc) and the client's own CPU per request, so what the service costs is told apart
from what the client and the box cost. The caller is a viewer signed in with an access token
(POST /api/v1/auth/token, a fresh one per run), so each call pays the real authentication
and authorization. One warm-up per server and app first (the registry's first listing of a
commit, reported apart), then a wait until every server is idle (its background load
done). Order per round: every server × client × (health, pipelines).
Target (issue #21): p95 ≤ 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from bench.common import ROOT, machine, now, revision, write_json
from bench.service.harness import (
    DATAHUB,
    SERVICE_WORK,
    Project,
    Server,
    _process,
    _wait_http,
    add_user,
    free_port,
    project,
    sign_in,
    summary,
)

TARGET_P95_S = 0.100
LUA = Path(__file__).resolve().parent / "wrk_report.lua"
PACKAGES = ("datahub_assets", "datahub_resources")


# --- CPU from /proc ---------------------------------------------------------------------------


def _stat(pid: int) -> tuple[int, float]:
    """(parent pid, user + system CPU seconds) of `pid` (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU seconds so far of `pid` and every live process under it (uvicorn's workers)."""
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stats[int(entry.name)] = _stat(int(entry.name))
    tree, total = {pid}, 0.0
    for _ in range(4):  # depth: serve -> uvicorn supervisor -> workers (-> spawn helpers)
        tree |= {p for p, (parent, _) in stats.items() if parent in tree}
    for p in tree:
        total += stats.get(p, (0, 0.0))[1]
    return total


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# --- servers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    label: str  # "after ×1", "after ×2", "before <rev> ×1"
    workers: int
    source: Path | None  # platform code on PYTHONPATH (None: this work tree)


def source_of(rev: str) -> Path:
    """The platform packages of git revision `rev`, extracted once (git archive)."""
    sha = subprocess.run(
        ["git", "rev-parse", "--short", rev], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()
    target = SERVICE_WORK / f"src_{sha}"
    if not (target / PACKAGES[0]).is_dir():
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "archive", sha, *PACKAGES], cwd=ROOT, check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


@contextlib.contextmanager
def serve(p: Project, variant: Variant, timeout: float = 300) -> Iterator[Server]:
    """`datahub serve --host 127.0.0.1 --port P --workers N` (the variant's code)."""
    port = free_port()
    argv = [str(DATAHUB), "serve", "--host", "127.0.0.1", "--port", str(port)]
    if variant.workers > 1:
        argv += ["--workers", str(variant.workers)]
    env_p = p
    if variant.source is not None:
        env_p = replace(p, extra_env={**p.extra_env, "PYTHONPATH": str(variant.source)})
    log = p.root / f"serve_{port}.log"
    with _process(argv, env_p.env(), log) as proc:
        url = f"http://127.0.0.1:{port}"
        started = _wait_http(f"{url}/api/v1/health", proc, log, timeout)
        yield Server(url, round(started, 3), proc.pid)


def warm(server: Server, paths: list[str], token: str, workers: int) -> dict[str, dict]:
    """Each app's first listing (built at HEAD) timed once; with several workers, bursts of
    parallel requests until every worker answers fast (each builds its own listing)."""
    import httpx

    first: dict[str, dict] = {}
    headers = {"Authorization": f"Bearer {token}"}
    for path in paths:
        start = time.perf_counter()
        resp = httpx.get(server.url + path, headers=headers, timeout=900)
        rows = len(resp.json()) if resp.status_code == 200 else -1
        first[path] = {
            "s": round(time.perf_counter() - start, 3),
            "status": resp.status_code,
            "pipelines": rows,
        }
    if workers > 1:

        def one(path: str) -> float:
            start = time.perf_counter()
            with httpx.Client(headers=headers, timeout=900) as client:
                client.get(server.url + path)
            return time.perf_counter() - start

        fast = 0
        with ThreadPoolExecutor(4 * workers) as pool:
            for _ in range(30):
                slowest = max(pool.map(one, paths * 4 * workers))
                fast = fast + 1 if slowest < 0.5 else 0
                if fast == 3:
                    break
    return first


def quiesce(server: Server, timeout: float = 180) -> float:
    """Seconds until the server's process tree is idle (< 5 % of a core over 1 s): the
    registry loads the project in the background after start, which is not the load
    measured."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        before = cpu_seconds(server.pid)
        time.sleep(1.0)
        if cpu_seconds(server.pid) - before < 0.05:
            break
    return round(time.perf_counter() - start, 1)


# --- clients ----------------------------------------------------------------------------------


async def _httpx_load(
    base: str, paths: list[str], token: str | None, clients: int, per_client: int
) -> dict:
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    sizes: list[int] = []

    async with httpx.AsyncClient(
        base_url=base, headers=headers, limits=limits, timeout=60
    ) as client:

        async def worker(w: int) -> None:
            for i in range(per_client):
                path = paths[(w + i) % len(paths)]
                start = time.perf_counter()
                try:
                    resp = await client.get(path)
                    body = resp.content
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                    continue
                latencies.append(time.perf_counter() - start)
                if resp.status_code != 200:
                    errors[str(resp.status_code)] = errors.get(str(resp.status_code), 0) + 1
                else:
                    sizes.append(len(body))

        start = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(clients)))
        wall = time.perf_counter() - start
    done = len(latencies)
    return {
        "requests": clients * per_client,
        "answered": done,
        "errors": errors,
        "error_count": sum(errors.values()),
        "wall_s": round(wall, 3),
        "requests_per_s": round(done / wall, 1) if wall else None,
        "latency_s": summary(latencies),
        "answer_bytes": max(sizes) if sizes else None,
    }


def httpx_run(base: str, paths: list[str], token: str | None, clients: int, n: int) -> dict:
    cpu = time.process_time()
    row = asyncio.run(_httpx_load(base, paths, token, clients, n))
    row["client_cpu_s"] = time.process_time() - cpu
    return row


def wrk_run(base: str, paths: list[str], token: str | None, clients: int, seconds: int) -> dict:
    env = {**os.environ, "WRK_PATHS": ",".join(paths), "WRK_TOKEN": token or ""}
    argv = ["wrk", "-t1", f"-c{clients}", f"-d{seconds}s", "--timeout", "60s", "-s", str(LUA)]
    cpu = _children_cpu()
    proc = subprocess.run(
        [*argv, base + paths[0]], env=env, capture_output=True, text=True, timeout=seconds + 120
    )
    client_cpu = _children_cpu() - cpu
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    out = json.loads(lines[-1])
    lat = {k: round(v / 1e6, 4) for k, v in out["latency_us"].items() if k != "mean"}
    errors = {k: v for k, v in out["errors"].items() if v}
    wall = out["duration_us"] / 1e6
    return {
        "requests": out["requests"],
        "answered": out["requests"],
        "errors": errors,
        "error_count": sum(errors.values()),
        "wall_s": round(wall, 3),
        "requests_per_s": round(out["requests"] / wall, 1) if wall else None,
        "latency_s": {"n": out["requests"], **lat},
        "answer_bytes": round(out["bytes"] / max(1, out["requests"])),
        "client_cpu_s": client_cpu,
    }


# --- the measurement -------------------------------------------------------------------------


def _one_run(
    server: Server, client: str, call: str, targets: list[str], args: argparse.Namespace
) -> dict:
    token = sign_in(server, "bench_viewer") if call == "pipelines" else None
    box_before = _box_busy()
    cpu_before = cpu_seconds(server.pid)
    if client == "wrk":
        row = wrk_run(server.url, targets, token, args.clients, args.seconds)
    else:
        row = httpx_run(server.url, targets, token, args.clients, args.requests)
    server_cpu = cpu_seconds(server.pid) - cpu_before
    box = _box_busy()
    answered = max(1, row["answered"])
    row["server_cpu_ms_per_request"] = round(1000 * server_cpu / answered, 2)
    row["client_cpu_ms_per_request"] = round(1000 * row.pop("client_cpu_s") / answered, 2)
    cores = os.cpu_count() or 1
    wall = max(row["wall_s"], 1e-9)
    row["server_cores"] = round(server_cpu / wall, 2)
    row["box_busy"] = round((box[0] - box_before[0]) / max(1e-9, box[1] - box_before[1]), 2)
    row["cores"] = cores
    return row


def _box_busy() -> tuple[float, float]:
    """(busy jiffies, total jiffies) of all cores (/proc/stat): the box's CPU share."""
    values = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return float(sum(values) - idle), float(sum(values))


def measure(args: argparse.Namespace) -> dict:
    n, layout = args.n, args.layout
    if layout == "one":
        p = project(f"list_{n}_one", n, per_app=n)
        apps = ["load_a000"]
    else:
        p = project(f"list_{n}_spread", n, per_app=50)
        apps = [f"load_a{i:03d}" for i in (0, 25, 50, 75)]
    add_user(p, "bench_viewer", {app: "viewer" for app in apps})
    paths = [f"/api/v1/apps/{app}/pipelines" for app in apps]
    variants = [Variant(f"after ×{w}", w, None) for w in args.workers]
    if args.before:
        src = source_of(args.before)
        variants.insert(0, Variant(f"before {src.name.removeprefix('src_')} ×1", 1, src))
    clients = [c for c in args.client if c != "wrk" or shutil.which("wrk")]
    runs: list[dict] = []
    servers: dict[str, dict] = {}
    with contextlib.ExitStack() as stack:
        started = {v.label: stack.enter_context(serve(p, v)) for v in variants}
        token = sign_in(next(iter(started.values())), "bench_viewer")
        for v in variants:
            server = started[v.label]
            servers[v.label] = {
                "workers": v.workers,
                "startup_s": server.started_s,
                "first_request": warm(server, paths, token, v.workers),
            }
        for v in variants:
            servers[v.label]["idle_after_s"] = quiesce(started[v.label])
        for round_ in range(1, args.rounds + 1):
            for v in variants:
                for client in clients:
                    for call, targets in (("health", ["/api/v1/health"]), ("pipelines", paths)):
                        row = _one_run(started[v.label], client, call, targets, args)
                        runs.append(
                            {"round": round_, "server": v.label, "client": client, "call": call}
                            | row
                        )
    return _result(args, p, apps, variants, clients, servers, runs)


def _result(args, p, apps, variants, clients, servers, runs) -> dict:
    table = []
    for v in variants:
        for client in clients:
            for call in ("health", "pipelines"):
                mine = [
                    r
                    for r in runs
                    if (r["server"], r["client"], r["call"]) == (v.label, client, call)
                ]
                table.append(
                    {
                        "server": v.label,
                        "client": client,
                        "call": call,
                        "p95_ms": [round(1000 * r["latency_s"]["p95"], 1) for r in mine],
                        "p50_ms": [round(1000 * r["latency_s"]["p50"], 1) for r in mine],
                        "requests_per_s": [r["requests_per_s"] for r in mine],
                        "server_cpu_ms": [r["server_cpu_ms_per_request"] for r in mine],
                        "client_cpu_ms": [r["client_cpu_ms_per_request"] for r in mine],
                        "box_busy": [r["box_busy"] for r in mine],
                        "errors": sum(r["error_count"] for r in mine),
                    }
                )
    # the headline (and run_service.py's keys): this work tree, one worker, the first client
    head = [r for r in runs if r["server"] == variants[-len(args.workers)].label]
    head = [r for r in head if r["client"] == clients[0]]
    pipelines = [r for r in head if r["call"] == "pipelines"]
    health = [r for r in head if r["call"] == "health"]
    p95 = max(r["latency_s"]["p95"] for r in pipelines)
    health_p95 = max(r["latency_s"]["p95"] for r in health)
    met_by = sorted(
        {
            f"{row['server']} / {row['client']}"
            for row in table
            if row["call"] == "pipelines"
            and row["p95_ms"]
            and max(row["p95_ms"]) <= 1000 * TARGET_P95_S
            and row["errors"] == 0
            and not row["server"].startswith("before")
        }
    )
    first_server = servers[variants[-len(args.workers)].label]
    return {
        "n": args.n,
        "layout": args.layout,
        "apps": apps,
        "clients": args.clients,
        "requests_per_client": args.requests,
        "wrk_seconds": args.seconds,
        "manifest": p.manifest,
        "servers": servers,
        "first_request": first_server["first_request"],
        "serve_startup_s": first_server["startup_s"],
        "runs": runs,
        "table": table,
        "pipelines_p95_s": p95,
        "health_p95_s": health_p95,
        "ratio_p95_vs_health": round(p95 / health_p95, 2) if health_p95 else None,
        "errors": sum(r["error_count"] for r in runs),
        "target_p95_s": TARGET_P95_S,
        "met": p95 <= TARGET_P95_S and all(r["error_count"] == 0 for r in pipelines),
        "met_by": met_by,
    }


def markdown(result: dict) -> str:
    """The table of bench/RESULTS.md: one row per server × client × call, runs in order."""
    lines = [
        "| layout | server | client | call | req/s | p50 ms | **p95 ms** | server CPU ms/req "
        "| client CPU ms/req | box busy |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["table"]:

        def j(values: list) -> str:
            return " / ".join(str(v) for v in values)

        lines.append(
            f"| {result['layout']} | {row['server']} | {row['client']} | {row['call']} "
            f"| {j(row['requests_per_s'])} | {j(row['p50_ms'])} | **{j(row['p95_ms'])}** "
            f"| {j(row['server_cpu_ms'])} | {j(row['client_cpu_ms'])} "
            f"| {j(row['box_busy'])} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--layout", choices=("one", "spread"), default="one")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=100, help="httpx: per connection")
    parser.add_argument("--seconds", type=int, default=8, help="wrk: seconds per run")
    parser.add_argument("--client", type=lambda s: s.split(","), default=["httpx", "wrk"])
    parser.add_argument("--workers", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2])
    parser.add_argument("--before", help="also serve the platform code of this git revision")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--markdown", action="store_true", help="print the table, not JSON")
    args = parser.parse_args(argv)
    before = machine()
    result: dict = {"benchmark": "service_list_pipelines", "time": now(), "revision": revision()}
    result |= measure(args)
    result["machine"] = {**before, "loadavg_after": machine()["loadavg"]}
    if args.out:
        write_json(args.out, result)
    return result


if __name__ == "__main__":
    import sys

    out = main()
    if "--markdown" in sys.argv:
        print(markdown(out))
    else:
        print(json.dumps(out, indent=2, default=str))
