"""Quarantine rows committed WITH the run's tables, never after them.

A run's quarantine rows (`quality.Prepared.quarantine`: invalid rows of `onInvalid`, malformed
records of `execute.malformed`) are staged like any table write before the tables are
published: per quarantine table the frames are unioned by name, the table is created empty if
it does not exist (a multi-table commit changes existing tables only), Spark writes the
Parquet files and an append snapshot is staged in a transaction that is NOT committed.
`changes` go into the same `commit_tables` call as the run's tables and ledger, so the rows
appear exactly when the good rows do. When the run does not publish (a blocking check, a
failed commit, a crash) `abort` deletes the staged files and drops a table this run created
that is still empty: a failed run leaves no quarantine row. `rollbacks` moves the tables back
when the run rolls back after publishing (a failed export).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyiceberg.catalog import Catalog
from pyiceberg.table import Table, TableProperties
from pyiceberg.table.refs import MAIN_BRANCH
from pyspark.sql import DataFrame, SparkSession

from datahub_assets.engines.api import F
from datahub_assets.execute.malformed import MALFORMED_RULE
from datahub_assets.iceberg.multi_commit import TableChange, change_of
from datahub_assets.iceberg.read import TableNotFoundError, load_table, read_files
from datahub_assets.iceberg.table import StagedWrite, abort, produce_snapshot, stage_write
from datahub_assets.spec.models import TableRef, TableTarget
from datahub_resources.iceberg import ensure_namespace, spark_to_iceberg_schema


@dataclass
class QuarantineWrites:
    staged: list[StagedWrite] = field(default_factory=list)
    created: list[TableRef] = field(default_factory=list)
    changes: list[TableChange] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    """Quarantined rows per quarantine table identifier."""
    invalid_by_file: dict[str, int] = field(default_factory=dict)
    """Invalid (not malformed) quarantined rows per `_source_file`, for the file ledger."""

    def abort(self, catalog: Catalog) -> None:
        for s in self.staged:
            abort(s)
        for ref in self.created:
            try:
                table = load_table(catalog, ref)
            except TableNotFoundError:
                continue
            if table.current_snapshot() is None:
                catalog.drop_table((ref.namespace, ref.table))

    def previous(self) -> list[tuple[TableRef, int | None]]:
        return [(s.ref, s.previous_snapshot_id) for s in self.staged]


def _ensure(catalog: Catalog, ref: TableRef, df: DataFrame) -> tuple[Table, bool]:
    """(the table of `ref`, True when this call created it empty with `df`'s schema)."""
    try:
        return load_table(catalog, ref), False
    except TableNotFoundError:
        pass
    ensure_namespace(catalog, ref.namespace)
    schema = spark_to_iceberg_schema(df.schema)
    props = {TableProperties.DEFAULT_NAME_MAPPING: schema.name_mapping.model_dump_json()}
    before = catalog.table_exists((ref.namespace, ref.table))
    table = catalog.create_table_if_not_exists(
        (ref.namespace, ref.table), schema=schema, properties=props
    )
    return table, not before


def stage_quarantine(
    spark: SparkSession, catalog: Catalog, run_id: str, frames: list[tuple[TableRef, DataFrame]]
) -> QuarantineWrites:
    """Stage every quarantine frame (module doc); nothing is committed here."""
    out = QuarantineWrites()
    grouped: dict[TableRef, DataFrame] = {}
    for ref, df in frames:
        grouped[ref] = (
            grouped[ref].unionByName(df, allowMissingColumns=True) if ref in grouped else df
        )
    try:
        for ref, df in grouped.items():
            table, created = _ensure(catalog, ref, df)  # the one load of the table
            if created:
                out.created.append(ref)
            staged = stage_write(
                spark,
                catalog,
                ref,
                df,
                TableTarget(table=ref.table, mode="append"),
                run_id,
                table=table,
            )
            rows = sum(f.record_count for f in staged.added)
            if rows == 0:
                abort(staged)
                continue
            out.staged.append(staged)
            out.rows[ref.identifier] = rows
            if "_source_file" in df.columns:
                _count_invalid(spark, staged, df, out.invalid_by_file)
            produce_snapshot(staged, MAIN_BRANCH)
            out.changes.append(change_of(staged.txn))
    except BaseException:
        out.abort(catalog)
        raise
    return out


def _count_invalid(
    spark: SparkSession, staged: StagedWrite, df: DataFrame, into: dict[str, int]
) -> None:
    """Rows per `_source_file` of the staged files, malformed ones excepted (those are
    counted where they are found); reads only the small staged quarantine files."""
    written = read_files(
        spark, [f.file_path for f in staged.added], df.select("_source_file", "_rule").schema
    )
    counts = (
        written.where(F.col("_rule").isNull() | (F.col("_rule") != MALFORMED_RULE))
        .groupBy("_source_file")
        .count()
        .collect()
    )
    for r in counts:
        if r["_source_file"] is not None:
            into[r["_source_file"]] = into.get(r["_source_file"], 0) + r["count"]
