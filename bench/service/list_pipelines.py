"""Benchmark 2: `GET /api/v1/apps/{app}/pipelines` at 5,000 pipelines under 20 concurrent
clients, against a real `datahub serve` (uvicorn) on loopback; baseline in the same run:
`GET /api/v1/health` (the floor of the stack: uvicorn, FastAPI, the authorize dependency of
a public route), same clients, same count.

    .venv/bin/python -m bench.service.list_pipelines [--n 5000] [--layout one|spread]
        [--clients 20] [--requests 100]

Layouts (say which when quoting a number):
- `one`: ONE app holding all 5,000 pipelines (every answer lists 5,000 pipelines and their
  6,125 asset keys: the largest answer this call can give);
- `spread`: 100 apps of 50 (bench/load's layout), the clients cycling over 4 apps they can
  view (4 different cache entries, answers of 50 pipelines).

The server's own CPU time per request (from /proc) is reported beside each run, so the
service's cost is told apart from the client's and the queueing. The client: one asyncio
process, an httpx.AsyncClient with at most `--clients` connections,
`--clients` workers each sending `--requests` requests back to back (a closed loop: a worker
sends its next request when the previous answer is read in full). Each request is timed from
send to the last byte; non-200 answers and exceptions are errors. The caller is a viewer
signed in with an access token (POST /api/v1/auth/token), so each call pays the real
authentication and authorization. One warm-up request per app first (its time reported
apart: the registry's first listing of a commit). Client and server share the machine's cores.
Target (issue #21): p95 ≤ 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from bench.common import machine, now, revision, write_json
from bench.service.harness import add_user, project, serve, sign_in, summary

TARGET_P95_S = 0.100


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (/proc/<pid>/stat)."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _load(
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


def _first(base: str, path: str, token: str) -> tuple[float, int, int]:
    import httpx

    start = time.perf_counter()
    resp = httpx.get(base + path, headers={"Authorization": f"Bearer {token}"}, timeout=600)
    elapsed = time.perf_counter() - start
    rows = len(resp.json()) if resp.status_code == 200 else -1
    return elapsed, resp.status_code, rows


def measure(n: int, layout: str, clients: int, per_client: int) -> dict:
    if layout == "one":
        p = project(f"list_{n}_one", n, per_app=n)
        apps = ["load_a000"]
    else:
        p = project(f"list_{n}_spread", n, per_app=50)
        apps = [f"load_a{i:03d}" for i in (0, 25, 50, 75)]
    add_user(p, "bench_viewer", {app: "viewer" for app in apps})
    paths = [f"/api/v1/apps/{app}/pipelines" for app in apps]
    with serve(p) as server:
        token = sign_in(server, "bench_viewer")  # a fresh one before each run below (15 min)
        first = {}
        for path in paths:
            seconds, status, rows = _first(server.url, path, token)
            first[path] = {"s": round(seconds, 3), "status": status, "pipelines": rows}
        # baseline and measured call alternate twice, so load on the box hits both alike
        runs = []
        for label, targets in (
            ("health", ["/api/v1/health"]),
            ("pipelines", paths),
            ("health", ["/api/v1/health"]),
            ("pipelines", paths),
        ):
            auth = sign_in(server, "bench_viewer") if label == "pipelines" else None
            cpu_before = cpu_seconds(server.pid)
            row = asyncio.run(_load(server.url, targets, auth, clients, per_client))
            server_cpu = cpu_seconds(server.pid) - cpu_before
            row["server_cpu_ms_per_request"] = round(1000 * server_cpu / max(1, row["answered"]), 2)
            runs.append({"call": label, **row})
        startup_s = server.started_s
    pipelines = [r for r in runs if r["call"] == "pipelines"]
    health = [r for r in runs if r["call"] == "health"]
    p95 = max(r["latency_s"]["p95"] for r in pipelines)
    health_p95 = max(r["latency_s"]["p95"] for r in health)
    return {
        "n": n,
        "layout": layout,
        "apps": apps,
        "clients": clients,
        "requests_per_client": per_client,
        "manifest": p.manifest,
        "serve_startup_s": startup_s,
        "first_request": first,
        "runs": runs,
        "pipelines_p95_s": p95,
        "health_p95_s": health_p95,
        "ratio_p95_vs_health": round(p95 / health_p95, 2) if health_p95 else None,
        "errors": sum(r["error_count"] for r in runs),
        "target_p95_s": TARGET_P95_S,
        "met": p95 <= TARGET_P95_S and all(r["error_count"] == 0 for r in pipelines),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--layout", choices=("one", "spread"), default="one")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=100, help="requests per client")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    before = machine()
    result: dict = {"benchmark": "service_list_pipelines", "time": now(), "revision": revision()}
    result |= measure(args.n, args.layout, args.clients, args.requests)
    result["machine"] = {**before, "loadavg_after": machine()["loadavg"]}
    if args.out:
        write_json(args.out, result)
    return result


if __name__ == "__main__":
    import json

    print(json.dumps(main(), indent=2, default=str))
