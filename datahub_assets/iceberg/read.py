"""Reading Iceberg tables with Spark or DuckDB, without an Iceberg Spark runtime.

pyiceberg plans the scan (which data files make up the snapshot: metadata only) and Spark
reads those Parquet files with an explicit schema derived from the Iceberg schema, so files
written before a column was added read it as null and narrower old types (int, float,
smaller decimals) are widened by Spark's Parquet reader. No table data passes through the
driver. Files are matched by column name (the table's name mapping); the writers never
produce delete files (copy-on-write), so a data-file list is the whole snapshot.

The engine of the session reads the files (`WriteOps.read_data_files`): on the DuckDB engine
(a sqlframe DuckDB session) DuckDB's `read_parquet` reads them with the same read schema, as a
lazy view.
"""

from __future__ import annotations

from urllib.parse import unquote, urlparse

from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.table import Table
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructType

from datahub_assets.engines.api import T
from datahub_assets.engines.frames import write_ops_of
from datahub_assets.spec.models import TableRef
from datahub_resources import s3
from datahub_resources.iceberg import iceberg_to_spark_schema


class TableNotFoundError(LookupError):
    pass


def load_table(catalog: Catalog, ref: TableRef) -> Table:
    """The Iceberg table of `ref`, or a clear error when no pipeline has written it yet."""
    try:
        return catalog.load_table((ref.namespace, ref.table))
    except NoSuchTableError as exc:
        raise TableNotFoundError(
            f"table {ref.identifier} does not exist yet: materialise its asset first"
        ) from exc


def file_key(path: str) -> str:
    """A comparable form of a file path: Iceberg's `file:///x` and Spark's `file:/x`
    (URL-encoded) both become `/x`; `s3://b/k` and `s3a://b/k` become `b/k`."""
    parsed = urlparse(path)
    if parsed.scheme in ("", "file"):
        return unquote(parsed.path) if parsed.scheme else path
    return unquote(parsed.netloc + parsed.path)


def spark_path(path: str) -> str:
    """A path as Spark's Hadoop file systems want it (s3:// is served by S3A: `s3.to_spark`)."""
    return s3.to_spark(path)


def data_files(table: Table, snapshot_id: int | None = None) -> list:
    """DataFile records of a snapshot (default: current), planned by pyiceberg."""
    if (snapshot_id or table.current_snapshot()) is None:
        return []
    tasks = list(table.scan(snapshot_id=snapshot_id).plan_files())
    if any(task.delete_files for task in tasks):
        raise NotImplementedError(
            f"table {table.name()} has delete files (merge-on-read); only copy-on-write "
            "tables written by Data Hub can be read"
        )
    return [task.file for task in tasks]


def read_files(spark: SparkSession, paths: list[str], schema: StructType) -> DataFrame:
    """Frame over Parquet `paths` with `schema`; no paths -> empty frame. Read by the engine
    of `spark` (a Spark session or the DuckDB engine's: a schema of either engine's types)."""
    return write_ops_of(spark).read_data_files(spark, paths, schema)


def read_table(
    spark: SparkSession, catalog: Catalog, ref: TableRef, snapshot_id: int | None = None
) -> DataFrame:
    """The rows of `ref` at `snapshot_id` (default: current) as a lazy Spark frame."""
    table = load_table(catalog, ref)
    if snapshot_id is not None and table.snapshot_by_id(snapshot_id) is None:
        raise ValueError(f"table {ref.identifier} has no snapshot {snapshot_id}")
    schema = table.scan(snapshot_id=snapshot_id).projection()
    files = data_files(table, snapshot_id)
    return read_files(spark, [f.file_path for f in files], iceberg_to_spark_schema(schema, T))
