"""Benchmark entry point (Makefile-friendly).

    .venv/bin/python bench/run.py tpch            # generate SF1 + hand-written baseline (3 runs)
    .venv/bin/python bench/run.py tpch-duckdb     # the same logic hand-written in DuckDB SQL
    .venv/bin/python bench/run.py tpch-platform   # the XML app through Dagster, ratio vs baseline
                                  [--engine spark|duckdb]   # DATAHUB_ENGINE of the run
    .venv/bin/python bench/run.py tpch-rounds     # issue #12: app on Spark, app on DuckDB and
                                  [--rounds 3]  # hand-written DuckDB interleaved, medians
    .venv/bin/python bench/run.py load            # definitions validate at 0/200/2000/5000
    .venv/bin/python bench/run.py overhead        # 20-asset chain, seconds per asset
                                  [--engine spark|duckdb]
    .venv/bin/python bench/run.py watch-tick      # file-drop sensor tick over 1k-100k files
    .venv/bin/python bench/run.py watch-burst     # 10,000 small files ingested in batches
                                  [--engine spark|duckdb]
    .venv/bin/python bench/run.py mongo           # 1M nested Mongo docs vs a pymongo drain
    .venv/bin/python bench/run.py jdbc            # 5M PostgreSQL rows: partitioned vs single
    .venv/bin/python bench/run.py runs            # run-records sensor tick, 10,000 runs
    .venv/bin/python bench/run.py chaos           # file drops under the daemon, a fault per round
    .venv/bin/python bench/run.py malformed       # CSV with 0.1 % malformed lines vs clean
    .venv/bin/python bench/run.py maintain        # 1,000 small appends, before/after compaction
    .venv/bin/python bench/run.py service         # the front door: change validation, listing
                                  [--only validate,list,approve]  # load, approve → UI
    .venv/bin/python bench/run.py all

Extra arguments after the name go to that benchmark (e.g. `load --sizes 200 2000`).
Each benchmark runs as `python -m bench.<...>` from the repository root, sharing the Spark
Connect server in DATAHUB_SPARK_STATE (default .datahub/test-spark).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"
MODULES = {
    "tpch": ["bench.tpch.handwritten"],
    "tpch-duckdb": ["bench.tpch.handwritten_duckdb"],
    "duckdb-memory": ["bench.duckdb_memory"],
    "tpch-platform": ["bench.tpch.run_platform"],
    "load": ["bench.load.run_load"],
    "overhead": ["bench.overhead.run_overhead"],
    "watch-tick": ["bench.watch tick"],
    "watch-burst": ["bench.watch burst"],
    "mongo": ["bench.mongo"],
    "jdbc": ["bench.jdbc"],
    "runs": ["bench.runs"],
    "chaos": ["bench.chaos"],
    "malformed": ["bench.malformed"],
    "maintain": ["bench.maintain"],
    "s3-cluster": ["bench.s3_cluster"],
    "service": ["bench.service.run_service"],
}
ALL = ("tpch", "load", "overhead", "tpch-platform")
RESULTS = ROOT / "bench" / "_work" / "results"
# tpch-rounds: (name, module and arguments of one run, the JSON key of its seconds)
ROUND_STEPS = (
    ("spark", ["bench.tpch.run_platform", "--engine", "spark", "--repeat", "1"], "median_run_s"),
    ("duckdb", ["bench.tpch.run_platform", "--engine", "duckdb", "--repeat", "1"], "median_run_s"),
    (
        "handwritten_duckdb",
        ["bench.tpch.handwritten_duckdb", "--runs", "1", "--no-silver-check"],
        "median_total_s",
    ),
)


def run(name: str, extra: list[str]) -> int:
    env = dict(os.environ)
    env.setdefault("DATAHUB_SPARK_STATE", str(ROOT / ".datahub" / "test-spark"))
    rc = 0
    for module in MODULES[name]:
        print(f"== {name}: {module} {' '.join(extra)}", flush=True)
        rc = rc or subprocess.call([str(PYTHON), "-m", *module.split(), *extra], cwd=ROOT, env=env)
    return rc


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def tpch_rounds(extra: list[str]) -> int:
    """Issue #12's TPC-H comparison on a shared, noisy machine: `--rounds` rounds of (the XML
    app on Spark, the XML app on DuckDB, the hand-written DuckDB SQL), one run each, so the
    three see the same load; medians over the rounds, the ratios of the medians.
    Each run's JSON: bench/_work/results/rounds_<name>_<i>.json; summary: tpch_rounds.json.
    Run `bench/run.py tpch --runs 1` once first (the hand-written PySpark output the checks
    compare with)."""
    parser = argparse.ArgumentParser(prog="bench/run.py tpch-rounds")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(extra)
    env = dict(os.environ)
    env.setdefault("DATAHUB_SPARK_STATE", str(ROOT / ".datahub" / "test-spark"))
    runs: dict[str, list[dict]] = {name: [] for name, _, _ in ROUND_STEPS}
    rc = 0
    for i in range(1, args.rounds + 1):
        for name, module, key in ROUND_STEPS:
            out = RESULTS / f"rounds_{name}_{i}.json"
            print(f"== round {i}: {name}", flush=True)
            code = subprocess.call(
                [str(PYTHON), "-m", *module, "--out", str(out)], cwd=ROOT, env=env
            )
            rc = rc or code
            data = json.loads(out.read_text()) if out.exists() else {}
            runs[name].append(
                {
                    "s": data.get(key),
                    "returncode": code,
                    "loadavg": data.get("machine", {}).get("loadavg"),
                    "revision": data.get("revision"),
                }
            )
    medians = {}
    for name, rows in runs.items():
        values = [r["s"] for r in rows if r["s"] and r["returncode"] == 0]
        medians[name] = round(statistics.median(values), 3) if values else None
    summary = {
        "benchmark": "tpch_rounds",
        "rounds": args.rounds,
        "runs": runs,
        "median_s": medians,
        "ratio_duckdb_over_handwritten_duckdb": _ratio(
            medians["duckdb"], medians["handwritten_duckdb"]
        ),
        "target_ratio": 1.30,
        "speedup_duckdb_over_spark": _ratio(medians["spark"], medians["duckdb"]),
        "target_speedup": 4.0,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "tpch_rounds.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return rc


def main() -> None:
    if len(sys.argv) >= 2 and sys.argv[1] == "tpch-rounds":
        sys.exit(tpch_rounds(sys.argv[2:]))
    if len(sys.argv) < 2 or sys.argv[1] not in (*MODULES, "all"):
        print(__doc__)
        sys.exit(64)
    name, extra = sys.argv[1], sys.argv[2:]
    if name == "all":
        codes = {n: run(n, []) for n in ALL}
        print("exit codes (2 = pending: platform not built yet):", codes)
        sys.exit(max(codes.values()))
    sys.exit(run(name, extra))


if __name__ == "__main__":
    main()
