"""Benchmark 3: approve → the new asset visible in the Dagster UI.

    .venv/bin/python -m bench.service.approve_visible [--n 50] [--repeat 3]

A real dagster-webserver (the repository's workspace.yaml, code location `datahub`) over a
generated project of `--n` pipelines, and a real `datahub serve` whose DATAHUB_DAGSTER_URL
is that webserver. Each round: the editor opens a change adding `raw/bench_new_<i>.xml` (a
CSV pipeline, table `bench_new_<i>`) to app `load_a000` over the API; then the clock starts,
the approver (another user) approves it (POST /api/v1/changes/{id}/approve → merged, the
service reloads the code location) and this process polls Dagster's GraphQL
`assetNodes(assetKeys: [...])` every 0.1 s until the key `load_a000/raw/bench_new_<i>` is
listed (what the UI's asset pages query). Reported per round: the approve call's own
seconds and approve → visible seconds. No baseline exists for this one (the issue asks for
the time); the webserver's own start-up (loading the same definitions) is reported beside it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bench.common import machine, now, revision, write_json
from bench.service.harness import (
    add_user,
    asset_visible,
    dagster_webserver,
    location_status,
    project,
    request_json,
    serve,
    sign_in,
    summary,
)

APP = "load_a000"


def new_pipeline(i: int) -> str:
    return f"""<pipeline id="bench_new_{i}" version="1.0.0" layer="raw">
  <metadata>
    <owner>bench</owner>
    <description>A pipeline added through the front door, round {i}</description>
  </metadata>
  <sources>
    <csv id="src" path="landing/bench_new_{i}/*.csv" header="true"/>
  </sources>
  <targets>
    <table table="bench_new_{i}" source="src" mode="append"/>
  </targets>
</pipeline>
"""


def _round(i: int, service_url: str, dagster_url: str, editor: str, approver: str) -> dict:
    files = [{"path": f"raw/bench_new_{i}.xml", "content": new_pipeline(i)}]
    body = {"app": APP, "title": f"bench: add bench_new_{i}", "files": files}
    status, change = request_json("POST", f"{service_url}/api/v1/changes", editor, body)
    if status != 201 or not isinstance(change, dict) or change.get("status") != "open":
        raise RuntimeError(f"create change: {status} {change}")
    key = [APP, "raw", f"bench_new_{i}"]
    if asset_visible(dagster_url, key):
        raise RuntimeError(f"{key} visible before the approval")
    start = time.perf_counter()
    status, answer = request_json(
        "POST", f"{service_url}/api/v1/changes/{change['id']}/approve", approver, {}
    )
    approve_s = time.perf_counter() - start
    if status != 200 or not isinstance(answer, dict) or answer.get("status") != "merged":
        raise RuntimeError(f"approve: {status} {answer}")
    statuses = set()
    while not asset_visible(dagster_url, key):
        statuses.add(location_status(dagster_url))
        if time.perf_counter() - start > 900:
            raise RuntimeError(f"{key} not visible 900 s after the approval")
        time.sleep(0.1)
    visible_s = time.perf_counter() - start
    return {
        "change": change["id"],
        "commit": answer.get("commit"),
        "approve_call_s": round(approve_s, 3),
        "reload_s": (answer.get("reload") or {}).get("seconds"),
        "reload_ok": (answer.get("reload") or {}).get("ok"),
        "approve_to_visible_s": round(visible_s, 3),
        "location_statuses_seen": sorted(s for s in statuses if s),
    }


def measure(n: int, repeat: int) -> dict:
    p = project(f"approve_{n}", n)
    add_user(p, "bench_editor", {APP: "editor"})
    add_user(p, "bench_approver", {APP: "approver"})
    with dagster_webserver(p) as dagster:
        p.extra_env["DATAHUB_DAGSTER_URL"] = dagster.url
        with serve(p) as server:
            editor = sign_in(server, "bench_editor")
            approver = sign_in(server, "bench_approver")
            rounds = [
                _round(i, server.url, dagster.url, editor, approver) for i in range(1, repeat + 1)
            ]
    visible = [r["approve_to_visible_s"] for r in rounds]
    return {
        "n": n,
        "app": APP,
        "manifest": p.manifest,
        "dagster_webserver_startup_s": dagster.started_s,
        "rounds": rounds,
        "approve_call_s": summary([r["approve_call_s"] for r in rounds], 3),
        "approve_to_visible_s": summary(visible, 3),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    before = machine()
    result: dict = {"benchmark": "service_approve_visible", "time": now(), "revision": revision()}
    result |= measure(args.n, args.repeat)
    result["machine"] = {**before, "loadavg_after": machine()["loadavg"]}
    if args.out:
        write_json(args.out, result)
    return result


if __name__ == "__main__":
    import json

    print(json.dumps(main(), indent=2, default=str))
