"""A 6M-row join on the DuckDB engine within a 2 GB memory limit (issue #12, "memory-safe").

    .venv/bin/python -m bench.duckdb_memory [--memory-limit 2GB] [--max-rss-gb 2.5]
                                            [--threads N] [--keep]

Runs a two-pipeline XML app through the platform (`runner.run_pipeline` on the DuckDB engine,
`engines.duckdb.duckdb_engine`, no Spark), on TPC-H SF1 (bench/tpch/gen.py; generated when
missing):

1. `raw/load.xml`: lineitem (6,001,215 rows) and orders (1,500,000) CSVs -> Iceberg tables;
2. `silver/joined.xml`: the two tables joined on the order key (6M rows, every lineitem and
   order column), written as a table, and aggregated per customer and order status (count,
   sums, averages, distinct orders) into a second table.

The deployment's memory limit is `Settings.duckdb_memory_limit` (DATAHUB_DUCKDB_MEMORY_LIMIT,
`--memory-limit`); DuckDB spills to $DATAHUB_HOME/duckdb_tmp. Measured per phase: wall time,
the process's peak RSS (VmRSS sampled every 50 ms from /proc/self/status; the whole-process
`ru_maxrss` at the end) and the peak bytes in the spill folder (sampled; DuckDB removes its
temporary files when a query ends). The run passes when both pipelines complete, the joined
table has one row per lineitem, the aggregate's line counts add up to it, and the peak RSS
stays under `--max-rss-gb`. Prints one JSON line and writes
bench/_work/results/duckdb_memory.json (duckdb_memory_<limit>.json for another
`--memory-limit`, e.g. 512MB to see the join spill); exit code 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import threading
import time
from pathlib import Path

from bench.common import WORK, machine, now, revision, write_json
from bench.tpch import gen

APP = "tpch"  # the landing files of bench/tpch/gen.py live under <data>/tpch/landing
LINEITEM_ROWS = 6_001_215  # TPC-H SF1
RESULTS = WORK / "results"
DEFAULT_LIMIT = "2GB"

LOAD = """<pipeline id="mem_load" version="1.0.0" layer="raw">
  <sources>
    <csv id="lineitem" path="landing/lineitem/*.csv" inferSchema="true"/>
    <csv id="orders" path="landing/orders/*.csv" inferSchema="true"/>
  </sources>
  <targets>
    <table table="mem_lineitem" source="lineitem" mode="overwrite"/>
    <table table="mem_orders" source="orders" mode="overwrite"/>
  </targets>
</pipeline>
"""
JOINED = """<pipeline id="mem_joined" version="1.0.0" layer="silver">
  <sources>
    <table id="lineitem" ref="raw.mem_lineitem"/>
    <table id="orders" ref="raw.mem_orders"/>
  </sources>
  <transformations>
    <join left="lineitem" right="orders" condition="lineitem.l_orderkey = orders.o_orderkey"
          type="inner" output="lo"/>
    <derive source="lo" column="revenue" expr="l_extendedprice * (1 - l_discount)"/>
    <aggregate source="lo" groupBy="o_custkey, o_orderstatus" output="by_customer"
      metrics="count:lines,sum:revenue:revenue,avg:l_discount:avg_discount,max:l_shipdate:last_ship,count_distinct:o_orderkey:orders"/>
  </transformations>
  <targets>
    <table table="mem_lineitem_orders" source="lo" mode="overwrite"/>
    <table table="mem_by_customer" source="by_customer" mode="overwrite"/>
  </targets>
</pipeline>
"""


class Sampler:
    """Peak VmRSS of this process and peak bytes under the spill folder, sampled in a thread;
    `phase()` resets the peaks and returns the previous phase's."""

    def __init__(self, spill: Path, every_s: float = 0.05) -> None:
        self.spill, self.every_s = spill, every_s
        self.rss = self.spilled = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            rss, spilled = _rss_bytes(), _folder_bytes(self.spill)
            with self._lock:
                self.rss, self.spilled = max(self.rss, rss), max(self.spilled, spilled)
            self._stop.wait(self.every_s)

    def phase(self) -> tuple[int, int]:
        with self._lock:
            peaks = (max(self.rss, _rss_bytes()), self.spilled)
            self.rss = self.spilled = 0
        return peaks


def _rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _folder_bytes(folder: Path) -> int:
    total = 0
    for path in folder.rglob("*"):
        try:
            total += path.stat().st_size if path.is_file() else 0
        except OSError:  # a temporary file removed while we looked
            continue
    return total


def _mb(n: int) -> float:
    return round(n / 1024 / 1024, 1)


def _setup(root: Path, memory_limit: str, threads: int | None):
    """A private deployment (home, catalog, pipelines) reading the TPC-H landing files."""
    from datahub_resources.settings import Settings

    if not (gen.landing("lineitem").is_dir() and any(gen.landing("lineitem").glob("*.csv"))):
        gen.generate(scale=1)
    shutil.rmtree(root, ignore_errors=True)
    pipelines = root / "pipelines" / APP
    for layer, name, xml in (("raw", "load", LOAD), ("silver", "joined", JOINED)):
        (pipelines / layer).mkdir(parents=True, exist_ok=True)
        (pipelines / layer / f"{name}.xml").write_text(xml)
    env = {
        "DATAHUB_HOME": str(root / "home"),
        "DATAHUB_PIPELINES_DIR": str(root / "pipelines"),
        "DATAHUB_DATA_DIR": str(gen.DATA_DIR),
        "DATAHUB_DUCKDB_MEMORY_LIMIT": memory_limit,
    }
    if threads:
        env["DATAHUB_DUCKDB_THREADS"] = str(threads)
    (root / "home").mkdir(parents=True)
    return Settings.from_env(env)


def _run(spec, settings, catalog, run_id: str) -> dict:
    from datahub_assets.engines.duckdb.session import duckdb_engine
    from datahub_assets.execute.context import ExecContext
    from datahub_assets.execute.runner import run_pipeline

    engine = duckdb_engine(settings)
    ctx = ExecContext(
        spark=engine.session, settings=settings, app=APP, run_id=run_id, engine=engine
    )
    try:
        outcomes = run_pipeline(spec, ctx, catalog)
    finally:
        engine.connection.close()
    return {o.ref.table: o.table_rows for o in outcomes}


def measure(root: Path, memory_limit: str, threads: int | None) -> dict:
    from datahub_assets.spec.loader import load_project
    from datahub_resources.iceberg import load_catalog

    settings = _setup(root, memory_limit, threads)
    specs = {s.pipeline.id: s for s in load_project(settings.pipelines_dir).pipelines}
    catalog = load_catalog(settings)
    spill = settings.home / "duckdb_tmp"
    spill.mkdir(parents=True, exist_ok=True)
    phases: dict[str, dict] = {}
    with Sampler(spill) as sampler:
        sampler.phase()
        for phase, pipeline_id in (("load", "mem_load"), ("join", "mem_joined")):
            start = time.perf_counter()
            rows = _run(specs[pipeline_id], settings, catalog, f"mem-{phase}")
            wall = time.perf_counter() - start
            rss, spilled = sampler.phase()
            phases[phase] = {
                "wall_s": round(wall, 2),
                "peak_rss_mb": _mb(rss),
                "peak_spill_mb": _mb(spilled),
                "table_rows": rows,
            }
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    by_customer = catalog.load_table(f"{APP}_silver.mem_by_customer").scan().to_arrow()
    return {
        "phases": phases,
        "ru_maxrss_mb": _mb(peak_rss),
        "aggregate_lines": sum(by_customer.column("lines").to_pylist()),
        "aggregate_groups": by_customer.num_rows,
        "memory_limit": settings.duckdb_memory_limit,
        "threads": settings.duckdb_threads,
        "spill_dir": str(spill),
    }


def check(result: dict, max_rss_gb: float) -> list[str]:
    """What failed (empty: the run passes)."""
    problems = []
    joined = result["phases"]["join"]["table_rows"].get("mem_lineitem_orders")
    if joined != LINEITEM_ROWS:
        problems.append(f"joined table has {joined} rows, expected {LINEITEM_ROWS}")
    if result["aggregate_lines"] != LINEITEM_ROWS:
        problems.append(f"aggregate counts {result['aggregate_lines']} lines")
    if result["ru_maxrss_mb"] > max_rss_gb * 1024:
        problems.append(f"peak RSS {result['ru_maxrss_mb']} MB > {max_rss_gb} GB")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description="A 6M-row join on DuckDB within 2 GB")
    parser.add_argument("--memory-limit", default=DEFAULT_LIMIT, help="DATAHUB_DUCKDB_MEMORY_LIMIT")
    parser.add_argument("--max-rss-gb", type=float, default=2.5)
    parser.add_argument("--threads", type=int, default=None, help="DATAHUB_DUCKDB_THREADS")
    parser.add_argument("--keep", action="store_true", help="keep the tables afterwards")
    args = parser.parse_args()
    root = WORK / "duckdb_memory"
    started = now()
    error = None
    try:
        result = measure(root, args.memory_limit, args.threads)
        problems = check(result, args.max_rss_gb)
    except Exception as exc:  # the JSON line still reports what happened
        result, error = (
            {"ru_maxrss_mb": _mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)},
            f"{type(exc).__name__}: {exc}"[:2000],
        )
        problems = [f"run failed: {error}"]
    out = {
        "bench": "duckdb_memory",
        "started": started,
        "revision": revision(),
        "machine": machine(),
        "max_rss_gb": args.max_rss_gb,
        "lineitem_rows": LINEITEM_ROWS,
        **result,
        "passed": not problems,
        "problems": problems,
    }
    suffix = "" if args.memory_limit == DEFAULT_LIMIT else f"_{args.memory_limit}"
    write_json(RESULTS / f"duckdb_memory{suffix}.json", out)
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(out, default=str))  # noqa: T201  (the benchmark's output)
    sys.exit(0 if not problems else 1)


if __name__ == "__main__":
    main()
