"""Database source benchmark: a PostgreSQL table read into an Iceberg raw table.

    .venv/bin/python bench/run.py jdbc [--rows 5000000] [--repeat 1]

Loads `--rows` rows into a private PostgreSQL cluster (kept in .datahub/bench-jdbc and reused
while the table holds the same count), then measures, in rows/s, with the same Spark Connect
server the platform uses:
- `copy`: `COPY big TO STDOUT (FORMAT binary)` drained by psycopg in this process (the
  physical limit of getting the rows out of PostgreSQL; nothing is parsed or written);
- `single`: `run_pipeline` of a raw pipeline with `<database><table name="big"/>`: one JDBC
  connection, Spark writes Parquet, pyiceberg commits;
- `partitioned`: the same with `partitionColumn="id" numPartitions="4"` (bounds from one
  min/max query, four connections).
Writes bench/_work/results/jdbc.json and prints a Markdown table with the ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import machine, now, revision, write_json

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / ".datahub" / "bench-jdbc"
RESULTS = ROOT / "bench" / "_work" / "results"
PIPELINE = """<pipeline id="big" version="1.0.0" layer="raw">
  <sources>
    <database id="big" jdbcUrl="{url}" userSecretRef="BENCH_DB"{partitioning}>
      <table name="public.big"/>
    </database>
  </sources>
  <targets><table table="big" mode="overwrite"/></targets>
</pipeline>
"""


def _load(server, rows: int) -> None:
    import psycopg

    with psycopg.connect(
        host="127.0.0.1", port=server.port, user="datahub", dbname="postgres", autocommit=True
    ) as conn:
        have = conn.execute("select to_regclass('public.big') is not null").fetchone()[0]
        if have and conn.execute("select count(*) from big").fetchone()[0] == rows:
            print(f"reusing {rows:,} rows")
            return
        start = time.perf_counter()
        conn.execute("drop table if exists big")
        conn.execute("""create table big (id bigint primary key, customer_id int, name text,
                        amount numeric(12,2), status text, created_at timestamp)""")
        conn.execute(
            """insert into big select g, g %% 100000, md5(g::text),
                        (g %% 10000) / 100.0, (array['new','paid','shipped'])[g %% 3 + 1],
                        timestamp '2024-01-01' + g * interval '1 second'
                        from generate_series(1, %s) g""",
            (rows,),
        )
        conn.execute("vacuum analyze big")
        print(f"loaded {rows:,} rows in {time.perf_counter() - start:.1f} s")


def _copy(server) -> float:
    import psycopg

    start = time.perf_counter()
    with (
        psycopg.connect(
            host="127.0.0.1", port=server.port, user="datahub", dbname="postgres"
        ) as conn,
        conn.cursor() as cur,
        cur.copy("COPY big TO STDOUT (FORMAT binary)") as copy,
    ):
        for _ in copy:
            pass
    return time.perf_counter() - start


def _platform(server, partitioning: str) -> float:
    from datahub_assets.execute.context import ExecContext
    from datahub_assets.execute.runner import run_pipeline
    from datahub_assets.spec.loader import load_project
    from datahub_resources.iceberg import load_catalog
    from datahub_resources.settings import Settings
    from datahub_resources.spark import connect

    with tempfile.TemporaryDirectory(dir=ROOT / "bench" / "_work") as tmp:
        tmp_path = Path(tmp)
        os.environ.update(
            {
                "DATAHUB_HOME": str(tmp_path / "home"),
                "DATAHUB_PIPELINES_DIR": str(tmp_path / "pipelines"),
                "DATAHUB_DATA_DIR": str(tmp_path / "data"),
            }
        )
        folder = tmp_path / "pipelines" / "bench" / "raw"
        folder.mkdir(parents=True)
        (folder / "big.xml").write_text(
            PIPELINE.format(url=server.jdbc_url("postgres"), partitioning=partitioning)
        )
        settings = Settings.from_env()
        (spec,) = load_project(settings.pipelines_dir).pipelines
        spark = connect()
        start = time.perf_counter()
        (out,) = run_pipeline(
            spec,
            ExecContext(spark=spark, settings=settings, app="bench", run_id="bench"),
            load_catalog(settings),
        )
        elapsed = time.perf_counter() - start
        assert out.rows > 0
        return elapsed


def main() -> None:
    from datahub_assets.demo import local_servers

    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    os.environ["BENCH_DB"] = "datahub"
    RESULTS.mkdir(parents=True, exist_ok=True)
    server = local_servers.start_postgres(STATE)
    try:
        _load(server, args.rows)
        cases = {
            "copy": lambda: _copy(server),
            "single": lambda: _platform(server, ""),
            "partitioned": lambda: _platform(server, ' partitionColumn="id" numPartitions="4"'),
        }
        seconds: dict[str, float] = {}
        for name, case in cases.items():
            runs = [case() for _ in range(args.repeat)]
            seconds[name] = statistics.median(runs)
            print(
                f"{name}: {seconds[name]:.2f} s ({args.rows / seconds[name]:,.0f} rows/s) "
                f"runs {[round(r, 2) for r in runs]}",
                flush=True,
            )
    finally:
        local_servers.stop(STATE)
    result = {
        "when": now(),
        "revision": revision(),
        "machine": machine(),
        "rows": args.rows,
        "repeat": args.repeat,
        "seconds": seconds,
        "partitioned_vs_single": seconds["single"] / seconds["partitioned"],
        "partitioned_vs_copy": seconds["partitioned"] / seconds["copy"],
    }
    write_json(RESULTS / "jdbc.json", result)
    print("\n| case | s | rows/s |\n|---|---:|---:|")
    for name, s in seconds.items():
        print(f"| {name} | {s:.2f} | {args.rows / s:,.0f} |")
    print(
        f"\npartitioned is {result['partitioned_vs_single']:.2f}x faster than single "
        f"(target >= 1.6) and {result['partitioned_vs_copy']:.2f}x the COPY time "
        "(target <= 3)"
    )


if __name__ == "__main__":
    main()
