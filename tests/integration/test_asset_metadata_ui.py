"""What the UI shows of a file-drop table after a run (issue #11, UI fixes):

- `dagster/row_count` ("Row count") is the table's rows after the commit, not the batch;
  the batch is `datahub/rows_written` (and run records read it from there);
- the column schema carries the descriptions of the source's schemaRef and `<columns>`.
"""

from __future__ import annotations

import dagster as dg
import pytest

from datahub_assets.orchestration.project import build_assets
from datahub_assets.spec.loader import load_project
from datahub_resources.deployment import resources

pytestmark = pytest.mark.spark

KEY = dg.AssetKey(["shop", "raw", "orders"])
PIPELINE = """<pipeline id="orders_raw" version="1.0.0" layer="raw">
  <sources>
    <csv id="orders" path="landing/orders/*.csv" inferSchema="false">
      <schemaRef>schemas/orders.avsc</schemaRef>
      <watch minAgeSeconds="0"/>
    </csv>
  </sources>
  <targets>
    <table table="orders" mode="append">
      <columns><column name="amount" description="Gross amount in EUR."/></columns>
    </table>
  </targets>
</pipeline>
"""
SCHEMA = """{"type": "record", "name": "orders", "fields": [
  {"name": "order_id", "type": "long", "doc": "Order number from the shop."},
  {"name": "amount", "type": "double", "doc": "overridden by the target's <columns>"}]}"""


def _rows(n: int, start: int) -> str:
    return "order_id,amount\n" + "".join(f"{i},{i * 1.5}\n" for i in range(start, start + n))


def _materialization(result) -> dg.AssetMaterialization:
    (mat,) = [m for m in result.asset_materializations_for_node("shop__raw__orders")]
    return mat


@pytest.mark.usefixtures("spark")
def test_row_count_is_the_table_and_columns_are_described(settings):
    app = settings.pipelines_dir / "shop"
    (app / "raw").mkdir(parents=True)
    (app / "schemas").mkdir()
    (app / "raw" / "orders_raw.xml").write_text(PIPELINE)
    (app / "schemas" / "orders.avsc").write_text(SCHEMA)
    landing = settings.data_dir / "shop" / "landing" / "orders"
    landing.mkdir(parents=True)
    first, second = landing / "first.csv", landing / "second.csv"
    first.write_text(_rows(2050, 0))
    second.write_text(_rows(50, 10_000))

    (asset,) = build_assets(load_project(settings.pipelines_dir))
    job_config = {"ops": {"shop__raw__orders": {"config": {"files": {"orders": [str(first)]}}}}}
    with dg.instance_for_test() as instance:
        one = dg.materialize(
            [asset], resources=resources(), instance=instance, run_config=job_config
        )
        job_config["ops"]["shop__raw__orders"]["config"]["files"]["orders"] = [str(second)]
        two = dg.materialize(
            [asset], resources=resources(), instance=instance, run_config=job_config
        )

    assert _materialization(one).metadata["dagster/row_count"].value == 2050
    assert _materialization(one).metadata["datahub/rows_written"].value == 2050
    after = _materialization(two).metadata
    assert after["dagster/row_count"].value == 2100  # the table, not the batch of 50
    assert after["datahub/rows_written"].value == 50

    columns = {c.name: c.description for c in after["dagster/column_schema"].schema.columns}
    assert columns["order_id"] == "Order number from the shop."
    assert columns["amount"] == "Gross amount in EUR."  # <columns> wins over the schema doc
    assert columns["_source_file"] is None  # the platform's own columns have none


def test_rows_written_of_old_and_new_events():
    from datahub_assets.runs.records import rows_written_of

    # events written before datahub/rows_written existed: dagster/row_count was the batch
    assert rows_written_of({"dagster/row_count": dg.MetadataValue.int(50)}) == 50
    new = {
        "dagster/row_count": dg.MetadataValue.int(2100),
        "datahub/rows_written": dg.MetadataValue.int(50),
    }
    assert rows_written_of(new) == 50
    assert rows_written_of({}) is None
