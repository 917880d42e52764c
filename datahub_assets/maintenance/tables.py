"""Maintenance of one Iceberg table: expire snapshots, remove orphan files, compact small files.

`expire_snapshots` removes snapshots older than the retention from the metadata (pyiceberg's
`table.maintenance.expire_snapshots().older_than(...)`); the current snapshot and every
branch/tag head are protected (an audit branch of a run in flight included). Their data files
stay on storage until `remove_orphans`.

`remove_orphans` lists every file under the table location and deletes those that no
remaining snapshot references (data files, manifests, manifest lists), that are not a
metadata file of the table's log (current and previous `*.metadata.json`, statistics), and
that are older than the safety window: a write in flight stages its Parquet files under
`data/<uuid>/` minutes before its commit, so a window of days never touches them.

`compact` rewrites the small data files (below 3/4 of the target size) of the current
snapshot, per partition, into files of about the target size: Spark reads them and writes new
Parquet files into `data/<uuid>/`, then ONE overwrite snapshot deletes the small files and
adds the new ones. The commit asserts the snapshot it was planned on; when another writer
committed first (an append of a file drop), the compaction is re-planned on the new base: if
every file it rewrote is still live there, the same rewritten files are committed on the new
base (the appended files are kept untouched), else the rewrite is dropped and its files
deleted. Readers of older snapshots keep reading the old files until expiry and orphan
removal; readers of main see the same rows before and after.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pyarrow.fs as pafs
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException, ValidationException
from pyiceberg.table import Table
from pyspark.sql import SparkSession

from datahub_assets.iceberg.read import data_files, file_key, read_files, spark_path
from datahub_assets.iceberg.table import delete_folder, folder_data_files
from datahub_resources.iceberg import iceberg_to_spark_schema

COMPACTION_PROPERTY = "datahub.maintenance"
SMALL_FRACTION = 0.75
MAX_RETRIES = 5


@dataclass
class Report:
    table: str
    expired_snapshots: int = 0
    orphans_removed: int = 0
    orphan_bytes: int = 0
    files_before: int = 0
    files_after: int = 0
    files_compacted: int = 0
    compaction_retries: int = 0
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        text = (
            f"{self.table}: expired {self.expired_snapshots} snapshot(s), removed "
            f"{self.orphans_removed} orphan file(s) ({self.orphan_bytes:,} bytes), data "
            f"files {self.files_before} -> {self.files_after} ({self.files_compacted} "
            f"compacted)"
        )
        return text + "".join(f"; {n}" for n in self.notes)


# ------------------------------------------------------------------------------- expiry


def expire_snapshots(table: Table, retention: timedelta, now: datetime | None = None) -> int:
    """Expire the snapshots older than `retention` (protected ones kept); how many."""
    cutoff = (now or datetime.now(UTC)) - retention
    protected = {r.snapshot_id for r in table.metadata.refs.values()}
    current = table.current_snapshot()
    if current is not None:
        protected.add(current.snapshot_id)
    old = [
        s.snapshot_id
        for s in table.metadata.snapshots
        if s.timestamp_ms < cutoff.timestamp() * 1000 and s.snapshot_id not in protected
    ]
    if not old:
        return 0
    table.maintenance.expire_snapshots().by_ids(old).commit()
    return len(old)


# ------------------------------------------------------------------------------- orphans


def _fs(location: str) -> tuple[pafs.FileSystem, str]:
    filesystem, path = pafs.FileSystem.from_uri(location)
    return filesystem, path


def referenced_files(table: Table) -> set[str]:
    """file_key of every file a snapshot or the metadata log of `table` refers to (data files:
    those live in some retained snapshot)."""
    keys: set[str] = {file_key(table.metadata_location)}
    keys |= {file_key(e.metadata_file) for e in table.metadata.metadata_log}
    for stats in table.metadata.statistics:
        keys.add(file_key(stats.statistics_path))
    io = table.io
    manifests = {}
    for snapshot in table.metadata.snapshots:
        keys.add(file_key(snapshot.manifest_list))
        for manifest in snapshot.manifests(io):
            # snapshots share most manifests: read each once (linear in the table's history,
            # not quadratic: 1,002 manifests, not 500,502 reads, after 1,000 appends)
            manifests.setdefault(manifest.manifest_path, manifest)
    for path, manifest in manifests.items():
        keys.add(file_key(path))
        # live entries only: a DELETED entry (a compaction's or an overwrite's manifest names
        # the files it removed) keeps nothing alive; a retained snapshot that still reads
        # the file lists it as ADDED or EXISTING in one of its own manifests
        for entry in manifest.fetch_manifest_entry(io, discard_deleted=True):
            keys.add(file_key(entry.data_file.file_path))
    return keys


def remove_orphans(
    table: Table, older_than: timedelta, now: datetime | None = None
) -> tuple[int, int]:
    """Delete unreferenced files under the table location older than `older_than`;
    (files, bytes) removed."""
    cutoff = (now or datetime.now(UTC)) - older_than
    referenced = referenced_files(table)
    filesystem, root = _fs(table.location())
    removed = size = 0
    try:
        infos = filesystem.get_file_info(pafs.FileSelector(root, recursive=True))
    except FileNotFoundError:
        return 0, 0
    for info in infos:
        if info.type != pafs.FileType.File or file_key(info.path) in referenced:
            continue
        if info.mtime is None or info.mtime.replace(tzinfo=info.mtime.tzinfo or UTC) >= cutoff:
            continue
        filesystem.delete_file(info.path)
        removed += 1
        size += info.size or 0
    return removed, size


# ---------------------------------------------------------------------------- compaction


def _groups(files: list, target: int) -> list[list]:
    """Small files per partition, only partitions with at least two of them."""
    by_partition: dict[tuple, list] = {}
    for f in files:
        if f.file_size_in_bytes < target * SMALL_FRACTION:
            by_partition.setdefault((f.spec_id, tuple(f.partition)), []).append(f)
    return [g for g in by_partition.values() if len(g) >= 2]


def _rewrite(spark: SparkSession, table: Table, group: list, target: int) -> list:
    """Spark rewrites `group` into ceil(bytes / target) new files; their DataFiles."""
    folder = f"{table.location()}/data/{uuid.uuid4()}"
    schema = iceberg_to_spark_schema(table.schema())
    total = sum(f.file_size_in_bytes for f in group)
    count = max(1, math.ceil(total / target))
    df = read_files(spark, [f.file_path for f in group], schema).coalesce(count)
    try:
        df.write.mode("error").option(
            "mapreduce.fileoutputcommitter.marksuccessfuljobs", "false"
        ).parquet(spark_path(folder))
        return folder_data_files(table.io, table.metadata, folder)
    except BaseException:
        delete_folder(folder)
        raise


def _commit(table: Table, removed: list, added: list) -> None:
    txn = table.transaction()
    props = {COMPACTION_PROPERTY: "compaction"}
    with txn.update_snapshot(snapshot_properties=props).overwrite() as snap:
        for f in removed:
            snap.delete_data_file(f)
        for f in added:
            snap.append_data_file(f)
    txn.commit_transaction()


def compact(
    spark: SparkSession,
    catalog: Catalog,
    table: Table,
    target_bytes: int,
    report: Report,
    before_commit=None,
) -> Table:
    """Compact `table`'s small files (module doc); the reloaded table. `before_commit` is a
    test hook called between the rewrite and the commit."""
    ident = table.name()
    current = data_files(table)
    groups = _groups(current, target_bytes)
    if not groups:
        return table
    rewritten = [f for g in groups for f in g]
    added = [f for g in groups for f in _rewrite(spark, table, g, target_bytes)]
    if before_commit is not None:
        before_commit()
    for attempt in range(MAX_RETRIES):
        live = {file_key(f.file_path): f for f in data_files(table)}
        if any(file_key(f.file_path) not in live for f in rewritten):
            # another writer replaced some of these files: drop the rewrite
            for f in added:
                table.io.delete(f.file_path)
            report.notes.append("compaction skipped: files were rewritten concurrently")
            return catalog.load_table(ident)
        try:
            _commit(table, [live[file_key(f.file_path)] for f in rewritten], added)
            report.files_compacted = len(rewritten)
            return catalog.load_table(ident)
        except (CommitFailedException, ValidationException):  # main moved: re-plan
            report.compaction_retries = attempt + 1
            time.sleep(0.2 * (attempt + 1))
            table = catalog.load_table(ident)
    for f in added:
        table.io.delete(f.file_path)
    report.notes.append(f"compaction gave up after {MAX_RETRIES} concurrent commits")
    return catalog.load_table(ident)


def maintain_table(
    spark: SparkSession | None,
    catalog: Catalog,
    ident: tuple[str, str],
    retention: timedelta,
    orphan_after: timedelta,
    target_bytes: int,
    compact_files: bool = True,
) -> Report:
    """Compact, then expire, then remove orphans (so the replaced small files go once they are
    out of every retained snapshot and older than the window)."""
    table = catalog.load_table(ident)
    report = Report(table=".".join(ident))
    report.files_before = len(data_files(table))
    if compact_files and spark is not None:
        table = compact(spark, catalog, table, target_bytes, report)
    report.expired_snapshots = expire_snapshots(table, retention)
    table = catalog.load_table(ident)
    report.orphans_removed, report.orphan_bytes = remove_orphans(table, orphan_after)
    report.files_after = len(data_files(table))
    return report
