"""Cost of 10 column checks on TPC-H lineitem relative to one count(*) of it.

Reads bench/_work/tpch/sf1/lineitem/*.csv into typed Parquet once
(bench/_work/checks/lineitem.parquet), then times `df.count()` and `evaluate_checks` with 10
column checks (median of 3 each). Writes bench/_work/results/checks.json. Target: ratio <= 2.0.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DATAHUB_SPARK_STATE", str(ROOT / ".datahub" / "test-spark"))

from pydantic import TypeAdapter  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

from bench.common import machine  # noqa: E402
from datahub_assets.execute.checks import aggregate, evaluate_checks  # noqa: E402
from datahub_assets.execute.context import ExecContext  # noqa: E402
from datahub_assets.spec.models import Check  # noqa: E402
from datahub_resources.settings import Settings  # noqa: E402
from datahub_resources.spark import connect  # noqa: E402

WORK = ROOT / "bench" / "_work"
CSV = WORK / "tpch" / "sf1" / "lineitem"
PARQUET = WORK / "checks" / "lineitem.parquet"
RESULT = WORK / "results" / "checks.json"
SCHEMA = (
    "l_orderkey bigint, l_partkey bigint, l_suppkey bigint, l_linenumber int, "
    "l_quantity decimal(15,2), l_extendedprice decimal(15,2), l_discount decimal(15,2), "
    "l_tax decimal(15,2), l_returnflag string, l_linestatus string, l_shipdate date, "
    "l_commitdate date, l_receiptdate date, l_shipinstruct string, l_shipmode string, "
    "l_comment string"
)
CHECKS = [
    {"kind": "notNull", "columns": "l_orderkey,l_partkey"},
    {"kind": "notNull", "columns": "l_shipdate"},
    {"kind": "unique", "columns": "l_orderkey,l_linenumber"},
    {"kind": "range", "column": "l_quantity", "min": 1, "max": 50},
    {"kind": "range", "column": "l_discount", "min": 0, "max": 0.1},
    {"kind": "acceptedValues", "column": "l_returnflag", "values": "A,N,R"},
    {"kind": "acceptedValues", "column": "l_linestatus", "values": "F,O"},
    {"kind": "regex", "column": "l_shipmode", "pattern": "^[A-Z ]+$"},
    {"kind": "expression", "expr": "l_receiptdate >= l_shipdate"},
    {"kind": "rowCount", "min": 1},
]


def median_time(fn, runs: int = 3) -> tuple[float, list[float]]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def main() -> int:
    spark = connect()
    if not PARQUET.exists():
        files = sorted(str(p) for p in CSV.glob("*.csv"))
        if not files:
            print(f"no lineitem CSVs under {CSV}: run bench/tpch/gen.py first", file=sys.stderr)
            return 2
        spark.read.csv(files, header=True, schema=SCHEMA).write.parquet(str(PARQUET))
    df = spark.read.parquet(str(PARQUET))
    checks = [TypeAdapter(Check).validate_python(c) for c in CHECKS]
    ctx = ExecContext(spark=spark, settings=Settings.from_env(), app="bench")
    jobs = []
    real = aggregate.run_aggregation
    aggregate.run_aggregation = lambda f: jobs.append(1) or real(f)
    before = machine()
    outcomes = evaluate_checks(spark, df, checks, ctx)  # warm-up, also verifies
    jobs_per_eval = len(jobs)
    count_s, count_runs = median_time(df.count)
    checks_s, checks_runs = median_time(lambda: evaluate_checks(spark, df, checks, ctx))
    # count(*) on Parquet reads only footers; a real full scan of the columns the checks read:
    cols = sorted(
        {c for k in CHECKS for c in (k.get("columns") or k.get("column") or "").split(",") if c}
        | {"l_receiptdate"}
    )
    scan_s, _ = median_time(lambda: df.agg(*[F.count(c) for c in cols]).first())
    no_unique = [c for c in checks if c.kind != "unique"]
    nu_s, _ = median_time(lambda: evaluate_checks(spark, df, no_unique, ctx))
    result = {
        "benchmark": "checks",
        "rows": outcomes[0].total_rows,
        "count_s": round(count_s, 3),
        "count_runs": [round(t, 3) for t in count_runs],
        "checks_s": round(checks_s, 3),
        "checks_runs": [round(t, 3) for t in checks_runs],
        "ratio": round(checks_s / count_s, 2),
        "target": 2.0,
        "scan_s": round(scan_s, 3),
        "ratio_vs_scan": round(checks_s / scan_s, 2),
        "checks_without_unique_s": round(nu_s, 3),
        "ratio_without_unique_vs_scan": round(nu_s / scan_s, 2),
        "aggregation_jobs_per_evaluation": jobs_per_eval,
        "outcomes": [
            {
                "name": o.name,
                "passed": o.passed,
                "failing_rows": o.failing_rows,
                "description": o.description,
            }
            for o in outcomes
        ],
        "machine_before": before,
        "machine_after": machine(),
    }
    result["meets_target"] = result["ratio"] <= 2.0
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
