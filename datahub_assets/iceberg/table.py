"""Iceberg table writes in two phases: the engine stages Parquet files, pyiceberg commits them.

`stage_write` aligns the frame to the table schema (adding new columns, widening int->long,
float->double, decimal precision; anything else is an error), then the frame's engine writes
Parquet (`WriteOps.write_staged_parquet`: Spark in parallel, or DuckDB) into
`<table location>/data/<commit uuid>/`, a folder no other run uses. Partitioned
tables are written with `partitionBy` on a hash of the partition columns (directory names
stay short whatever the values), so each file holds ONE partition value while the columns
stay inside the file and the partition is read back from the column statistics (or, for
values too long for Parquet statistics, from the file's first row). pyiceberg then builds
the DataFile records from the Parquet footers (metadata only) inside a transaction that also
holds the schema update (or the table creation).

`commit` adds ONE snapshot: append (new files), overwrite (all current files, or with
partitionBy only the partitions present in the new files, are replaced) or merge
(copy-on-write upsert at file granularity: the current files holding an incoming key are
rewritten without those keys, plus the incoming rows deduplicated last-wins; other files
are untouched). The transaction asserts the snapshot it was staged on, so a concurrent
commit fails instead of being lost. `abort` deletes the staged files; `rollback` moves the
table back to an earlier snapshot when a later target of the same run fails. For blocking
checks, `iceberg.audit` commits the same snapshot staged (main unmoved) and publishes it later.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pyarrow.fs as pafs
from pyiceberg.catalog import Catalog
from pyiceberg.io import FileIO
from pyiceberg.manifest import DataFile
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.table import Table, TableProperties, Transaction
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.refs import MAIN_BRANCH
from pyiceberg.transforms import IdentityTransform
from pyspark.sql import DataFrame, SparkSession

from datahub_assets.engines.api import F, T, Window
from datahub_assets.engines.frames import write_ops_of
from datahub_assets.iceberg import pyiceberg_compat as compat
from datahub_assets.iceberg.read import (
    TableNotFoundError,
    data_files,
    file_key,
    load_table,
    read_files,
)
from datahub_assets.iceberg.schema_evolution import align, evolve_schema
from datahub_assets.spec.models import TableRef, TableTarget
from datahub_resources import s3
from datahub_resources.iceberg import (
    ensure_namespace,
    iceberg_to_spark_schema,
    schema_summary,
    spark_to_iceberg_schema,
)

PART_COL = "__datahub_part"


@dataclass
class StagedWrite:
    ref: TableRef
    mode: str
    folder: str
    txn: Transaction
    created: bool
    previous_snapshot_id: int | None
    run_id: str
    added: list[DataFile] = field(default_factory=list)
    removed: list[DataFile] = field(default_factory=list)
    stage_seconds: float = 0.0
    properties: dict[str, str] = field(default_factory=dict)
    """Extra snapshot summary properties written by `commit` (e.g. source watermarks)."""


@dataclass(frozen=True)
class CommitResult:
    identifier: str
    snapshot_id: int | None
    previous_snapshot_id: int | None
    operation: str
    rows: int
    files_added: int
    files_removed: int
    schema: list[tuple[str, str, bool]]
    location: str
    commit_seconds: float
    table_rows: int | None = None
    """Total rows of the table at `snapshot_id` (its summary's `total-records`)."""
    table: Table | None = field(default=None, compare=False, repr=False)
    """The table as this commit left it (no reload needed to read or publish it)."""

    @property
    def rows_written(self) -> int:
        return self.rows


def _fs(uri: str) -> tuple[pafs.FileSystem, str, str]:
    """(filesystem, path inside it, URI prefix to rebuild a full URI)."""
    if s3.is_s3(uri):  # the endpoint and keys of the AWS environment, as pyiceberg uses
        return s3.arrow_filesystem(), uri.split("://", 1)[1], s3.PLATFORM_SCHEME
    filesystem, path = pafs.FileSystem.from_uri(uri)
    prefix = (
        "file://" if uri.startswith("file:") or "://" not in uri else uri.split("://")[0] + "://"
    )
    return filesystem, path, prefix


def delete_folder(folder: str) -> None:
    """Delete `folder` (a staging folder of data files) and what it holds, if it exists."""
    filesystem, path, _ = _fs(folder)
    if filesystem.get_file_info(path).type != pafs.FileType.NotFound:
        filesystem.delete_dir(path)


def written_files(folder: str) -> list[str]:
    """Parquet files a writer committed into `folder` (full URIs, sorted); Spark's marker and
    checksum files removed."""
    filesystem, path, prefix = _fs(folder)
    result = []
    for info in filesystem.get_file_info(pafs.FileSelector(path, recursive=True)):
        name = info.base_name
        if info.type != pafs.FileType.File:
            continue
        if name.endswith(".parquet") and not name.startswith((".", "_")):
            result.append(prefix + info.path)
        elif name == "_SUCCESS" or name.endswith(".crc"):
            filesystem.delete_file(info.path)
    return sorted(result)


def folder_data_files(io: FileIO, metadata: TableMetadata, folder: str) -> list[DataFile]:
    """The DataFile records of the Parquet files written into `folder` (`written_files`), built
    from their footers (read in parallel) for the table `metadata`."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda u: compat.data_file(io, metadata, u), written_files(folder)))


def _open_transaction(
    catalog: Catalog,
    ref: TableRef,
    df: DataFrame,
    target: TableTarget,
    table: Table | None,
    create: bool = False,
):
    """(transaction, created, partition column names) for the table of `ref`; `table` is
    the table as the caller loaded it (None: load it here unless `create`)."""
    try:
        if create:
            raise TableNotFoundError(ref.identifier)
        table = table if table is not None else load_table(catalog, ref)
    except TableNotFoundError:
        ensure_namespace(catalog, ref.namespace)
        schema = spark_to_iceberg_schema(df.schema)
        spec = PartitionSpec(
            *[
                PartitionField(schema.find_field(c).field_id, 1000 + i, IdentityTransform(), c)
                for i, c in enumerate(target.partition_by)
            ]
        )
        props = {TableProperties.DEFAULT_NAME_MAPPING: schema.name_mapping.model_dump_json()}
        txn = catalog.create_table_transaction(
            (ref.namespace, ref.table), schema=schema, partition_spec=spec, properties=props
        )
        return txn, True, list(target.partition_by)
    meta = table.metadata
    parts = [meta.schema().find_field(f.source_id).name for f in meta.spec().fields]
    if target.partition_by and list(target.partition_by) != parts:
        raise ValueError(
            f"table {ref.identifier} is partitioned by {parts or 'nothing'}, the target says "
            f"partitionBy={list(target.partition_by)}: partitioning cannot change"
        )
    txn = table.transaction()
    if TableProperties.DEFAULT_NAME_MAPPING not in meta.properties:
        txn.set_properties(
            {TableProperties.DEFAULT_NAME_MAPPING: meta.schema().name_mapping.model_dump_json()}
        )
    return txn, False, parts


def _dedupe_last(df: DataFrame, keys: list[str]) -> DataFrame:
    order = "__datahub_order"
    w = Window.partitionBy(*keys).orderBy(F.col(order).desc())
    ranked = write_ops_of(df).with_row_order(df, order)
    return ranked.withColumn("__rn", F.row_number().over(w)).where("__rn = 1").drop("__rn", order)


def _merge_frame(
    spark: SparkSession,
    ref: TableRef,
    table: Table | None,
    old_schema,
    incoming: DataFrame,
    keys: list[str],
    target_schema,
) -> tuple[DataFrame, list[DataFile]]:
    """(rows to write for a merge, the current files they replace); `table` None: a table
    this write creates."""
    missing = [k for k in keys if k not in incoming.columns]
    if not keys or missing:
        raise ValueError(
            f"merge into {ref.identifier} needs keys present in the frame "
            f"(keys={keys}, missing={missing})"
        )
    incoming = _dedupe_last(incoming, keys)
    current = {file_key(f.file_path): f for f in data_files(table)} if table is not None else {}
    if not current:
        return incoming, []
    read_schema = iceberg_to_spark_schema(old_schema, T)
    paths = [f.file_path for f in current.values()]
    existing = write_ops_of(spark).read_data_files(spark, paths, read_schema, "__file")
    existing = existing.select(*keys, "__file")
    hits = existing.join(incoming.select(*keys), keys, "left_semi").select("__file").distinct()
    touched = [current[file_key(r["__file"])] for r in hits.collect()]
    if not touched:
        return incoming, []
    kept = read_files(spark, [f.file_path for f in touched], read_schema)
    kept = align(kept, target_schema, ref.identifier)
    kept = kept.join(incoming.select(*keys), keys, "left_anti")
    return kept.unionByName(incoming), touched


def stage_write(
    spark: SparkSession,
    catalog: Catalog,
    ref: TableRef,
    df: DataFrame,
    target: TableTarget,
    run_id: str,
    properties: Mapping[str, str] | None = None,
    table: Table | None = None,
    create: bool = False,
) -> StagedWrite:
    """Write the Parquet files of `df` for `ref` (nothing visible to readers until commit).

    `properties` are extra snapshot summary properties the commit records; `table` is the
    table as the caller loaded it (None: loaded here, or created when missing); `create`:
    the caller found no table, create it (the commit fails if another run created it)."""
    started = time.monotonic()
    txn, created, parts = _open_transaction(catalog, ref, df, target, table, create)
    current_table = None if created else compat.transaction_table(txn)
    old_schema = txn.table_metadata.schema()
    if not created:
        evolve_schema(txn, df.schema, ref.identifier)
    new_schema = txn.table_metadata.schema()
    snapshot = None if created else txn.table_metadata.current_snapshot()
    folder = f"{txn.table_metadata.location}/data/{uuid.uuid4()}"
    staged = StagedWrite(
        ref,
        target.mode,
        folder,
        txn,
        created,
        snapshot.snapshot_id if snapshot else None,
        run_id,
        properties=dict(properties or {}),
    )
    out = align(df, new_schema, ref.identifier)
    try:
        if target.mode == "merge":
            out, staged.removed = _merge_frame(
                spark, ref, current_table, old_schema, out, list(target.keys), new_schema
            )
        write_ops_of(out).write_staged_parquet(out, folder, parts, PART_COL)
        io = compat.transaction_table(txn).io
        files = folder_data_files(io, txn.table_metadata, folder)
        for f in files:
            if f.record_count == 0:
                io.delete(f.file_path)
        staged.added = [f for f in files if f.record_count > 0]
        if target.mode == "overwrite" and current_table is not None:
            current = data_files(current_table)
            if target.partition_by:
                present = {f.partition for f in staged.added}
                current = [f for f in current if f.partition in present]
            staged.removed = current
    except BaseException:
        delete_folder(folder)
        raise
    staged.stage_seconds = time.monotonic() - started
    return staged


def produce_snapshot(staged: StagedWrite, branch: str | None) -> int:
    """Stage in `staged.txn` the ONE snapshot of the write on `branch` (None: a staged
    snapshot no ref points at); its snapshot id."""
    props = {**staged.properties, "datahub.run-id": staged.run_id, "datahub.mode": staged.mode}
    update = staged.txn.update_snapshot(snapshot_properties=props, branch=branch)
    producer = update.overwrite() if staged.removed else update.fast_append()
    with producer as snap:
        for f in staged.removed:
            snap.delete_data_file(f)
        for f in staged.added:
            snap.append_data_file(f)
    return snap.snapshot_id


def commit_result(
    staged: StagedWrite, table, snapshot_id: int | None, started: float
) -> CommitResult:
    """The CommitResult of `staged` committed as `snapshot_id` into `table` (reloaded)."""
    return CommitResult(
        identifier=staged.ref.identifier,
        snapshot_id=snapshot_id,
        previous_snapshot_id=staged.previous_snapshot_id,
        operation="overwrite" if staged.removed else "append",
        rows=sum(f.record_count for f in staged.added),
        files_added=len(staged.added),
        files_removed=len(staged.removed),
        schema=schema_summary(table.schema()),
        location=table.location(),
        commit_seconds=time.monotonic() - started,
        table_rows=total_records(table, snapshot_id),
        table=table,
    )


def total_records(table, snapshot_id: int | None) -> int | None:
    """The `total-records` of snapshot `snapshot_id`'s summary (0 for no snapshot)."""
    if snapshot_id is None:
        return 0
    snapshot = table.snapshot_by_id(snapshot_id)
    summary = snapshot.summary if snapshot else None
    total = summary.get("total-records") if summary is not None else None
    return int(total) if total is not None else None


def commit(staged: StagedWrite) -> CommitResult:
    """Publish the staged files in ONE transaction (schema change + snapshot on main).

    For write-audit-publish (the snapshot on a branch first) see `iceberg.audit`."""
    started = time.monotonic()
    produce_snapshot(staged, MAIN_BRANCH)
    table = compat.plain_table(staged.txn.commit_transaction())  # as committed: no reload
    current = table.current_snapshot()
    return commit_result(staged, table, current.snapshot_id if current else None, started)


def abort(staged: StagedWrite) -> None:
    """Delete the staged files (the table never referenced them)."""
    delete_folder(staged.folder)


def rollback(catalog: Catalog, ref: TableRef, snapshot_id: int | None) -> None:
    """Set `ref` back to `snapshot_id`; None (the table was created by this run) drops it."""
    if snapshot_id is None:
        catalog.drop_table((ref.namespace, ref.table))
        return
    load_table(catalog, ref).manage_snapshots().set_current_snapshot(snapshot_id).commit()


def write_table(
    spark: SparkSession,
    catalog: Catalog,
    ref: TableRef,
    df: DataFrame,
    target: TableTarget,
    run_id: str,
    properties: Mapping[str, str] | None = None,
) -> CommitResult:
    """stage_write + commit; the staged files are deleted when the commit fails."""
    staged = stage_write(spark, catalog, ref, df, target, run_id, properties)
    try:
        return commit(staged)
    except BaseException:
        abort(staged)
        raise
