"""`mongo` sources against a real MongoDB-wire server (nx-27017) and the Spark Connect server."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from pymongo import MongoClient

from datahub_assets.cli.mongo import infer_schema_file
from datahub_assets.execute.mongo.read import plan_read
from datahub_assets.execute.mongo.source import read_mongo
from datahub_assets.execute.runner import PipelineRunError, run_pipeline
from datahub_assets.execute.transforms.flatten import flatten_frame
from datahub_assets.spec.loader import load_project
from datahub_assets.spec.models import MongoSource
from datahub_resources.iceberg import load_catalog
from datahub_resources.settings import Settings
from tests.support.context import exec_context

pytestmark = pytest.mark.spark
SECRET = "SHOP_TEST_MONGO_URI"


def _doc(i: int) -> dict:
    return {
        "n": i,
        "status": ("new", "paid", "shipped")[i % 3],
        "amount": i * 0.5,
        "at": datetime(2024, 1, 1) + timedelta(minutes=i),
        "customer": {"id": i % 7, "addr": {"city": f"c{i % 5}"}},
        "items": [{"sku": f"s{j}", "qty": j} for j in range(i % 3)],
    }


@pytest.fixture
def mongo(mongo_server, monkeypatch, request):
    """A fresh database per test, its URI in the secret SHOP_TEST_MONGO_URI."""
    monkeypatch.setenv(SECRET, mongo_server.mongo_uri)
    client = MongoClient(mongo_server.mongo_uri)
    name = "t_" + request.node.name.replace("[", "_").replace("]", "")[:40]
    client.drop_database(name)
    yield client[name]
    client.close()


def _ctx(spark, settings, app="shop"):
    # settings read now: the tests set DATAHUB_MONGO_* after the `settings` fixture ran
    del settings
    return exec_context(spark, Settings.from_env(), app=app, run_id="test")


def _source(db, **kw) -> MongoSource:
    return MongoSource(
        id="orders", database=db.name, collection="orders", uri_secret_ref=SECRET, **kw
    )


def test_parallel_ranges_read_every_document_exactly_once(spark, settings, mongo, monkeypatch):
    mongo.orders.insert_many([_doc(i) for i in range(600)])
    monkeypatch.setenv("DATAHUB_MONGO_DOCS_PER_PARTITION", "100")
    source = _source(mongo)
    plan = plan_read(source, _ctx(spark, settings))
    assert plan.partitions >= 4
    df = read_mongo(source, _ctx(spark, settings))
    ids = [r["_id"] for r in df.select("_id").collect()]
    expected = sorted(str(d["_id"]) for d in mongo.orders.find({}, {"_id": 1}))
    assert len(ids) == len(set(ids)) == 600
    assert sorted(ids) == expected
    assert {f.name for f in df.schema.fields} >= {"n", "customer", "items", "at"}


def test_integer_ids_split_numerically_and_mixed_ids_read_as_one_range(
    spark, settings, mongo, monkeypatch
):
    monkeypatch.setenv("DATAHUB_MONGO_DOCS_PER_PARTITION", "50")
    mongo.orders.insert_many([{"_id": i, "v": i} for i in range(300)])
    source = _source(mongo)
    assert plan_read(source, _ctx(spark, settings)).partitions > 1
    got = sorted(r["_id"] for r in read_mongo(source, _ctx(spark, settings)).collect())
    assert got == list(range(300))
    mongo.orders.insert_many([{"_id": f"s{i}", "v": i} for i in range(20)])
    df = read_mongo(source, _ctx(spark, settings))
    assert df.count() == 320  # string ids would fall outside numeric ranges: one range


def test_filter_and_projection(spark, settings, mongo, monkeypatch):
    monkeypatch.setenv("DATAHUB_MONGO_DOCS_PER_PARTITION", "40")
    mongo.orders.insert_many([_doc(i) for i in range(150)])
    source = _source(
        mongo,
        filter='{"status": "paid", "n": {"$gte": 30}}',
        projection='{"n": 1, "customer.addr.city": 1, "_id": 0}',
    )
    df = read_mongo(source, _ctx(spark, settings))
    assert df.columns == ["n", "customer"]
    rows = df.collect()
    expected = sorted(d["n"] for d in mongo.orders.find({"status": "paid", "n": {"$gte": 30}}))
    assert sorted(r["n"] for r in rows) == expected
    assert rows[0]["customer"]["addr"]["city"].startswith("c")


def test_flatten_names_index_columns_and_maps(spark, settings, mongo):
    mongo.orders.insert_many(
        [
            {
                "_id": 1,
                "customer": {"addr": {"city": "x"}},
                "items": [{"name": "a"}, {"name": "b"}],
                "scores": {"2024-01-01": 1.0, "2024-01-02": 2.0},
            },
            {
                "_id": 2,
                "customer": {"addr": {"city": "y"}},
                "items": [],
                "scores": {"2024-01-03": 3.0},
            },
        ]
    )
    flat = read_mongo(_source(mongo, flatten=True), _ctx(spark, settings))
    assert flat.columns == ["_id", "customer_addr_city", "items", "scores"]
    row = flat.where("_id = '1'").first()
    assert json.loads(row["items"]) == [{"name": "a"}, {"name": "b"}]  # arrays=json default
    nested = read_mongo(_source(mongo), _ctx(spark, settings))
    indexed = flatten_frame(nested, arrays="index", max_index=2)
    assert indexed.columns == [
        "_id",
        "customer_addr_city",
        "items_0_name",
        "items_1_name",
        "scores_0_key",
        "scores_0_value",
        "scores_1_key",
        "scores_1_value",
    ]
    rows = {r["_id"]: r for r in indexed.collect()}
    assert (rows[1]["items_0_name"], rows[1]["items_1_name"]) == ("a", "b")
    assert rows[2]["items_0_name"] is None
    assert (rows[1]["scores_1_key"], rows[1]["scores_1_value"]) == ("2024-01-02", 2.0)
    exploded = flatten_frame(nested.select("_id", "scores"), arrays="explode")
    assert exploded.columns == ["_id", "scores_key", "scores_value"]
    assert exploded.count() == 3


def test_misfit_without_policy_fails_naming_the_document(spark, settings, mongo):
    mongo.orders.insert_many([{"_id": i, "qty": i} for i in range(5)])
    source = _source(mongo, sample_size=5)
    df = read_mongo(source, _ctx(spark, settings))
    mongo.orders.insert_one({"_id": 99, "qty": "lots"})  # after the sample was taken
    with pytest.raises(Exception, match=r"document _id=99: column 'qty': value 'lots' is not int"):
        df.collect()


def _pipeline(settings, body: str, app: str = "shop", schema: dict | None = None):
    folder = settings.pipelines_dir / app / "raw"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "orders.xml").write_text(body)
    if schema is not None:
        (settings.pipelines_dir / app / "schemas").mkdir(exist_ok=True)
        (settings.pipelines_dir / app / "schemas" / "orders.json").write_text(json.dumps(schema))
    (spec,) = load_project(settings.pipelines_dir).pipelines
    return spec


PINNED = {
    "type": "object",
    "required": ["_id", "sku", "qty"],
    "properties": {
        "_id": {"type": "integer"},
        "sku": {"type": "string"},
        "qty": {"type": "integer"},
        "status": {"type": "string", "default": "new"},
        "at": {"type": "string", "format": "date-time"},
    },
}


def test_quarantine_of_misfits_with_reasons_and_defaults(spark, settings, mongo):
    mongo.orders.insert_many(
        [
            {"_id": 1, "sku": "a", "qty": 1, "status": "paid", "at": datetime(2024, 1, 1)},
            {"_id": 2, "sku": "b", "qty": 2},  # status takes its default
            {"_id": 3, "sku": "c", "qty": "many"},  # cast
            {"_id": 4, "qty": 4},  # required sku missing
            {"_id": 5, "sku": "e", "qty": 5, "at": "not a date"},  # cast
        ]
    )
    spec = _pipeline(
        settings,
        f"""<pipeline id="orders" version="1.0.0" layer="raw">
  <sources><mongo id="orders" database="{mongo.name}" collection="orders"
     uriSecretRef="{SECRET}" schemaRef="schemas/orders.json" onInvalid="quarantine"/></sources>
  <targets><table table="orders" mode="append"/></targets>
</pipeline>""",
        schema=PINNED,
    )
    catalog = load_catalog(settings)
    (outcome,) = run_pipeline(spec, _ctx(spark, settings), catalog)
    assert outcome.rows == 2
    rows = {
        r["_id"]: r for r in catalog.load_table("shop_raw.orders").scan().to_arrow().to_pylist()
    }
    assert rows[1]["status"] == "paid"
    assert rows[2]["status"] == "new"
    quarantined = {
        r["_id"]: r
        for r in catalog.load_table("shop_raw.orders__quarantine").scan().to_arrow().to_pylist()
    }
    assert set(quarantined) == {"3", "4", "5"}
    assert quarantined["3"]["_reason"] == "column 'qty': value 'many' is not bigint"
    assert quarantined["3"]["_rule"] == "cast"
    assert quarantined["4"]["_reason"] == "column 'sku' is required"
    assert quarantined["4"]["_rule"] == "required"
    assert "not a date" in quarantined["5"]["_reason"]
    assert json.loads(quarantined["3"]["document"])["qty"] == "many"


def test_run_pipeline_flatten_incremental_into_iceberg(spark, settings, mongo, monkeypatch):
    monkeypatch.setenv("DATAHUB_MONGO_DOCS_PER_PARTITION", "60")
    mongo.orders.insert_many([_doc(i) for i in range(200)])
    spec = _pipeline(
        settings,
        f"""<pipeline id="orders" version="1.0.0" layer="raw">
  <sources><mongo id="orders" database="{mongo.name}" collection="orders"
     uriSecretRef="{SECRET}" flatten="true"><incremental column="at"/></mongo></sources>
  <targets><table table="orders" mode="append"/></targets>
</pipeline>""",
    )
    catalog = load_catalog(settings)
    (first,) = run_pipeline(spec, _ctx(spark, settings), catalog)
    assert first.rows == 200
    table = catalog.load_table("shop_raw.orders")
    assert {"customer_addr_city", "customer_id", "items", "at"} <= {
        f.name for f in table.schema().fields
    }
    mongo.orders.insert_many([_doc(i) for i in range(200, 230)])
    (second,) = run_pipeline(spec, _ctx(spark, settings), catalog)
    assert second.rows == 30
    ns = sorted(r["n"] for r in catalog.load_table("shop_raw.orders").scan().to_arrow().to_pylist())
    assert ns == list(range(230))


def test_connection_from_app_yaml_and_infer_schema_command(spark, settings, mongo, monkeypatch):
    mongo.orders.insert_many([_doc(i) for i in range(20)])
    monkeypatch.setenv(
        "SHOP_PRODUCTS_MONGO_URI",
        mongo.client.address and f"mongodb://{mongo.client.address[0]}:{mongo.client.address[1]}/",
    )
    (settings.pipelines_dir / "shop").mkdir(parents=True, exist_ok=True)
    (settings.pipelines_dir / "shop" / "app.yaml").write_text(
        "connections:\n  products: {uriSecretRef: SHOP_PRODUCTS_MONGO_URI}\n"
    )
    pipeline = """<pipeline id="orders" version="1.0.0" layer="raw">
  <sources><mongo id="orders" database="{db}" collection="orders"
     connection="products"{pin}/></sources>
  <targets><table table="orders" mode="overwrite"/></targets>
</pipeline>"""
    # the documented workflow: infer from the unpinned source, then pin the written file
    _pipeline(settings, pipeline.format(db=mongo.name, pin=""))
    path, sampled, fields = infer_schema_file(settings, "shop.orders")
    assert path == settings.pipelines_dir / "shop" / "schemas" / "orders.json"
    assert sampled == 20
    assert fields == 7
    spec = _pipeline(
        settings, pipeline.format(db=mongo.name, pin=' schemaRef="schemas/orders.json"')
    )
    catalog = load_catalog(settings)
    (outcome,) = run_pipeline(spec, _ctx(spark, settings), catalog)  # pinned by the file
    assert outcome.rows == 20
    types = {
        f.name: str(f.field_type) for f in catalog.load_table("shop_raw.orders").schema().fields
    }
    assert types["n"] == "long"
    assert types["at"].startswith("timestamp")


def test_uri_with_password_never_in_errors(spark, settings, mongo_server, monkeypatch):
    password = "Pw-9f8e7d6c"
    monkeypatch.setenv(SECRET, f"mongodb://reader:{password}@127.0.0.1:1/?directConnection=true")
    monkeypatch.setenv("DATAHUB_MONGO_TIMEOUT_MS", "300")
    spec = _pipeline(
        settings,
        f"""<pipeline id="orders" version="1.0.0" layer="raw">
  <sources><mongo id="orders" database="db" collection="orders" uriSecretRef="{SECRET}"/>
  </sources>
  <targets><table table="orders" mode="append"/></targets>
</pipeline>""",
    )
    with pytest.raises(PipelineRunError) as err:
        run_pipeline(spec, _ctx(spark, settings), load_catalog(settings))
    text = str(err.value) + repr(err.value.__cause__)
    assert "source 'orders'" in text
    assert password not in text
    assert "reader:" not in text
    # the same URI against a reachable server that refuses the login
    port = mongo_server.port
    monkeypatch.setenv(SECRET, f"mongodb://reader:{password}@127.0.0.1:{port}/")
    with pytest.raises(PipelineRunError) as err:
        run_pipeline(spec, _ctx(spark, settings), load_catalog(settings))
    assert password not in str(err.value) + repr(err.value.__cause__)
