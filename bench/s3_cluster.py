"""Issue #10: the TPC-H XML app (bench/tpch) with its warehouse and data on S3 (moto) and on
a standalone Spark cluster (master + 2 workers), against local disk on `local[*]`.

    .venv/bin/python -m bench.s3_cluster [--scale 0.1] [--configs local s3 cluster] [--write]

Every config runs `dagster asset materialize --select '*'` over bench/tpch/pipelines_xml once
(the same generated files; its own DATAHUB_HOME, catalog and Dagster instance) and reads the
run's step timings from the event log:
  local    data and warehouse on local disk; the shared test Spark server (`local[*]`);
  s3       data (landing, processed, exports) and warehouse in a bucket of moto's S3 server
           (a child process, bench/watch.py's MotoServer); a Spark Connect server of its own
           started by the platform with the AWS environment (S3A), `local[*]`;
  cluster  as s3, but that server is started with DATAHUB_SPARK_MASTER on a standalone
           master with two workers (1 core, 1.5 GB each; tests/e2e/test_spark_cluster.py).
Ratios are run time / local run time. `--write` appends to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import BENCH, DAGSTER, WORK, machine, now, revision, write_json  # noqa: E402
from bench.dagster_events import read_run  # noqa: E402

PIPELINES = BENCH / "tpch" / "pipelines_xml"
S3C = WORK / "s3_cluster"
RESULTS_MD = BENCH / "RESULTS.md"
MARKER = "<!-- s3-cluster rows -->"  # rows go above it, in "## S3 and clusters (issue #10)"


def _generate(scale: str) -> Path:
    out = S3C / f"sf{scale}"
    if not (out / "_SUCCESS").exists():
        out.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                str(ROOT / ".venv" / "bin" / "tpchgen-cli"),
                "csv",
                "-s",
                scale,
                "-T",
                "orders,lineitem,customer,nation",
                "--parts",
                "4",
                "-o",
                str(out),
                "--overwrite",
                "--no-progress",
                "-q",
            ],
            check=True,
        )
        (out / "_SUCCESS").write_text("")
    return out


def _home(name: str) -> Path:
    home = S3C / name
    shutil.rmtree(home, ignore_errors=True)
    (home / "dagster").mkdir(parents=True)
    shutil.copy(ROOT / "dagster.yaml", home / "dagster" / "dagster.yaml")
    return home


def _env(home: Path, data: str, warehouse: str, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DATAHUB_"))}
    return (
        env
        | extra
        | {
            "DATAHUB_HOME": str(home),
            "DAGSTER_HOME": str(home / "dagster"),
            "DATAHUB_PIPELINES_DIR": str(PIPELINES),
            "DATAHUB_DATA_DIR": data,
            "DATAHUB_WAREHOUSE": warehouse,
            "DATAHUB_CATALOG_URI": f"sqlite:///{home}/catalog.db",
            "DATAHUB_MASK_KEY": "bench",
        }
    )


def _materialize(env: dict[str, str]) -> dict:
    start = time.perf_counter()
    proc = subprocess.run(
        [str(DAGSTER), "asset", "materialize", "-m", "datahub_assets.definitions", "--select", "*"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"materialize failed:\n{proc.stderr[-5000:]}")
    run = read_run(Path(env["DAGSTER_HOME"]))
    return {"wall_s": round(wall, 2), "run": run}


def _local_landing(raw: Path, data: Path) -> None:
    for table in ("orders", "lineitem", "customer", "nation"):
        dest = data / "tpch" / "landing" / table
        dest.mkdir(parents=True, exist_ok=True)
        for src in sorted((raw / table).glob("*.csv")):
            shutil.copy(src, dest / src.name)


def _upload(client, bucket: str, raw: Path) -> None:
    for table in ("orders", "lineitem", "customer", "nation"):
        for src in sorted((raw / table).glob("*.csv")):
            client.upload_file(str(src), bucket, f"data/tpch/landing/{table}/{src.name}")


def run_config(name: str, raw: Path, moto=None, master: str | None = None) -> dict:
    from datahub_resources import spark_server

    home = _home(name)
    if name == "local":
        _local_landing(raw, home / "data")
        env = _env(
            home,
            str(home / "data"),
            f"file://{home}/warehouse",
            {"DATAHUB_SPARK_STATE": str(ROOT / ".datahub" / "test-spark")},
        )
        return _materialize(env)
    bucket = f"tpch-{name}"
    client = moto.client()
    client.create_bucket(Bucket=bucket)
    _upload(client, bucket, raw)
    aws = {
        "AWS_ENDPOINT_URL": moto.endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "DATAHUB_SPARK_STATE": str(home / "spark"),
        "DATAHUB_SPARK_DRIVER_MEMORY": "2g",
    }
    if master:
        aws["DATAHUB_SPARK_MASTER"] = master
    env = _env(home, f"s3://{bucket}/data", f"s3://{bucket}/warehouse", aws)
    try:
        return _materialize(env)
    finally:
        spark_server.stop(home / "spark")


def _steps(result: dict) -> str:
    """The three slowest steps of a run, `name s`."""
    return ", ".join(
        f"{d['step'].split('__')[-1]} {d['s']}" for d in result["run"].get("slowest_steps", [])
    )


def main(argv: list[str] | None = None) -> int:
    from bench.watch import WATCH_WORK, MotoServer

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", default="0.1")
    parser.add_argument("--configs", nargs="*", default=["local", "s3", "cluster"])
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    raw = _generate(args.scale)
    before, results = machine(), {}
    WATCH_WORK.mkdir(parents=True, exist_ok=True)
    moto = MotoServer() if set(args.configs) - {"local"} else None
    try:
        for name in args.configs:
            print(f"-- {name}", flush=True)
            if name == "cluster":
                from tests.e2e.test_spark_cluster import start_cluster, stop_cluster

                folder = S3C / "cluster-procs"
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir(parents=True)
                url, _, procs = start_cluster(folder)
                try:
                    results[name] = run_config(name, raw, moto, url)
                finally:
                    stop_cluster(procs)
            else:
                results[name] = run_config(name, raw, moto)
            print(
                f"   wall {results[name]['wall_s']} s; run {results[name]['run'].get('run_s')} s",
                flush=True,
            )
    finally:
        if moto:
            moto.stop()
    base = results.get("local", {}).get("run", {}).get("run_s")
    out = {
        "benchmark": "s3-cluster",
        "date": now(),
        "revision": revision(),
        "scale": args.scale,
        "results": results,
        "machine_before": before,
        "machine_after": machine(),
    }
    for r in results.values():
        r["ratio"] = round(r["run"]["run_s"] / base, 2) if base and r["run"].get("run_s") else None
    write_json(WORK / "results" / "s3_cluster.json", out)
    for name, r in results.items():
        print(f"{name:<8} run {r['run'].get('run_s')} s  wall {r['wall_s']} s  ratio {r['ratio']}")
    if args.write:
        rows = [
            f"| {out['date'][:16].replace('T', ' ')} | {out['revision']} | SF {args.scale} "
            f"| {name} | {r['run'].get('run_s')} | {r['wall_s']} | **{r['ratio']}** | "
            f"{_steps(r)} | {machine()['loadavg'][0]} |"
            for name, r in results.items()
        ]
        text = RESULTS_MD.read_text()
        if MARKER not in text:
            raise SystemExit(f"{RESULTS_MD}: no {MARKER!r} line to add the rows above")
        RESULTS_MD.write_text(text.replace(MARKER, "\n".join(rows) + "\n" + MARKER, 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
