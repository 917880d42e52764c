"""TPC-H through the platform: materialise the reference XML app and compare with hand-written.

    .venv/bin/python -m bench.tpch.run_platform [--repeat 3] [--warmup 0] [--engine spark|duckdb]

Runs `.venv/bin/dagster asset materialize -m datahub_assets.definitions --select '*'` with
DATAHUB_PIPELINES_DIR=bench/tpch/pipelines_xml, DATAHUB_DATA_DIR=bench/_work/tpch/data,
DATAHUB_HOME=bench/_work/tpch/home (DAGSTER_HOME under it) on the shared Spark server, and
takes the median of the run durations from the event log (RUN_START -> RUN_SUCCESS; CLI wall
time is reported too). The ratio is against the hand-written median in
bench/_work/results/tpch_handwritten.json (target <= 1.10). The gold export is compared with
the hand-written one (same nations/months, revenue within 1e-6 relative).
Exit code 2 when datahub_assets/definitions.py does not exist yet.

`--engine` sets DATAHUB_ENGINE for the Dagster subprocess (the app's app.yaml names no engine)
and writes tpch_platform_<engine>.json; every materialisation's recorded engine
(`datahub/engine`) is counted from the event log. On duckdb the ratio is against the
hand-written DuckDB SQL median (tpch_handwritten_duckdb.json, target <= 1.30) and the speed-up
against the same app on Spark (tpch_platform_spark.json, target >= 4).
"""

from __future__ import annotations

import argparse
import json
import shutil
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
from bench.tpch.handwritten_duckdb import RESULT as HANDWRITTEN_DUCKDB_RESULT

PIPELINES = BENCH / "tpch" / "pipelines_xml"
HOME = WORK / "tpch" / "home"
RESULT = WORK / "results" / "tpch_platform.json"
EXPORT = DATA_DIR / "tpch" / "service" / "revenue_by_nation_month"
TARGET_RATIO = 1.10
TARGET_RATIO_DUCKDB = 1.30
TARGET_SPEEDUP_VS_SPARK = 4.0


def _env(engine: str | None = None) -> dict[str, str]:
    """With an engine: DATAHUB_ENGINE and a DATAHUB_HOME of that engine's own
    (bench/_work/tpch/home_<engine>), so each engine's tables are created by that engine (the
    engines' column types can differ, e.g. decimal products, which the schema-drift check of a
    table made by the other engine refuses)."""
    home = HOME.with_name(f"home_{engine}") if engine else HOME
    env = platform_env(PIPELINES, DATA_DIR, home)
    if engine:
        env["DATAHUB_ENGINE"] = engine
    return env


def _median_of(path: Path, key: str) -> float | None:
    if not path.exists():
        return None
    return json.loads(path.read_text()).get(key)


def ratios(result: dict, engine: str | None) -> None:
    """Ratio against the hand-written baseline of the engine (and, on DuckDB, against Spark)."""
    if not result["median_run_s"]:
        return
    if engine == "duckdb":
        base = _median_of(HANDWRITTEN_DUCKDB_RESULT, "median_total_s")
        result["baseline"] = "hand-written DuckDB SQL (tpch_handwritten_duckdb.json)"
        result["target_ratio"] = TARGET_RATIO_DUCKDB
        spark = _median_of(RESULT.with_name("tpch_platform_spark.json"), "median_run_s")
        if spark:
            result["spark_platform_median_run_s"] = spark
            result["speedup_vs_spark_run"] = round(spark / result["median_run_s"], 2)
            result["target_speedup_vs_spark"] = TARGET_SPEEDUP_VS_SPARK
    else:
        base = _median_of(HANDWRITTEN_RESULT, "median_total_s")
        result["baseline"] = "hand-written PySpark (tpch_handwritten.json)"
    if base:
        result["handwritten_median_s"] = base
        result["ratio_run"] = round(result["median_run_s"] / base, 3)
        result["ratio_wall"] = round(result["median_wall_s"] / base, 3)


def _read_csv_dir(path: Path):
    import pandas as pd

    files = sorted(p for p in path.rglob("*.csv*") if not p.name.startswith("."))
    if not files:
        return None
    df = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    return df.sort_values(["n_name", "ym"]).reset_index(drop=True)


def compare_gold() -> dict:
    mine = _read_csv_dir(EXPORT)
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
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--engine", choices=("spark", "duckdb"), default=None, help="DATAHUB_ENGINE of the run"
    )
    args = parser.parse_args()
    if args.out is None:
        args.out = RESULT.with_name(f"tpch_platform_{args.engine}.json") if args.engine else RESULT
    if not definitions_present():
        print(
            "datahub_assets/definitions.py does not exist yet: TPC-H platform run pending",
            file=sys.stderr,
        )
        sys.exit(2)
    generate()
    shutil.rmtree(EXPORT, ignore_errors=True)  # the check must see this run's export
    env = _env(args.engine)
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
        summary = {k: v for k, v in row.items() if k != "events"}
        summary["run_s"] = row["events"].get("run_s")
        summary["engines"] = row["events"].get("engines")
        print(json.dumps(summary), flush=True)
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
        "engine": args.engine or "(deployment default)",
        "engines_recorded": [r["events"].get("engines") for r in runs],
        "target_ratio": TARGET_RATIO,
    }
    ratios(result, args.engine)
    result["gold_matches_handwritten"] = compare_gold()
    write_json(args.out, result)
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))
    sys.exit(0 if ok_runs and len(ok_runs) == len(runs) else 1)


if __name__ == "__main__":
    main()
