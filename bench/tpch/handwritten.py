"""The TPC-H reference app (bench/tpch/pipelines_xml/tpch) hand-written in PySpark.

Same Spark Connect server, same inputs, same logic, and -- to be fair to the platform, which
writes Parquet plus an Iceberg commit per table -- every layer is written as Parquet and the
next layer reads it back. No checks, no counting inside the timed region.

    DATAHUB_SPARK_STATE=.datahub/test-spark .venv/bin/python -m bench.tpch.handwritten --runs 3

Prints one JSON document (per-run, per-layer seconds and the median total) and writes it to
bench/_work/results/tpch_handwritten.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from bench.common import DEFAULT_SPARK_STATE, WORK, machine, median, now, write_json
from bench.tpch.gen import CASTS, DATA_DIR, TABLES, generate

OUT = WORK / "tpch" / "handwritten"
RESULT = WORK / "results" / "tpch_handwritten.json"

SILVER_COLUMNS = [
    "l_orderkey",
    "l_linenumber",
    "l_quantity",
    "l_extendedprice",
    "l_discount",
    "l_shipdate",
    "revenue",
    "o_orderkey",
    "o_orderdate",
    "o_orderstatus",
    "c_custkey",
    "c_name",
    "c_phone",
    "c_mktsegment",
    "n_nationkey",
    "n_name",
]


def _mask_salt() -> str:
    """The platform's default hash salt: DATAHUB_MASK_KEY, else a per-install key file."""
    from datahub_resources.secrets import default_mask_key

    return default_mask_key(WORK / "tpch" / "handwritten_home")


def _path(layer: str, table: str) -> str:
    return str(OUT / layer / table)


def _write(df: DataFrame, layer: str, table: str) -> None:
    df.write.mode("overwrite").parquet(_path(layer, table))


def _cast(df: DataFrame, types: dict[str, str]) -> DataFrame:
    return df.withColumns({c: F.col(c).cast(t) for c, t in types.items()})


CONFIG = {"dedupe": os.environ.get("BENCH_TPCH_DEDUPE", "window")}


def _dedupe_first(df: DataFrame, keys: list[str]) -> DataFrame:
    """keep=first: the first row per key in incoming (file) order, as the contract says.

    `window` (default) is what that takes in Spark -- the platform does the same. `drop`
    (dropDuplicates, any row per key) is cheaper but not the same semantics; it is there to
    show what the ordering guarantee costs.
    """
    if CONFIG["dedupe"] == "drop":
        return df.dropDuplicates(keys)
    window = Window.partitionBy(*keys).orderBy(F.col("_seq").asc())
    return (
        df.withColumn("_seq", F.monotonically_increasing_id())
        .withColumn("_rank", F.row_number().over(window))
        .where(F.col("_rank") == 1)
        .drop("_seq", "_rank")
    )


def _redact(col: str, keep_last: int) -> Column:
    """'***' + the last keep_last chars (values no longer than that: '***'); nulls stay null."""
    value = F.col(col)
    tail = F.when(F.length(value) > keep_last, F.substring(value, -keep_last, keep_last))
    return F.when(value.isNotNull(), F.concat(F.lit("***"), F.coalesce(tail, F.lit(""))))


def raw(spark: SparkSession) -> None:
    for table in TABLES:
        src = str(DATA_DIR / "tpch" / "landing" / table / "*.csv")
        df = spark.read.option("header", "true").option("delimiter", ",").csv(src)
        _write(df, "raw", table)


def bronze(spark: SparkSession) -> None:
    for table in TABLES:
        df = _cast(spark.read.parquet(_path("raw", table)), CASTS[table])
        if table == "orders":
            df = _dedupe_first(df, ["o_orderkey"])
        _write(df, "bronze", table)


def silver(spark: SparkSession) -> None:
    salt = _mask_salt()
    read = {t: spark.read.parquet(_path("bronze", t)) for t in TABLES}
    df = (
        read["lineitem"]
        .join(read["orders"], F.col("l_orderkey") == F.col("o_orderkey"), "inner")
        .join(read["customer"], F.col("o_custkey") == F.col("c_custkey"), "inner")
        .join(F.broadcast(read["nation"]), F.col("c_nationkey") == F.col("n_nationkey"), "inner")
        .withColumn("revenue", F.col("l_extendedprice") * (1 - F.col("l_discount")))
        .withColumn("c_name", F.sha2(F.concat(F.lit(salt), F.col("c_name")), 256))
        .withColumn("c_phone", _redact("c_phone", 4))
        .select(*SILVER_COLUMNS)
    )
    _write(df, "silver", "lineitem_enriched")


def gold(spark: SparkSession) -> None:
    df = (
        spark.read.parquet(_path("silver", "lineitem_enriched"))
        .withColumn("ym", F.date_format("o_orderdate", "yyyy-MM"))
        .groupBy("n_name", "ym")
        .agg(
            F.sum("revenue").alias("revenue"),
            F.count_distinct("o_orderkey").alias("orders"),
            F.avg("l_quantity").alias("avg_quantity"),
        )
    )
    _write(df, "gold", "revenue_by_nation_month")


def service(spark: SparkSession) -> None:
    df = spark.read.parquet(_path("gold", "revenue_by_nation_month"))
    df.coalesce(1).write.mode("overwrite").option("header", "true").csv(
        str(OUT / "service" / "revenue_by_nation_month")
    )


LAYERS: list[tuple[str, Callable[[SparkSession], None]]] = [
    ("raw", raw),
    ("bronze", bronze),
    ("silver", silver),
    ("gold", gold),
    ("service", service),
]


def _remote() -> str | None:
    from datahub_resources import spark_server
    from datahub_resources.settings import Settings

    settings = Settings.from_env()
    info = spark_server.status(settings.spark_state_dir)
    return settings.spark_remote or (info.remote if info else None)


def run_once(spark: SparkSession) -> dict:
    layers = {}
    start = time.perf_counter()
    for name, fn in LAYERS:
        t0 = time.perf_counter()
        fn(spark)
        layers[name] = round(time.perf_counter() - t0, 3)
    return {"total_s": round(time.perf_counter() - start, 3), "layers_s": layers}


def verify(spark: SparkSession) -> dict:
    """Row counts per output (outside the timed region)."""
    counts = {}
    for layer in ("raw", "bronze"):
        for t in TABLES:
            counts[f"{layer}.{t}"] = spark.read.parquet(_path(layer, t)).count()
    counts["silver.lineitem_enriched"] = spark.read.parquet(
        _path("silver", "lineitem_enriched")
    ).count()
    counts["gold.revenue_by_nation_month"] = spark.read.parquet(
        _path("gold", "revenue_by_nation_month")
    ).count()
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description="Hand-written PySpark TPC-H baseline")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-verify", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULT)
    parser.add_argument("--dedupe", choices=("window", "drop"), default=CONFIG["dedupe"])
    args = parser.parse_args()
    CONFIG["dedupe"] = args.dedupe

    os.environ.setdefault("DATAHUB_SPARK_STATE", str(DEFAULT_SPARK_STATE))
    data = generate()  # no-op when the CSVs are already there
    from datahub_resources.spark import connect

    t0 = time.perf_counter()
    spark = connect()
    connect_s = round(time.perf_counter() - t0, 3)
    before = machine()
    runs = []
    for i in range(args.runs):
        runs.append(run_once(spark))
        print(f"run {i + 1}/{args.runs}: {json.dumps(runs[-1])}", file=sys.stderr, flush=True)
    result = {
        "benchmark": "tpch_handwritten",
        "date": now(),
        "machine": before,
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "scale": data["scale"],
        "input_bytes": {t: v["bytes"] for t, v in data["tables"].items()},
        "spark_remote": _remote(),
        "dedupe": CONFIG["dedupe"],
        "connect_s": connect_s,
        "runs": runs,
        "median_total_s": median([r["total_s"] for r in runs]),
        "median_layers_s": {
            name: median([r["layers_s"][name] for r in runs]) for name, _ in LAYERS
        },
    }
    if not args.no_verify:
        result["rows"] = verify(spark)
    write_json(args.out, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
