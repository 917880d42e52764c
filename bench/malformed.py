"""Malformed-record handling cost: ingest a CSV file drop with 0.1 % malformed lines vs the
same file clean, through `run_pipeline` (validation, the malformed split, staging, the atomic
commit with the quarantine rows). Usage: python -m bench.malformed [--mb 100]

Both runs pay the malformed check (one extra Spark job that parses the input and finds the
bad records); the bad run also numbers the lines of its bad records (one Python pass over the
file) and stages the quarantine rows."""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from datetime import date
from pathlib import Path

from datahub_assets.execute.context import ExecContext
from datahub_assets.execute.runner import run_pipeline
from datahub_assets.spec.loader import load_project
from datahub_resources.iceberg import load_catalog
from datahub_resources.settings import Settings
from datahub_resources.spark import connect

PIPELINE = """<pipeline id="orders_raw" version="1.0.0" layer="raw">
  <sources><csv id="orders" path="landing/orders/*.csv"><watch minAgeSeconds="0"/></csv>
  </sources>
  <targets><table table="orders" mode="append"/></targets>
</pipeline>
"""
BAD = ['{i},1.5,paid,extra,more', '{i},"2.5,paid', "{i},3.5"]


def _write(path: Path, mb: int, bad_fraction: float) -> tuple[int, int]:
    rng = random.Random(7)
    lines = bad = 0
    with path.open("w") as f:
        f.write("order_id,amount,status,customer,note\n")
        size = 0
        while size < mb * 1024 * 1024:
            lines += 1
            if rng.random() < bad_fraction:
                row = rng.choice(BAD).format(i=lines)
                bad += 1
            else:
                row = f"{lines},{rng.random() * 1000:.2f},paid,c{lines % 9973},note {lines}"
            f.write(row + "\n")
            size += len(row) + 1
    old = time.time() - 3600
    os.utime(path, (old, old))
    return lines, bad


def _run(root: Path, name: str, mb: int, bad_fraction: float) -> dict:
    home = root / name
    os.environ.update(DATAHUB_HOME=str(home / "home"), DATAHUB_DATA_DIR=str(home / "data"),
                      DATAHUB_PIPELINES_DIR=str(home / "pipelines"))
    os.environ.pop("DATAHUB_CATALOG_URI", None)
    os.environ.pop("DATAHUB_WAREHOUSE", None)
    (home / "pipelines" / "shop" / "raw").mkdir(parents=True)
    (home / "pipelines" / "shop" / "raw" / "orders.xml").write_text(PIPELINE)
    landing = home / "data" / "shop" / "landing" / "orders"
    landing.mkdir(parents=True)
    (home / "home").mkdir(parents=True)
    lines, bad = _write(landing / "orders.csv", mb, bad_fraction)
    settings = Settings.from_env()
    (spec,) = load_project(settings.pipelines_dir).pipelines
    ctx = ExecContext(spark=connect(), settings=settings, app="shop", run_id=name,
                      run_date=date(2026, 11, 28))
    started = time.perf_counter()
    (outcome,) = run_pipeline(spec, ctx, load_catalog(settings))
    seconds = time.perf_counter() - started
    return {"name": name, "lines": lines, "bad": bad, "rows": outcome.rows,
            "malformed": outcome.extra.get("malformed_rows", 0), "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=100)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-malformed-"))
    connect()  # the server is up before timing
    results = [_run(root, "warmup", 5, 0.0)]
    results += [_run(root, "clean", args.mb, 0.0), _run(root, "bad", args.mb, 0.001)]
    for r in results[1:]:
        print(f"{r['name']}: {r['lines']:,} lines, {r['bad']:,} malformed, {r['rows']:,} rows "
              f"loaded, {r['malformed']:,} quarantined, {r['seconds']:.1f} s")
    clean, bad = results[1]["seconds"], results[2]["seconds"]
    print(f"ratio bad/clean: {bad / clean:.2f}x ({args.mb} MB)")


if __name__ == "__main__":
    main()
