"""The front door's benchmarks (issue #21), one after another, each in its own process:

    .venv/bin/python bench/run.py service [--only validate,list,approve] [--quick]
    (make bench-service)

1. validate  — bench/service/validate_change.py: a one-pipeline change in a 2,000-pipeline
               project (Registry.validate / create_change, p50/p95 of 20) vs a bare
               `datahub validate` of the same tree (in-process load_project and the CLI);
2. list      — bench/service/list_pipelines.py: GET /api/v1/apps/{app}/pipelines at 5,000
               pipelines, 20 concurrent clients, layouts `one` (one app of 5,000) and
               `spread` (100 apps of 50), baseline GET /api/v1/health in the same run;
3. approve   — bench/service/approve_visible.py: approve → the asset in Dagster's GraphQL, a
               50-pipeline project and the 2,000-pipeline one.

Results: bench/_work/results/service_<part>.json and service.md (the table to copy into
bench/RESULTS.md). `--quick`: fewer rounds (a smoke run; not for RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from bench.common import PYTHON, ROOT, WORK

RESULTS = WORK / "results"
PARTS = {
    "validate": [("validate", ["--n", "2000", "--repeat", "20"])],
    "list": [
        ("list_one", ["--n", "5000", "--layout", "one"]),
        ("list_spread", ["--n", "5000", "--layout", "spread"]),
    ],
    "approve": [
        ("approve_50", ["--n", "50", "--repeat", "3"]),
        ("approve_2000", ["--n", "2000", "--repeat", "3"]),
    ],
}
MODULES = {
    "validate": "bench.service.validate_change",
    "list": "bench.service.list_pipelines",
    "approve": "bench.service.approve_visible",
}
QUICK = {"--repeat": "3", "--requests": "20"}


def _quick(args: list[str], part: str) -> list[str]:
    out = list(args)
    for flag, value in QUICK.items():
        if flag in out:
            out[out.index(flag) + 1] = value
    if part == "list" and "--requests" not in out:
        out += ["--requests", QUICK["--requests"]]
    if part == "approve" and "2000" in out:
        return []
    return out


def _ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1000:.0f}"


def markdown(results: dict[str, dict]) -> str:
    lines = []
    v = results.get("validate")
    if v:
        s = v["stats"]
        lines += [
            f"Revision {v['revision']}, {v['time']}, load {v['machine']['loadavg']} → "
            f"{v['machine']['loadavg_after']}.",
            "",
            f"**1. One-pipeline change, {v['n']:,} pipelines** ({v['rounds'].__len__()} rounds)",
            "",
            "| measure | p50 s | p95 s | max s |",
            "|---|---:|---:|---:|",
        ]
        names = {
            "load_project_s": "baseline: `load_project` in process (the validator alone)",
            "cli_validate_s": "baseline: `datahub validate` CLI wall",
            "validate_s": "Registry.validate",
            "create_change_s": "Registry.create_change",
        }
        for key, label in names.items():
            lines.append(f"| {label} | {s[key]['p50']} | {s[key]['p95']} | {s[key]['max']} |")
        lines += [
            "",
            f"p95 ratio vs load_project {v['ratio_p95_vs_load_project']}, vs the CLI "
            f"{v['ratio_p95_vs_cli']} (target ≤ {v['target_ratio']}); p95 ≤ {v['target_s']} s: "
            f"{'met' if v['met_seconds'] else 'NOT met'}; every change valid: {v['all_valid']}.",
            "",
        ]
    rows = [results[k] for k in ("list_one", "list_spread") if k in results]
    if rows:
        lines += [
            "**2. GET /api/v1/apps/{app}/pipelines, 5,000 pipelines, "
            f"{rows[0]['clients']} concurrent clients**",
            "",
            "| layout | call | requests | errors | req/s | p50 ms | p95 ms | p99 ms | bytes "
            "| server CPU ms/req |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in rows:
            for run in r["runs"]:
                lat = run["latency_s"]
                lines.append(
                    f"| {r['layout']} | {run['call']} | {run['answered']} | {run['error_count']} "
                    f"| {run['requests_per_s']} | {_ms(lat['p50'])} | {_ms(lat['p95'])} "
                    f"| {_ms(lat['p99'])} | {run['answer_bytes']} "
                    f"| {run.get('server_cpu_ms_per_request', '—')} |"
                )
        lines.append("")
        for r in rows:
            first = "; ".join(
                f"{v['s']} s ({v['pipelines']} rows)" for v in r["first_request"].values()
            )
            lines.append(
                f"- {r['layout']} ({', '.join(r['apps'])}): p95 {_ms(r['pipelines_p95_s'])} ms vs "
                f"health {_ms(r['health_p95_s'])} ms (× {r['ratio_p95_vs_health']}); target ≤ "
                f"{_ms(r['target_p95_s'])} ms {'met' if r['met'] else 'NOT met'}; first request "
                f"per app (the listing built at HEAD): {first}; load {r['machine']['loadavg']} → "
                f"{r['machine']['loadavg_after']}, revision {r['revision']}."
            )
        lines.append("")
    rows = [results[k] for k in ("approve_50", "approve_2000") if k in results]
    if rows:
        lines += [
            "**3. Approve → asset visible in Dagster's GraphQL**",
            "",
            "| pipelines | webserver start s | approve call s (each) | of which the reload s "
            "| approve → visible s (each) |",
            "|---:|---:|---|---|---|",
        ]
        for r in rows:
            calls = " / ".join(str(x["approve_call_s"]) for x in r["rounds"])
            seen = " / ".join(str(x["approve_to_visible_s"]) for x in r["rounds"])
            reload = " / ".join(str(x.get("reload_s", "—")) for x in r["rounds"])
            lines.append(
                f"| {r['n']:,} | {r['dagster_webserver_startup_s']} | {calls} | {reload} | {seen} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--only", default="validate,list,approve")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--report", action="store_true", help="only rebuild service.md from the JSON files"
    )
    args = parser.parse_args()
    results: dict[str, dict] = {}
    rc = 0
    for part in [] if args.report else args.only.split(","):
        for name, extra in PARTS[part]:
            extra = _quick(extra, part) if args.quick else extra
            if args.quick and not extra:
                continue
            out = RESULTS / f"service_{name}.json"
            out.unlink(missing_ok=True)
            print(f"== service {name}: {MODULES[part]} {' '.join(extra)}", flush=True)
            code = subprocess.call(
                [str(PYTHON), "-m", MODULES[part], *extra, "--out", str(out)], cwd=ROOT
            )
            rc = rc or code
            if out.exists():
                results[name] = json.loads(out.read_text())
    if args.report:
        for part in args.only.split(","):
            for name, _ in PARTS[part]:
                out = RESULTS / f"service_{name}.json"
                if out.exists():
                    results[name] = json.loads(out.read_text())
    text = markdown(results)
    (RESULTS / "service.md").write_text(text + "\n")
    print(text)
    sys.exit(rc)


if __name__ == "__main__":
    main()
