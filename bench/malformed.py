"""Malformed-record handling cost: ingest a CSV file drop with 0.1 % malformed lines vs the
same file clean, through `run_pipeline` (validation, the malformed split, staging, the atomic
commit with the quarantine rows).

    .venv/bin/python bench/run.py malformed [--mb 1024] [--repeat 1]   (make bench-malformed)

Work dir bench/_work/malformed/ (emptied first; each run's data is deleted after it), result
bench/_work/results/malformed.json. With --repeat N the clean and bad runs alternate N times
and the ratio is of the medians.

Both runs pay the malformed check (one extra Spark job that parses the input and finds the
bad records); the bad run also numbers the lines of its bad records (one Python pass over the
file) and stages the quarantine rows."""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DATAHUB_SPARK_STATE", str(ROOT / ".datahub" / "test-spark"))

from bench.common import WORK, machine, now, revision, write_json  # noqa: E402
from datahub_assets.execute.context import ExecContext  # noqa: E402
from datahub_assets.execute.runner import run_pipeline  # noqa: E402
from datahub_assets.spec.loader import load_project  # noqa: E402
from datahub_resources.iceberg import load_catalog  # noqa: E402
from datahub_resources.settings import Settings  # noqa: E402
from datahub_resources.spark import connect  # noqa: E402

PIPELINE = """<pipeline id="orders_raw" version="1.0.0" layer="raw">
  <sources><csv id="orders" path="landing/orders/*.csv"><watch minAgeSeconds="0"/></csv>
  </sources>
  <targets><table table="orders" mode="append"/></targets>
</pipeline>
"""
BAD = ["{i},1.5,paid,extra,more,toomany", '{i},"2.5,paid', "{i},3.5"]


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
    os.environ.update(
        DATAHUB_HOME=str(home / "home"),
        DATAHUB_DATA_DIR=str(home / "data"),
        DATAHUB_PIPELINES_DIR=str(home / "pipelines"),
    )
    os.environ.pop("DATAHUB_CATALOG_URI", None)
    os.environ.pop("DATAHUB_WAREHOUSE", None)
    shutil.rmtree(home, ignore_errors=True)
    (home / "pipelines" / "shop" / "raw").mkdir(parents=True)
    (home / "pipelines" / "shop" / "raw" / "orders.xml").write_text(PIPELINE)
    landing = home / "data" / "shop" / "landing" / "orders"
    landing.mkdir(parents=True)
    (home / "home").mkdir(parents=True)
    t0 = time.perf_counter()
    lines, bad = _write(landing / "orders.csv", mb, bad_fraction)
    write_s = time.perf_counter() - t0
    size = (landing / "orders.csv").stat().st_size
    settings = Settings.from_env()
    (spec,) = load_project(settings.pipelines_dir).pipelines
    ctx = ExecContext(
        spark=connect(), settings=settings, app="shop", run_id=name, run_date=date(2026, 11, 28)
    )
    started = time.perf_counter()
    (outcome,) = run_pipeline(spec, ctx, load_catalog(settings))
    seconds = time.perf_counter() - started
    load = os.getloadavg()[0]
    malformed = outcome.extra.get("malformed_rows", 0)
    print(
        f"   {name}: {size / 2**20:.0f} MB written in {write_s:.1f} s, ingested in "
        f"{seconds:.1f} s (load {load:.2f})",
        flush=True,
    )
    shutil.rmtree(home, ignore_errors=True)
    return {
        "name": name,
        "bytes": size,
        "lines": lines,
        "bad": bad,
        "rows": outcome.rows,
        "malformed": malformed,
        "seconds": round(seconds, 2),
        "load1": round(load, 2),
        "verified": outcome.rows == lines - bad and malformed == bad,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    root = WORK / "malformed"
    shutil.rmtree(root, ignore_errors=True)
    before = machine()
    connect()  # the server is up before timing
    _run(root, "warmup", 5, 0.0)
    runs = []
    for i in range(args.repeat):
        runs += [_run(root, f"clean{i}", args.mb, 0.0), _run(root, f"bad{i}", args.mb, 0.001)]
    for r in runs:
        print(
            f"{r['name']}: {r['lines']:,} lines, {r['bad']:,} malformed, {r['rows']:,} rows "
            f"loaded, {r['malformed']:,} quarantined, {r['seconds']:.1f} s"
        )
    clean = statistics.median(r["seconds"] for r in runs if r["name"].startswith("clean"))
    bad = statistics.median(r["seconds"] for r in runs if r["name"].startswith("bad"))
    ratio = round(bad / clean, 3)
    print(f"ratio bad/clean: {ratio:.2f}x ({args.mb} MB; target <= 1.2)")
    write_json(
        WORK / "results" / "malformed.json",
        {
            "benchmark": "malformed",
            "date": now(),
            "revision": revision(),
            "mb": args.mb,
            "runs": runs,
            "clean_s": clean,
            "bad_s": bad,
            "ratio": ratio,
            "verified": all(r["verified"] for r in runs),
            "machine_before": before,
            "machine_after": machine(),
        },
    )


if __name__ == "__main__":
    main()
