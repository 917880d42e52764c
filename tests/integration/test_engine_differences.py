"""The hidden differences between PySpark and sqlframe-on-DuckDB (issue #12), one test each.

Every test states the PLATFORM's answer through the platform's own code path: pipelines
written as XML and loaded with `load_project`, sources read and steps applied with
`runner.build_datasets` (what a run does before its writes), or whole runs with
`runner.run_pipeline`, once on Spark (the `spark` fixture) and once on the DuckDB engine
(`engines.duckdb.duckdb_engine`). The answer is "same rows, same types, same bytes on both
engines" or, for a construct DuckDB cannot express, "refused at load time with file:line".

Difference in sqlframe 4.10 -> platform path -> test:
- F.broadcast missing -> join broadcast=, mask's key relation -> test_broadcast_join_*
- explode_outer / map_entries missing -> flatten arrays="explode" -> test_flatten_*
- try_cast missing -> onInvalid quarantine casts -> test_try_cast_*
- monotonically_increasing_id missing -> deduplicate keep=first/last -> test_deduplicate_*
- xxhash64 missing -> partitioned table staging -> test_partitioned_*
- sha2(..,512) missing, hash differs -> derive expr -> test_spark_function_*
- select("s.*") missing -> join rightPrefix / select=, select step -> test_*_star_*
- UDFs missing -> no UDF in the pipeline code, mongo (mapInArrow) refused -> test_pipeline_code_*,
  test_mongo_*
- mode("append"), partitionBy writes -> table append, csv append+partitionBy -> test_append_*
- collect_list keeps nulls -> sql step -> test_collect_list_*
- cache() is a no-op -> loadPolicy="eager" -> test_eager_*
- timestamp casts give TIMESTAMPTZ -> cast step -> Iceberg type -> test_timestamp_cast_*
- createDataFrame floats as decimals -> float columns, mask key frame -> test_float_*, test_mask_*
- sqlframe.activate() patches pyspark -> a DuckDB run in a Spark process -> test_duckdb_run_*

Rows are compared between the engines AND against expectations written by hand.
"""

from __future__ import annotations

import ast
import datetime as dt
import hashlib
import math
import re
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datahub_assets.engines.api import current, use
from datahub_assets.engines.duckdb.session import duckdb_engine
from datahub_assets.execute.context import ExecContext
from datahub_assets.execute.readers import read_source
from datahub_assets.execute.runner import build_datasets, run_pipeline
from datahub_assets.execute.transforms.mask import decrypt_value, detokenize
from datahub_assets.spec.errors import SpecErrors
from datahub_assets.spec.loader import load_project
from datahub_resources import secrets
from datahub_resources.iceberg import load_catalog
from datahub_resources.settings import Settings
from tests.support.context import exec_context

pytestmark = pytest.mark.spark

APP = "shop"
REPO = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------ helpers


def _pipeline(body: str, engine: str | None = None, layer: str = "silver") -> str:
    attr = f' engine="{engine}"' if engine else ""
    return f'<pipeline id="p" version="1.0.0" layer="{layer}"{attr}>\n{body}</pipeline>\n'


def _write_app(
    settings: Settings,
    xml: str,
    data: dict[str, Any] | None = None,
    app_files: dict[str, str] | None = None,
):
    """The pipeline file `<app>/<its layer>/p.xml`, data files under the app's data folder
    (a pyarrow Table is written as Parquet, a str as text) and app files (schemas);
    returns the loaded PipelineSpec."""
    layer = re.search(r'layer="(\w+)"', xml)
    assert layer is not None
    folder = settings.pipelines_dir / APP / layer[1]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "p.xml").write_text(xml)
    for rel, text in (app_files or {}).items():
        path = settings.pipelines_dir / APP / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for rel, content in (data or {}).items():
        _write_data(settings.data_dir / APP / rel, content)
    (spec,) = load_project(settings.pipelines_dir).pipelines
    return spec


def _write_data(path: Path, content: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, pa.Table):
        pq.write_table(content, path)
    else:
        path.write_text(content)


def _duck_settings(tmp_path: Path) -> Settings:
    """A second, private deployment for the DuckDB side of run_pipeline comparisons."""
    root = tmp_path / "duck"
    (root / "home").mkdir(parents=True, exist_ok=True)
    return Settings.from_env(
        {
            "DATAHUB_HOME": str(root / "home"),
            "DATAHUB_DATA_DIR": str(root / "data"),
            "DATAHUB_PIPELINES_DIR": str(root / "pipelines"),
        }
    )


def _spark_ctx(spark, settings: Settings, spec=None, run_id: str = "t") -> ExecContext:
    return exec_context(spark, settings, app=APP, run_id=run_id, spec=spec)


def _duck_ctx(settings: Settings, spec=None, run_id: str = "t") -> ExecContext:
    return exec_context(duckdb_engine(settings), settings, app=APP, run_id=run_id, spec=spec)


def _plain(value: Any) -> Any:
    """Rows (PySpark's or sqlframe's) as plain tuples, recursively; lists stay lists."""
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _datasets(spec, ctx: ExecContext, *names: str) -> dict[str, tuple[list[str], list]]:
    """Sources read and steps applied exactly as a run does (`runner.build_datasets`, under
    the run's engine); the named datasets as (columns, rows sorted)."""
    with use(ctx.active_engine):
        datasets = build_datasets(spec, ctx)
        out = {}
        for name in names:
            df = datasets[name]
            rows = [_plain(tuple(r)) for r in df.collect()]
            out[name] = (list(df.columns), sorted(rows, key=repr))
    return out


def _on_spark(spark, settings: Settings, spec, *names: str):
    return _datasets(spec, _spark_ctx(spark, settings, spec), *names)


def _on_duck(settings: Settings, spec, *names: str):
    """The DuckDB side, in the same deployment as the Spark side (same mask key)."""
    return _datasets(spec, _duck_ctx(settings, spec), *names)


def _run_spark(spark, settings: Settings, xml: str, data=None, app_files=None) -> Settings:
    """run_pipeline of the app on Spark, in the fixture's deployment."""
    spec = _write_app(settings, xml, data, app_files)
    run_pipeline(spec, _spark_ctx(spark, settings), load_catalog(settings))
    return settings


def _run_duck(tmp_path: Path, xml: str, data=None, app_files=None) -> Settings:
    """run_pipeline of the same app on DuckDB, in a second deployment."""
    settings = _duck_settings(tmp_path)
    spec = _write_app(settings, xml, data, app_files)
    run_pipeline(spec, _duck_ctx(settings), load_catalog(settings))
    return settings


def _iceberg(settings: Settings, table: str, layer: str = "silver"):
    return load_catalog(settings).load_table(f"{APP}_{layer}.{table}")


def _iceberg_types(settings: Settings, table: str, layer: str = "silver") -> dict[str, str]:
    return {f.name: str(f.field_type) for f in _iceberg(settings, table, layer).schema().fields}


def _iceberg_rows(
    settings: Settings, table: str, columns: list[str] | None = None, layer: str = "silver"
) -> list:
    arrow = _iceberg(settings, table, layer).scan().to_arrow()
    names = columns or arrow.column_names
    return sorted((tuple(r[c] for c in names) for r in arrow.to_pylist()), key=repr)


def _load_errors(settings: Settings, xml: str, data: dict[str, Any]) -> SpecErrors | None:
    try:
        _write_app(settings, xml, data)
    except SpecErrors as exc:
        return exc
    return None


def _line_of(xml: str, needle: str) -> int:
    return next(i for i, line in enumerate(xml.splitlines(), start=1) if needle in line)


# --------------------------------------------------------------------------- input data

ORDERS = pa.table(
    {
        "order_id": pa.array([1, 2, 3], pa.int32()),
        "customer_id": pa.array([10, 11, 99], pa.int32()),
        "amount": pa.array([5.0, 7.5, 1.0], pa.float64()),
    }
)
CUSTOMERS = pa.table(
    {
        "id": pa.array([10, 11, 12], pa.int32()),
        "name": pa.array(["Ann", "Bob", "Cy"]),
        "cc": pa.array(["DE", "FR", "XX"]),
    }
)
SHOP_DATA = {"landing/orders/o.parquet": ORDERS, "landing/customers/c.parquet": CUSTOMERS}
SHOP_SOURCES = """  <sources>
    <parquet id="orders" path="landing/orders/*.parquet"/>
    <parquet id="customers" path="landing/customers/*.parquet"/>
  </sources>
"""


# ------------------------------------------------------------------------- F.broadcast


JOINED = {
    "inner": [(1, 10, 5.0, 10, "Ann", "DE"), (2, 11, 7.5, 11, "Bob", "FR")],
    "left": [
        (1, 10, 5.0, 10, "Ann", "DE"),
        (2, 11, 7.5, 11, "Bob", "FR"),
        (3, 99, 1.0) + (None,) * 3,
    ],
    "full": [
        (1, 10, 5.0, 10, "Ann", "DE"),
        (2, 11, 7.5, 11, "Bob", "FR"),
        (3, 99, 1.0) + (None,) * 3,
        (None,) * 3 + (12, "Cy", "XX"),
    ],
}


@pytest.mark.parametrize(("side", "how"), [("right", "left"), ("left", "inner"), ("true", "full")])
def test_broadcast_join_same_rows_on_both_engines(spark, settings, side, how):
    """F.broadcast: a join hinted broadcast= runs on DuckDB (where the hint means nothing)
    and gives Spark's rows."""
    xml = _pipeline(
        SHOP_SOURCES
        + f"""  <transformations>
    <join left="orders" right="customers" condition="orders.customer_id = customers.id"
          type="{how}" broadcast="{side}" output="j"/>
  </transformations>
  <targets><table table="j" source="j"/></targets>
"""
    )
    spec = _write_app(settings, xml, SHOP_DATA)
    on_spark = _on_spark(spark, settings, spec, "j")
    columns = ["order_id", "customer_id", "amount", "id", "name", "cc"]
    assert on_spark["j"] == (columns, sorted(JOINED[how], key=repr))
    on_duck = _on_duck(settings, spec, "j")
    assert on_duck["j"] == on_spark["j"]


# --------------------------------------------------------- explode_outer / map_entries

NESTED = pa.table(
    {
        "id": pa.array([1, 2, 3], pa.int32()),
        "items": pa.array(
            [[{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2}], [], None],
            pa.list_(pa.struct([("sku", pa.string()), ("qty", pa.int32())])),
        ),
        "tags": pa.array([[("x", "1"), ("a", "2")], [], None], pa.map_(pa.string(), pa.string())),
    }
)


def test_flatten_explode_keeps_empty_and_null_arrays(spark, settings):
    """explode_outer: an empty or null array keeps its row, with nulls, on both engines."""
    xml = _pipeline(
        """  <sources><parquet id="n" path="landing/n/*.parquet"/></sources>
  <transformations>
    <select source="n" columns="id, items" output="arr"/>
    <flatten source="arr" arrays="explode"/>
  </transformations>
  <targets><table table="arr" source="arr"/></targets>
"""
    )
    spec = _write_app(settings, xml, {"landing/n/n.parquet": NESTED})
    on_spark = _on_spark(spark, settings, spec, "arr")
    expected = [(1, "a", 1), (1, "b", 2), (2, None, None), (3, None, None)]
    assert on_spark["arr"] == (["id", "items_sku", "items_qty"], expected)
    on_duck = _on_duck(settings, spec, "arr")
    assert on_duck["arr"] == on_spark["arr"]


def test_flatten_map_entries_sorted_by_key_on_both_engines(spark, settings):
    """map_entries: maps flatten to key/value rows sorted by key; empty/null maps keep the
    row."""
    xml = _pipeline(
        """  <sources><parquet id="n" path="landing/n/*.parquet"/></sources>
  <transformations>
    <select source="n" columns="id, tags" output="m"/>
    <flatten source="m" arrays="explode"/>
  </transformations>
  <targets><table table="m" source="m"/></targets>
"""
    )
    spec = _write_app(settings, xml, {"landing/n/n.parquet": NESTED})
    on_spark = _on_spark(spark, settings, spec, "m")
    expected = [(1, "a", "2"), (1, "x", "1"), (2, None, None), (3, None, None)]
    assert on_spark["m"] == (["id", "tags_key", "tags_value"], expected)
    on_duck = _on_duck(settings, spec, "m")
    assert on_duck["m"] == on_spark["m"]


# ----------------------------------------------------------- monotonically_increasing_id

EVENTS = pa.table(
    {
        "id": pa.array([1, 2, 1, 2, 1, 3], pa.int32()),
        "v": pa.array(["a", "b", "c", "d", "e", "f"]),
    }
)


@pytest.mark.parametrize(
    ("keep", "expected"),
    [
        ("first", [(1, "a"), (2, "b"), (3, "f")]),
        ("last", [(1, "e"), (2, "d"), (3, "f")]),
    ],
)
def test_deduplicate_keeps_the_same_row_as_spark(spark, settings, keep, expected):
    """monotonically_increasing_id: keep=first/last without orderBy follow the file's row
    order on both engines."""
    xml = _pipeline(
        f"""  <sources><parquet id="e" path="landing/e/*.parquet"/></sources>
  <transformations><deduplicate source="e" keys="id" keep="{keep}"/></transformations>
  <targets><table table="e" source="e"/></targets>
"""
    )
    spec = _write_app(settings, xml, {"landing/e/e.parquet": EVENTS})
    on_spark = _on_spark(spark, settings, spec, "e")
    assert on_spark["e"] == (["id", "v"], expected)
    on_duck = _on_duck(settings, spec, "e")
    assert on_duck["e"] == on_spark["e"]


# -------------------------------------------------------------- xxhash64 / partitionBy


def test_partitioned_table_write_same_partitions(spark, settings, tmp_path):
    """xxhash64 + partitionBy staging: a partitioned table written by DuckDB has the same
    partition spec, the same partition per data file and the same rows as Spark's."""
    xml = _pipeline(
        SHOP_SOURCES
        + """  <targets><table table="customers" source="customers" mode="overwrite"
    partitionBy="cc"/></targets>
"""
    )
    spark_side = _partitioned(_run_spark(spark, settings, xml, SHOP_DATA), "customers")
    specs, partitions, rows = spark_side
    assert specs == [("cc", "identity")]
    assert set(partitions) == {(("cc", "DE"),), (("cc", "FR"),), (("cc", "XX"),)}
    assert rows == [(10, "Ann", "DE"), (11, "Bob", "FR"), (12, "Cy", "XX")]
    assert _partitioned(_run_duck(tmp_path, xml, SHOP_DATA), "customers") == spark_side


def _partitioned(settings: Settings, name: str):
    """(partition spec as (column, transform), each data file's partition, rows)."""
    table = _iceberg(settings, name)
    schema = table.schema()
    spec = [(schema.find_field(f.source_id).name, str(f.transform)) for f in table.spec().fields]
    files = table.inspect.files().to_pylist()
    partitions = sorted({tuple(sorted(f["partition"].items())) for f in files})
    rows = sorted(tuple(r.values()) for r in table.scan().to_arrow().to_pylist())
    return spec, partitions, rows


# ------------------------------------------------------------------- select("s.*")


def test_join_star_select_and_right_prefix_on_both_engines(spark, settings):
    """select("s.*") on an aliased frame: join select="orders.*, ..." and rightPrefix (which
    selects `left`.*) give the same columns and rows on both engines."""
    xml = _pipeline(
        SHOP_SOURCES
        + """  <transformations>
    <join left="orders" right="customers" condition="orders.customer_id = customers.id"
          select="orders.*, customers.name AS customer" output="sel"/>
    <join left="orders" right="customers" condition="orders.customer_id = customers.id"
          type="left" rightPrefix="c_" output="pre"/>
  </transformations>
  <targets><table table="sel" source="sel"/><table table="pre" source="pre"/></targets>
"""
    )
    spec = _write_app(settings, xml, SHOP_DATA)
    on_spark = _on_spark(spark, settings, spec, "sel", "pre")
    assert on_spark["sel"] == (
        ["order_id", "customer_id", "amount", "customer"],
        [(1, 10, 5.0, "Ann"), (2, 11, 7.5, "Bob")],
    )
    assert on_spark["pre"] == (
        ["order_id", "customer_id", "amount", "c_id", "c_name", "c_cc"],
        sorted(JOINED["left"], key=repr),
    )
    on_duck = _on_duck(settings, spec, "sel", "pre")
    assert on_duck == on_spark


def test_select_struct_star_on_both_engines(spark, settings):
    """`s.*` in a select step expands a struct column's fields on both engines."""
    data = pa.table(
        {
            "id": pa.array([1, 2], pa.int32()),
            "s": pa.array(
                [{"a": 1, "b": "x"}, None], pa.struct([("a", pa.int32()), ("b", pa.string())])
            ),
        }
    )
    xml = _pipeline(
        """  <sources><parquet id="d" path="landing/d/*.parquet"/></sources>
  <transformations><select source="d" columns="id, s.*"/></transformations>
  <targets><table table="d" source="d"/></targets>
"""
    )
    spec = _write_app(settings, xml, {"landing/d/d.parquet": data})
    on_spark = _on_spark(spark, settings, spec, "d")
    assert on_spark["d"] == (["id", "a", "b"], [(1, 1, "x"), (2, None, None)])
    on_duck = _on_duck(settings, spec, "d")
    assert on_duck["d"] == on_spark["d"]


# ------------------------------------------------------------------------------- UDFs

UDF_NAMES = {"udf", "pandas_udf", "udtf", "mapInPandas", "mapInArrow", "applyInPandas"}
SPARK_ONLY = ("datahub_assets/execute/mongo/",)  # refused on DuckDB at load (test below)


def test_pipeline_code_uses_no_udfs():
    """UDFs: sqlframe runs none, so the code that runs pipelines (execute/, engines/) builds
    every column from engine functions; a Python UDF there would break the DuckDB engine.
    The one exception, the MongoDB reader (mapInArrow), is refused on DuckDB at load."""
    found = []
    for folder in ("datahub_assets/execute", "datahub_assets/engines"):
        for path in sorted((REPO / folder).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            if rel.startswith(SPARK_ONLY):
                continue
            for node in ast.walk(ast.parse(path.read_text(), rel)):
                if isinstance(node, ast.Attribute):
                    name, line = node.attr, node.lineno
                elif isinstance(node, ast.Name):
                    name, line = node.id, node.lineno
                else:
                    continue
                if name in UDF_NAMES:
                    found.append(f"{rel}:{line}: {name}")
    assert found == []


def test_mongo_source_is_refused_at_load_on_duckdb(tmp_path):
    """The MongoDB source reads through a Python function on the Spark executors
    (mapInArrow): a pipeline declared engine="duckdb" with one is refused at load, at the
    source's line."""
    xml = _pipeline(
        """  <sources>
    <mongo id="users" database="app" collection="users" uriSecretRef="SHOP_MONGO_URI"/>
  </sources>
  <targets><table table="users" source="users"/></targets>
""",
        engine="duckdb",
        layer="raw",
    )
    refused = _load_errors(_duck_settings(tmp_path), xml, {})
    assert refused is not None
    (error,) = refused.errors
    assert (error.file, error.line) == (f"{APP}/raw/p.xml", _line_of(xml, "<mongo"))
    assert "DuckDB" in error.message
    assert "mongo" in error.message.lower()


# ------------------------------------------------------------------------------ try_cast

QUARANTINE = """  <sources>
    <csv id="o" path="landing/o/*.csv" onInvalid="quarantine">
      <schemaRef>schemas/orders.avsc</schemaRef>
    </csv>
  </sources>
  <targets><table table="orders"/></targets>
"""
AVSC = """{"type": "record", "name": "orders", "fields": [
  {"name": "id", "type": "long"},
  {"name": "amount", "type": ["null", "double"]},
  {"name": "day", "type": ["null", {"type": "int", "logicalType": "date"}]}]}"""


def test_try_cast_quarantines_the_same_rows(spark, settings, tmp_path):
    """try_cast: values that do not cast to the declared schema are quarantined (with the
    same reasons) and the others kept, identically on both engines."""
    data = {
        "landing/o/o.csv": (
            "id,amount,day\n1,10.5,2024-01-31\nx,3,2024-02-01\n3,abc,2024-02-02\n"
            "4,2.25,2024-02-30\n5,,\n"
        )
    }
    files = {"schemas/orders.avsc": AVSC}
    xml = _pipeline(QUARANTINE, layer="raw")
    on_spark = _quarantine_result(_run_spark(spark, settings, xml, data, files))
    kept, bad = on_spark
    assert kept == [(1, 10.5, dt.date(2024, 1, 31)), (5, None, None)]
    assert [b[:4] for b in bad] == [
        ("3", "abc", "2024-02-02", "cast"),
        ("4", "2.25", "2024-02-30", "cast"),
        ("x", "3", "2024-02-01", "cast"),
    ]
    assert _quarantine_result(_run_duck(tmp_path, xml, data, files)) == on_spark


def _quarantine_result(settings: Settings):
    """(kept rows, quarantined rows with rule and reason) of the orders table."""
    kept = _iceberg_rows(settings, "orders", ["id", "amount", "day"], "raw")
    bad = _iceberg_rows(
        settings, "orders__quarantine", ["id", "amount", "day", "_rule", "_reason"], "raw"
    )
    return kept, bad


# ------------------------------------------- sha2(...,512) / hash / xxhash64 in expressions

NAMES = pa.table({"id": pa.array([1, 2, 3], pa.int32()), "name": pa.array(["a", "Zoë", None])})


@pytest.mark.parametrize("expr", ["hash(name)", "xxhash64(name)", "sha2(name, 512)"])
def test_spark_function_in_derive_refused_at_load_or_equal(spark, settings, tmp_path, expr):
    """F.hash differs, xxhash64 and sha2(..,512) are missing in sqlframe: in a pipeline
    declared engine="duckdb" such an expression is either refused at load (file:line,
    naming the function) or gives Spark's exact values."""
    xml = _pipeline(
        f"""  <sources><parquet id="d" path="landing/d/*.parquet"/></sources>
  <transformations>
    <derive source="d" column="h" expr="{expr}"/>
  </transformations>
  <targets><table table="d" source="d"/></targets>
""",
        engine="duckdb",
    )
    data = {"landing/d/d.parquet": NAMES}
    refused = _load_errors(_duck_settings(tmp_path), xml, data)
    # the reference: Spark, on the same pipeline without the engine attribute
    spark_spec = _write_app(settings, xml.replace(' engine="duckdb"', ""), data)
    (_, spark_rows) = _datasets(spark_spec, _spark_ctx(spark, settings, spark_spec), "d")["d"]
    if expr.startswith("sha2"):
        assert spark_rows == [
            (1, "a", hashlib.sha512(b"a").hexdigest()),
            (2, "Zoë", hashlib.sha512("Zoë".encode()).hexdigest()),
            (3, None, None),
        ]
    if refused is not None:
        function = expr.split("(")[0]
        (error,) = refused.errors
        assert error.file == f"{APP}/silver/p.xml"
        assert error.line == _line_of(xml, "<derive")
        assert function in error.message
        return
    duck_settings = _duck_settings(tmp_path)
    duck_spec = load_project(duck_settings.pipelines_dir).pipelines[0]
    (_, duck_rows) = _datasets(duck_spec, _duck_ctx(duck_settings, duck_spec), "d")["d"]
    assert duck_rows == spark_rows


# --------------------------------------------------------------- collect_list over nulls

GROUPS = pa.table(
    {"g": pa.array(["a", "a", "a", "b"]), "x": pa.array([1, None, 2, None], pa.int32())}
)


def test_collect_list_in_sql_step_skips_nulls_or_is_refused(spark, settings, tmp_path):
    """collect_list keeps nulls in sqlframe, Spark drops them: a sql step using it in a
    pipeline declared engine="duckdb" is refused at load (file:line) or gives Spark's lists."""
    xml = _pipeline(
        """  <sources><parquet id="d" path="landing/d/*.parquet"/></sources>
  <transformations>
    <sql output="agg"><![CDATA[
      SELECT g, sort_array(collect_list(x)) AS xs, size(collect_list(x)) AS n
      FROM d GROUP BY g
    ]]></sql>
  </transformations>
  <targets><table table="agg" source="agg"/></targets>
""",
        engine="duckdb",
    )
    data = {"landing/d/d.parquet": GROUPS}
    refused = _load_errors(_duck_settings(tmp_path), xml, data)
    spark_spec = _write_app(settings, xml.replace(' engine="duckdb"', ""), data)
    on_spark = _datasets(spark_spec, _spark_ctx(spark, settings, spark_spec), "agg")
    assert on_spark["agg"] == (["g", "xs", "n"], [("a", [1, 2], 2), ("b", [], 0)])
    if refused is not None:
        (error,) = refused.errors
        assert error.file == f"{APP}/silver/p.xml"
        assert error.line == _line_of(xml, "<sql")
        assert "collect_list" in error.message
        return
    duck_settings = _duck_settings(tmp_path)
    duck_spec = load_project(duck_settings.pipelines_dir).pipelines[0]
    on_duck = _datasets(duck_spec, _duck_ctx(duck_settings, duck_spec), "agg")
    assert on_duck == on_spark


# ------------------------------------------------------------------- masking (sha2, AES)

PEOPLE = pa.table(
    {"id": pa.array([1, 2, 3], pa.int32()), "email": pa.array(["ann@x.org", "zoë@y.com", None])}
)


def test_mask_hash_and_tokenize_are_byte_identical(spark, settings):
    """Masking on DuckDB: the same salted SHA-256 hashes and the same tokens as Spark
    (the key travels in a one-row frame made with createDataFrame + schema and a broadcast
    cross join); encrypt output decrypts with the same key."""
    xml = _pipeline(
        """  <sources><parquet id="p" path="landing/p/*.parquet"/></sources>
  <transformations>
    <mask source="p" columns="email" strategy="hash" output="hashed"/>
    <mask source="p" columns="email" strategy="tokenize" output="tokens"/>
    <mask source="p" columns="email" strategy="encrypt" output="sealed"/>
  </transformations>
  <targets><table table="hashed" source="hashed"/></targets>
"""
    )
    spec = _write_app(settings, xml, {"landing/p/p.parquet": PEOPLE})
    names = ("hashed", "tokens", "sealed")
    on_spark = _on_spark(spark, settings, spec, *names)
    key = secrets.default_mask_key(settings.home)
    salted = [hashlib.sha256((key + e).encode()).hexdigest() for e in ("ann@x.org", "zoë@y.com")]
    assert on_spark["hashed"] == (["id", "email"], [(1, salted[0]), (2, salted[1]), (3, None)])
    on_duck = _on_duck(settings, spec, *names)
    assert on_duck["hashed"] == on_spark["hashed"]
    assert on_duck["tokens"] == on_spark["tokens"]
    tokens = dict(on_duck["tokens"][1])
    assert detokenize(tokens[1], key) == "ann@x.org"
    assert detokenize(tokens[2], key) == "zoë@y.com"
    assert tokens[3] is None
    sealed = dict(on_duck["sealed"][1])
    assert decrypt_value(sealed[2], key) == "zoë@y.com"
    assert sealed[3] is None


# ----------------------------------------------------- mode("append") and partitionBy writes


def test_append_table_and_partitioned_csv_export_on_both_engines(spark, settings, tmp_path):
    """mode("append") / partitionBy writes: two runs append to the table and to a csv export
    partitioned by a column; the table rows, the export folders and their lines are the
    same on both engines. (The export reads its own dataset `out`: an export of a table
    target's dataset exports the committed table, here both runs' rows.)"""
    xml = _pipeline(
        SHOP_SOURCES
        + """  <transformations>
    <select source="customers" columns="*" output="out"/>
  </transformations>
  <targets>
    <table table="customers" source="customers" mode="append"/>
    <csv name="by_cc" source="out" path="service/by_cc" mode="append" partitionBy="cc"/>
  </targets>
"""
    )
    _write_app(settings, xml, SHOP_DATA)
    on_spark = _append_twice(settings, lambda run_id: _spark_ctx(spark, settings, None, run_id))
    outcomes, rows, folders = on_spark
    assert outcomes[1]["customers"] == (3, 6)
    assert rows == sorted([(10, "Ann", "DE"), (11, "Bob", "FR"), (12, "Cy", "XX")] * 2)
    assert folders == {"cc=DE": ["10,Ann"] * 2, "cc=FR": ["11,Bob"] * 2, "cc=XX": ["12,Cy"] * 2}
    duck_settings = _duck_settings(tmp_path)
    _write_app(duck_settings, xml, SHOP_DATA)
    on_duck = _append_twice(duck_settings, lambda run_id: _duck_ctx(duck_settings, None, run_id))
    assert on_duck == on_spark


def _append_twice(settings: Settings, make_ctx):
    """Two runs (r1, r2) of the app's pipeline: (outcomes per run as {table: (rows,
    table_rows)}, the table's rows, {export folder: its csv lines without header})."""
    (spec,) = load_project(settings.pipelines_dir).pipelines
    outcomes = []
    for run_id in ("r1", "r2"):
        done = run_pipeline(spec, make_ctx(run_id), load_catalog(settings))
        outcomes.append({o.ref.table: (o.rows, o.table_rows) for o in done})
    export = settings.data_dir / APP / "service" / "by_cc"
    folders = {
        d.name: sorted(line for f in d.glob("*.csv") for line in f.read_text().splitlines()[1:])
        for d in sorted(export.iterdir())
        if d.is_dir()
    }
    return outcomes, _iceberg_rows(settings, "customers"), folders


# ------------------------------------------------------------------------- cache() no-op


def test_eager_source_is_materialised_on_both_engines(spark, settings):
    """cache() is a no-op in sqlframe: loadPolicy="eager" still materialises the source,
    so a file replaced after the read does not change the rows on either engine."""
    xml = _pipeline(
        """  <sources><parquet id="e" path="landing/e/*.parquet" loadPolicy="eager"/></sources>
  <targets><table table="e" source="e"/></targets>
"""
    )
    path = settings.data_dir / APP / "landing" / "e" / "e.parquet"
    spec = _write_app(settings, xml, {"landing/e/e.parquet": EVENTS})
    (source,) = spec.pipeline.sources
    expected = sorted(zip(EVENTS["id"].to_pylist(), EVENTS["v"].to_pylist(), strict=True))
    replacement = pa.table({"id": pa.array([9], pa.int32()), "v": pa.array(["new"])})
    for ctx in (_spark_ctx(spark, settings, spec), _duck_ctx(settings, spec)):
        _write_data(path, EVENTS)
        with use(ctx.active_engine):
            df = read_source(source, ctx)
            _write_data(path, replacement)
            assert sorted(_plain(tuple(r)) for r in df.collect()) == expected, (
                ctx.active_engine.name
            )


# --------------------------------------------------------------- timestamp -> TIMESTAMPTZ

STAMPS = pa.table(
    {
        "id": pa.array([1, 2, 3], pa.int32()),
        "ts": pa.array(["2024-03-01 10:00:00", "2024-03-01T10:00:00+02:00", None]),
        "ntz": pa.array(["2024-03-01 10:00:00", "2024-12-31 23:59:59.123456", None]),
        "d": pa.array(["2024-03-01", "2024-02-29", None]),
    }
)


def test_timestamp_cast_gives_the_same_iceberg_types(spark, settings, tmp_path):
    """Timestamp casts: `timestamp` is Iceberg timestamptz and `timestamp_ntz` timestamp on
    both engines, with the same instants (a zone in the text is honoured)."""
    xml = _pipeline(
        """  <sources><parquet id="s" path="landing/s/*.parquet"/></sources>
  <transformations>
    <cast source="s" types="ts:timestamp,ntz:timestamp_ntz,d:date"/>
  </transformations>
  <targets><table table="stamps" source="s"/></targets>
"""
    )
    data = {"landing/s/s.parquet": STAMPS}
    s_settings = _run_spark(spark, settings, xml, data)
    types = _iceberg_types(s_settings, "stamps")
    assert types == {"id": "int", "ts": "timestamptz", "ntz": "timestamp", "d": "date"}
    rows = _iceberg_rows(s_settings, "stamps", ["id", "ts", "ntz", "d"])
    assert rows[1] == (
        2,
        dt.datetime(2024, 3, 1, 8, 0, tzinfo=dt.UTC),
        dt.datetime(2024, 12, 31, 23, 59, 59, 123456),
        dt.date(2024, 2, 29),
    )
    assert rows[2] == (3, None, None, None)
    d_settings = _run_duck(tmp_path, xml, data)
    assert _iceberg_types(d_settings, "stamps") == types
    assert _iceberg_rows(d_settings, "stamps", ["id", "ts", "ntz", "d"]) == rows


# ---------------------------------------------------- createDataFrame: floats vs decimals


def test_float_columns_stay_double_on_both_engines(spark, settings, tmp_path):
    """Python-side floats (a CSV's inferred doubles, float literals in expressions) stay
    Iceberg doubles on DuckDB, never decimals, with the same values (1e-9 relative)."""
    xml = _pipeline(
        """  <sources><csv id="o" path="landing/o/*.csv" inferSchema="true"/></sources>
  <transformations>
    <derive source="o" column="total" expr="quantity * price"/>
    <derive source="o" column="ratio" expr="price * 0.5"/>
  </transformations>
  <targets><table table="o" source="o"/></targets>
""",
        layer="bronze",
    )
    data = {"landing/o/a.csv": "order_id,quantity,price\n1,1,5.1\n2,3,4.25\n3,10,0.1\n"}
    columns = ["order_id", "price", "total", "ratio"]
    s_settings = _run_spark(spark, settings, xml, data)
    types = _iceberg_types(s_settings, "o", "bronze")
    assert {c: types[c] for c in columns} == {
        "order_id": "int",
        "price": "double",
        "total": "double",
        "ratio": "double",
    }
    rows = _iceberg_rows(s_settings, "o", columns, "bronze")
    assert [r[:3] for r in rows] == [(1, 5.1, 5.1), (2, 4.25, 12.75), (3, 0.1, 1.0)]
    d_settings = _run_duck(tmp_path, xml, data)
    assert _iceberg_types(d_settings, "o", "bronze") == types
    duck_rows = _iceberg_rows(d_settings, "o", columns, "bronze")
    assert [r[0] for r in duck_rows] == [r[0] for r in rows]
    for d_row, s_row in zip(duck_rows, rows, strict=True):
        for d_val, s_val in zip(d_row[1:], s_row[1:], strict=True):
            assert isinstance(d_val, float)
            assert math.isclose(d_val, s_val, rel_tol=1e-9)


# ------------------------------------------------------------ sqlframe.activate() patching

PYSPARK_MODULES = ("pyspark", "pyspark.sql", "pyspark.sql.functions", "pyspark.sql.types")


def test_duckdb_run_leaves_pyspark_untouched(spark, settings):
    """sqlframe.activate() would patch pyspark process-wide: a DuckDB run must not. After a
    whole run on DuckDB, pyspark's modules are the same objects, the engine is Spark
    again, and a Spark frame still works in the same process."""
    from pyspark.sql import functions as spark_f

    before = {name: sys.modules[name] for name in PYSPARK_MODULES}
    col_before = spark_f.col
    xml = _pipeline(
        SHOP_SOURCES
        + """  <transformations>
    <derive source="orders" column="twice" expr="amount * 2"/>
  </transformations>
  <targets><table table="orders" source="orders"/></targets>
"""
    )
    spec = _write_app(settings, xml, SHOP_DATA)
    (outcome,) = run_pipeline(spec, _duck_ctx(settings, spec), load_catalog(settings))
    assert outcome.rows == 3
    assert all(sys.modules[name] is mod for name, mod in before.items())
    assert sys.modules["pyspark.sql.functions"].col is col_before
    assert col_before.__module__.startswith("pyspark.")
    assert current().name == "spark"
    df = spark.createDataFrame([(1,), (2,)], "x int").select((spark_f.col("x") * 2).alias("y"))
    assert type(df).__module__.startswith("pyspark.sql.connect")
    assert [r.y for r in df.collect()] == [2, 4]
