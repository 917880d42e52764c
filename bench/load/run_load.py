"""Definitions-load benchmark: `dg check defs` over 0 / 200 / 2000 / 5000 pipelines.

    .venv/bin/python -m bench.load.run_load [--sizes 200 2000 5000] [--repeat 2]
        [--cli dg|dagster|builder] [--compare dagster]

For each N: generate the pipelines (bench.load.gen_pipelines, cached), then run
`.venv/bin/dg check defs` (`--cli dagster`: `.venv/bin/dagster definitions validate -m
datahub_assets.definitions`; both load the DataHubPipelines component; `--cli builder`: the
builder alone, bench/load/builder_only.py, without the component) with
DATAHUB_PIPELINES_DIR pointing at them, measuring wall time, CPU time and peak RSS (os.wait4
rusage, the numbers `/usr/bin/time -v` prints). `--compare X` also runs command X,
alternating the two within each repeat, and reports the ratio of their medians. N=0 (an empty
pipelines dir) measures the fixed cost (Python + Dagster import) so the per-pipeline slope can
be separated from it.

Growth: a least-squares line t = a + b*N, seconds per pipeline at each N, and
t(5000)/t(2000) against 2.5 (what linear growth with no fixed cost gives) plus the same ratio
after subtracting t(0). Results: bench/_work/results/load.json and load.md.
Exit code 2 when datahub_assets/definitions.py does not exist yet.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.common import (
    DAGSTER,
    DEFINITIONS_MODULE,
    VENV_BIN,
    WORK,
    definitions_present,
    machine,
    median,
    now,
    platform_env,
    revision,
    timed_run,
    write_json,
)
from bench.load.gen_pipelines import generate

RESULTS = WORK / "results"
TARGETS = {2000: 20.0, 5000: 45.0}
COMMANDS = {
    "dg": [str(VENV_BIN / "dg"), "check", "defs"],
    "dagster": [str(DAGSTER), "definitions", "validate", "-m", DEFINITIONS_MODULE],
    "builder": [str(DAGSTER), "definitions", "validate", "-f", "bench/load/builder_only.py"],
}


def _env(pipelines_dir: Path) -> dict[str, str]:
    return platform_env(pipelines_dir, WORK / "load" / "data", WORK / "load" / "home")


def measure(
    n: int, repeat: int, per_app: int, jobs: int = 0, cli: str = "dg", compare: str | None = None
) -> dict:
    if n == 0:
        pipelines_dir = WORK / "load" / "pipelines_0"
        pipelines_dir.mkdir(parents=True, exist_ok=True)
        manifest = {"n": 0, "pipelines": 0, "dir": str(pipelines_dir)}
    else:
        manifest = generate(n, per_app, jobs=jobs)
        pipelines_dir = Path(manifest["dir"])
    other = compare
    runs, other_runs = [], []
    for _ in range(repeat):  # alternating, so load on the shared machine hits both alike
        runs.append(timed_run(COMMANDS[cli], env=_env(pipelines_dir), timeout=900))
        if other:
            other_runs.append(timed_run(COMMANDS[other], env=_env(pipelines_dir), timeout=900))
    ok = [r for r in runs if r.returncode == 0]
    row = {
        "n": n,
        "manifest": manifest,
        "ok": len(ok) == len(runs),
        "wall_s": median([r.wall_s for r in runs]),
        "wall_runs_s": [r.wall_s for r in runs],
        "cpu_s": median([r.user_s + r.sys_s for r in runs]),
        "max_rss_mb": max(r.max_rss_mb for r in runs),
        "cli": cli,
    }
    if other_runs:
        row[f"{other}_wall_s"] = median([r.wall_s for r in other_runs])
        row[f"{other}_cpu_s"] = median([r.user_s + r.sys_s for r in other_runs])
        row[f"{other}_ok"] = all(r.returncode == 0 for r in other_runs)
        row["ratio_wall"] = round(row["wall_s"] / row[f"{other}_wall_s"], 3)
        row["ratio_cpu"] = round(row["cpu_s"] / row[f"{other}_cpu_s"], 3)
    if not row["ok"]:
        bad = next(r for r in runs if r.returncode != 0)
        row["error"] = {
            "returncode": bad.returncode,
            "stderr_tail": bad.stderr_tail,
            "stdout_tail": bad.stdout_tail,
        }
    return row


def fit(rows: list[dict]) -> dict:
    pts = [(r["n"], r["wall_s"]) for r in rows if r["ok"]]
    out: dict = {}
    if len(pts) >= 2:
        xs, ys = zip(*pts, strict=True)
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        sxx = sum((x - mx) ** 2 for x in xs)
        b = sum((x - mx) * (y - my) for x, y in pts) / sxx if sxx else 0.0
        a = my - b * mx
        ss_res = sum((y - (a + b * x)) ** 2 for x, y in pts)
        ss_tot = sum((y - my) ** 2 for y in ys)
        out["linear_fit"] = {
            "fixed_s": round(a, 3),
            "ms_per_pipeline": round(b * 1000, 3),
            "r2": round(1 - ss_res / ss_tot, 4) if ss_tot else None,
        }
    by_n = dict(pts)
    if 2000 in by_n and 5000 in by_n:
        out["ratio_5000_2000"] = round(by_n[5000] / by_n[2000], 3)
        if 0 in by_n:
            base = by_n[0]
            marg = (by_n[5000] - base) / (by_n[2000] - base) if by_n[2000] > base else None
            out["marginal_ratio_5000_2000"] = round(marg, 3) if marg else None
        out["linear_ratio"] = 2.5
    return out


def markdown(result: dict) -> str:
    lines = [
        f"Definitions load (`{' '.join(COMMANDS[result['cli']][1:])}`), {result['date']}, "
        f"revision {result['revision']}, "
        f"nproc={result['machine']['nproc']}, mem={result['machine']['mem_gb']} GB",
        "",
        "| N pipelines | assets | checks | watch decl. | cron decl. | wall s (median) | "
        "ms / pipeline | marginal ms / pipeline | peak RSS MB | target | ok |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    base = next((r["wall_s"] for r in result["rows"] if r["n"] == 0 and r["ok"]), None)
    for r in result["rows"]:
        m = r["manifest"]
        per = f"{r['wall_s'] / r['n'] * 1000:.1f}" if r["n"] else "-"
        marg = f"{(r['wall_s'] - base) / r['n'] * 1000:.1f}" if r["n"] and base else "-"
        target = f"< {TARGETS[r['n']]:.0f} s" if r["n"] in TARGETS else ""
        lines.append(
            f"| {r['n']} | {m.get('assets', 0)} | {m.get('checks', 0)} | "
            f"{m.get('watch_sensors', 0)} | {m.get('schedules', 0)} | {r['wall_s']:.2f} | {per} | "
            f"{marg} | {r['max_rss_mb']:.0f} | {target} | {'yes' if r['ok'] else 'FAILED'} |"
        )
    f = result["growth"]
    if "linear_fit" in f:
        lf = f["linear_fit"]
        lines += [
            "",
            f"Least squares: t = {lf['fixed_s']} s + {lf['ms_per_pipeline']} ms x N "
            f"(R^2 {lf['r2']}).",
        ]
    compared = [r for r in result["rows"] if "ratio_wall" in r]
    if compared:
        other = result["compare"]
        lines += [
            "",
            f"Against `{' '.join(COMMANDS[other][1:])}` in the same run (alternating, medians):",
            "",
            "| N | wall s | other wall s | wall ratio | CPU s | other CPU s | CPU ratio |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {r['n']} | {r['wall_s']:.2f} | {r[f'{other}_wall_s']:.2f} | "
            f"{r['ratio_wall']:.3f} | {r['cpu_s']:.2f} | {r[f'{other}_cpu_s']:.2f} | "
            f"{r['ratio_cpu']:.3f} |"
            for r in compared
        ]
    if "ratio_5000_2000" in f:
        lines.append(
            f"t(5000)/t(2000) = {f['ratio_5000_2000']} (linear with no fixed cost: 2.5); "
            f"after subtracting t(0): {f.get('marginal_ratio_5000_2000')}."
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description="definitions load benchmark")
    parser.add_argument("--sizes", type=int, nargs="+", default=[0, 200, 2000, 5000])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--per-app", type=int, default=50)
    parser.add_argument(
        "--jobs",
        type=int,
        default=0,
        help="also generate this many scheduled job pipelines (e.g. 200)",
    )
    parser.add_argument(
        "--cli",
        choices=sorted(COMMANDS),
        default="dg",
        help="dg: `dg check defs` (default); dagster: `dagster definitions "
        "validate -m datahub_assets.definitions`",
    )
    parser.add_argument(
        "--compare",
        choices=sorted(COMMANDS),
        default=None,
        help="also run this command, alternating, and report the ratio",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "load.json")
    args = parser.parse_args()
    if not definitions_present():
        print(
            "datahub_assets/definitions.py does not exist yet: load benchmark pending",
            file=sys.stderr,
        )
        sys.exit(2)
    rows = []
    for n in args.sizes:
        row = measure(n, args.repeat, args.per_app, args.jobs, args.cli, args.compare)
        print(json.dumps({k: v for k, v in row.items() if k != "manifest"}), flush=True)
        rows.append(row)
    result = {
        "benchmark": "load",
        "date": now(),
        "revision": revision(),
        "machine": machine(),
        "cli": args.cli,
        "compare": args.compare,
        "rows": rows,
        "growth": fit(rows),
        "targets_s": TARGETS,
    }
    write_json(args.out, result)
    md = markdown(result)
    args.out.with_suffix(".md").write_text(md)
    print(md)
    sys.exit(0 if all(r["ok"] for r in rows) else 1)


if __name__ == "__main__":
    main()
