"""Incremental sources: only rows above the committed watermark are read; the watermark lives
in the table targets' snapshot summary and advances only when they commit."""

from __future__ import annotations

import json

import pytest

from datahub_assets.execute import incremental, runner
from datahub_assets.execute.runner import PipelineRunError, run_pipeline
from datahub_assets.spec.errors import SpecErrors
from datahub_assets.spec.loader import load_project
from datahub_resources.iceberg import load_catalog
from tests.support.context import exec_context
from tests.support.iceberg import table_rows

pytestmark = pytest.mark.spark

PIPELINE = """<pipeline id="events" version="1.0.0" layer="bronze">
  <sources>
    <csv id="events" path="landing/events/*.csv" inferSchema="true"{policy}>
      <incremental column="{column}"/>
    </csv>
  </sources>
  <transformations>
    <derive source="events" column="total" expr="{total_expr}"/>
  </transformations>
  <targets>
{targets}
  </targets>
</pipeline>
"""
TABLES = """    <table table="events" source="events" mode="append"/>
    <table table="events_copy" source="events" mode="append"/>"""
GOOD = "qty * 2"
BAD = "IF(id = 7, raise_error('boom'), qty * 2)"
KEY = "datahub.watermark.events"


def _setup(settings, column="updated_at", total_expr=GOOD, targets=TABLES, policy=""):
    folder = settings.pipelines_dir / "shop" / "bronze"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "events.xml").write_text(
        PIPELINE.format(column=column, total_expr=total_expr, targets=targets, policy=policy)
    )
    (spec,) = load_project(settings.pipelines_dir).pipelines
    return spec


def _drop(settings, name: str, text: str) -> None:
    landing = settings.data_dir / "shop" / "landing" / "events"
    landing.mkdir(parents=True, exist_ok=True)
    (landing / name).write_text(text)


def _ctx(spark, settings, run_id="test"):
    return exec_context(spark, settings, run_id=run_id)


def _rows(catalog, table="events"):
    return table_rows(catalog, f"shop_bronze.{table}", "id", "total")


def _snapshot(catalog, table="events"):
    return catalog.load_table(f"shop_bronze.{table}").current_snapshot()


def _watermark(catalog, table="events"):
    return json.loads(_snapshot(catalog, table).summary[KEY])


FIRST = (
    "id,qty,updated_at\n"
    "1,1,2024-01-01T10:00:00Z\n"
    "2,2,2024-01-03T00:00:00Z\n"
    "3,3,2024-01-02T08:30:00Z\n"
    "4,4,\n"
)  # null: never above a watermark, never read
SECOND = (
    "id,qty,updated_at\n"
    "5,5,2024-01-02T23:59:59.999999Z\n"  # older than the watermark
    "6,6,2024-01-03T00:00:00Z\n"  # equal: not above it
    "7,7,2024-01-04T12:00:00.123456Z\n"
    "8,8,2024-01-03T00:00:00.000001+00:00\n"
)


def test_second_run_appends_only_newer_rows(spark, settings):
    catalog = load_catalog(settings)
    spec = _setup(settings)
    _drop(settings, "a.csv", FIRST)
    outcomes = {o.ref.table: o for o in run_pipeline(spec, _ctx(spark, settings), catalog)}
    assert outcomes["events"].rows == 3
    assert outcomes["events_copy"].rows == 3
    assert outcomes["events"].extra["watermark.events"] == "2024-01-03T00:00:00.000000+00:00"
    assert _rows(catalog) == [(1, 2), (2, 4), (3, 6)]
    expected = {"type": "timestamp", "value": "2024-01-03T00:00:00.000000+00:00"}
    assert _watermark(catalog) == expected
    assert _watermark(catalog, "events_copy") == expected

    _drop(settings, "b.csv", SECOND)
    outcomes = {o.ref.table: o for o in run_pipeline(spec, _ctx(spark, settings), catalog)}
    assert outcomes["events"].rows == 2
    assert _rows(catalog) == [(1, 2), (2, 4), (3, 6), (7, 14), (8, 16)]
    assert _rows(catalog, "events_copy") == _rows(catalog)
    assert _watermark(catalog)["value"] == "2024-01-04T12:00:00.123456+00:00"

    # nothing new: the run commits an empty append that records the watermark again
    before = _snapshot(catalog).snapshot_id
    outcomes = run_pipeline(spec, _ctx(spark, settings), catalog)
    assert [o.rows for o in outcomes] == [0, 0]
    assert _snapshot(catalog).snapshot_id != before
    assert _rows(catalog) == [(1, 2), (2, 4), (3, 6), (7, 14), (8, 16)]
    assert _watermark(catalog)["value"] == "2024-01-04T12:00:00.123456+00:00"


def test_failed_run_keeps_watermark_and_next_run_reads_the_rows(spark, settings):
    catalog = load_catalog(settings)
    _drop(settings, "a.csv", FIRST)
    run_pipeline(_setup(settings), _ctx(spark, settings), catalog)
    before = (_snapshot(catalog).snapshot_id, _watermark(catalog))

    _drop(settings, "b.csv", SECOND)
    with pytest.raises(PipelineRunError, match="boom"):
        run_pipeline(_setup(settings, total_expr=BAD), _ctx(spark, settings), catalog)
    assert (_snapshot(catalog).snapshot_id, _watermark(catalog)) == before
    assert _rows(catalog) == [(1, 2), (2, 4), (3, 6)]

    # a failure after the commits (the export refuses to overwrite) rolls the tables back
    export = TABLES + '\n    <csv name="out" source="events" path="service/out" mode="error"/>'
    (settings.data_dir / "shop" / "service" / "out").mkdir(parents=True)
    with pytest.raises(PipelineRunError, match="csv export failed"):
        run_pipeline(_setup(settings, targets=export), _ctx(spark, settings), catalog)
    assert (_snapshot(catalog).snapshot_id, _watermark(catalog)) == before
    assert _rows(catalog) == [(1, 2), (2, 4), (3, 6)]

    outcomes = run_pipeline(_setup(settings), _ctx(spark, settings), catalog)
    assert outcomes[0].rows == 2
    assert _rows(catalog) == [(1, 2), (2, 4), (3, 6), (7, 14), (8, 16)]
    assert _watermark(catalog)["value"] == "2024-01-04T12:00:00.123456+00:00"


def test_integer_column_and_eager_source(spark, settings):
    catalog = load_catalog(settings)
    spec = _setup(
        settings, column="id", targets=TABLES.splitlines()[0], policy=' loadPolicy="eager"'
    )
    _drop(settings, "a.csv", "id,qty\n1,1\n3,3\n2,2\n")
    assert run_pipeline(spec, _ctx(spark, settings), catalog)[0].rows == 3
    assert _watermark(catalog) == {"type": "int", "value": "3"}

    _drop(settings, "b.csv", "id,qty\n2,20\n3,30\n4,40\n10,100\n")
    assert run_pipeline(spec, _ctx(spark, settings), catalog)[0].rows == 2
    assert _rows(catalog) == [(1, 2), (2, 4), (3, 6), (4, 80), (10, 200)]
    assert _watermark(catalog) == {"type": "int", "value": "10"}


def test_missing_column_is_a_clear_error(spark, settings):
    catalog = load_catalog(settings)
    _drop(settings, "a.csv", FIRST)
    with pytest.raises(PipelineRunError) as info:
        run_pipeline(_setup(settings, column="changed_at"), _ctx(spark, settings), catalog)
    message = str(info.value)
    assert "shop/bronze/events.xml:3" in message
    assert "source 'events'" in message
    assert "'changed_at' not found" in message
    assert "available columns: id, qty, updated_at" in message
    assert not catalog.table_exists(("shop_bronze", "events"))


def test_incremental_needs_a_table_target(settings):
    """Refused when the definitions load (spec/validate.py), before any run."""
    export = '    <csv name="out" source="events" path="service/out"/>'
    with pytest.raises(
        SpecErrors,
        match=r'events\.xml:4:\d+: source "events" is incremental but the pipeline has no '
        r"<table> target",
    ):
        _setup(settings, targets=export)


def test_incremental_refuses_a_whole_table_overwrite(settings):
    target = '    <table table="events" source="events" mode="overwrite"/>'
    with pytest.raises(
        SpecErrors,
        match=r'<table table="events"> is written with mode="overwrite" from incremental '
        r'source "events"',
    ):
        _setup(settings, targets=target)
    assert not load_catalog(settings).table_exists(("shop_bronze", "events"))


def test_concurrent_run_cannot_commit_the_same_rows(spark, settings, monkeypatch):
    catalog = load_catalog(settings)
    spec = _setup(settings)
    _drop(settings, "a.csv", FIRST)
    run_pipeline(spec, _ctx(spark, settings), catalog)
    _drop(settings, "b.csv", SECOND)

    original = incremental.load_state
    calls = []

    def racing(*args):
        state = original(*args)
        if not calls:  # another run reads the same watermark and commits first
            calls.append(1)
            run_pipeline(spec, _ctx(spark, settings, "other"), catalog)
        return state

    monkeypatch.setattr(runner, "load_state", racing)
    with pytest.raises(PipelineRunError, match="changed while this run was reading"):
        run_pipeline(spec, _ctx(spark, settings), catalog)
    assert _rows(catalog) == [(1, 2), (2, 4), (3, 6), (7, 14), (8, 16)]
