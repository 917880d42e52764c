"""File drops (issue #4): the `<watch/>` sensor's tick over a backlog, and a burst of files.

    .venv/bin/python -m bench.watch tick  [--sizes 1000 10000 100000] [--s3-sizes 1000 10000
                                           100000] [--ticks 3] [--write]
    .venv/bin/python -m bench.watch burst [--files 10000] [--rows 3] [--single-runs 5]
                                           [--engine spark|duckdb] [--write]

(`bench/run.py watch-tick` / `watch-burst`, `make bench-watch-tick` / `bench-watch-burst`.)

tick — the REAL Dagster sensor (`watch_sensors(project)` in a `dg.Definitions` with the
project's assets and `deployment.resources()`), evaluated as the code server does (the
sensor's required top-level resources, `dg.build_sensor_context` entered, `evaluate_tick`) on
a SQLite Dagster instance configured like `make setup` (the repo's dagster.yaml), over a
landing folder of N tiny CSVs (old mtimes) or N objects in moto's S3 server (a child process
of its own, so it does not share this process's GIL; a real S3 is remote too). Per N:
  first tick   every file new: list, plan, 20 run requests x 500 files (median of 3 ticks,
               each from an empty cursor);
  fill         every file in flight: by ticking with the cursor carried, each requested run
               registered in the instance as in progress (status STARTED: `settle` asks for
               QUEUED and STARTED alike, and a QUEUED run cannot be created without the
               daemon's code origin), until a tick asks for nothing (`--fill ticks`, default
               locally); or that same cursor and those runs built directly (`direct`, the
               default on S3, where moto makes every tick over 100,000 objects take ~70 s);
  steady tick  every file already in flight ("already seen"): list, match, request nothing
               (median of 3 ticks, cursor carried).
Also: the bare listing (`store.list`, median of 3), the CPU time per tick of this process (the
sensor's own work) and of the S3 server, the cursor size and the serialized tick result (what
the code server sends the daemon, which stores the cursor with every tick).
Ratio = measured / 5 s (the issue's target; Dagster cancels a tick at 60 s).

burst — N small CSVs (3 rows each) in landing; sensor ticks (the real sensor, as above) yield
run requests; each request runs in this process with the real runner,
`run_pipeline(spec, ctx, catalog, files=<the request's ops.<op>.config.files>)`, on the shared
Spark Connect session; ticks repeat until landing is empty. Verified: table rows == N x rows,
ledger == N ingested entries, every file in processed/. Baseline: one run per file = the mean
time of `--single-runs` 1-file runs (after one warm-up run that creates the tables) x N.
Neither side pays Dagster's per-run launch cost (run worker process, definitions load, event
log), so the ratio understates the saving of batching.
`--engine duckdb` runs every request on the DuckDB engine (a new in-process DuckDB connection
per run, as the factory opens one per step; no Spark session is opened) and writes
watch_burst_duckdb.json; `--engine spark` the same on the shared Spark session
(watch_burst_spark.json). With both files present, the result gives the duckdb / spark ratio.

Work dirs: bench/_work/watch/{tick,burst,single}/; JSON: bench/_work/results/watch_*.json.
`--write` appends the rows to the "## File drops (issue #4)" section of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DATAHUB_SPARK_STATE", str(ROOT / ".datahub" / "test-spark"))

import dagster as dg  # noqa: E402
from dagster._core.storage.dagster_run import DagsterRun  # noqa: E402
from dagster._serdes import serialize_value  # noqa: E402

from bench.common import BENCH, WORK, machine, now, revision, write_json  # noqa: E402
from datahub_assets.ingest.planner import WatchCursor  # noqa: E402
from datahub_assets.ingest.store import store_for  # noqa: E402
from datahub_assets.orchestration.project import build_assets  # noqa: E402
from datahub_assets.orchestration.sensors import watch_sensors  # noqa: E402
from datahub_assets.spec.loader import load_project  # noqa: E402
from datahub_resources import deployment  # noqa: E402

APP = "bench"
TARGET_TICK_S = 5.0
DAGSTER_TICK_LIMIT_S = 60.0
# files are backdated (distinct, ordered mtimes); minAge counts from when a file appeared
# (max(mtime, ctime)), so the projects here use minAgeSeconds=0
OLD = time.time() - 3600
RESULTS_MD = BENCH / "RESULTS.md"
WATCH_WORK = WORK / "watch"

PIPELINE = """<pipeline id="drops" version="1.0.0" layer="raw">
  <sources>
    <csv id="drops" path="{path}">
      <watch minAgeSeconds="{min_age}"/>
    </csv>
  </sources>
  <targets><table table="drops" mode="append"/></targets>
  <checks><rowCount min="1"/></checks>
</pipeline>
"""

S3_KEY, S3_SECRET, S3_REGION = "testing", "testing", "us-east-1"


# ------------------------------------------------------------------------------- helpers


def _med(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def _setup_project(base: Path, path: str, min_age: int) -> tuple[Path, Path, Path]:
    """pipelines/, data/, home/ under `base` with one raw pipeline watching `path`, and the
    environment pointing at them (the sensor reads Settings.from_env() at every tick)."""
    pipelines, data, home = base / "pipelines", base / "data", base / "home"
    (pipelines / APP / "raw").mkdir(parents=True, exist_ok=True)
    data.mkdir(parents=True, exist_ok=True)
    home.mkdir(parents=True, exist_ok=True)
    (pipelines / APP / "raw" / "drops.xml").write_text(PIPELINE.format(path=path, min_age=min_age))
    os.environ.update(
        DATAHUB_PIPELINES_DIR=str(pipelines), DATAHUB_DATA_DIR=str(data), DATAHUB_HOME=str(home)
    )
    for name in ("DATAHUB_CATALOG_URI", "DATAHUB_WAREHOUSE"):
        os.environ.pop(name, None)
    return pipelines, data, home


def _instance(base: Path) -> dg.DagsterInstance:
    """A fresh SQLite instance configured by the repo's dagster.yaml (as `make setup`)."""
    folder = base / "dagster"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    shutil.copy(ROOT / "dagster.yaml", folder / "dagster.yaml")
    return dg.DagsterInstance.from_config(str(folder))


def _definitions(pipelines: Path, s3: dg.ConfigurableResource | None = None):
    project = load_project(pipelines)
    sensors = watch_sensors(project)
    assert len(sensors) == 1, [s.name for s in sensors]
    resources = deployment.resources()
    if s3 is not None:
        resources["s3"] = s3
    defs = dg.Definitions(assets=build_assets(project), sensors=sensors, resources=resources)
    return project, defs, defs.resolve_sensor_def(sensors[0].name)


class Ticker:
    """Evaluates the sensor as the daemon's code server would, carrying the cursor."""

    def __init__(
        self,
        defs: dg.Definitions,
        sensor: dg.SensorDefinition,
        instance: dg.DagsterInstance,
        server_cpu=None,
    ) -> None:
        self.defs, self.sensor, self.instance = defs, sensor, instance
        self.server_cpu = server_cpu or (lambda: 0.0)
        self.cpu: list[float] = []  # CPU s of this process per tick (the sensor's own work)
        self.server: list[float] = []  # CPU s of the S3 server per tick
        # what the code server passes (dagster._grpc.impl): the top-level resources the
        # sensor requires, built inside the evaluation context
        top = defs.get_repository_def().get_top_level_resources()
        self.resources = {k: v for k, v in top.items() if k in sensor.required_resource_keys}

    def tick(self, cursor: str | None):
        server, cpu, start = self.server_cpu(), time.process_time(), time.perf_counter()
        with dg.build_sensor_context(
            instance=self.instance,
            cursor=cursor,
            definitions=self.defs,
            sensor_name=self.sensor.name,
            resources=self.resources,
        ) as context:
            data = self.sensor.evaluate_tick(context)
        wall = time.perf_counter() - start
        self.cpu.append(time.process_time() - cpu)
        self.server.append(self.server_cpu() - server)
        return wall, data

    def fill_directly(self, infos, batch_size: int) -> str:
        """The cursor the fill ticks would leave (every listed file in a batch of
        `batch_size`, each batch's run in progress), built without ticking."""
        from datahub_assets.ingest.planner import short_fingerprint
        from datahub_assets.orchestration.sensors import BATCH_TAG, WATCH_TAG

        cursor, at = WatchCursor(), time.time()
        infos = sorted(infos, key=lambda i: (i.modified, i.path))
        for start in range(0, len(infos), batch_size):
            batch_id = uuid.uuid4().hex[:20]
            cursor.batches[batch_id] = {
                "at": at,
                "files": [short_fingerprint(i) for i in infos[start : start + batch_size]],
            }
            self.instance.add_run(
                DagsterRun(
                    job_name="__ASSET_JOB",
                    run_id=str(uuid.uuid4()),
                    run_config=None,
                    tags={WATCH_TAG: self.sensor.name, BATCH_TAG: batch_id},
                    status=dg.DagsterRunStatus.STARTED,
                )
            )
        return cursor.dumps()

    def register(self, requests, status: dg.DagsterRunStatus) -> None:
        """Record requested runs in the instance (STARTED: in progress; SUCCESS: done)."""
        for request in requests:
            self.instance.add_run(
                DagsterRun(
                    job_name="__ASSET_JOB",
                    run_id=str(uuid.uuid4()),
                    run_config=None,
                    tags=dict(request.tags),
                    status=status,
                )
            )


def _files_of(request) -> dict[str, list[str]]:
    (op,) = request.run_config["ops"].values()
    return op["config"]["files"]


def _request_files(requests) -> int:
    return sum(len(paths) for r in requests for paths in _files_of(r).values())


# ------------------------------------------------------------------------------- landing


def _write_local_files(folder: Path, n: int) -> float:
    """n tiny CSVs with an old mtime (reused when the folder already holds exactly n)."""
    folder.mkdir(parents=True, exist_ok=True)
    existing = sum(1 for e in os.scandir(folder) if e.name.endswith(".csv"))
    if existing == n:
        return 0.0
    shutil.rmtree(folder)
    folder.mkdir(parents=True)
    start = time.perf_counter()
    for i in range(n):
        path = folder / f"f{i:06d}.csv"
        path.write_text(f"id,v\n{i},a\n")
        os.utime(path, (OLD + i * 1e-3, OLD + i * 1e-3))
    return time.perf_counter() - start


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MotoServer:
    """moto's S3 server (ThreadedMotoServer, as in tests/s3.py) in a child process of its own,
    so it does not share this process's GIL (a real S3 is remote too). The child also fills
    buckets through moto's backend directly: puts over HTTP run at ~190 objects/s here."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log = (WATCH_WORK / "moto.log").open("w")  # noqa: SIM115 - closed by stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.watch", "_moto", "--port", str(self.port)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        ready = self.proc.stdout.readline()
        if not ready.startswith("ready"):
            self.stop()
            raise RuntimeError(f"moto server did not start (log {self.log.name})")

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=S3_REGION,
            aws_access_key_id=S3_KEY,
            aws_secret_access_key=S3_SECRET,
            config=Config(s3={"addressing_style": "path"}),
        )

    def resource(self):
        from dagster_aws.s3 import S3Resource

        return S3Resource(
            endpoint_url=self.endpoint,
            region_name=S3_REGION,
            aws_access_key_id=S3_KEY,
            aws_secret_access_key=S3_SECRET,
        )

    def populate(self, bucket: str, n: int) -> float:
        """`n` tiny CSV objects `landing/f<i>.csv` in a new bucket; seconds taken."""
        self.client().create_bucket(Bucket=bucket)
        self.proc.stdin.write(f"populate {bucket} {n}\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().split()
        if not answer or answer[0] != "ok":
            raise RuntimeError(f"populating {bucket} failed: {answer} (log {self.log.name})")
        return float(answer[1])

    def cpu_s(self) -> float:
        """CPU seconds the server process has used so far (user + system)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def serve_moto(port: int) -> int:
    """The child of MotoServer: serve S3 on `port`; fill buckets on `populate <bucket> <n>`."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    print("ready", flush=True)
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["global"]
    try:
        for line in sys.stdin:
            _, bucket, n = line.split()
            start = time.perf_counter()
            for i in range(int(n)):
                backend.put_object(bucket, f"landing/f{i:06d}.csv", f"id,v\n{i},a\n".encode())
            print(f"ok {time.perf_counter() - start:.3f}", flush=True)
    finally:
        server.stop()
    return 0


# ------------------------------------------------------------------------------- tick


def _enable_events(moto: MotoServer, bucket: str) -> None:
    """S3 event notifications of `bucket` into a new SQS queue of moto's server, and the
    environment that makes `S3Store.list` use them (`ingest.s3_events`)."""
    import boto3

    from datahub_assets.ingest import s3_events

    sqs = boto3.client(
        "sqs",
        endpoint_url=moto.endpoint,
        region_name=S3_REGION,
        aws_access_key_id=S3_KEY,
        aws_secret_access_key=S3_SECRET,
    )
    url = s3_events.configure_bucket(moto.client(), sqs, bucket, f"{bucket}-events")
    s3_events._QUEUES.clear()
    s3_events.for_queue(url, sqs)
    os.environ[s3_events.QUEUE_ENV] = url


def _disable_events() -> None:
    from datahub_assets.ingest import s3_events

    os.environ.pop(s3_events.QUEUE_ENV, None)
    s3_events._QUEUES.clear()


def tick_case(
    kind: str,
    n: int,
    ticks: int,
    fill: str,
    moto: MotoServer | None = None,
    populate_s: float = 0.0,
    events: bool = False,
) -> dict:
    base = WATCH_WORK / "tick" / f"{kind}_{n}"
    if kind == "local":
        pipelines, data, _ = _setup_project(base, "landing/drops/*.csv", min_age=0)
        populate_s = _write_local_files(data / APP / "landing" / "drops", n)
        s3 = None
    else:
        assert moto is not None
        pipelines, _, _ = _setup_project(base, f"s3://watch-{n}/landing/*.csv", min_age=0)
        s3 = moto.resource()
    project, defs, sensor = _definitions(pipelines, s3)
    max_files = project.pipelines[0].pipeline.sources[0].watch.max_files_per_run
    instance = _instance(base)
    ticker = Ticker(defs, sensor, instance, moto.cpu_s if moto else None)
    pattern = (
        f"s3://watch-{n}/landing/*.csv"
        if kind == "s3"
        else str(base / "data" / APP / "landing" / "drops" / "*.csv")
    )
    store = store_for(pattern, s3.get_client if s3 else None)

    _disable_events()  # the bare listing is always a full listing
    list_times, list_cpu = [], []
    for _ in range(ticks):
        cpu, start = time.process_time(), time.perf_counter()
        infos = list(store.list(pattern))
        list_times.append(time.perf_counter() - start)
        list_cpu.append(time.process_time() - cpu)
    assert len(infos) == n, (len(infos), n)
    if events:  # from here on ticks answer from the view (the first one lists fully)
        assert moto is not None
        _enable_events(moto, f"watch-{n}")
        # the queue is part of the settings read when the definitions load: build them again
        project, defs, sensor = _definitions(pipelines, s3)
        ticker = Ticker(defs, sensor, instance, moto.cpu_s)

    first = [ticker.tick(None) for _ in range(ticks)]
    first_cpu, first_server = ticker.cpu[:], ticker.server[:]
    first_data = first[-1][1]
    first_payload = serialize_value(first_data)

    # fill: every file in flight, each batch's run in progress in the instance
    cursor, fill_times, fill_runs = None, [], 0
    if fill == "direct":
        cursor = ticker.fill_directly(infos, max_files)
        fill_runs = -(-n // max_files)
    else:  # tick, carrying the cursor and registering the requested runs, until none is asked
        while True:
            elapsed, data = ticker.tick(cursor)
            cursor = data.cursor
            if not data.run_requests:
                break
            fill_times.append(round(elapsed, 3))
            fill_runs += len(data.run_requests)
            ticker.register(data.run_requests, dg.DagsterRunStatus.STARTED)
    in_flight = len(WatchCursor.parse(cursor).in_flight())
    assert in_flight == n, (in_flight, n)

    steady = []
    ticker.cpu.clear()
    ticker.server.clear()
    for _ in range(ticks):
        elapsed, data = ticker.tick(cursor)
        assert not data.run_requests, "a steady tick requested runs"
        cursor = data.cursor
        steady.append(elapsed)
    relist_s = None
    if events:  # the fallback: a tick whose view is due for its full listing
        from datahub_assets.ingest import s3_events

        (views,) = s3_events._QUEUES.values()
        views.relist_seconds = 0
        relist_s = round(ticker.tick(cursor)[0], 3)
        views.relist_seconds = s3_events.DEFAULT_RELIST_SECONDS
        _disable_events()
    steady_payload = serialize_value(data)
    start = time.perf_counter()
    serialize_value(data)
    serialize_s = time.perf_counter() - start
    instance.dispose()

    result = {
        "store": kind,
        "files": n,
        "populate_s": round(populate_s, 1),
        "fill": fill,
        "list_s": _med(list_times),
        "list_cpu_s": _med(list_cpu),
        "first_tick_s": _med([t for t, _ in first]),
        "first_tick_runs": [round(t, 3) for t, _ in first],
        "first_tick_cpu_s": _med(first_cpu),
        "first_tick_server_cpu_s": _med(first_server),
        "first_tick_run_requests": len(first_data.run_requests),
        "first_tick_files_requested": _request_files(first_data.run_requests),
        "first_tick_cursor_bytes": len(first_data.cursor or ""),
        "first_tick_payload_bytes": len(first_payload),
        "fill_ticks_s": fill_times,
        "fill_runs_registered": fill_runs,
        "steady_tick_s": _med(steady),
        "steady_tick_runs": [round(t, 3) for t in steady],
        "steady_tick_cpu_s": _med(ticker.cpu),
        "steady_tick_server_cpu_s": _med(ticker.server),
        "steady_cursor_bytes": len(cursor or ""),
        "steady_payload_bytes": len(steady_payload),
        "steady_serialize_s": round(serialize_s, 3),
        "in_flight": in_flight,
        "events": events,
        "relist_tick_s": relist_s,
    }
    result["first_ratio"] = round(result["first_tick_s"] / TARGET_TICK_S, 3)
    result["steady_ratio"] = round(result["steady_tick_s"] / TARGET_TICK_S, 3)
    result["meets_target"] = result["steady_tick_s"] < TARGET_TICK_S
    return result


def run_tick(args: argparse.Namespace) -> int:
    WATCH_WORK.mkdir(parents=True, exist_ok=True)
    before = machine()
    cases: list[dict] = []
    for n in args.sizes:
        print(f"-- local, {n} files", flush=True)
        cases.append(tick_case("local", n, args.ticks, args.fill))
        _print_tick([cases[-1]])
    if args.s3_sizes:
        moto = MotoServer()
        try:
            for n in sorted(args.s3_sizes):
                print(f"-- s3 (moto), populating {n} objects", flush=True)
                populate_s = moto.populate(f"watch-{n}", n)
                print(f"   {populate_s:.1f} s", flush=True)
                cases.append(
                    tick_case(
                        "s3", n, args.ticks, args.s3_fill, moto, populate_s, events=args.s3_events
                    )
                )
                _print_tick([cases[-1]])
        finally:
            moto.stop()
    result = {
        "benchmark": "watch-tick",
        "date": now(),
        "revision": revision(),
        "target_s": TARGET_TICK_S,
        "cases": cases,
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "machine_before": before,
        "machine_after": machine(),
    }
    write_json(WORK / "results" / "watch_tick.json", result)
    print()
    _print_tick(cases)
    if args.write:
        _write_tick(result)
    return 0 if all(c["meets_target"] for c in cases if c["files"] <= 100_000) else 1


def _print_tick(cases: list[dict]) -> None:
    print(
        f"{'store':<6}{'files':>8}{'list s':>8}{'first s':>9}{'runs':>6}{'req files':>10}"
        f"{'steady s':>10}{'/ 5 s':>7}{'cpu s':>7}{'srv cpu':>8}{'cursor B':>11}"
        f"{'payload B':>11}"
    )
    for c in cases:
        print(
            f"{c['store']:<6}{c['files']:>8}{c['list_s']:>8.3f}{c['first_tick_s']:>9.3f}"
            f"{c['first_tick_run_requests']:>6}{c['first_tick_files_requested']:>10}"
            f"{c['steady_tick_s']:>10.3f}{c['steady_ratio']:>7.3f}"
            f"{c['steady_tick_cpu_s']:>7.2f}{c['steady_tick_server_cpu_s']:>8.2f}"
            f"{c['steady_cursor_bytes']:>11}{c['steady_payload_bytes']:>11}",
            flush=True,
        )


# ------------------------------------------------------------------------------- burst


def _write_burst_files(folder: Path, n: int, rows: int, first_id: int = 0) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        path = folder / f"f{i:06d}.csv"
        start = first_id + i * rows
        body = "order_id,amount\n" + "".join(f"{start + r},{r + 1}.5\n" for r in range(rows))
        path.write_text(body)
        os.utime(path, (OLD + i * 1e-3, OLD + i * 1e-3))
        out.append(path)
    return out


SPARK_CONF: dict[str, str] = {}  # --spark-conf: what-if settings for this session only
ENGINE: dict[str, str | None] = {"name": None}  # --engine: spark, duckdb or None (= Spark)


def _spark_and_catalog():
    from datahub_resources.iceberg import load_catalog
    from datahub_resources.settings import Settings

    settings = Settings.from_env()
    if ENGINE["name"] == "duckdb":
        return None, settings, load_catalog(settings)  # no Spark session on DuckDB
    from datahub_resources.spark import connect

    spark = connect()
    for key, value in SPARK_CONF.items():
        spark.conf.set(key, value)
    return spark, settings, load_catalog(settings)


@contextmanager
def _ctx(spark, settings, run_id: str):
    """The run's ExecContext: on the Spark session, or on a DuckDB engine opened for this run
    (and closed after), as the factory does for a step."""
    from datahub_assets.execute.context import ExecContext

    if ENGINE["name"] != "duckdb":
        yield ExecContext(
            spark=spark, settings=settings, app=APP, run_id=run_id, run_date=date.today()
        )
        return
    from datahub_assets.engines.duckdb.session import duckdb_engine

    engine = duckdb_engine(settings)
    try:
        yield ExecContext(
            spark=engine.session,
            settings=settings,
            app=APP,
            run_id=run_id,
            run_date=date.today(),
            engine=engine,
            engine_reason="bench --engine duckdb",
        )
    finally:
        engine.connection.close()


def single_file_runs(runs: int, rows: int) -> dict:
    """The one-run-per-file baseline: 1 warm-up + `runs` timed runs of one file each."""
    from datahub_assets.execute.runner import run_pipeline

    base = WATCH_WORK / "single"
    shutil.rmtree(base, ignore_errors=True)
    pipelines, data, _ = _setup_project(base, "landing/orders/*.csv", min_age=0)
    files = _write_burst_files(data / APP / "landing" / "orders", runs + 1, rows)
    spark, settings, catalog = _spark_and_catalog()
    (spec,) = load_project(pipelines).pipelines
    times = []
    for i, path in enumerate(files):
        start = time.perf_counter()
        with _ctx(spark, settings, f"single-{i}") as ctx:
            run_pipeline(spec, ctx, catalog, files={"drops": [str(path)]})
        times.append(time.perf_counter() - start)
        assert not path.exists(), f"{path} was not moved to processed/"
    return {
        "warmup_s": round(times[0], 3),
        "runs_s": [round(t, 3) for t in times[1:]],
        "mean_s": round(statistics.mean(times[1:]), 3),
    }


def burst(n: int, rows: int) -> dict:
    from datahub_assets.execute.runner import run_pipeline
    from datahub_assets.ingest.ledger import ledger_ref, read_ledger

    base = WATCH_WORK / "burst"
    shutil.rmtree(base, ignore_errors=True)
    pipelines, data, _ = _setup_project(base, "landing/orders/*.csv", min_age=0)
    landing = data / APP / "landing" / "orders"
    start = time.perf_counter()
    _write_burst_files(landing, n, rows)
    write_s = time.perf_counter() - start
    spark, settings, catalog = _spark_and_catalog()
    project, defs, sensor = _definitions(pipelines)
    (spec,) = project.pipelines
    instance = _instance(base)
    ticker = Ticker(defs, sensor, instance)

    cursor, tick_times, runs, empty_ticks = None, [], [], 0
    start = time.perf_counter()
    while True:
        elapsed, data_ = ticker.tick(cursor)
        tick_times.append(round(elapsed, 3))
        cursor = data_.cursor
        for request in data_.run_requests:
            run_id = str(uuid.uuid4())
            t0 = time.perf_counter()
            with _ctx(spark, settings, run_id) as ctx:
                outcomes = run_pipeline(spec, ctx, catalog, files=_files_of(request))
                meta = ctx.drops.metadata()
            runs.append(
                {
                    "s": round(time.perf_counter() - t0, 3),
                    "files": int(request.tags["datahub/files"]),
                    "rows": sum(o.rows or 0 for o in outcomes),
                    "ingested": meta["files_ingested"],
                    "rejected": meta["files_rejected"],
                    "duplicates": meta["files_already_ingested"],
                    "left": meta["files_left_in_landing"],
                }
            )
            ticker.register([request], dg.DagsterRunStatus.SUCCESS)
            print(f"   run {len(runs)}: {runs[-1]}", flush=True)
        if not any(landing.glob("*.csv")):
            break
        if not data_.run_requests:
            empty_ticks += 1
            if empty_ticks > 3:
                raise RuntimeError(
                    f"landing still holds files and the sensor asks for none: {data_.skip_message}"
                )
    total_s = time.perf_counter() - start
    instance.dispose()

    table = (
        catalog.load_table((f"{APP}_raw", "drops"))
        .scan(selected_fields=("order_id", "_source_file"))
        .to_arrow()
    )
    ledger = read_ledger(
        catalog.load_table((ledger_ref(APP, "drops").namespace, ledger_ref(APP, "drops").table))
    )
    processed = sum(1 for _ in (data / APP / "processed").rglob("*.csv"))
    result = {
        "files": n,
        "rows_per_file": rows,
        "write_files_s": round(write_s, 1),
        "runs": len(runs),
        "ticks": len(tick_times),
        "tick_s": tick_times,
        "total_s": round(total_s, 1),
        "files_per_s": round(n / total_s, 1),
        "run_s": {
            "min": min(r["s"] for r in runs),
            "median": _med([r["s"] for r in runs]),
            "max": max(r["s"] for r in runs),
        },
        "runs_detail": runs,
        "table_rows": table.num_rows,
        "distinct_ids": len(set(table["order_id"].to_pylist())),
        "distinct_source_files": len(set(table["_source_file"].to_pylist())),
        "ledger_rows": len(ledger),
        "ledger_ingested": sum(1 for e in ledger if e.status == "ingested"),
        "landing_left": sum(1 for _ in landing.glob("*.csv")),
        "processed_files": processed,
    }
    result["verified"] = (
        result["table_rows"] == n * rows == result["distinct_ids"]
        and result["distinct_source_files"] == n
        and result["ledger_rows"] == result["ledger_ingested"] == n
        and result["landing_left"] == 0
        and processed == n
    )
    return result


def _engine_ratio(out: dict) -> None:
    """duckdb / spark total seconds when the other engine's result is there."""
    engine = out["engine"]
    if engine not in ("spark", "duckdb"):
        return
    other = "spark" if engine == "duckdb" else "duckdb"
    path = WORK / "results" / f"watch_burst_{other}.json"
    if not path.exists():
        return
    theirs = json.loads(path.read_text())
    totals = {engine: out["total_s"], other: theirs["total_s"]}
    out["vs_other_engine"] = {
        "other": other,
        "other_total_s": theirs["total_s"],
        "other_date": theirs["date"],
        "other_revision": theirs["revision"],
        "ratio_duckdb_over_spark": round(totals["duckdb"] / totals["spark"], 4),
        "ratio_median_run_duckdb_over_spark": round(
            (out if engine == "duckdb" else theirs)["run_s"]["median"]
            / (theirs if engine == "duckdb" else out)["run_s"]["median"],
            4,
        ),
    }


def run_burst(args: argparse.Namespace) -> int:
    WATCH_WORK.mkdir(parents=True, exist_ok=True)
    SPARK_CONF.update(item.split("=", 1) for item in args.spark_conf)
    ENGINE["name"] = args.engine
    before = machine()
    print(f"-- baseline: {args.single_runs} one-file runs (+1 warm-up)", flush=True)
    single = single_file_runs(args.single_runs, args.rows)
    print(f"   {single}", flush=True)
    print(f"-- burst: {args.files} files x {args.rows} rows", flush=True)
    result = burst(args.files, args.rows)
    baseline_s = round(single["mean_s"] * args.files, 1)
    out = {
        "benchmark": "watch-burst",
        "date": now(),
        "revision": revision(),
        "spark_conf": SPARK_CONF,
        "engine": args.engine or "spark (default)",
        **result,
        "single_file_run": single,
        "one_run_per_file_s": baseline_s,
        "ratio": round(result["total_s"] / baseline_s, 4),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "machine_before": before,
        "machine_after": machine(),
    }
    _engine_ratio(out)
    name = f"watch_burst_{args.engine}.json" if args.engine else "watch_burst.json"
    write_json(WORK / "results" / name, out)
    print()
    print(
        f"files {out['files']}, runs {out['runs']} (ticks {out['ticks']}), total "
        f"{out['total_s']} s, {out['files_per_s']} files/s; run s min/median/max "
        f"{out['run_s']['min']}/{out['run_s']['median']}/{out['run_s']['max']}"
    )
    print(
        f"table rows {out['table_rows']} (distinct ids {out['distinct_ids']}, files "
        f"{out['distinct_source_files']}), ledger {out['ledger_rows']} "
        f"({out['ledger_ingested']} ingested), processed {out['processed_files']}, "
        f"left in landing {out['landing_left']}: verified {out['verified']}"
    )
    print(
        f"one run per file: {single['mean_s']} s x {out['files']} = {baseline_s} s; "
        f"ratio {out['ratio']}"
    )
    if "vs_other_engine" in out:
        print(f"engines: {json.dumps(out['vs_other_engine'])}")
    if args.write:
        _write_burst(out)
    return 0 if out["verified"] else 1


# ------------------------------------------------------------------------------- RESULTS.md

SECTION = "## File drops (issue #4)"
TICK_HEADING = "### Sensor tick over a backlog (`bench/run.py watch-tick`)"
BURST_HEADING = "### Burst of small files (`bench/run.py watch-burst`)"
TICK_TABLE = (
    "| date (UTC) | revision | store | files | list s | first tick s (median of 3) | run "
    "requests × files | steady tick s (median of 3) | ratio steady / 5 s | steady tick CPU s: "
    "sensor / S3 server | cursor bytes (steady) | tick result bytes | load | note |\n"
    "|---|---|---|---:|---:|---:|---|---:|---:|---|---:|---:|---|---|"
)
BURST_TABLE = (
    "| date (UTC) | revision | files × rows | runs (ticks) | total s | files / s | run s "
    "min / median / max | 1-file run s (mean of 5) | one run per file s (extrapolated) | "
    "ratio | verified | load | note |\n"
    "|---|---|---|---|---:|---:|---|---:|---:|---:|---|---|---|"
)
SKELETON = f"""
{SECTION}

Targets: a sensor tick over 100,000 files already seen < 5 s (Dagster's tick limit is 60 s);
a burst of 10,000 new small files fully ingested without one run per file.

{TICK_HEADING}

{TICK_TABLE}

{BURST_HEADING}

{BURST_TABLE}
"""


def _load(result: dict) -> str:
    b, a = result["machine_before"]["loadavg"][0], result["machine_after"]["loadavg"][0]
    return f"{b} → {a}"


def _stamp(result: dict) -> str:
    return result["date"].replace("T", " ")[:16]


def _append_rows(heading: str, table: str, rows: list[str]) -> None:
    """Append `rows` to the first table under `heading` in the file-drop section (created
    when missing); everything else in RESULTS.md is left as it is."""
    text = RESULTS_MD.read_text()
    if SECTION not in text:
        text = text.rstrip("\n") + "\n" + SKELETON
    lines = text.split("\n")
    section = lines.index(SECTION)
    end = next(
        (i for i in range(section + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
    )
    try:
        at = lines.index(heading, section, end)
    except ValueError:
        lines[end:end] = [heading, "", *table.split("\n"), ""]
        at = end
    header = next(i for i in range(at, len(lines)) if lines[i].startswith("|"))
    last = header
    while last + 1 < len(lines) and lines[last + 1].startswith("|"):
        last += 1
    lines[last + 1 : last + 1] = rows
    RESULTS_MD.write_text("\n".join(lines))
    print(f"appended {len(rows)} row(s) to {RESULTS_MD} ({heading})")


def _write_tick(result: dict) -> None:
    rows = []
    for c in result["cases"]:
        store = "local disk" if c["store"] == "local" else "S3 (moto)"
        rows.append(
            f"| {_stamp(result)} | {result['revision']} | {store} | {c['files']:,} | "
            f"{c['list_s']} | {c['first_tick_s']} | {c['first_tick_run_requests']} × 500 "
            f"({c['first_tick_files_requested']:,} files) | **{c['steady_tick_s']}** | "
            f"{c['steady_ratio']} | {c['steady_tick_cpu_s']} / "
            f"{c['steady_tick_server_cpu_s'] if c['store'] == 's3' else '–'} | "
            f"{c['steady_cursor_bytes']:,} | {c['steady_payload_bytes']:,} | {_load(result)} | "
            f"{'in flight built directly' if c['fill'] == 'direct' else ''}"
            + (
                f"; S3 events (SQS): view kept by notifications, the fallback full-listing "
                f"tick {c['relist_tick_s']} s"
                if c.get("events")
                else ""
            )
            + " |"
        )
    _append_rows(TICK_HEADING, TICK_TABLE, rows)


def _write_burst(r: dict) -> None:
    rs, single = r["run_s"], r["single_file_run"]
    verified = (
        f"{r['table_rows']:,} rows, {r['ledger_rows']:,} ledger, "
        f"{r['processed_files']:,} processed, {r['landing_left']} left: "
        f"{'yes' if r['verified'] else 'NO'}"
    )
    row = (
        f"| {_stamp(r)} | {r['revision']} | {r['files']:,} × {r['rows_per_file']} | "
        f"{r['runs']} ({r['ticks']}) | **{r['total_s']}** | {r['files_per_s']} | "
        f"{rs['min']} / {rs['median']} / {rs['max']} | {single['mean_s']} | "
        f"{r['one_run_per_file_s']:,} | **{r['ratio']}** | {verified} | {_load(r)} | "
        + (f"engine {r['engine']} " if r.get("engine") in ("spark", "duckdb") else "")
        + "".join(f"what-if: `{k}={v}` " for k, v in r.get("spark_conf", {}).items())
        + "|"
    )
    _append_rows(BURST_HEADING, BURST_TABLE, [row])


# ------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="benchmark", required=True)
    tick = sub.add_parser("tick", help="sensor tick over a backlog of landed files")
    tick.add_argument(
        "--sizes",
        type=int,
        nargs="*",
        default=[1_000, 10_000, 100_000],
        help="local landing folder sizes",
    )
    tick.add_argument(
        "--s3-sizes",
        type=int,
        nargs="*",
        default=[1_000, 10_000, 100_000],
        help="S3 (moto) object counts; none to skip S3",
    )
    tick.add_argument(
        "--fill",
        choices=("ticks", "direct"),
        default="ticks",
        help="local: reach 'every file in flight' by ticking (the real path) or "
        "by building that cursor directly",
    )
    tick.add_argument(
        "--s3-fill",
        choices=("ticks", "direct"),
        default="direct",
        help="the same for S3 (default direct: on moto every tick over 100,000 "
        "objects lists for ~70 s, and filling takes 10 ticks)",
    )
    tick.add_argument("--ticks", type=int, default=3, help="ticks per median")
    tick.add_argument(
        "--s3-events",
        action="store_true",
        help="S3: the bucket's event notifications go to an SQS queue and the "
        "store answers from the view they keep (DATAHUB_S3_EVENTS_QUEUE_URL)",
    )
    tick.add_argument("--write", action="store_true", help="append rows to bench/RESULTS.md")
    tick.set_defaults(run=run_tick)
    b = sub.add_parser("burst", help="a burst of small files ingested end to end")
    b.add_argument("--files", type=int, default=10_000)
    b.add_argument("--rows", type=int, default=3, help="rows per file")
    b.add_argument(
        "--single-runs",
        type=int,
        default=5,
        help="1-file runs timed for the one-run-per-file baseline",
    )
    b.add_argument(
        "--spark-conf",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a Spark SQL setting for this benchmark's session (what-if runs)",
    )
    b.add_argument(
        "--engine",
        choices=("spark", "duckdb"),
        default=None,
        help="the engine every run uses (default: Spark, as before)",
    )
    b.add_argument("--write", action="store_true", help="append a row to bench/RESULTS.md")
    b.set_defaults(run=run_burst)
    moto = sub.add_parser("_moto", help=argparse.SUPPRESS)
    moto.add_argument("--port", type=int, required=True)
    moto.set_defaults(run=lambda a: serve_moto(a.port))
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
