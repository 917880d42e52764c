"""S3 through Spark (S3A) and pyiceberg, on moto's S3 server: every place a path is accepted.

One Spark Connect server of this module's own is started with the AWS environment pointing at
moto (the real start path: `spark.hadoop.fs.s3a.*` from AWS_ENDPOINT_URL and the keys, the
S3A jars of scripts/fetch_jars.sh on its classpath); the shared test server is not touched.
Data (landing, processed, rejected, exports), schemaRef, lookups and the Iceberg warehouse
all live in one bucket.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
from datetime import date
from pathlib import Path

import pytest

from datahub_resources import s3

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group("s3-spark")]

OLD = "2020-01-01"
SCHEMA = {
    "type": "record",
    "name": "orders",
    "fields": [
        {"name": "order_id", "type": "long"},
        {"name": "country", "type": "string"},
        {"name": "amount", "type": "double"},
    ],
}
RAW = """<pipeline id="orders_raw" version="1.0.0" layer="raw">
  <sources>
    <csv id="orders" path="landing/orders/*.csv" schemaRef="{bucket}/schemas/orders.avsc">
      <watch minAgeSeconds="0" maxSizeBytes="10000"/>
    </csv>
  </sources>
  <targets><table table="orders" mode="append"/></targets>
  <checks><rowCount min="1"/></checks>
</pipeline>
"""
SILVER = """<pipeline id="orders_silver" version="1.0.0" layer="silver">
  <sources>
    <table id="orders" ref="raw.orders"/>
    <lookup id="countries" path="{bucket}/lookups/countries.csv"/>
    <json id="rates" path="rates/*.json"/>
  </sources>
  <transformations>
    <join left="orders" right="countries" output="named" type="left"
          condition="orders.country = countries.code"/>
    <join left="named" right="rates" output="priced" type="left"
          condition="named.country = rates.rate_country"/>
    <derive source="priced" column="amount_eur" expr="amount * coalesce(rate, 1.0)"/>
  </transformations>
  <targets>
    <table table="orders" source="priced" mode="overwrite" partitionBy="country"/>
    <csv name="orders_export" path="service/orders_%Y" source="priced" header="true"
         compression="gzip"/>
  </targets>
</pipeline>
"""


@pytest.fixture(scope="module")
def s3_platform(s3_endpoint, tmp_path_factory):
    """(settings, spark, catalog, client, bucket): the platform with everything on S3."""
    from tests.s3 import ACCESS_KEY, REGION, SECRET_KEY, make_client

    root = tmp_path_factory.mktemp("s3spark")
    client = make_client(s3_endpoint)
    bucket = "datahub-s3-spark"
    client.create_bucket(Bucket=bucket)
    env = {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_REGION": REGION,
        "DATAHUB_HOME": str(root / "home"),
        "DATAHUB_PIPELINES_DIR": str(root / "pipelines"),
        "DATAHUB_DATA_DIR": f"s3://{bucket}/data",
        "DATAHUB_WAREHOUSE": f"s3://{bucket}/warehouse",
        "DATAHUB_CATALOG_URI": f"sqlite:///{root}/catalog.db",
        "DATAHUB_SPARK_STATE": str(root / "spark"),
        "DATAHUB_SPARK_DRIVER_MEMORY": "1g",
    }
    old = dict(os.environ)
    os.environ.update(env)
    os.environ.pop("DATAHUB_SPARK_REMOTE", None)
    from datahub_resources import spark_server
    from datahub_resources.iceberg import load_catalog
    from datahub_resources.settings import Settings
    from datahub_resources.spark import connect

    assert s3.connector_jars(), "run scripts/fetch_jars.sh (make setup) first"
    try:
        settings = Settings.from_env()
        spark = connect(settings)
        yield settings, spark, load_catalog(settings), client, bucket
        spark.stop()  # before the server goes: the client would retry releasing its session
    finally:
        spark_server.stop(root / "spark")
        os.environ.clear()
        os.environ.update(old)


def _put(client, bucket: str, key: str, body: str | bytes) -> None:
    client.put_object(Bucket=bucket, Key=key, Body=body.encode() if isinstance(body, str) else body)


def _keys(client, bucket: str, prefix: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", ()))


def test_the_path_rule():
    assert s3.to_spark("s3://b/k/x.csv") == "s3a://b/k/x.csv"
    assert s3.from_spark("s3a://b/k/x.csv") == "s3://b/k/x.csv"
    assert s3.to_spark("/data/x.csv") == "/data/x.csv"
    conf = s3.hadoop_conf(
        {
            "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
            "AWS_ACCESS_KEY_ID": "k",
            "AWS_SECRET_ACCESS_KEY": "s",
        }
    )
    assert conf["spark.hadoop.fs.s3a.path.style.access"] == "true"
    assert conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "false"
    assert conf["spark.hadoop.fs.s3a.access.key"] == "k"
    assert s3.hadoop_conf({}) == {}
    props = s3.iceberg_properties(
        {"AWS_ENDPOINT_URL": "https://minio:9000", "AWS_REGION": "eu-west-1"}
    )
    assert props == {
        "s3.endpoint": "https://minio:9000",
        "s3.force-virtual-addressing": "false",
        "s3.region": "eu-west-1",
    }


def test_server_secrets_stay_off_the_command_line(s3_platform):
    settings, *_ = s3_platform
    props = settings.spark_state_dir / "s3a.properties"
    assert props.stat().st_mode & 0o077 == 0
    assert "fs.s3a.secret.key" in props.read_text()
    pid = json.loads((settings.spark_state_dir / "server.json").read_text())["pid"]
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    assert "secret.key" not in cmdline
    assert "s3a.properties" in cmdline


def test_drops_raw_silver_lookup_json_and_export_all_on_s3(s3_platform):
    from datahub_assets.execute.runner import run_pipeline
    from datahub_assets.iceberg.read import data_files
    from datahub_assets.ingest.ledger import ledger_ref
    from datahub_assets.spec.loader import load_project
    from tests.support.context import exec_context

    settings, spark, catalog, client, bucket = s3_platform
    app = settings.pipelines_dir / "shop"
    for layer, text in (("raw", RAW), ("silver", SILVER)):
        (app / layer).mkdir(parents=True, exist_ok=True)
        (app / layer / f"orders_{layer}.xml").write_text(text.format(bucket=f"s3://{bucket}"))
    _put(client, bucket, "schemas/orders.avsc", json.dumps(SCHEMA))
    _put(client, bucket, "lookups/countries.csv", "code,name\nDE,Germany\nFR,France\n")
    _put(
        client,
        bucket,
        "data/shop/rates/r.json",
        '{"rate_country": "DE", "rate": 2.0}\n{"rate_country": "FR", "rate": 3.0}\n',
    )
    land = "data/shop/landing/orders/"
    _put(client, bucket, land + "a.csv", "order_id,country,amount\n1,DE,10\n2,FR,20\n")
    _put(client, bucket, land + "b.csv", "country,order_id,amount\nDE,3,30\n")  # reordered
    _put(client, bucket, land + "empty.csv", "")
    project = load_project(settings.pipelines_dir)
    specs = {p.pipeline.id: p for p in project.pipelines}

    def ctx(run_id):
        return exec_context(spark, settings, run_id=run_id, run_date=date(2026, 11, 22))

    (raw,) = run_pipeline(specs["orders_raw"], ctx("run-raw"), catalog)
    assert raw.rows == 3
    table = catalog.load_table("shop_raw.orders")
    assert {f.file_path.split("://")[0] for f in data_files(table)} == {"s3"}
    assert all(f.file_path.startswith(f"s3://{bucket}/warehouse/") for f in data_files(table))
    rows = sorted(
        (r["order_id"], r["amount"], r["_source_file"]) for r in table.scan().to_arrow().to_pylist()
    )  # pyiceberg reads S3 itself
    assert rows == [
        (1, 10.0, f"s3://{bucket}/{land}a.csv"),
        (2, 20.0, f"s3://{bucket}/{land}a.csv"),
        (3, 30.0, f"s3://{bucket}/{land}b.csv"),
    ]
    assert _keys(client, bucket, "data/shop/processed/") == [
        "data/shop/processed/2026-11-22/orders/a.csv",
        "data/shop/processed/2026-11-22/orders/b.csv",
    ]
    assert _keys(client, bucket, "data/shop/rejected/") == [
        "data/shop/rejected/2026-11-22/orders/empty.csv",
        "data/shop/rejected/2026-11-22/orders/empty.csv.reason.json",
    ]
    assert _keys(client, bucket, land) == []
    assert _keys(client, bucket, "data/shop/_ingest/") == []  # the run's copies are gone
    ledger = catalog.load_table(ledger_ref("shop", "orders_raw").identifier)
    assert sorted(r["status"] for r in ledger.scan().to_arrow().to_pylist()) == [
        "ingested",
        "ingested",
        "rejected",
    ]
    assert not (settings.home / "ingest" / "run-raw").exists()  # nothing downloaded

    outcomes = run_pipeline(specs["orders_silver"], ctx("run-silver"), catalog)
    assert [o.rows for o in outcomes] == [3, 3]
    silver = {
        r["order_id"]: r
        for r in catalog.load_table("shop_silver.orders").scan().to_arrow().to_pylist()
    }
    assert {k: (v["name"], v["amount_eur"]) for k, v in silver.items()} == {
        1: ("Germany", 20.0),
        2: ("France", 60.0),
        3: ("Germany", 60.0),
    }
    exported = [
        k for k in _keys(client, bucket, "data/shop/service/orders_2026/") if k.endswith(".csv.gz")
    ]
    assert exported
    lines = []
    for key in exported:
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        lines += list(csv.DictReader(io.StringIO(gzip.decompress(body).decode())))
    assert sorted(int(r["order_id"]) for r in lines) == [1, 2, 3]

    # a second overwrite replaces the partitioned files; Spark reads the table back from S3
    run_pipeline(specs["orders_silver"], ctx("run-silver-2"), catalog)
    from datahub_assets.iceberg.read import read_table
    from datahub_assets.spec.models import TableRef

    df = read_table(spark, catalog, TableRef(app="shop", layer="silver", table="orders"))
    assert sorted(r["order_id"] for r in df.collect()) == [1, 2, 3]


def test_parquet_glob_source_on_s3(s3_platform):
    from datahub_assets.execute.readers.parquet import read_parquet
    from datahub_assets.spec.models import ParquetSource
    from tests.support.context import exec_context

    settings, spark, _, client, bucket = s3_platform
    spark.range(5).write.mode("overwrite").parquet(f"s3a://{bucket}/data/pq/in/part1")
    spark.range(5, 7).write.mode("overwrite").parquet(f"s3a://{bucket}/data/pq/in/part2")
    ctx = exec_context(spark, settings, app="pq", run_id="r", run_date=date(2026, 11, 22))
    df = read_parquet(ParquetSource(id="p", path="in/*/*.parquet"), ctx)
    assert sorted(r["id"] for r in df.collect()) == list(range(7))


def test_a_replaced_object_is_not_read_in_its_new_version(s3_platform):
    """The run reads the object version it validated: a copy pinned to the ETag."""
    from datahub_assets.ingest.store import S3Store

    _, _, _, client, bucket = s3_platform
    store = S3Store(client)
    _put(client, bucket, "pin/a.csv", "id\n1\n")
    info = store.stat(f"s3://{bucket}/pin/a.csv")
    _put(client, bucket, "pin/a.csv", "id\n2\n")
    with pytest.raises(FileNotFoundError, match="changed or disappeared"):
        store.copy_version(info.path, f"s3://{bucket}/pin/_copy.csv", info.etag)
    store.copy_version(info.path, f"s3://{bucket}/pin/_copy.csv", None)
    assert _keys(client, bucket, "pin/") == ["pin/_copy.csv", "pin/a.csv"]
