"""The TPC-H reference app (bench/tpch/pipelines_xml/tpch) hand-written in DuckDB SQL.

The same logic as bench/tpch/handwritten.py (the PySpark baseline), in one process through
the DuckDB Python API: CSV -> Parquet per layer (raw, bronze, silver, gold) and a CSV export
(service), each layer reading the previous layer's Parquet back (the platform writes Parquet
plus an Iceberg commit per table, so this is the fair floor). Same casts; dedupe keep=first =
the first row per key in file order (the raw Parquet keeps the CSV files' row order, bronze
ranks on `file_row_number`); the 4-way inner join; revenue = l_extendedprice * (1 -
l_discount); c_name = sha256(salt || c_name) with the platform's default mask key (the
same key file as the PySpark baseline, so the hashes compare); c_phone = '***' || last 4
chars (null-safe); aggregate by n_name, ym. No checks, no counting inside the timed region.

The connection is configured like the platform's DuckDB engine (datahub_assets/engines/
duckdb.py): memory_limit (default 2GB, DATAHUB_DUCKDB_MEMORY_LIMIT's default), spill folder,
preserve_insertion_order; threads = all cores unless --threads.

    .venv/bin/python -m bench.tpch.handwritten_duckdb --runs 3

Prints one JSON document (per-run, per-layer seconds, the median total, row counts and the
comparison with the PySpark hand-written output) and writes it to
bench/_work/results/tpch_handwritten_duckdb.json. The comparison needs the PySpark output
(`bench/run.py tpch --runs 1` once); without it the result says so.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import duckdb

from bench.common import WORK, machine, median, now, write_json
from bench.tpch.gen import CASTS, DATA_DIR, TABLES, generate

OUT = WORK / "tpch" / "handwritten_duckdb"
RESULT = WORK / "results" / "tpch_handwritten_duckdb.json"
SPARK_OUT = WORK / "tpch" / "handwritten"  # bench.tpch.handwritten.OUT (no pyspark import)
SALT_HOME = WORK / "tpch" / "handwritten_home"  # the PySpark baseline's key file

DEDUPE_KEYS = {"orders": ["o_orderkey"]}


def _mask_salt() -> str:
    """The platform's default hash salt: DATAHUB_MASK_KEY, else a per-install key file."""
    from datahub_resources.secrets import default_mask_key

    return default_mask_key(SALT_HOME)


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _path(layer: str, table: str) -> Path:
    return OUT / layer / f"{table}.parquet"


def _read(layer: str, table: str, extra: str = "") -> str:
    return f"read_parquet({_lit(str(_path(layer, table)))}{extra})"


def _copy(con: duckdb.DuckDBPyConnection, query: str, layer: str, table: str) -> None:
    dest = _path(layer, table)
    dest.parent.mkdir(parents=True, exist_ok=True)
    con.execute(f"COPY ({query}) TO {_lit(str(dest))} (FORMAT parquet)")


def raw(con: duckdb.DuckDBPyConnection) -> None:
    """CSV as landed, every column a string (as the platform's raw CSV sources)."""
    for table in TABLES:
        src = str(DATA_DIR / "tpch" / "landing" / table / "*.csv")
        query = (
            f"SELECT * FROM read_csv({_lit(src)}, header = true, delim = ',', quote = '\"', "
            "all_varchar = true)"
        )
        _copy(con, query, "raw", table)


def bronze_query(table: str) -> str:
    casts = ", ".join(f"CAST({c} AS {t}) AS {c}" for c, t in CASTS[table].items())
    keys = DEDUPE_KEYS.get(table)
    if not keys:
        return f"SELECT * REPLACE ({casts}) FROM {_read('raw', table)}"
    typed = f"SELECT * REPLACE ({casts}) FROM {_read('raw', table, ', file_row_number = true')}"
    return (
        f"SELECT * EXCLUDE (file_row_number) FROM ({typed}) "
        f"QUALIFY row_number() OVER (PARTITION BY {', '.join(keys)} "
        "ORDER BY file_row_number) = 1"
    )


def bronze(con: duckdb.DuckDBPyConnection) -> None:
    for table in TABLES:
        _copy(con, bronze_query(table), "bronze", table)


def silver_query(salt: str) -> str:
    redact = (
        "CASE WHEN c_phone IS NOT NULL THEN '***' || "
        "coalesce(CASE WHEN length(c_phone) > 4 THEN right(c_phone, 4) END, '') END"
    )
    return f"""
        SELECT l_orderkey, l_linenumber, l_quantity, l_extendedprice, l_discount, l_shipdate,
               l_extendedprice * (1 - l_discount) AS revenue,
               o_orderkey, o_orderdate, o_orderstatus, c_custkey,
               sha256({_lit(salt)} || c_name) AS c_name,
               {redact} AS c_phone,
               c_mktsegment, n_nationkey, n_name
        FROM {_read("bronze", "lineitem")}
        JOIN {_read("bronze", "orders")} ON l_orderkey = o_orderkey
        JOIN {_read("bronze", "customer")} ON o_custkey = c_custkey
        JOIN {_read("bronze", "nation")} ON c_nationkey = n_nationkey
    """


def silver(con: duckdb.DuckDBPyConnection) -> None:
    _copy(con, silver_query(_mask_salt()), "silver", "lineitem_enriched")


GOLD_QUERY = """
    SELECT n_name, ym, sum(revenue) AS revenue, count(DISTINCT o_orderkey) AS orders,
           avg(l_quantity) AS avg_quantity
    FROM (SELECT *, strftime(o_orderdate, '%Y-%m') AS ym FROM {src})
    GROUP BY n_name, ym
"""


def gold(con: duckdb.DuckDBPyConnection) -> None:
    query = GOLD_QUERY.format(src=_read("silver", "lineitem_enriched"))
    _copy(con, query, "gold", "revenue_by_nation_month")


def service(con: duckdb.DuckDBPyConnection) -> None:
    dest = OUT / "service" / "revenue_by_nation_month"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    src = _read("gold", "revenue_by_nation_month")
    target = _lit(str(dest / "revenue_by_nation_month.csv"))
    con.execute(f"COPY (SELECT * FROM {src}) TO {target} (FORMAT csv, HEADER true)")


LAYERS: list[tuple[str, Callable[[duckdb.DuckDBPyConnection], None]]] = [
    ("raw", raw),
    ("bronze", bronze),
    ("silver", silver),
    ("gold", gold),
    ("service", service),
]


def connect(memory_limit: str, threads: int | None) -> duckdb.DuckDBPyConnection:
    spill = WORK / "tpch" / "handwritten_duckdb_tmp"
    spill.mkdir(parents=True, exist_ok=True)
    config: dict[str, str | bool | int | float | list[str]] = {
        "memory_limit": memory_limit,
        "temp_directory": str(spill),
        "preserve_insertion_order": True,
    }
    if threads:
        config["threads"] = threads
    return duckdb.connect(":memory:", config=config)


def run_once(con: duckdb.DuckDBPyConnection) -> dict:
    layers = {}
    start = time.perf_counter()
    for name, fn in LAYERS:
        t0 = time.perf_counter()
        fn(con)
        layers[name] = round(time.perf_counter() - t0, 3)
    return {"total_s": round(time.perf_counter() - start, 3), "layers_s": layers}


def _count(con: duckdb.DuckDBPyConnection, source: str) -> int:
    row = con.execute(f"SELECT count(*) FROM {source}").fetchone()
    return int(row[0]) if row else 0


def verify(con: duckdb.DuckDBPyConnection) -> dict:
    """Row counts per output (outside the timed region)."""
    counts = {}
    for layer in ("raw", "bronze"):
        for t in TABLES:
            counts[f"{layer}.{t}"] = _count(con, _read(layer, t))
    counts["silver.lineitem_enriched"] = _count(con, _read("silver", "lineitem_enriched"))
    counts["gold.revenue_by_nation_month"] = _count(con, _read("gold", "revenue_by_nation_month"))
    return counts


def _spark_parquet(layer: str, table: str) -> str | None:
    folder = SPARK_OUT / layer / table
    if not any(folder.glob("*.parquet")):
        return None
    return f"read_parquet({_lit(str(folder / '*.parquet'))})"


def compare_gold(con: duckdb.DuckDBPyConnection) -> dict:
    """This gold table against the PySpark hand-written one: same (n_name, ym) groups, same
    orders and revenue (decimals, exact), avg_quantity within 1e-6 relative (Spark's avg of a
    decimal(15,2) is a decimal(19,6), DuckDB's a double)."""
    ref = _spark_parquet("gold", "revenue_by_nation_month")
    if ref is None:
        return {"ok": False, "why": f"PySpark output missing under {SPARK_OUT}"}
    mine = _read("gold", "revenue_by_nation_month")
    row = con.execute(f"""
        SELECT count(*) AS rows,
               count(*) FILTER (WHERE a.n_name IS NULL OR b.n_name IS NULL) AS unmatched,
               count(*) FILTER (WHERE a.orders IS DISTINCT FROM b.orders) AS orders_differ,
               count(*) FILTER (WHERE a.revenue IS DISTINCT FROM b.revenue) AS revenue_differ,
               max(abs(a.avg_quantity::DOUBLE - b.avg_quantity::DOUBLE)
                   / abs(b.avg_quantity::DOUBLE)) AS avg_max_rel_diff,
               max(abs(a.revenue::DOUBLE - b.revenue::DOUBLE)
                   / abs(b.revenue::DOUBLE)) AS revenue_max_rel_diff
        FROM {mine} a FULL JOIN {ref} b ON a.n_name = b.n_name AND a.ym = b.ym
    """).fetchone()
    assert row is not None
    rows, unmatched, orders_differ, revenue_differ, avg_rel, rev_rel = row
    ok = rows > 0 and unmatched == 0 and orders_differ == 0 and revenue_differ == 0
    ok = ok and (avg_rel or 0.0) <= 1e-6
    return {
        "ok": bool(ok),
        "rows": rows,
        "unmatched_groups": unmatched,
        "orders_differ": orders_differ,
        "revenue_differ": revenue_differ,
        "revenue_max_rel_diff": rev_rel,
        "avg_quantity_max_rel_diff": avg_rel,
    }


def compare_silver(con: duckdb.DuckDBPyConnection) -> dict:
    """Masked columns and revenue of silver against the PySpark output, row by row on
    (l_orderkey, l_linenumber): the same salted hashes and redactions."""
    ref = _spark_parquet("silver", "lineitem_enriched")
    if ref is None:
        return {"ok": False, "why": f"PySpark output missing under {SPARK_OUT}"}
    mine = _read("silver", "lineitem_enriched")
    row = con.execute(f"""
        SELECT count(*) AS rows,
               count(*) FILTER (WHERE a.l_orderkey IS NULL OR b.l_orderkey IS NULL),
               count(*) FILTER (WHERE a.c_name IS DISTINCT FROM b.c_name),
               count(*) FILTER (WHERE a.c_phone IS DISTINCT FROM b.c_phone),
               count(*) FILTER (WHERE a.revenue IS DISTINCT FROM b.revenue)
        FROM {mine} a FULL JOIN {ref} b
          ON a.l_orderkey = b.l_orderkey AND a.l_linenumber = b.l_linenumber
    """).fetchone()
    assert row is not None
    rows, unmatched, c_name, c_phone, revenue = row
    return {
        "ok": rows > 0 and unmatched == c_name == c_phone == revenue == 0,
        "rows": rows,
        "unmatched_rows": unmatched,
        "c_name_differ": c_name,
        "c_phone_differ": c_phone,
        "revenue_differ": revenue,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Hand-written DuckDB SQL TPC-H baseline")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-verify", action="store_true")
    parser.add_argument("--no-silver-check", action="store_true")
    parser.add_argument("--memory-limit", default="2GB")
    parser.add_argument("--threads", type=int, default=0, help="0 = all cores")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args()

    data = generate()  # no-op when the CSVs are already there
    con = connect(args.memory_limit, args.threads or None)
    before = machine()
    runs = []
    for i in range(args.runs):
        runs.append(run_once(con))
        print(f"run {i + 1}/{args.runs}: {json.dumps(runs[-1])}", file=sys.stderr, flush=True)
    settings = dict(
        con.execute(
            "SELECT name, value FROM duckdb_settings() "
            "WHERE name IN ('memory_limit', 'threads', 'preserve_insertion_order')"
        ).fetchall()
    )
    result = {
        "benchmark": "tpch_handwritten_duckdb",
        "date": now(),
        "machine": before,
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "scale": data["scale"],
        "input_bytes": {t: v["bytes"] for t, v in data["tables"].items()},
        "duckdb": duckdb.__version__,
        "duckdb_settings": settings,
        "runs": runs,
        "median_total_s": median([r["total_s"] for r in runs]),
        "median_layers_s": {
            name: median([r["layers_s"][name] for r in runs]) for name, _ in LAYERS
        },
    }
    if not args.no_verify:
        result["rows"] = verify(con)
        result["gold_matches_pyspark_handwritten"] = compare_gold(con)
        if not args.no_silver_check:
            result["silver_matches_pyspark_handwritten"] = compare_silver(con)
    write_json(args.out, result)
    print(json.dumps(result, indent=2))
    gold_ok = result.get("gold_matches_pyspark_handwritten", {"ok": True})["ok"]
    sys.exit(0 if gold_ok else 1)


if __name__ == "__main__":
    main()
