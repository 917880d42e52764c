"""Table maintenance (issue #13): a table after 1,000 small appends, before and after
`datahub maintain` compaction.

    .venv/bin/python bench/run.py maintain [--appends 1000] [--rows 100] [--repeat 3]
    (make bench-maintain)

The table `mnt.raw.events` (id bigint, amount double, note string, day date) is created by the
platform's writer (`write_table`, Spark writes, pyiceberg commits), then receives
`--appends` - 1 more appends of `--rows` rows each, committed by pyiceberg (`table.append`:
one Parquet file and one snapshot per append, what a stream of small file drops leaves; a Spark
write per append would take ~1 s each here and measure the same table). Then, before and
after `datahub maintain mnt.raw.events` (the real command, a subprocess, app defaults:
targetFileSizeMb 128, snapshotRetention P7D, orphanAfter P3D — so nothing is expired or
removed yet, only compacted), median of `--repeat` each:

  plan        pyiceberg `plan_files()` of the current snapshot (what every read does first)
  count       Spark `count()` through the platform reader (`read_table`: pyiceberg plans,
              Spark reads the files; count reads only Parquet footers)
  scan        Spark full scan: `sum(amount)`, `count(distinct note)` (every row read)
  pyiceberg   `table.scan().to_arrow()` (every row, no Spark)

and data files, snapshots, metadata.json size. Rows and sums must be equal before and after.
Work dir bench/_work/maintain/ (emptied first); JSON bench/_work/results/maintain.json.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DATAHUB_SPARK_STATE", str(ROOT / ".datahub" / "test-spark"))

from bench.common import WORK, machine, now, revision, write_json  # noqa: E402

BASE = WORK / "maintain"


def _timed(fn, repeat: int) -> tuple[float, object]:
    times, value = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times), 3), value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--appends", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    shutil.rmtree(BASE, ignore_errors=True)
    (BASE / "pipelines" / "mnt").mkdir(parents=True)
    (BASE / "pipelines" / "mnt" / "app.yaml").write_text(
        "maintenance: {snapshotRetention: P7D, orphanAfter: P3D, targetFileSizeMb: 128}\n"
    )
    os.environ.update(
        DATAHUB_HOME=str(BASE / "home"),
        DATAHUB_DATA_DIR=str(BASE / "data"),
        DATAHUB_PIPELINES_DIR=str(BASE / "pipelines"),
    )
    for name in ("DATAHUB_CATALOG_URI", "DATAHUB_WAREHOUSE"):
        os.environ.pop(name, None)

    import pyarrow as pa
    from pyspark.sql import functions as F

    from datahub_assets.iceberg.read import data_files, read_table
    from datahub_assets.iceberg.table import write_table
    from datahub_assets.spec.models import TableRef, TableTarget
    from datahub_resources.iceberg import load_catalog
    from datahub_resources.settings import Settings
    from datahub_resources.spark import connect

    before_machine = machine()
    settings = Settings.from_env()
    spark = connect()
    catalog = load_catalog(settings)
    ref = TableRef(app="mnt", layer="raw", table="events")
    ident = (ref.namespace, ref.table)
    day0 = date(2026, 11, 1)

    def rows(k: int) -> list[tuple]:
        return [
            (
                k * args.rows + i,
                float((k * args.rows + i) % 997) / 10,
                f"n{i % 37}",
                day0 + timedelta(days=k % 28),
            )
            for i in range(args.rows)
        ]

    t0 = time.perf_counter()
    df = spark.createDataFrame(rows(0), "id long, amount double, note string, day date")
    write_table(
        spark, catalog, ref, df.coalesce(1), TableTarget(table=ref.table, mode="append"), "mnt-0"
    )
    table = catalog.load_table(ident)
    schema = table.schema().as_arrow()
    append_s = []
    for k in range(1, args.appends):
        data = list(zip(*rows(k), strict=True))
        batch = pa.Table.from_arrays(
            [pa.array(col, type=f.type) for col, f in zip(data, schema, strict=True)], schema=schema
        )
        a0 = time.perf_counter()
        table.append(batch)
        append_s.append(time.perf_counter() - a0)
        if k % 100 == 0:
            print(
                f"   {k} appends ({statistics.mean(append_s[-100:]):.3f} s each lately)", flush=True
            )
    load_s = round(time.perf_counter() - t0, 1)

    def measure(label: str) -> dict:
        table = catalog.load_table(ident)
        meta = Path(table.metadata_location.removeprefix("file://"))
        plan_s, files = _timed(lambda: data_files(catalog.load_table(ident)), args.repeat)
        count_s, count = _timed(lambda: read_table(spark, catalog, ref).count(), args.repeat)
        scan_s, agg = _timed(
            lambda: (
                read_table(spark, catalog, ref)
                .agg(F.sum("amount").alias("s"), F.countDistinct("note").alias("n"))
                .collect()[0]
            ),
            args.repeat,
        )
        pyi_s, arrow = _timed(lambda: catalog.load_table(ident).scan().to_arrow(), args.repeat)
        out = {
            "data_files": len(files),
            "bytes": sum(f.file_size_in_bytes for f in files),
            "snapshots": len(table.metadata.snapshots),
            "metadata_json_bytes": meta.stat().st_size,
            "rows": count,
            "sum_amount": round(agg["s"], 3),
            "distinct_notes": agg["n"],
            "pyiceberg_rows": arrow.num_rows,
            "plan_s": plan_s,
            "spark_count_s": count_s,
            "spark_scan_s": scan_s,
            "pyiceberg_scan_s": pyi_s,
            "loadavg": machine()["loadavg"],
        }
        print(f"{label}: {out}", flush=True)
        return out

    read_table(spark, catalog, ref).count()  # warm-up
    before = measure("before")
    env = dict(os.environ)
    m0 = time.perf_counter()
    proc = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "datahub"), "maintain", "mnt.raw.events"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    maintain_s = round(time.perf_counter() - m0, 1)
    print(
        f"datahub maintain ({maintain_s} s, rc {proc.returncode}): {proc.stdout.strip()}"
        f"{proc.stderr.strip()[-2000:] if proc.returncode else ''}",
        flush=True,
    )
    after = measure("after")
    keys = ("plan_s", "spark_count_s", "spark_scan_s", "pyiceberg_scan_s", "data_files")
    ratios = {k: round(after[k] / before[k], 3) if before[k] else None for k in keys}
    verified = (
        proc.returncode == 0
        and before["rows"] == after["rows"] == args.appends * args.rows == after["pyiceberg_rows"]
        and before["sum_amount"] == after["sum_amount"]
        and before["distinct_notes"] == after["distinct_notes"]
    )
    out = {
        "benchmark": "maintain",
        "date": now(),
        "revision": revision(),
        "appends": args.appends,
        "rows_per_append": args.rows,
        "load_s": load_s,
        "append_s_mean": round(statistics.mean(append_s), 3) if append_s else None,
        "maintain_s": maintain_s,
        "maintain_output": proc.stdout.strip(),
        "before": before,
        "after": after,
        "ratio_after_before": ratios,
        "verified": verified,
        "machine_before": before_machine,
        "machine_after": machine(),
    }
    write_json(WORK / "results" / "maintain.json", out)
    print(f"ratios after/before: {ratios}; verified {verified}")
    return 0 if verified else 1


if __name__ == "__main__":
    sys.exit(main())
