"""S3 on the DuckDB engine (no httpfs: pyarrow's S3 client registered as an fsspec filesystem,
engines/duckdb/s3.py), against Spark (S3A) on the same moto S3 server.

The whole platform is on S3 here: data paths (DATAHUB_DATA_DIR=s3://...), the Iceberg warehouse
(DATAHUB_WAREHOUSE=s3://...), file drops and CSV exports. The same pipelines run in two apps,
one per engine, and must give the same tables (pyiceberg reads them back), the same exports,
the same processed/rejected moves and the same ledger. Spark reaches the bucket through the
shared server's per-bucket S3A settings (`s3.bucket_conf`); pyiceberg and DuckDB through the AWS
environment the fixture sets."""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
from datetime import date

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datahub_assets.engines.duckdb import s3 as duckdb_s3
from datahub_assets.engines.duckdb.session import duckdb_engine
from datahub_assets.execute.context import ExecContext
from datahub_assets.execute.runner import run_pipeline
from datahub_assets.ingest.ledger import ledger_ref
from datahub_assets.spec.loader import load_project
from datahub_resources import s3
from datahub_resources.iceberg import load_catalog
from datahub_resources.settings import Settings
from tests.s3 import use_bucket_env
from tests.support.context import exec_context

pytestmark = pytest.mark.spark

RUN_DATE = date(2026, 11, 22)
APPS = {"spark": "shop_s", "duckdb": "shop_d"}
RAW = """<pipeline id="orders_raw" version="1.0.0" layer="raw">
  <sources>
    <csv id="orders" path="landing/orders/*.csv"><watch minAgeSeconds="0"/></csv>
  </sources>
  <targets><table table="orders" mode="append"/></targets>
  <checks><rowCount min="1"/></checks>
</pipeline>
"""
SILVER = """<pipeline id="orders_silver" version="1.0.0" layer="silver">
  <sources>
    <table id="orders" ref="raw.orders"/>
    <json id="rates" path="rates/*.json"/>
    <parquet id="regions" path="regions"/>
  </sources>
  <transformations>
    <cast source="orders" output="typed" types="order_id:bigint,amount:double"/>
    <join left="typed" right="rates" output="priced" type="left"
          condition="typed.country = rates.rate_country"/>
    <join left="priced" right="regions" output="placed" type="left"
          condition="priced.country = regions.code"/>
    <derive source="placed" column="amount_eur" expr="amount * coalesce(rate, 1.0)"/>
    <select source="placed" output="final"
            columns="order_id,country,region,amount,amount_eur,_source_file"/>
  </transformations>
  <targets>
    <table table="orders" source="final" mode="overwrite" partitionBy="country"/>
    <csv name="orders_export" path="service/orders_%Y" source="final" header="true"
         compression="gzip" partitionBy="region"/>
  </targets>
</pipeline>
"""


@pytest.fixture
def platform(spark, s3_client, tmp_path, monkeypatch):
    """(settings, client, bucket): data, warehouse and drops in one moto bucket."""
    client, bucket = s3_client
    use_bucket_env(monkeypatch, client)
    settings = Settings.from_env(
        {
            "DATAHUB_HOME": str(tmp_path / "home"),
            "DATAHUB_PIPELINES_DIR": str(tmp_path / "pipelines"),
            "DATAHUB_DATA_DIR": f"s3://{bucket}/data",
            "DATAHUB_WAREHOUSE": f"s3://{bucket}/warehouse",
            "DATAHUB_CATALOG_URI": f"sqlite:///{tmp_path}/catalog.db",
        }
    )
    conf = s3.bucket_conf(client, bucket)
    for key, value in conf.items():
        spark.conf.set(key, value)
    yield settings, client, bucket
    for key in conf:
        spark.conf.unset(key)


def _ctx(engine: str, spark, settings, app: str, run_id: str) -> ExecContext:
    on = spark if engine == "spark" else duckdb_engine(settings)
    return exec_context(on, settings, app=app, run_id=run_id, run_date=RUN_DATE)


def _put(client, bucket: str, key: str, body: str | bytes) -> None:
    client.put_object(Bucket=bucket, Key=key, Body=body.encode() if isinstance(body, str) else body)


def _keys(client, bucket: str, prefix: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", ()))


def _table(catalog, identifier: str, app: str) -> tuple[pa.Schema, list[tuple]]:
    """(Arrow schema, sorted rows) of an Iceberg table as pyiceberg reads it; the app's name
    in values replaced by `<app>`, the per-run lineage values dropped."""
    arrow = catalog.load_table(identifier).scan().to_arrow()
    arrow = arrow.drop_columns([c for c in ("_run_id", "_ingested_at") if c in arrow.column_names])
    rows = [
        tuple(v.replace(app, "<app>") if isinstance(v, str) else v for v in r.values())
        for r in arrow.to_pylist()
    ]
    return arrow.schema, sorted(rows, key=repr)


def _setup_app(settings, client, bucket: str, app: str) -> dict:
    folder = settings.pipelines_dir / app
    for layer, text in (("raw", RAW), ("silver", SILVER)):
        (folder / layer).mkdir(parents=True, exist_ok=True)
        (folder / layer / f"orders_{layer}.xml").write_text(text)
    data = f"data/{app}/"
    _put(
        client, bucket, data + "landing/orders/a.csv", "order_id,country,amount\n1,DE,10\n2,FR,20\n"
    )
    _put(client, bucket, data + "landing/orders/b.csv", "country,order_id,amount\nDE,3,30.5\n")
    _put(client, bucket, data + "landing/orders/empty.csv", "")
    _put(client, bucket, data + "landing/other/c.csv", "order_id\n9\n")
    _put(
        client,
        bucket,
        data + "rates/r.json",
        '{"rate_country": "DE", "rate": 2.0}\n{"rate_country": "FR", "rate": 3.0}\n',
    )
    regions = pa.table({"code": ["DE", "FR"], "region": ["central", "west"]})
    sink = io.BytesIO()
    pq.write_table(regions, sink)
    _put(client, bucket, data + "regions/part-0.parquet", sink.getvalue())
    _put(client, bucket, data + "regions/_SUCCESS", b"")
    specs = load_project(settings.pipelines_dir).pipelines
    return {p.pipeline.id: p for p in specs if p.app == app}


def _export(client, bucket: str, app: str) -> dict[str, list[dict]]:
    """Partition folder -> the rows of its gzip CSV files (Spark's _SUCCESS left out)."""
    out: dict[str, list[dict]] = {}
    prefix = f"data/{app}/service/orders_2026/"
    for key in _keys(client, bucket, prefix):
        if not key.endswith(".csv.gz"):
            assert key.endswith(("_SUCCESS", "_DATAHUB_EXPORT")), key
            continue
        rel = key[len(prefix) :].rsplit("/", 1)[0]
        body = gzip.decompress(client.get_object(Bucket=bucket, Key=key)["Body"].read()).decode()
        rows = [
            {k: v.replace(app, "<app>") for k, v in r.items()}
            for r in csv.DictReader(io.StringIO(body))
        ]
        out.setdefault(rel, []).extend(rows)
    return {k: sorted(v, key=repr) for k, v in out.items()}


def test_pipelines_on_s3_give_the_same_tables_exports_moves_and_ledger(spark, platform):
    settings, client, bucket = platform
    catalog = load_catalog(settings)
    got = {}
    for engine, app in APPS.items():
        specs = _setup_app(settings, client, bucket, app)
        raw = run_pipeline(specs["orders_raw"], _ctx(engine, spark, settings, app, "r1"), catalog)
        silver = run_pipeline(
            specs["orders_silver"], _ctx(engine, spark, settings, app, "s1"), catalog
        )
        ledger = catalog.load_table(ledger_ref(app, "orders_raw").identifier)
        got[engine] = {
            "rows": ([o.rows for o in raw], [o.rows for o in silver]),
            "raw": _table(catalog, f"{app}_raw.orders", app),
            "silver": _table(catalog, f"{app}_silver.orders", app),
            "export": _export(client, bucket, app),
            "keys": [
                k.replace(app, "<app>")
                for k in _keys(client, bucket, f"data/{app}/")
                if "/service/" not in k
            ],
            "ledger": sorted(
                (r["path"].replace(app, "<app>"), r["status"])
                for r in ledger.scan().to_arrow().to_pylist()
            ),
            "files": {
                p.split("://")[0]
                for p in catalog.load_table(f"{app}_silver.orders")
                .inspect.files()["file_path"]
                .to_pylist()
            },
        }
    spark_got, duck_got = got["spark"], got["duckdb"]
    for part in ("rows", "raw", "silver", "export", "keys", "ledger"):
        assert duck_got[part] == spark_got[part], part
    # pinned values, so that both engines agreeing on a wrong answer fails too
    assert spark_got["rows"] == ([3], [3, 3])
    schema, rows = duck_got["silver"]
    assert schema.names == ["order_id", "country", "region", "amount", "amount_eur", "_source_file"]
    landed = f"s3://{bucket}/data/<app>/landing/orders/"
    assert rows == [
        (1, "DE", "central", 10.0, 20.0, landed + "a.csv"),
        (2, "FR", "west", 20.0, 60.0, landed + "a.csv"),
        (3, "DE", "central", 30.5, 61.0, landed + "b.csv"),
    ]
    assert sorted(duck_got["export"]) == ["region=central", "region=west"]
    assert [r["order_id"] for r in duck_got["export"]["region=central"]] == ["1", "3"]
    assert duck_got["keys"] == sorted(
        [
            "data/<app>/landing/other/c.csv",
            "data/<app>/processed/2026-11-22/orders/a.csv",
            "data/<app>/processed/2026-11-22/orders/b.csv",
            "data/<app>/regions/_SUCCESS",
            "data/<app>/regions/part-0.parquet",
            "data/<app>/rejected/2026-11-22/orders/empty.csv",
            "data/<app>/rejected/2026-11-22/orders/empty.csv.reason.json",
            "data/<app>/rates/r.json",
        ]
    )
    assert duck_got["ledger"] == [
        (landed + "a.csv", "ingested"),
        (landed + "b.csv", "ingested"),
        (landed + "empty.csv", "rejected"),
    ]
    assert duck_got["files"] == spark_got["files"] == {"s3"}
    warehouse = _keys(client, bucket, "warehouse/")
    assert not [k for k in warehouse if k.endswith("/")]  # no folder marker objects
    # the DuckDB runs downloaded nothing and left nothing in the run folders
    assert not [p for p in (settings.home / "ingest").rglob("*") if p.is_file()]


def test_duckdb_reads_globs_and_writes_s3_through_pyarrow(platform):
    """read_csv/read_json/read_parquet over s3:// and s3a:// globs, COPY TO s3:// (partitioned
    too) on the engine's connection: rows as written, no folder marker objects."""
    settings, client, bucket = platform
    for i in range(3):
        _put(client, bucket, f"in/d{i}/a{i}.csv", f"id,name\n{i},x{i}\n")
    _put(client, bucket, "in/e.json", '{"a": 1}\n{"a": 2}\n')
    conn = duckdb_engine(settings).connection
    base = f"s3://{bucket}"
    got = conn.execute(
        f"SELECT id, name, filename FROM read_csv('{base}/in/*/*.csv', filename = true) ORDER BY id"
    ).fetchall()
    assert got == [(i, f"x{i}", f"{base}/in/d{i}/a{i}.csv") for i in range(3)]
    assert conn.execute(f"SELECT sum(a) FROM read_json('s3a://{bucket}/in/*.json')").fetchone() == (
        3,
    )
    conn.execute(
        f"COPY (SELECT range AS x, range % 2 AS p FROM range(10)) TO '{base}/out' "
        "(FORMAT parquet, PARTITION_BY (p), FILENAME_PATTERN 'part-{uuid}')"
    )
    keys = _keys(client, bucket, "out/")
    assert [k.rsplit("/", 1)[0] for k in keys] == ["out/p=0", "out/p=1"]
    assert conn.execute(
        f"SELECT p, sum(x) FROM read_parquet('{base}/out/*/*.parquet', hive_partitioning = true) "
        "GROUP BY p ORDER BY p"
    ).fetchall() == [(0, 20), (1, 25)]
    assert duckdb_s3.objects_below(conn, f"{base}/out") == [
        (f"{base}/{k}", client.head_object(Bucket=bucket, Key=k)["ContentLength"]) for k in keys
    ]
    conn.execute(  # into a folder with objects: DuckDB lists it (APPEND adds files)
        f"COPY (SELECT 10 AS x, 1 AS p) TO '{base}/out' (FORMAT parquet, PARTITION_BY (p), "
        "APPEND true)"
    )
    assert len(_keys(client, bucket, "out/p=1/")) == 2
    duckdb_s3.delete_below(conn, f"{base}/out/")
    assert _keys(client, bucket, "out/") == []


class _Object:
    """A stand-in for pyarrow's S3 input file: positional reads of at most 1,000 bytes."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def size(self) -> int:
        return len(self.data)

    def read_at(self, n: int, offset: int) -> bytes:
        return self.data[offset : offset + min(n, 1000)]


def _shared(data: bytes):
    f = duckdb_s3._SharedReads.__new__(duckdb_s3._SharedReads)
    f.stream = _Object(data)
    return f._setup()


def test_reads_of_an_s3_object_are_whole_and_keep_each_threads_seek():
    """DuckDB reads one handle from several threads as seek + read, and fails a short read:
    a thread's read starts where that thread sought, whatever other threads did since, and
    returns every byte asked for unless the object ends first."""
    import threading

    data = bytes(range(256)) * 40
    f = _shared(data)
    assert f.read(5000) == data[:5000]  # whole although the stream gives 1,000 at a time
    assert f.read(10**6) == data[5000:]
    assert f.read(10) == b""
    sought, other_done = threading.Event(), threading.Event()
    got = {}

    def first():
        f.seek(100)
        sought.set()
        other_done.wait()
        got["first"] = f.read(50)

    def second():
        sought.wait()
        f.seek(7000)
        got["second"] = f.read(50)
        other_done.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == {"first": data[100:150], "second": data[7000:7050]}
    f.seek(0)
    assert (f.read(3), f.read(3), f.tell()) == (data[:3], data[3:6], 6)  # sequential reads


def test_parallel_scans_of_s3_files_lose_no_rows(platform, tmp_path):
    """DuckDB scans one CSV or Parquet object with 4 threads through the registered
    filesystem: the same rows as the local file (a plain fsspec file lost rows here)."""
    settings, client, bucket = platform
    local = duckdb_engine(settings).connection
    rows = "SELECT range AS id, md5(CAST(range AS VARCHAR)) AS tag FROM range(1000000)"
    local.execute(f"COPY ({rows}) TO '{tmp_path}/a.csv' (HEADER)")
    local.execute(f"COPY ({rows}) TO '{tmp_path}/a.parquet' (ROW_GROUP_SIZE 100000)")
    for name in ("a.csv", "a.parquet"):
        client.upload_file(str(tmp_path / name), bucket, name)
    query = "SELECT count(*), sum(id), sum(hash(tag)) FROM {}"
    for reader, name in (("read_csv", "a.csv"), ("read_parquet", "a.parquet")):
        want = local.execute(query.format(f"{reader}('{tmp_path}/{name}')")).fetchall()
        assert want[0][0] == 1000000
        for _ in range(3):
            conn = duckdb_engine(settings).connection
            conn.execute("SET threads = 4")
            got = conn.execute(query.format(f"{reader}('s3://{bucket}/{name}')")).fetchall()
            assert got == want, reader


def test_a_bucket_is_reached_through_the_runs_own_client(settings, s3_client, monkeypatch):
    """Without any AWS environment, a bucket routed to a boto3 client (the `s3` resource with
    its own endpoint and keys) is read and written with that client's endpoint and keys."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID"):
        monkeypatch.delenv(name, raising=False)
    client, bucket = s3_client
    _put(client, bucket, "x/a.csv", "id\n7\n")
    conn = duckdb_engine(settings).connection
    duckdb_s3.route_path(conn, lambda: client, f"s3://{bucket}/x/a.csv")
    assert conn.execute(f"SELECT id FROM read_csv('s3://{bucket}/x/*.csv')").fetchall() == [(7,)]
    conn.execute(f"COPY (SELECT 8 AS id) TO 's3://{bucket}/y/b.csv' (FORMAT csv, HEADER true)")
    body = client.get_object(Bucket=bucket, Key="y/b.csv")["Body"].read()
    assert body.decode().split() == ["id", "8"]


@pytest.mark.parametrize("mode", ["overwrite", "append", "error", "ignore"])
def test_csv_export_modes_on_s3_match_spark(spark, platform, mode):
    from datahub_assets.engines.api import use
    from datahub_assets.execute.writers.csv_export import write_csv
    from datahub_assets.spec.models import CsvTarget

    settings, client, bucket = platform
    target = CsvTarget(path="x", mode=mode, header=True, compression="bzip2")
    got = {}
    for engine in APPS:
        ctx = _ctx(engine, spark, settings, "shop", f"e-{engine}")
        path = f"s3://{bucket}/exp-{engine}"
        _put(client, bucket, f"exp-{engine}/old.csv", "n,t\n0,old\n")
        # an earlier export of this target (its marker): overwrite may replace the folder
        _put(client, bucket, f"exp-{engine}/_DATAHUB_EXPORT", "csv:x\n")
        with use(ctx.active_engine):
            df = ctx.spark.createDataFrame([(1, "a,b"), (2, None)], "n int, t string")
            try:
                result = write_csv(ctx.spark, df, target, path, RUN_DATE)
                outcome = ("ok", result.rows)
            except Exception as exc:  # noqa: BLE001 - the outcome is compared across engines
                outcome = ("error", "already exists" in str(exc).lower())
        lines = []
        for key in _keys(client, bucket, f"exp-{engine}/"):
            body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
            if key.endswith(".bz2"):
                import bz2

                body = bz2.decompress(body)
            if not key.endswith(("_SUCCESS", "_DATAHUB_EXPORT")):  # a header in each file
                lines += [line for line in body.decode().splitlines() if line != "n,t"]
        got[engine] = (outcome, sorted(lines))
    assert got["duckdb"] == got["spark"]
    expected_lines = {
        "overwrite": ['1,"a,b"', "2,"],
        "append": ["0,old", '1,"a,b"', "2,"],
        "error": ["0,old"],
        "ignore": ["0,old"],
    }[mode]
    assert got["duckdb"][1] == sorted(expected_lines)
    assert got["duckdb"][0] == ("error", True) if mode == "error" else ("ok", 2)


def test_auto_picks_duckdb_for_s3_inputs_and_an_s3_warehouse(platform):
    """S3 data, drops and warehouse no longer keep `auto` on Spark: the inputs are sized by
    listing the bucket and a small pipeline runs on DuckDB."""
    from datahub_assets.engines.choice import choose

    settings, client, bucket = platform
    specs = _setup_app(settings, client, bucket, "shop_a")
    auto = dataclasses.replace(settings, engine="auto")
    catalog = load_catalog(auto)
    choice = choose(specs["orders_raw"], auto, catalog)
    sizes = [
        client.head_object(Bucket=bucket, Key=f"data/shop_a/landing/orders/{n}")["ContentLength"]
        for n in ("a.csv", "b.csv", "empty.csv")
    ]
    assert (choice.engine, choice.input_bytes) == ("duckdb", sum(sizes))
    assert choice.reason.startswith("auto: inputs ")
    assert choose(specs["orders_silver"], auto, catalog).engine == "duckdb"


MERGE = """<pipeline id="accounts" version="1.0.0" layer="silver">
  <sources><csv id="updates" path="updates/*.csv" inferSchema="true"/></sources>
  <targets><table table="accounts" mode="merge" keys="id" partitionBy="grp"/></targets>
</pipeline>
"""


def test_merge_into_an_s3_warehouse_is_the_same_on_both_engines(spark, platform):
    """A partitioned merge: DuckDB reads the table's current S3 files (with their paths),
    rewrites the touched ones into the S3 warehouse and pyiceberg commits, as with Spark."""
    settings, client, bucket = platform
    catalog = load_catalog(settings)
    got = {}
    for engine in APPS:
        app = f"m_{engine}"
        folder = settings.pipelines_dir / app / "silver"
        folder.mkdir(parents=True)
        (folder / "accounts.xml").write_text(MERGE)
        (spec,) = [p for p in load_project(settings.pipelines_dir).pipelines if p.app == app]
        key = f"data/{app}/updates/u.csv"
        _put(client, bucket, key, "id,grp,v\n1,a,10\n2,a,20\n3,b,30\n")
        run_pipeline(spec, _ctx(engine, spark, settings, app, "m1"), catalog)
        _put(client, bucket, key, "id,grp,v\n2,a,21\n4,b,40\n")
        run_pipeline(spec, _ctx(engine, spark, settings, app, "m2"), catalog)
        table = catalog.load_table(f"{app}_silver.accounts")
        got[engine] = (
            _table(catalog, f"{app}_silver.accounts", app),
            table.current_snapshot().summary["total-records"],  # type: ignore[union-attr]
        )
    assert got["duckdb"] == got["spark"]
    (schema, rows), total = got["duckdb"]
    assert (schema.names, rows, total) == (
        ["id", "grp", "v"],
        [(1, "a", 10), (2, "a", 21), (3, "b", 30), (4, "b", 40)],
        "4",
    )
