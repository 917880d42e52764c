"""TPC-H through the platform: materialise the reference XML app and compare with hand-written.

    .venv/bin/python -m bench.tpch.run_platform [--repeat 3] [--warmup 0]

Runs `.venv/bin/dagster asset materialize -m datahub_assets.definitions --select '*'` with
DATAHUB_PIPELINES_DIR=bench/tpch/pipelines_xml, DATAHUB_DATA_DIR=bench/_work/tpch/data,
DATAHUB_HOME=bench/_work/tpch/home (DAGSTER_HOME under it) on the shared Spark server, and
takes the median of the run durations from the event log (RUN_START -> RUN_SUCCESS; CLI wall
time is reported too). The ratio is against the hand-written median in
bench/_work/results/tpch_handwritten.json (target <= 1.10). The gold export is compared with
the hand-written one (same nations/months, revenue within 1e-6 relative).
Exit code 2 when datahub_assets/definitions.py does not exist yet.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.common import (
    BENCH,
    DAGSTER,
    DEFINITIONS_MODULE,
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
from bench.dagster_events import read_run
from bench.tpch.gen import DATA_DIR, generate
from bench.tpch.handwritten import OUT as HANDWRITTEN_OUT
from bench.tpch.handwritten import RESULT as HANDWRITTEN_RESULT

PIPELINES = BENCH / "tpch" / "pipelines_xml"
HOME = WORK / "tpch" / "home"
RESULT = WORK / "results" / "tpch_platform.json"
TARGET_RATIO = 1.10


def _env() -> dict[str, str]:
    return platform_env(PIPELINES, DATA_DIR, HOME)


def _read_csv_dir(path: Path):
    import pandas as pd

    files = sorted(p for p in path.rglob("*.csv*") if not p.name.startswith("."))
    if not files:
        return None
    df = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    return df.sort_values(["n_name", "ym"]).reset_index(drop=True)


def compare_gold() -> dict:
    mine = _read_csv_dir(DATA_DIR / "tpch" / "service" / "revenue_by_nation_month")
    ref = _read_csv_dir(HANDWRITTEN_OUT / "service" / "revenue_by_nation_month")
    if mine is None or ref is None:
        return {"ok": False, "why": "export missing (platform or hand-written)"}
    if len(mine) != len(ref) or list(mine[["n_name", "ym"]].itertuples(index=False)) != list(
        ref[["n_name", "ym"]].itertuples(index=False)
    ):
        return {"ok": False, "why": f"groups differ: {len(mine)} vs {len(ref)} rows"}
    worst = 0.0
    for col in ("revenue", "orders", "avg_quantity"):
        if col not in mine:
            return {"ok": False, "why": f"column {col} missing from platform export"}
        rel = (mine[col].astype(float) - ref[col].astype(float)).abs() / ref[col].astype(
            float
        ).abs().clip(lower=1e-12)
        worst = max(worst, float(rel.max()))
    return {"ok": worst <= 1e-6, "rows": len(mine), "max_rel_diff": worst}


def main() -> None:
    parser = argparse.ArgumentParser(description="TPC-H through the platform")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()
    if not definitions_present():
        print(
            "datahub_assets/definitions.py does not exist yet: TPC-H platform run pending",
            file=sys.stderr,
        )
        sys.exit(2)
    generate()
    env = _env()
    cmd = [str(DAGSTER), "asset", "materialize", "-m", DEFINITIONS_MODULE, "--select", "*"]
    for _ in range(args.warmup):
        timed_run(cmd, env=env, timeout=3600)
    runs = []
    for _ in range(args.repeat):
        t = timed_run(cmd, env=env, timeout=3600)
        row = {
            "wall_s": t.wall_s,
            "returncode": t.returncode,
            "max_rss_mb": t.max_rss_mb,
            "events": read_run(Path(env["DAGSTER_HOME"])),
        }
        if t.returncode != 0:
            row["stderr_tail"] = t.stderr_tail
            row["stdout_tail"] = t.stdout_tail
        print(json.dumps({k: v for k, v in row.items() if k != "events"}), flush=True)
        runs.append(row)
    ok_runs = [r for r in runs if r["returncode"] == 0]
    run_s = [r["events"]["run_s"] for r in ok_runs if r["events"].get("run_s")]
    result = {
        "benchmark": "tpch_platform",
        "date": now(),
        "revision": revision(),
        "machine": machine(),
        "runs": runs,
        "median_run_s": median(run_s) if run_s else None,
        "median_wall_s": median([r["wall_s"] for r in ok_runs]) if ok_runs else None,
        "target_ratio": TARGET_RATIO,
    }
    if HANDWRITTEN_RESULT.exists() and result["median_run_s"]:
        base = json.loads(HANDWRITTEN_RESULT.read_text())["median_total_s"]
        result["handwritten_median_s"] = base
        result["ratio_run"] = round(result["median_run_s"] / base, 3)
        result["ratio_wall"] = round(result["median_wall_s"] / base, 3)
    result["gold_matches_handwritten"] = compare_gold()
    write_json(args.out, result)
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))
    sys.exit(0 if ok_runs and len(ok_runs) == len(runs) else 1)


if __name__ == "__main__":
    main()
