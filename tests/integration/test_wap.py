"""Write-audit-publish: a staged snapshot is readable for checks while main (every other
reader, including another process) keeps the previous snapshot until publish."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from datahub_assets.iceberg.audit import (
    ConcurrentCommitError,
    audit_branch,
    audit_commit,
    discard,
    publish,
)
from datahub_assets.iceberg.read import TableNotFoundError, read_table
from datahub_assets.iceberg.table import commit, stage_write, write_table
from datahub_assets.spec.models import TableRef, TableTarget
from tests.support.iceberg import frame_rows

pytestmark = pytest.mark.spark

REF = TableRef(app="shop", layer="silver", table="orders")
SCHEMA = "id int, name string"
REPO = Path(__file__).resolve().parents[2]
BRANCH = "audit_r2"


def _rows(spark, catalog, snapshot_id=None):
    return frame_rows(spark, catalog, REF, snapshot_id=snapshot_id)


def _other_process_rows(ref=REF) -> list[tuple]:
    """Rows of main as a separate Python process sees them (pyiceberg scan, same env)."""
    code = (
        "from datahub_resources.iceberg import load_catalog\n"
        f"t = load_catalog().load_table({ref.identifier!r})\n"
        "rows = sorted(tuple(r.values()) for r in t.scan().to_arrow().to_pylist())\n"
        "print(repr(rows))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return eval(out.stdout.strip())  # noqa: S307 - our own repr of ints and strings


def _write(spark, catalog, rows, run_id, mode="append"):
    return write_table(
        spark,
        catalog,
        REF,
        spark.createDataFrame(rows, SCHEMA),
        TableTarget(table="orders", mode=mode),
        run_id,
    )


def _stage(spark, catalog, rows, run_id="r2", mode="append"):
    return stage_write(
        spark,
        catalog,
        REF,
        spark.createDataFrame(rows, SCHEMA),
        TableTarget(table="orders", mode=mode),
        run_id,
    )


def test_audit_branch_name():
    assert audit_branch("3f2a9c1e-77aa-4b5c-9d00-123456789abc") == "audit_3f2a9c1e"


def test_audit_keeps_main_then_publish_moves_it(spark, catalog):
    first = _write(spark, catalog, [(1, "a"), (2, "b")], "r1")
    result = audit_commit(_stage(spark, catalog, [(3, "c")]), BRANCH)
    assert result.previous_snapshot_id == first.snapshot_id
    assert result.snapshot_id != first.snapshot_id
    assert result.rows == 1
    table = catalog.load_table(REF.identifier)
    assert table.current_snapshot().snapshot_id == first.snapshot_id
    assert table.metadata.refs[BRANCH].snapshot_id == result.snapshot_id
    assert table.snapshot_by_id(result.snapshot_id).parent_snapshot_id == first.snapshot_id
    assert _rows(spark, catalog) == [(1, "a"), (2, "b")]
    assert _rows(spark, catalog, result.snapshot_id) == [(1, "a"), (2, "b"), (3, "c")]
    # WAP: another process reading the table while the audit is pending sees the old rows
    assert _other_process_rows() == [(1, "a"), (2, "b")]

    assert publish(catalog, REF, result, BRANCH) == result.snapshot_id
    table = catalog.load_table(REF.identifier)
    assert table.current_snapshot().snapshot_id == result.snapshot_id
    assert set(table.metadata.refs) == {"main"}
    assert table.current_snapshot().summary["datahub.run-id"] == "r2"
    assert _rows(spark, catalog) == [(1, "a"), (2, "b"), (3, "c")]
    assert _other_process_rows() == [(1, "a"), (2, "b"), (3, "c")]


def test_discard_leaves_main_and_drops_branch(spark, catalog):
    first = _write(spark, catalog, [(1, "a"), (2, "b")], "r1")
    result = audit_commit(_stage(spark, catalog, [(9, "z")], mode="overwrite"), BRANCH)
    assert result.operation == "overwrite"
    assert result.files_removed >= 1
    assert _rows(spark, catalog, result.snapshot_id) == [(9, "z")]
    assert _other_process_rows() == [(1, "a"), (2, "b")]
    discard(catalog, REF, BRANCH, created=False)
    table = catalog.load_table(REF.identifier)
    assert table.current_snapshot().snapshot_id == first.snapshot_id
    assert set(table.metadata.refs) == {"main"}
    # the discarded snapshot stays in the metadata for inspection
    assert table.snapshot_by_id(result.snapshot_id) is not None
    assert _rows(spark, catalog) == [(1, "a"), (2, "b")]
    assert _rows(spark, catalog, result.snapshot_id) == [(9, "z")]


def test_merge_audited_relative_to_main(spark, catalog):
    target = TableTarget(table="orders", mode="merge", keys="id")
    write_table(
        spark, catalog, REF, spark.createDataFrame([(1, "a"), (2, "b")], SCHEMA), target, "r1"
    )
    staged = stage_write(
        spark, catalog, REF, spark.createDataFrame([(2, "B"), (3, "c")], SCHEMA), target, "r2"
    )
    result = audit_commit(staged, BRANCH)
    assert _rows(spark, catalog) == [(1, "a"), (2, "b")]
    assert _rows(spark, catalog, result.snapshot_id) == [(1, "a"), (2, "B"), (3, "c")]
    publish(catalog, REF, result, BRANCH)
    assert _rows(spark, catalog) == [(1, "a"), (2, "B"), (3, "c")]


def test_new_table_audit_keeps_main_empty_and_discard_drops_it(spark, catalog):
    staged = _stage(spark, catalog, [(1, "a")])
    assert staged.created
    result = audit_commit(staged, BRANCH)
    assert result.previous_snapshot_id is None
    table = catalog.load_table(REF.identifier)
    assert table.current_snapshot() is None
    assert table.metadata.refs[BRANCH].snapshot_id == result.snapshot_id
    assert _rows(spark, catalog) == []
    assert _other_process_rows() == []
    assert _rows(spark, catalog, result.snapshot_id) == [(1, "a")]
    discard(catalog, REF, BRANCH, created=True)
    with pytest.raises(TableNotFoundError):
        read_table(spark, catalog, REF)


def test_new_table_audit_then_publish(spark, catalog):
    result = audit_commit(_stage(spark, catalog, [(1, "a"), (2, "b")]), BRANCH)
    assert publish(catalog, REF, result, BRANCH) == result.snapshot_id
    assert _rows(spark, catalog) == [(1, "a"), (2, "b")]
    assert set(catalog.load_table(REF.identifier).metadata.refs) == {"main"}


def test_concurrent_commit_between_audit_and_publish_fails_publish(spark, catalog):
    _write(spark, catalog, [(1, "a")], "r1")
    result = audit_commit(_stage(spark, catalog, [(2, "b")]), BRANCH)
    other = _write(spark, catalog, [(5, "e")], "r3")
    with pytest.raises(
        ConcurrentCommitError,
        match=rf"main moved from "
        rf"{result.previous_snapshot_id} to {other.snapshot_id}",
    ):
        publish(catalog, REF, result, BRANCH)
    table = catalog.load_table(REF.identifier)
    assert table.current_snapshot().snapshot_id == other.snapshot_id
    assert table.metadata.refs[BRANCH].snapshot_id == result.snapshot_id
    assert _rows(spark, catalog) == [(1, "a"), (5, "e")]
    discard(catalog, REF, BRANCH, created=False)
    assert set(catalog.load_table(REF.identifier).metadata.refs) == {"main"}


def test_concurrent_commit_between_stage_and_audit_fails_audit(spark, catalog):
    _write(spark, catalog, [(1, "a")], "r1")
    staged = _stage(spark, catalog, [(2, "b")], mode="overwrite")
    other = _write(spark, catalog, [(5, "e")], "r3")
    with pytest.raises(ConcurrentCommitError, match="while the write was staged"):
        audit_commit(staged, BRANCH)
    table = catalog.load_table(REF.identifier)
    assert table.current_snapshot().snapshot_id == other.snapshot_id
    assert set(table.metadata.refs) == {"main"}
    assert _rows(spark, catalog) == [(1, "a"), (5, "e")]


def test_commit_still_moves_main_directly(spark, catalog):
    first = _write(spark, catalog, [(1, "a")], "r1")
    result = commit(_stage(spark, catalog, [(2, "b")]))
    assert result.previous_snapshot_id == first.snapshot_id
    assert catalog.load_table(REF.identifier).current_snapshot().snapshot_id == result.snapshot_id
    assert _rows(spark, catalog) == [(1, "a"), (2, "b")]


def test_audit_on_main_is_refused(spark, catalog):
    staged = _stage(spark, catalog, [(1, "a")])
    with pytest.raises(ValueError, match="other than main"):
        audit_commit(staged, "main")
