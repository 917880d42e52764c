"""File drops through the runner: validation, lineage columns, processed/rejected moves, the
ledger, and exactly-once under faults (crash after commit, retry, racing runs, re-drops)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from datahub_assets.execute import drops
from datahub_assets.execute.runner import PipelineRunError, run_pipeline
from datahub_assets.ingest.ledger import ledger_ref
from datahub_assets.spec.loader import load_project
from datahub_assets.spec.models import TableRef
from datahub_resources.iceberg import load_catalog
from tests.support.context import exec_context
from tests.support.iceberg import frame_rows

pytestmark = pytest.mark.spark

PIPELINE = """<pipeline id="orders_raw" version="1.0.0" layer="raw">
  <sources>
    <csv id="orders" path="{path}"{schema}>
      <watch minAgeSeconds="{min_age}" maxSizeBytes="1000" maxFilesPerRun="{per_run}"/>
    </csv>
  </sources>
  <targets><table table="orders" mode="append"/></targets>
  <checks><rowCount min="1"/></checks>
</pipeline>
"""
SCHEMA = """{"type": "record", "name": "orders", "fields": [
  {"name": "order_id", "type": "long"}, {"name": "amount", "type": "double"}]}"""
OLD = time.time() - 3600


@pytest.fixture(autouse=True)
def _age_by_mtime(monkeypatch):
    """Files backdated with os.utime count as old here (minAgeSeconds counts from the ctime
    the utime sets: tests/unit/test_ingest_appeared.py)."""
    from tests.integration.test_watch_sensor import age_by_mtime

    age_by_mtime(monkeypatch)


def _project(settings, path="landing/orders/*.csv", schema=False, min_age=5, per_run=500):
    app = settings.pipelines_dir / "shop"
    (app / "raw").mkdir(parents=True, exist_ok=True)
    attr = ' schemaRef="schemas/orders.avsc"' if schema else ""
    text = PIPELINE.format(path=path, schema=attr, min_age=min_age, per_run=per_run)
    (app / "raw" / "orders.xml").write_text(text)
    if schema:
        (app / "schemas").mkdir(exist_ok=True)
        (app / "schemas" / "orders.avsc").write_text(SCHEMA)
    (spec,) = load_project(settings.pipelines_dir).pipelines
    return spec


def _landing(settings) -> Path:
    folder = settings.data_dir / "shop" / "landing" / "orders"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _drop(folder: Path, name: str, text: str, mtime: float = OLD) -> Path:
    path = folder / name
    path.write_text(text)
    os.utime(path, (mtime, mtime))
    return path


def _ctx(spark, settings, run_id="run-1"):
    return exec_context(spark, settings, run_id=run_id, run_date=date(2026, 11, 22))


def _rows(spark, catalog):
    ref = TableRef(app="shop", layer="raw", table="orders")
    columns = ("order_id", "_source_file", "_run_id")
    return frame_rows(spark, catalog, ref, order=None, columns=columns, missing_ok=True)


def _ledger(catalog):
    ref = ledger_ref("shop", "orders_raw")
    table = catalog.load_table((ref.namespace, ref.table))
    return sorted((r["path"], r["status"]) for r in table.scan().to_arrow().to_pylist())


def test_a_batch_is_validated_ingested_with_lineage_and_moved(spark, settings):
    spec = _project(settings)
    landing = _landing(settings)
    a = _drop(landing, "a.csv", "order_id,amount\n1,10\n2,20\n")
    b = _drop(landing, "b.csv", "order_id,amount\n3,30\n")
    empty = _drop(landing, "empty.csv", "")
    bad_sum = _drop(landing, "c.csv", "order_id,amount\n4,40\n")
    (landing / "c.csv.sha256").write_text("0" * 64 + "  c.csv\n")
    big = _drop(landing, "big.csv", "order_id,amount\n" + "5,50\n" * 300)
    young = _drop(landing, "young.csv", "order_id,amount\n6,60\n", mtime=time.time())
    catalog = load_catalog(settings)
    ctx = _ctx(spark, settings)

    (outcome,) = run_pipeline(spec, ctx, catalog)

    assert _rows(spark, catalog) == [
        ("1", str(a), "run-1"),
        ("2", str(a), "run-1"),
        ("3", str(b), "run-1"),
    ]
    assert outcome.rows == 3
    assert outcome.extra["files_ingested"] == 2
    assert outcome.extra["files_rejected"] == 3
    day = settings.data_dir / "shop" / "processed" / "2026-11-22" / "orders"
    assert sorted(p.name for p in day.iterdir()) == ["a.csv", "b.csv"]
    rejected = settings.data_dir / "shop" / "rejected" / "2026-11-22" / "orders"
    reasons = {p.name: json.loads(p.read_text()) for p in rejected.glob("*.reason.json")}
    assert {name: r["rule"] for name, r in reasons.items()} == {
        "empty.csv.reason.json": "empty",
        "c.csv.reason.json": "checksum",
        "big.csv.reason.json": "too_large",
    }
    assert reasons["c.csv.reason.json"]["run_id"] == "run-1"
    assert (rejected / "c.csv").exists()
    assert (rejected / "c.csv.sha256").exists()
    assert not any(p.exists() for p in (a, b, empty, bad_sum, big))
    assert young.exists()  # still being written: left for a later run
    assert _ledger(catalog) == sorted(
        [
            (str(a), "ingested"),
            (str(b), "ingested"),
            (str(empty), "rejected"),
            (str(bad_sum), "rejected"),
            (str(big), "rejected"),
        ]
    )
    assert not (settings.home / "ingest" / "run-1").exists()


def test_only_the_requested_files_are_taken(spark, settings):
    spec = _project(settings)
    landing = _landing(settings)
    a = _drop(landing, "a.csv", "order_id,amount\n1,10\n")
    b = _drop(landing, "b.csv", "order_id,amount\n2,20\n")
    catalog = load_catalog(settings)
    outside = _drop(settings.data_dir, "elsewhere.csv", "order_id,amount\n9,9\n")
    run_pipeline(
        spec,
        _ctx(spark, settings),
        catalog,
        files={"orders": [str(a), str(outside), str(landing / "gone.csv")]},
    )
    assert [r[0] for r in _rows(spark, catalog)] == ["1"]
    assert b.exists()
    assert outside.exists()


def test_a_crash_between_commit_and_move_neither_loses_nor_duplicates(spark, settings):
    """A real kill: the run's process exits right after the commit, before any file moved."""
    spec = _project(settings, min_age=0)  # the child process is not patched by age_by_mtime
    landing = _landing(settings)
    a = _drop(landing, "a.csv", "order_id,amount\n1,10\n2,20\n")
    script = """
import os, sys
from datetime import date
from datahub_assets.execute import drops, runner
from datahub_assets.execute import drops
from datahub_assets.execute.context import ExecContext
from datahub_assets.spec.loader import load_project
from datahub_resources.iceberg import load_catalog
from datahub_resources.settings import Settings
from datahub_resources.spark import connect
runner.finish = lambda batch, ctx: os._exit(137)   # killed after the commit
settings = Settings.from_env()
(spec,) = load_project(settings.pipelines_dir).pipelines
ctx = ExecContext(spark=connect(), settings=settings, app="shop", run_id="killed",
                  run_date=date(2026, 11, 22))
runner.run_pipeline(spec, ctx, load_catalog(settings))
"""
    proc = subprocess.run(
        [sys.executable, "-c", script],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 137, proc.stderr[-2000:]
    catalog = load_catalog(settings)
    assert [r[:2] for r in _rows(spark, catalog)] == [("1", str(a)), ("2", str(a))]
    assert a.exists()  # committed, never moved

    assert run_pipeline(spec, _ctx(spark, settings, "after-crash"), catalog) == []
    assert [r[2] for r in _rows(spark, catalog)] == ["killed", "killed"]
    assert not a.exists()
    assert (settings.data_dir / "shop" / "processed" / "2026-11-22" / "orders" / "a.csv").exists()


def test_a_failed_commit_leaves_files_for_the_retry(spark, settings, monkeypatch):
    spec = _project(settings)
    landing = _landing(settings)
    a = _drop(landing, "a.csv", "order_id,amount\n1,10\n")
    catalog = load_catalog(settings)
    from datahub_assets.iceberg import tables as publish

    real = publish.commit_tables

    def fail(*_args, **_kwargs):
        raise RuntimeError("catalog unreachable")

    monkeypatch.setattr(publish, "commit_tables", fail)
    with pytest.raises(PipelineRunError, match="catalog unreachable"):
        run_pipeline(spec, _ctx(spark, settings, "first"), catalog)
    assert a.exists()
    assert _rows(spark, catalog) == []
    monkeypatch.setattr(publish, "commit_tables", real)
    run_pipeline(spec, _ctx(spark, settings, "retry"), catalog)
    assert _rows(spark, catalog) == [("1", str(a), "retry")]


RACER = """
import sys
from datetime import date
from datahub_assets.execute import drops
from datahub_assets.execute.context import ExecContext
from datahub_assets.execute.runner import run_pipeline
from datahub_assets.spec.loader import load_project
from datahub_resources.iceberg import load_catalog
from datahub_resources.settings import Settings
from datahub_resources.spark import connect
settings = Settings.from_env()
(spec,) = load_project(settings.pipelines_dir).pipelines
ctx = ExecContext(spark=connect(), settings=settings, app="shop", run_id=sys.argv[1],
                  run_date=date(2026, 11, 22))
try:
    run_pipeline(spec, ctx, load_catalog(settings))
except Exception as exc:
    print("FAILED", exc)
"""


@pytest.mark.parametrize("table_exists", [False, True])
def test_racing_runs_ingest_each_file_once(spark, settings, table_exists):
    """Two processes run the same pipeline over the same landed files at the same time."""
    spec = _project(settings)
    landing = _landing(settings)
    catalog = load_catalog(settings)
    expected = []
    if table_exists:
        _drop(landing, "first.csv", "order_id,amount\n100,1\n")
        run_pipeline(spec, _ctx(spark, settings, "first"), catalog)
        expected.append("100")
    for i in range(6):
        _drop(landing, f"f{i}.csv", f"order_id,amount\n{i},1\n")
    expected += [str(i) for i in range(6)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, f"race-{i}"],
            env=os.environ.copy(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    # one run committed everything, or both did (the second found the first's files in the
    # ledger), or the second failed on the first's commit and left its files for a next run
    failed = [out for out, _ in outputs if out.startswith("FAILED")]
    lost_race = ("main moved", "another run")
    assert all(any(why in out for why in lost_race) for out in failed), outputs
    if list(landing.glob("*.csv")):
        run_pipeline(spec, _ctx(spark, settings, "sweep"), catalog)  # the sensor's next run
    rows = _rows(spark, catalog)
    assert sorted(r[0] for r in rows) == sorted(expected), outputs
    assert list(landing.glob("*.csv")) == []


def test_a_changed_file_at_the_same_path_is_a_new_version(spark, settings):
    spec = _project(settings)
    landing = _landing(settings)
    _drop(landing, "a.csv", "order_id,amount\n1,10\n")
    catalog = load_catalog(settings)
    run_pipeline(spec, _ctx(spark, settings, "v1"), catalog)
    _drop(landing, "a.csv", "order_id,amount\n1,11\n2,20\n", mtime=OLD + 60)
    run_pipeline(spec, _ctx(spark, settings, "v2"), catalog)
    assert [(r[0], r[2]) for r in _rows(spark, catalog)] == [("1", "v1"), ("1", "v2"), ("2", "v2")]


def test_an_identical_redrop_is_not_ingested_twice(spark, settings):
    spec = _project(settings)
    landing = _landing(settings)
    a = _drop(landing, "a.csv", "order_id,amount\n1,10\n")
    catalog = load_catalog(settings)
    run_pipeline(spec, _ctx(spark, settings, "first"), catalog)
    _drop(landing, "a.csv", "order_id,amount\n1,10\n")  # same bytes, same mtime: cp -p
    assert run_pipeline(spec, _ctx(spark, settings, "again"), catalog) == []
    assert [r[2] for r in _rows(spark, catalog)] == ["first"]
    assert not a.exists()


def test_declared_schema_reads_reordered_columns_by_name(spark, settings):
    spec = _project(settings, schema=True)
    landing = _landing(settings)
    _drop(landing, "a.csv", "order_id,amount\n1,10.5\n")
    _drop(landing, "b.csv", "amount,order_id\n20.5,2\n")
    missing = _drop(landing, "c.csv", "order_id,total\n3,1\n")
    catalog = load_catalog(settings)
    run_pipeline(spec, _ctx(spark, settings), catalog)
    from datahub_assets.iceberg.read import read_table
    from datahub_assets.spec.models import TableRef

    df = read_table(spark, catalog, TableRef(app="shop", layer="raw", table="orders"))
    assert sorted((r["order_id"], r["amount"]) for r in df.collect()) == [(1, 10.5), (2, 20.5)]
    reason = json.loads(
        (
            settings.data_dir / "shop" / "rejected" / "2026-11-22" / "orders" / "c.csv.reason.json"
        ).read_text()
    )
    assert reason["rule"] == "schema"
    assert "amount" in reason["message"]
    assert not missing.exists()


def test_a_matching_sidecar_is_accepted_and_recorded(spark, settings):
    spec = _project(settings)
    landing = _landing(settings)
    text = "order_id,amount\n1,10\n"
    _drop(landing, "a.csv", text)
    (landing / "a.csv.sha256").write_text(hashlib.sha256(text.encode()).hexdigest() + "\n")
    catalog = load_catalog(settings)
    run_pipeline(spec, _ctx(spark, settings), catalog)
    ref = ledger_ref("shop", "orders_raw")
    (entry,) = catalog.load_table((ref.namespace, ref.table)).scan().to_arrow().to_pylist()
    assert entry["checksum"].endswith(hashlib.sha256(text.encode()).hexdigest())
    assert entry["rows"] == 1
    processed = settings.data_dir / "shop" / "processed" / "2026-11-22" / "orders"
    assert (processed / "a.csv.sha256").exists()


def test_a_batch_failing_a_blocking_check_is_rejected_with_the_check(spark, settings):
    spec = _project(settings)
    landing = _landing(settings)
    header_only = _drop(landing, "a.csv", "order_id,amount\n")
    catalog = load_catalog(settings)
    with pytest.raises(PipelineRunError, match="rowCount"):
        run_pipeline(spec, _ctx(spark, settings), catalog)
    assert not header_only.exists()
    assert _rows(spark, catalog) == []
    rejected = settings.data_dir / "shop" / "rejected" / "2026-11-22" / "orders"
    reason = json.loads((rejected / "a.csv.reason.json").read_text())
    assert reason["rule"] == "checks"
    assert "rowCount" in reason["message"]
    assert _ledger(catalog) == [(str(header_only), "rejected")]


def test_s3_drops_are_ingested_and_moved_on_a_real_s3_endpoint(spark, settings, s3_client):
    client, bucket = s3_client
    spec = _project(settings, path=s3_client.uri("landing/orders/*.csv"), min_age=0)
    client.put_object(
        Bucket=bucket, Key="landing/orders/a.csv", Body=b"order_id,amount\n1,10\n2,20\n"
    )
    client.put_object(Bucket=bucket, Key="landing/orders/b.csv", Body=b"")
    client.put_object(Bucket=bucket, Key="landing/other/c.csv", Body=b"order_id\n9\n")
    catalog = load_catalog(settings)
    ctx = _ctx(spark, settings, "s3-run")
    ctx.s3_client = lambda: client
    (outcome,) = run_pipeline(spec, ctx, catalog)
    a = s3_client.uri("landing/orders/a.csv")
    assert _rows(spark, catalog) == [("1", a, "s3-run"), ("2", a, "s3-run")]
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == [
        "landing/other/c.csv",
        "processed/2026-11-22/orders/a.csv",
        "rejected/2026-11-22/orders/b.csv",
        "rejected/2026-11-22/orders/b.csv.reason.json",
    ]
    reason = json.loads(
        client.get_object(Bucket=bucket, Key="rejected/2026-11-22/orders/b.csv.reason.json")[
            "Body"
        ].read()
    )
    assert reason["rule"] == "empty"
    assert reason["run_id"] == "s3-run"
    assert _ledger(catalog) == [
        (a, "ingested"),
        (s3_client.uri("landing/orders/b.csv"), "rejected"),
    ]
    # the same object put again (new ETag/LastModified) is a new version; a rerun finds nothing
    ctx2 = _ctx(spark, settings, "s3-rerun")
    ctx2.s3_client = lambda: client
    assert run_pipeline(spec, ctx2, catalog) == []


def test_a_run_started_by_hand_takes_the_oldest_max_files_per_run(spark, settings):
    spec = _project(settings, per_run=2)
    landing = _landing(settings)
    for i in range(3):
        _drop(landing, f"f{i}.csv", f"order_id,amount\n{i},1\n", mtime=OLD + i)
    catalog = load_catalog(settings)
    run_pipeline(spec, _ctx(spark, settings, "manual"), catalog)
    assert sorted(r[0] for r in _rows(spark, catalog)) == ["0", "1"]
    assert [p.name for p in landing.iterdir()] == ["f2.csv"]


S3_PIPELINE = """<pipeline id="{id}" version="1.0.0" layer="raw">
  <sources>
    <csv id="in" path="{path}"><watch minAgeSeconds="0"/></csv>
  </sources>
  <targets><table table="{id}" mode="append"/></targets>
</pipeline>
"""


def test_s3_pipelines_of_one_run_stage_their_copies_apart(spark, settings, s3_client):
    """Two pipelines whose sources share the id `in` and whose landing folders share a root,
    as two steps of one run: each reads its own server-side copies, and the cleanup of one
    leaves the other's in place (#19 finding 7)."""
    client, bucket = s3_client
    raw = settings.pipelines_dir / "shop" / "raw"
    raw.mkdir(parents=True)
    for pid, folder in (("orders_raw", "orders"), ("returns_raw", "returns")):
        path = s3_client.uri(f"landing/{folder}/*.csv")
        (raw / f"{pid}.xml").write_text(S3_PIPELINE.format(id=pid, path=path))
    specs = {s.pipeline.id: s for s in load_project(settings.pipelines_dir).pipelines}
    client.put_object(Bucket=bucket, Key="landing/orders/a.csv", Body=b"order_id\n1\n2\n")
    client.put_object(Bucket=bucket, Key="landing/returns/b.csv", Body=b"order_id\n70\n")
    catalog = load_catalog(settings)
    batches, frames = {}, {}
    for pid, spec in specs.items():
        ctx = _ctx(spark, settings, "same-run")
        ctx.spec, ctx.s3_client = spec, (lambda: client)
        batches[pid] = (drops.plan_batch(spec, ctx, catalog, None, lambda: client), ctx)
    for pid, (batch, ctx) in batches.items():
        frames[pid] = drops.read_drops(specs[pid].watched_sources[0], ctx, batch)
    returns = sorted((r["order_id"], r["_source_file"]) for r in frames["returns_raw"].collect())
    drops.cleanup(batches["returns_raw"][0])  # B's step ends first
    orders = sorted((r["order_id"], r["_source_file"]) for r in frames["orders_raw"].collect())
    assert returns == [("70", s3_client.uri("landing/returns/b.csv"))]
    assert orders == [("1", s3_client.uri("landing/orders/a.csv"))] + [
        ("2", s3_client.uri("landing/orders/a.csv"))
    ]
    drops.cleanup(batches["orders_raw"][0])
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert not [k for k in keys if k.startswith("_ingest/")]


def test_a_symlinked_drop_is_rejected_not_read_on_spark(spark, settings, tmp_path):
    """#19 finding 3 on the Spark engine (tests/integration/test_landing_hardening.py has the
    cases on DuckDB and the store's own)."""
    spec = _project(settings)
    landing = _landing(settings)
    a = _drop(landing, "a.csv", "order_id,amount\n1,10\n")
    secret = tmp_path / "private.csv"
    secret.write_text("order_id,amount\n666,1\n")
    os.utime(secret, (OLD, OLD))
    (landing / "b.csv").symlink_to(secret)
    os.utime(landing / "b.csv", (OLD, OLD), follow_symlinks=False)
    catalog = load_catalog(settings)
    (outcome,) = run_pipeline(spec, _ctx(spark, settings), catalog)
    assert _rows(spark, catalog) == [("1", str(a), "run-1")]
    assert outcome.extra["files_rejected"] == 1
    rejected = settings.data_dir / "shop" / "rejected" / "2026-11-22" / "orders"
    assert (rejected / "b.csv").readlink() == secret
    assert json.loads((rejected / "b.csv.reason.json").read_text())["rule"] == "symlink"
    assert secret.read_text() == "order_id,amount\n666,1\n"
