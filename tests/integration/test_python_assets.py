"""Python assets: the Iceberg IO manager loads platform tables as Spark / Arrow / pandas frames
and stores returned frames through the XML targets' write path (modes, write-audit-publish
with Python-declared checks, metadata); discovery of `<app>/python/*.py` at project load.

Expected rows are written out here, not computed by the code under test; tables are read
back with pyiceberg (independent of the Spark read path)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import dagster as dg
import pandas as pd
import pandera.pyspark as pps
import pyarrow as pa
import pytest
from pyspark.sql import DataFrame
from pyspark.sql import types as T

from datahub_assets.iceberg.table import write_table
from datahub_assets.python import checks as c
from datahub_assets.python import table_asset
from datahub_assets.spec import check_json
from datahub_assets.spec.errors import SpecErrors
from datahub_assets.spec.loader import load_project
from datahub_assets.spec.models import TableRef, TableTarget
from datahub_resources.iceberg import IcebergResource
from datahub_resources.iceberg_io import IO_MANAGER_KEY, IcebergIOManager
from datahub_resources.spark import SparkConnectResource

ORDERS = TableRef(app="shop", layer="silver", table="orders")
OUT = TableRef(app="shop", layer="gold", table="features")
ORDER_ROWS = [(1, "a", 10), (2, "b", 20), (3, "a", 5)]


@pytest.fixture
def orders(spark, catalog):
    """shop.silver.orders written by the XML targets' writer (as an XML pipeline would)."""
    df = spark.createDataFrame(ORDER_ROWS, "id int, customer string, amount int")
    write_table(spark, catalog, ORDERS, df, TableTarget(table="orders", mode="overwrite"), "seed")
    return ORDERS


def _resources():
    spark, iceberg = SparkConnectResource(), IcebergResource()
    return {
        "spark": spark,
        "iceberg": iceberg,
        IO_MANAGER_KEY: IcebergIOManager(spark=spark, iceberg=iceberg),
    }


def _materialize(assets, raise_on_error=True) -> dg.ExecuteInProcessResult:
    # shop.silver.orders as the XML assets are: a materialisation stores no Dagster output
    source = dg.AssetSpec(key=ORDERS.asset_path)
    return dg.materialize([source, *assets], resources=_resources(), raise_on_error=raise_on_error)


def _table_rows(catalog, ref: TableRef) -> list[tuple]:
    rows = catalog.load_table(ref.identifier).scan().to_arrow().to_pylist()
    return sorted(tuple(r.values()) for r in rows)


def _mat_metadata(result: dg.ExecuteInProcessResult, ref: TableRef) -> dict:
    events = [
        e.materialization
        for e in (x.event_specific_data for x in result.get_asset_materialization_events())
        if e is not None and e.materialization.asset_key == dg.AssetKey(ref.asset_path)
    ]
    assert len(events) == 1
    return {k: getattr(v, "value", v) for k, v in events[0].metadata.items()}


# ------------------------------------------------------------------------------- load_input


@pytest.mark.spark
@pytest.mark.usefixtures("orders")
def test_inputs_load_as_spark_arrow_and_pandas_by_annotation(catalog):
    seen: dict[str, object] = {}

    @table_asset(app="shop", layer="gold", name="by_spark", ins={"src": "silver.orders"})
    def by_spark(src: DataFrame) -> DataFrame:
        seen["spark"] = src
        return src.groupBy("customer").sum("amount").withColumnRenamed("sum(amount)", "total")

    @table_asset(app="shop", layer="gold", name="by_arrow", ins={"src": "silver.orders"})
    def by_arrow(src: pa.Table):
        seen["arrow"] = src
        return src.filter(pa.compute.greater(src["amount"], 6))

    @table_asset(app="shop", layer="gold", name="by_pandas", ins={"src": "silver.orders"})
    def by_pandas(src: pd.DataFrame) -> pd.DataFrame:
        seen["pandas"] = src
        return src.assign(double=src["amount"] * 2)

    _materialize([by_spark, by_arrow, by_pandas])
    assert isinstance(seen["spark"], DataFrame)
    assert isinstance(seen["arrow"], pa.Table)
    assert isinstance(seen["pandas"], pd.DataFrame)
    assert sorted(seen["pandas"]["id"].tolist()) == [1, 2, 3]
    ref = TableRef(app="shop", layer="gold", table="by_spark")
    assert _table_rows(catalog, ref) == [("a", 15), ("b", 20)]
    ref = TableRef(app="shop", layer="gold", table="by_arrow")
    assert _table_rows(catalog, ref) == [(1, "a", 10), (2, "b", 20)]
    ref = TableRef(app="shop", layer="gold", table="by_pandas")
    assert _table_rows(catalog, ref) == [(1, "a", 10, 20), (2, "b", 20, 40), (3, "a", 5, 10)]


@pytest.mark.spark
@pytest.mark.usefixtures("orders")
def test_local_input_over_the_row_limit_is_refused():
    @table_asset(app="shop", layer="gold", name="small", ins={"src": "silver.orders"})
    def small(src: pd.DataFrame) -> pd.DataFrame:
        return src

    resources = _resources()
    resources[IO_MANAGER_KEY] = IcebergIOManager(
        spark=resources["spark"], iceberg=resources["iceberg"], max_local_rows=2
    )
    result = dg.materialize(
        [dg.AssetSpec(key=ORDERS.asset_path), small], resources=resources, raise_on_error=False
    )
    assert not result.success
    failure = result.failure_data_for_node("shop__gold__small")
    assert failure is not None
    assert "has 3 rows, more than max_local_rows=2" in str(failure.error)


# ----------------------------------------------------------------------------- handle_output


def _feature_asset(batches: list, **kwargs):
    @table_asset(app="shop", layer="gold", name="features", **kwargs)
    def features(context):
        del context
        return batches.pop(0)

    return features


@pytest.mark.spark
def test_append_overwrite_and_merge_through_the_write_path(spark, catalog):
    schema = "id int, score double"
    first = spark.createDataFrame([(1, 0.5), (2, 0.7)], schema)
    second = pd.DataFrame({"id": [2, 3], "score": [0.9, 0.1]}).astype({"id": "int32"})

    appended = _feature_asset([first, second], mode="append")
    _materialize([appended])
    result = _materialize([appended])
    assert _table_rows(catalog, OUT) == [(1, 0.5), (2, 0.7), (2, 0.9), (3, 0.1)]
    meta = _mat_metadata(result, OUT)
    assert meta["dagster/row_count"] == 4  # the table's rows after the commit
    assert meta["datahub/rows_written"] == 2  # this run's rows
    assert meta["datahub/iceberg_table"] == "shop_gold.features"
    table = catalog.load_table(OUT.identifier)
    assert meta["datahub/snapshot_id"] == str(table.current_snapshot().snapshot_id)
    columns = {col.name: col.type for col in meta["dagster/column_schema"].columns}
    assert set(columns) == {"id", "score"}

    merged = _feature_asset(
        [spark.createDataFrame([(3, 0.3), (4, 0.4)], schema)], mode="merge", keys=["id"]
    )
    _materialize([merged])
    # merge: id 3 replaced, id 4 added, the rest untouched
    assert _table_rows(catalog, OUT) == [(1, 0.5), (2, 0.7), (2, 0.9), (3, 0.3), (4, 0.4)]

    replaced = _feature_asset([pa.table({"id": pa.array([9], pa.int32()), "score": [1.0]})])
    result = _materialize([replaced])  # overwrite is the default
    assert _table_rows(catalog, OUT) == [(9, 1.0)]
    assert _mat_metadata(result, OUT)["dagster/row_count"] == 1


@pytest.mark.spark
@pytest.mark.usefixtures("orders")
def test_a_plain_dagster_asset_with_the_io_manager_and_metadata(catalog):
    @dg.asset(
        key=OUT.asset_path,
        ins={"src": dg.AssetIn(key=ORDERS.asset_path, input_manager_key=IO_MANAGER_KEY)},
        io_manager_key=IO_MANAGER_KEY,
        metadata={
            "datahub/write_mode": "merge",
            "datahub/keys": "id",
            "datahub/checks": check_json.to_json([c.range_("amount", max=15, severity="warn")]),
        },
    )
    def features(src: pd.DataFrame) -> pd.DataFrame:
        return src

    _materialize([features])
    result = _materialize([features])  # merge on id: the same three rows, not six
    assert _table_rows(catalog, OUT) == ORDER_ROWS
    meta = _mat_metadata(result, OUT)
    assert meta["datahub/write_mode"] == "merge"
    assert meta["datahub/check/range_amount"] == "failed (warn): 1 of 3 rows failing"


@pytest.mark.spark
def test_blocking_check_stops_publishing_and_the_table_keeps_its_snapshot(spark, catalog):
    schema = "id int, score double"
    good = spark.createDataFrame([(1, 0.5), (2, 0.7)], schema)
    bad = spark.createDataFrame([(5, 0.1), (5, 0.2), (6, None)], schema)
    checks = [c.unique("id"), c.not_null("score", severity="warn")]
    asset = _feature_asset([good, bad], checks=checks)

    first = _materialize([asset])
    before = catalog.load_table(OUT.identifier).current_snapshot().snapshot_id
    evaluations = {e.check_name: e.passed for e in first.get_asset_check_evaluations()}
    assert evaluations == {"unique_id": True, "notNull_score": True}

    second = _materialize([asset], raise_on_error=False)
    assert not second.success
    failure = second.failure_data_for_node("shop__gold__features")
    assert failure is not None
    assert "unique_id" in str(failure.error)
    table = catalog.load_table(OUT.identifier)
    assert table.current_snapshot().snapshot_id == before
    assert _table_rows(catalog, OUT) == [(1, 0.5), (2, 0.7)]
    assert set(table.metadata.refs) == {"main"}  # the audit branch was discarded


@pytest.mark.spark
def test_a_python_asset_run_is_recorded(spark):
    from datetime import datetime

    from datahub_assets.runs.records import run_rows

    frame = spark.createDataFrame([(1, 0.5), (2, 0.7)], "id int, score double")
    asset = _feature_asset([frame], checks=[c.unique("id")])
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [dg.AssetSpec(key=ORDERS.asset_path), asset], resources=_resources(), instance=instance
    )
    (record,) = instance.get_run_records(dg.RunsFilter(run_ids=[result.run_id]))
    (terminal,) = instance.get_records_for_run(
        result.run_id, of_type=dg.DagsterEventType.RUN_SUCCESS
    ).records
    (row,) = run_rows(instance, terminal, record, datetime.now())
    assert row["pipeline"] == "shop.python.features"
    assert (row["app"], row["layer"], row["status"]) == ("shop", "gold", "success")
    assert row["rows_written"] == 2
    assert row["checks_passed"] == 1


@pytest.mark.spark
def test_warn_check_fails_but_publishes(spark, catalog):
    frame = spark.createDataFrame([(1, None), (2, 0.7)], "id int, score double")
    asset = _feature_asset([frame], checks=[c.not_null("score", severity="warn")])
    result = _materialize([asset])
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == "notNull_score"
    assert evaluation.passed is False
    assert evaluation.metadata["datahub/failing_rows"].value == 1
    assert _table_rows(catalog, OUT) == [(1, None), (2, 0.7)]
    meta = _mat_metadata(result, OUT)
    assert meta["datahub/check/notNull_score"] == "failed (warn): 1 of 2 rows failing"


@pytest.mark.spark
@pytest.mark.usefixtures("orders")
def test_referential_check_reads_the_referenced_table(spark):
    frame = spark.createDataFrame([(1, "a"), (2, "zed")], "id int, customer string")
    check = c.referential("customer", "silver.orders.customer", severity="warn")
    result = _materialize([_feature_asset([frame], checks=[check])])
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.passed is False
    assert evaluation.metadata["datahub/failing_rows"].value == 1  # "zed" is no customer


@pytest.mark.spark
def test_pandera_schema_rejects_a_frame_before_anything_is_written(catalog):
    import pandera.pandas as pdm

    schema = pdm.DataFrameSchema(
        {"id": pdm.Column(int, pdm.Check.ge(0)), "score": pdm.Column(float)}
    )
    frame = pd.DataFrame({"id": [1, -2], "score": [0.1, 0.2]})
    asset = _feature_asset([frame], schema=schema)
    result = _materialize([asset], raise_on_error=False)
    assert not result.success
    failure = result.failure_data_for_node("shop__gold__features")
    assert failure is not None
    assert "pandera schema" in str(failure.error)
    assert not catalog.table_exists(OUT.identifier)


class Features(pps.DataFrameModel):
    """A pandera.pyspark model (module level: its annotations are evaluated by name)."""

    id: T.IntegerType = pps.Field(ge=0)
    score: T.DoubleType = pps.Field()


@pytest.mark.spark
def test_pandera_pyspark_schema_checks_a_spark_frame(spark, catalog):
    bad = spark.createDataFrame([(1, 0.1), (-2, 0.2)], "id int, score double")
    result = _materialize([_feature_asset([bad], schema=Features)], raise_on_error=False)
    assert not result.success
    failure = result.failure_data_for_node("shop__gold__features")
    assert failure is not None
    assert "greater_than_or_equal_to(0)" in str(failure.error)
    assert not catalog.table_exists(OUT.identifier)

    good = spark.createDataFrame([(1, 0.1), (2, 0.2)], "id int, score double")
    _materialize([_feature_asset([good], schema=Features)])
    assert _table_rows(catalog, OUT) == [(1, 0.1), (2, 0.2)]


# ---------------------------------------------------------------------------------- discovery

READER = """<?xml version="1.0" encoding="UTF-8"?>
<pipeline id="features_export" version="1.0.0" layer="service">
  <sources><table id="f" ref="gold.features"/></sources>
  <targets><csv name="features_csv" path="service/features"/></targets>
</pipeline>
"""
WRITER = """<?xml version="1.0" encoding="UTF-8"?>
<pipeline id="orders" version="1.0.0" layer="silver">
  <sources><csv id="o" path="landing/orders.csv"/></sources>
  <targets><table table="orders"/></targets>
</pipeline>
"""
PY_ASSET = """
from datahub_assets.python import table_asset

@table_asset(layer="gold", ins={"orders": "silver.orders"})
def features(orders):
    return orders
"""


def _project(tmp_path: Path, python: str, reader: bool = True) -> Path:
    root = tmp_path / "pipelines"
    (root / "shop" / "silver").mkdir(parents=True)
    (root / "shop" / "service").mkdir()
    (root / "shop" / "python").mkdir()
    (root / "shop" / "silver" / "orders.xml").write_text(WRITER)
    if reader:
        (root / "shop" / "service" / "features_export.xml").write_text(READER)
    (root / "shop" / "python" / "features.py").write_text(textwrap.dedent(python))
    return root


def test_an_xml_pipeline_reads_a_python_assets_table(tmp_path):
    from datahub_assets.orchestration.project import build_definitions

    root = _project(tmp_path, PY_ASSET)
    project = load_project(root)
    (reader,) = [p for p in project.pipelines if p.pipeline.id == "features_export"]
    assert reader.upstream == (OUT,)
    graph = build_definitions(root).resolve_asset_graph()
    node = graph.get(dg.AssetKey(OUT.asset_path))
    assert node.parent_keys == {dg.AssetKey(ORDERS.asset_path)}
    assert node.group_name == "gold"
    assert set(node.kinds) == {"python", "iceberg"}
    export = graph.get(dg.AssetKey(["shop", "service", "features_csv"]))
    assert export.parent_keys == {dg.AssetKey(OUT.asset_path)}


@pytest.mark.parametrize(
    ("python", "where", "message"),
    [
        ("def broken(:\n    pass\n", "shop/python/features.py:1:", "syntax error"),
        (
            "import no_such_module_here\n",
            "shop/python/features.py:1:",
            "ModuleNotFoundError: No module named 'no_such_module_here'",
        ),
        (
            PY_ASSET.replace('layer="gold"', 'layer="platinum"'),
            "shop/python/features.py:4:",
            "layer 'platinum' is not one of",
        ),
        (
            PY_ASSET.replace(
                'layer="gold", ins={"orders": "silver.orders"}', 'layer="silver"'
            ).replace("def features", "def orders"),
            "shop/python/features.py:4:",
            "table shop.silver.orders is already written by shop/silver/orders.xml:2",
        ),
        (
            PY_ASSET.replace("silver.orders", "silver.nothing"),
            "shop/python/features.py:4:",
            "reads shop.silver.nothing, which no XML pipeline or Python asset writes",
        ),
    ],
)
def test_discovery_errors_are_located(tmp_path, python, where, message):
    root = _project(tmp_path, python, reader=False)
    with pytest.raises(SpecErrors) as raised:
        load_project(root)
    text = str(raised.value)
    assert where in text, text
    assert message in text, text


CYCLE_READER = """<?xml version="1.0" encoding="UTF-8"?>
<pipeline id="features_copy" version="1.0.0" layer="service">
  <sources><table id="f" ref="gold.features"/></sources>
  <targets><table table="features_copy"/></targets>
</pipeline>
"""


def test_a_cycle_through_a_python_asset_is_located(tmp_path):
    from datahub_assets.orchestration.project import build_definitions

    root = _project(tmp_path, PY_ASSET.replace("silver.orders", "service.features_copy"))
    (root / "shop" / "service" / "features_copy.xml").write_text(CYCLE_READER)
    with pytest.raises(SpecErrors) as raised:
        build_definitions(root)
    text = str(raised.value)
    assert "shop/python/features.py:4:" in text, text
    assert (
        "dependency cycle: shop/gold/features -> shop/service/features_copy -> shop/gold/features"
        in text
    ), text
