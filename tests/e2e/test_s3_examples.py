"""The file-based example apps (ecommerce, github, customer) through the dagster CLI with
landing, processed/rejected, CSV exports and the Iceberg warehouse all on S3 (moto's server).

The crm app is left out: it reads its own PostgreSQL and MongoDB servers, nothing on S3 that
the other apps do not cover. A Spark Connect server of this module's own is started with the
AWS environment (S3A endpoint and keys), as a deployment would; the shared test server is not
touched. Expected values come from the generated files, with the standard library.
"""

from __future__ import annotations

import csv
import gzip
import io
import json

import pytest

from tests.e2e import s3_apps

pytestmark = [pytest.mark.slow, pytest.mark.spark, pytest.mark.xdist_group("e2e")]


@pytest.fixture(scope="module")
def s3_demo(s3_endpoint, tmp_path_factory):
    from datahub_assets.demo.data import generate
    from datahub_resources import spark_server
    from tests.s3 import ACCESS_KEY, REGION, SECRET_KEY, make_client

    root = tmp_path_factory.mktemp("s3demo")
    client = make_client(s3_endpoint)
    bucket = "datahub-e2e"
    client.create_bucket(Bucket=bucket)
    local = root / "generated"
    generate(local, rows=200)
    uploaded = s3_apps.upload_landing(client, bucket, local)
    aws = {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_REGION": REGION,
    }
    env = s3_apps.base_env(root, f"s3://{bucket}/data", f"s3://{bucket}/warehouse", aws) | {
        "DATAHUB_SPARK_STATE": str(root / "spark"),
        "DATAHUB_SPARK_DRIVER_MEMORY": "2g",
    }
    try:
        s3_apps.materialize(env, s3_apps.asset_keys())
        yield {
            "client": client,
            "bucket": bucket,
            "local": local,
            "uploaded": uploaded,
            "catalog": s3_apps.catalog_of(env),
        }
    finally:
        spark_server.stop(root / "spark")


def _keys(client, bucket: str, prefix: str) -> list[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", ()))


def _text(client, bucket: str, key: str) -> str:
    body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    return gzip.decompress(body).decode() if key.endswith(".gz") else body.decode()


def test_every_table_is_in_the_s3_warehouse_and_every_drop_was_taken(s3_demo):
    from datahub_assets.iceberg.read import data_files

    client, bucket, catalog = s3_demo["client"], s3_demo["bucket"], s3_demo["catalog"]
    for identifier in s3_apps.tables():
        table = catalog.load_table(identifier)
        assert table.current_snapshot() is not None, identifier
        assert table.location().startswith(f"s3://{bucket}/warehouse/"), identifier
        assert all(
            f.file_path.startswith(f"s3://{bucket}/warehouse/") for f in data_files(table)
        ), identifier
    keys = _keys(client, bucket, "data/")
    assert [k for k in keys if "/landing/" in k] == []
    assert [k for k in keys if "/rejected/" in k] == []
    assert [k for k in keys if "/_ingest/" in k] == []  # the runs' read copies are gone
    assert len([k for k in keys if "/processed/" in k]) == s3_demo["uploaded"]


def test_github_users_deduplicated_per_actor(s3_demo):
    latest: dict[str, tuple[str, str]] = {}
    for path in sorted((s3_demo["local"] / "github" / "landing").rglob("*.json")):
        for line in path.read_text().splitlines():
            if line.strip():
                event = json.loads(line)
                uid = str(event["actor"]["id"])
                if uid not in latest or event["created_at"] > latest[uid][0]:
                    latest[uid] = (event["created_at"], event["actor"]["login"])
    users = s3_demo["catalog"].load_table("github_silver.users").scan().to_arrow().to_pylist()
    assert {u["user_id"]: u["login"] for u in users} == {k: v[1] for k, v in latest.items()}
    ledger = s3_demo["catalog"].load_table("github_raw.events_raw__files").scan().to_arrow()
    paths = ledger.column("path").to_pylist()
    assert paths
    assert all(p.startswith("s3://datahub-e2e/data/github/landing/") for p in paths)


def test_exports_on_s3_match_their_tables(s3_demo):
    client, bucket, catalog = s3_demo["client"], s3_demo["bucket"], s3_demo["catalog"]
    gold = catalog.load_table("ecommerce_gold.customer_360").scan().to_arrow().to_pylist()
    exported = []
    for key in _keys(client, bucket, "data/ecommerce/service/customer_360/"):
        if key.endswith(".csv"):
            exported += list(csv.DictReader(io.StringIO(_text(client, bucket, key))))
    assert gold
    assert len(exported) == len(gold)
    assert {r["customer_id"] for r in exported} == {str(r["customer_id"]) for r in gold}
    # the Python asset's table (pipelines_xml/ecommerce/python) and its XML export, on S3 too
    features = catalog.load_table("ecommerce_gold.customer_features").scan().to_arrow()
    assert features.num_rows == len(gold)
    rows_out = []
    for key in _keys(client, bucket, "data/ecommerce/service/customer_features/"):
        if key.endswith(".csv"):
            rows_out += list(csv.DictReader(io.StringIO(_text(client, bucket, key))))
    assert len(rows_out) == features.num_rows
    by_country = catalog.load_table("customer_gold.customer_by_country").scan().to_arrow()
    rows = []
    for key in _keys(client, bucket, "data/customer/service/"):
        if key.endswith(".csv.gz"):
            rows += list(csv.DictReader(io.StringIO(_text(client, bucket, key))))
    assert rows
    assert len(rows) == by_country.num_rows
