"""Operator functions: table history and rollback."""

from __future__ import annotations

from datetime import datetime

import pytest

from datahub_assets.cli.ops import history, parse_table, rollback
from datahub_assets.iceberg.audit import audit_commit
from datahub_assets.iceberg.table import stage_write, write_table
from datahub_assets.spec.models import TableRef, TableTarget
from tests.support.iceberg import frame_rows

pytestmark = pytest.mark.spark

REF = TableRef(app="shop", layer="silver", table="orders")
SCHEMA = "id int, name string"


def _write(spark, catalog, rows, run_id, mode="append"):
    return write_table(
        spark,
        catalog,
        REF,
        spark.createDataFrame(rows, SCHEMA),
        TableTarget(table="orders", mode=mode),
        run_id,
    )


@pytest.fixture
def three(spark, catalog):
    """Snapshots s1 (append a, b), s2 (append c), s3 (overwrite with z)."""
    s1 = _write(spark, catalog, [(1, "a"), (2, "b")], "r1")
    s2 = _write(spark, catalog, [(3, "c")], "r2")
    s3 = _write(spark, catalog, [(9, "z")], "r3", mode="overwrite")
    return s1.snapshot_id, s2.snapshot_id, s3.snapshot_id


def test_parse_table():
    assert parse_table("shop.silver.orders") == REF
    for bad in ("shop.orders", "shop_silver.orders.x.y", "shop..orders", ""):
        with pytest.raises(ValueError, match=r"<app>\.<layer>\.<table>"):
            parse_table(bad)
    with pytest.raises(ValueError, match="not a valid"):
        parse_table("shop.platinum.orders")


def test_history_newest_first_with_ops_and_counts(spark, catalog, three):
    s1, s2, s3 = three
    staged = stage_write(
        spark,
        catalog,
        REF,
        spark.createDataFrame([(4, "d")], SCHEMA),
        TableTarget(table="orders"),
        "r4",
    )
    audited = audit_commit(staged, "audit_r4")
    rows = history(catalog, REF)
    assert [r["snapshot_id"] for r in rows] == [audited.snapshot_id, s3, s2, s1]
    assert [r["parent_id"] for r in rows] == [s3, s2, s1, None]
    assert [r["operation"] for r in rows] == ["append", "overwrite", "append", "append"]
    assert [r["added_records"] for r in rows] == [1, 1, 1, 2]
    assert [r["deleted_records"] for r in rows] == [0, 3, 0, 0]
    assert [r["total_records"] for r in rows] == [2, 1, 3, 2]
    assert [r["deleted_files"] > 0 for r in rows] == [False, True, False, False]
    assert [r["added_files"] > 0 for r in rows] == [True, True, True, True]
    assert [r["run_id"] for r in rows] == ["r4", "r3", "r2", "r1"]
    assert [r["current"] for r in rows] == [False, True, False, False]
    assert [r["refs"] for r in rows] == [["audit_r4"], ["main"], [], []]
    stamps = [datetime.fromisoformat(r["committed_at"]) for r in rows]
    assert all(t.utcoffset().total_seconds() == 0 for t in stamps)
    assert stamps == sorted(stamps, reverse=True)


def test_rollback_to_parent_then_explicit_ids(spark, catalog, three):
    s1, s2, s3 = three
    assert rollback(catalog, REF) == (s3, s2)
    assert frame_rows(spark, catalog, REF) == [(1, "a"), (2, "b"), (3, "c")]
    # forward again to a snapshot that is no longer an ancestor of main
    assert rollback(catalog, REF, s3) == (s2, s3)
    assert frame_rows(spark, catalog, REF) == [(9, "z")]
    assert rollback(catalog, REF, s1) == (s3, s1)
    assert frame_rows(spark, catalog, REF) == [(1, "a"), (2, "b")]
    assert catalog.load_table(REF.identifier).current_snapshot().snapshot_id == s1
    current = [r["snapshot_id"] for r in history(catalog, REF) if r["current"]]
    assert current == [s1]
    with pytest.raises(
        ValueError,
        match=rf"shop_silver.orders: current snapshot {s1} has no "
        rf"parent to roll back to; pass one of: {s3}, {s2}, {s1}",
    ):
        rollback(catalog, REF)


@pytest.mark.usefixtures("spark")
def test_rollback_to_unknown_snapshot_lists_valid_ids(catalog, three):
    s1, s2, s3 = three
    with pytest.raises(
        ValueError,
        match=rf"table shop_silver.orders has no snapshot 12345; "
        rf"valid snapshot ids: {s3}, {s2}, {s1}$",
    ):
        rollback(catalog, REF, 12345)
    assert catalog.load_table(REF.identifier).current_snapshot().snapshot_id == s3
