"""Table maintenance (issue 13 item 4): compaction that no reader or concurrent writer loses
data through, snapshot expiry that keeps what refs need, orphan removal with a safety window,
and the `datahub maintain` command."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
from pyiceberg.table.refs import SnapshotRefType
from pyiceberg.table.update import SetSnapshotRefUpdate

from datahub_assets.iceberg.read import data_files, read_table
from datahub_assets.iceberg.table import write_table
from datahub_assets.maintenance.tables import (
    Report,
    compact,
    expire_snapshots,
    maintain_table,
    remove_orphans,
)
from datahub_assets.spec.models import TableRef, TableTarget
from datahub_resources.iceberg import load_catalog

pytestmark = pytest.mark.spark

REF = TableRef(app="shop", layer="raw", table="events")
IDENT = (REF.namespace, REF.table)
TARGET = 128 * 1024 * 1024


def _append(spark, catalog, start: int, n: int = 10, run: str = "r"):
    df = spark.createDataFrame([(i, f"v{i}") for i in range(start, start + n)], "id long, v string")
    write_table(
        spark,
        catalog,
        REF,
        df.coalesce(1),
        TableTarget(table=REF.table, mode="append"),
        f"{run}{start}",
    )


def _ids(spark, catalog, snapshot_id=None):
    return sorted(r["id"] for r in read_table(spark, catalog, REF, snapshot_id).collect())


@pytest.fixture
def small_files(spark, settings):
    catalog = load_catalog(settings)
    for k in range(12):
        _append(spark, catalog, k * 10)
    return catalog


def test_compaction_rewrites_small_files_in_one_replace_and_keeps_every_row(spark, small_files):
    catalog = small_files
    table = catalog.load_table(IDENT)
    before = table.current_snapshot().snapshot_id
    assert len(data_files(table)) == 12
    report = Report("t")
    table = compact(spark, catalog, table, TARGET, report)
    assert len(data_files(table)) == 1
    assert report.files_compacted == 12
    snap = table.current_snapshot()
    assert snap.summary.operation.value == "overwrite"
    assert snap.parent_snapshot_id == before
    assert snap.summary["datahub.maintenance"] == "compaction"
    assert _ids(spark, catalog) == list(range(120))
    assert _ids(spark, catalog, before) == list(range(120))  # an older reader still reads


def test_an_append_during_compaction_is_kept(spark, small_files):
    """A file drop commits between the rewrite and the compaction's commit: the compaction
    fails on its base snapshot, re-plans on the new one and keeps the appended file."""
    catalog = small_files
    report = Report("t")
    table = compact(
        spark,
        catalog,
        catalog.load_table(IDENT),
        TARGET,
        report,
        before_commit=lambda: _append(spark, catalog, 1000, run="drop"),
    )
    assert report.compaction_retries == 1
    assert report.files_compacted == 12
    assert _ids(spark, catalog) == list(range(120)) + list(range(1000, 1010))
    assert len(data_files(table)) == 2  # the compacted file and the appended one


def test_a_reader_planned_before_compaction_reads_every_row(spark, small_files):
    catalog = small_files
    table = catalog.load_table(IDENT)
    planned = read_table(spark, catalog, REF)  # files planned now, read later
    compact(spark, catalog, table, TARGET, Report("t"))
    assert sorted(r["id"] for r in planned.collect()) == list(range(120))


def test_a_concurrent_rewrite_drops_the_compaction(spark, small_files):
    catalog = small_files

    def overwrite():
        df = spark.createDataFrame([(1, "x")], "id long, v string")
        write_table(spark, catalog, REF, df, TableTarget(table=REF.table, mode="overwrite"), "o")

    report = Report("t")
    compact(spark, catalog, catalog.load_table(IDENT), TARGET, report, before_commit=overwrite)
    assert "skipped" in report.notes[0]
    assert _ids(spark, catalog) == [1]


def test_expiry_keeps_the_current_snapshot_and_branch_heads(spark, small_files):
    catalog = small_files
    table = catalog.load_table(IDENT)
    snaps = [s.snapshot_id for s in table.metadata.snapshots]
    catalog.commit_table(
        table,
        (),
        (SetSnapshotRefUpdate(ref_name="keep", type=SnapshotRefType.TAG, snapshot_id=snaps[3]),),
    )
    table = catalog.load_table(IDENT)
    assert expire_snapshots(table, timedelta(days=7)) == 0  # all are young
    expired = expire_snapshots(table, timedelta(0))
    table = catalog.load_table(IDENT)
    left = {s.snapshot_id for s in table.metadata.snapshots}
    assert expired == 10
    assert left == {snaps[3], snaps[-1]}
    assert _ids(spark, catalog) == list(range(120))
    assert len(_ids(spark, catalog, snaps[3])) == 40


def test_orphans_are_removed_after_the_window_and_referenced_files_never(spark, small_files):
    catalog = small_files
    table = catalog.load_table(IDENT)
    root = Path(table.location().removeprefix("file://"))
    old_stray = root / "data" / "failed-write" / "part-0.parquet"
    young_stray = root / "data" / "in-flight" / "part-0.parquet"
    for path in (old_stray, young_stray):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"PAR1")
    old = time.time() - 4 * 86400
    os.utime(old_stray, (old, old))
    removed, size = remove_orphans(table, timedelta(days=3))
    assert removed == 1
    assert size == 4
    assert not old_stray.exists()
    assert young_stray.exists()
    assert _ids(spark, catalog) == list(range(120))


def test_maintain_table_compacts_expires_and_removes_the_replaced_files(spark, small_files):
    catalog = small_files
    report = maintain_table(spark, catalog, IDENT, timedelta(0), timedelta(0), TARGET)
    assert (report.files_before, report.files_after) == (12, 1)
    assert report.expired_snapshots == 12  # every snapshot but the compaction's
    assert report.orphans_removed >= 12  # the small files no snapshot references any more
    assert _ids(spark, catalog) == list(range(120))


def test_datahub_maintain_command(spark, small_files, settings, capsys):
    from datahub_assets.cli import main

    app = settings.pipelines_dir / "shop"
    app.mkdir(parents=True)
    (app / "app.yaml").write_text(
        "maintenance: {snapshotRetention: P7D, orphanAfter: P3D, targetFileSizeMb: 64}\n"
    )
    assert main(["maintain", "shop.raw.events"]) == 0
    assert "data files 12 -> 1 (12 compacted)" in capsys.readouterr().out
    assert main(["maintain", "--all", "--no-compact"]) == 0
    assert "shop_raw.events: expired 0 snapshot(s)" in capsys.readouterr().out
    assert _ids(spark, small_files) == list(range(120))
