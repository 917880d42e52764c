"""Every use of pyiceberg internals, in one place, fenced to the tested pyiceberg versions.

The write path needs a few things pyiceberg keeps private; nothing else in the package touches
a `_name` of a pyiceberg object. What each function relies on (tests/unit/test_pyiceberg_compat.py
asserts these exist with these signatures and fails naming the attribute after an upgrade):

- `Transaction._table`, `._requirements`, `._updates`, `._failed`: the table a transaction
  writes and the changes it accumulated, to commit them with other tables' changes
  (`multi_commit.change_of`) instead of `commit_transaction`.
- `Catalog._update_and_stage_table`, `._write_metadata`, `._delete_old_metadata`: the three
  steps of `SqlCatalog.commit_table` before its compare-and-swap, which `multi_commit` runs
  for several tables and then swaps all rows in one SQL transaction.
- `DataFileStatistics._partition_value`: a partition value from a Parquet file's column
  statistics (used by `data_file`).

`data_file` builds the DataFile of a Spark-written Parquet file. pyiceberg's public
`parquet_file_to_data_file` is not used because, on pyiceberg 0.12, it (1) returns a None
partition value when the value is longer than Parquet's statistics limit (4 KiB: no min/max),
which would file the rows under the null partition, and (2) refuses a file whose column is
optional where the table's is required ("Mismatch in fields"), and Spark writes every column
it had to null-check as optional (tests/integration/test_data_file.py shows both).
`data_file` takes pyiceberg's public statistics functions and fills (1) from the file's first
row; the result equals `parquet_file_to_data_file`'s wherever that one works.
"""

from __future__ import annotations

from typing import Any

import pyarrow.parquet as pq
from pyiceberg.catalog import Catalog, MetastoreCatalog
from pyiceberg.io import FileIO
from pyiceberg.io.pyarrow import (
    compute_statistics_plan,
    data_file_statistics_from_parquet_metadata,
    parquet_path_to_id_mapping,
)
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
from pyiceberg.partitioning import PartitionField
from pyiceberg.table import CommitTableResponse, Table, Transaction
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.update import TableRequirement, TableUpdate
from pyiceberg.typedef import Identifier, Record

TESTED = ("0.12",)
"""pyiceberg minor versions this module was tested with (pyproject pins the same range)."""


# ------------------------------------------------------------------------------ transactions


def transaction_table(txn: Transaction) -> Table:
    """The table `txn` writes (a StagedTable for a create-table transaction)."""
    return txn._table


def transaction_changes(
    txn: Transaction,
) -> tuple[tuple[TableRequirement, ...], tuple[TableUpdate, ...]]:
    """(requirements, updates) `txn` accumulated and would commit."""
    return txn._requirements, txn._updates


def transaction_failed(txn: Transaction) -> bool:
    """True when `txn` failed to commit before (pyiceberg refuses to reuse it)."""
    return bool(getattr(txn, "_failed", False))


def committed_table(table: Table, response: CommitTableResponse) -> Table:
    """`table` as `response` (a commit of it) left it, without loading it again."""
    return Table(
        identifier=table.name(),
        metadata=response.metadata,
        metadata_location=response.metadata_location,
        io=table.io,
        catalog=table.catalog,
    )


def plain_table(table: Table) -> Table:
    """A Table over `table`'s current metadata (turns a committed StagedTable of a
    create-table transaction into a table that scans and commits)."""
    return Table(
        identifier=table.name(),
        metadata=table.metadata,
        metadata_location=table.metadata_location,
        io=table.io,
        catalog=table.catalog,
    )


# ---------------------------------------------------------------------------- catalog commit


def update_and_stage(
    catalog: MetastoreCatalog,
    current: Table,
    identifier: Identifier,
    requirements: tuple[TableRequirement, ...],
    updates: tuple[TableUpdate, ...],
) -> Any:
    """Validate `requirements` against `current` and apply `updates` (in memory): a staged
    table with `.metadata` and `.metadata_location` (the file to write)."""
    return catalog._update_and_stage_table(current, identifier, requirements, updates)


def write_metadata(
    catalog: MetastoreCatalog, metadata: TableMetadata, io: FileIO, path: str
) -> None:
    """Write a new, not yet referenced, metadata file."""
    catalog._write_metadata(metadata=metadata, io=io, metadata_path=path)


def delete_old_metadata(
    catalog: Catalog, io: FileIO, base: TableMetadata, metadata: TableMetadata
) -> None:
    """Honour write.metadata.delete-after-commit.enabled, as `Table._do_commit` does."""
    catalog._delete_old_metadata(io, base, metadata)


# --------------------------------------------------------------------------------- data files


def _partition_value(pf: PartitionField, schema, stats, input_file) -> object:
    agg = stats.column_aggregates.get(pf.source_id)
    if agg is not None and agg.current_min is not None:
        return stats._partition_value(pf, schema)
    if stats.null_value_counts.get(pf.source_id) == stats.record_count:
        return None
    # No statistics (values longer than Parquet's 4 KiB stats limit): read the first value
    # of that one column (every row of the file holds the same value).
    name = schema.find_field(pf.source_id).name
    with input_file.open() as stream:
        batch = next(pq.ParquetFile(stream).iter_batches(batch_size=1, columns=[name]))
    return batch.column(0)[0].as_py()


def data_file(io: FileIO, metadata: TableMetadata, uri: str) -> DataFile:
    """A DataFile for a Spark-written Parquet file of ONE partition value (columns matched by
    name through the table's name mapping; see the module doc)."""
    input_file = io.new_input(uri)
    with input_file.open() as stream:
        md = pq.read_metadata(stream)
    schema = metadata.schema()
    stats = data_file_statistics_from_parquet_metadata(
        parquet_metadata=md,
        stats_columns=compute_statistics_plan(schema, metadata.properties),
        parquet_column_mapping=parquet_path_to_id_mapping(schema),
    )
    spec = metadata.spec()
    partition = Record()
    if spec.fields and md.num_rows:
        partition = Record(*[_partition_value(pf, schema, stats, input_file) for pf in spec.fields])
    return DataFile.from_args(
        content=DataFileContent.DATA,
        file_path=uri,
        file_format=FileFormat.PARQUET,
        partition=partition,
        file_size_in_bytes=len(input_file),
        sort_order_id=None,
        spec_id=metadata.default_spec_id,
        equality_ids=None,
        key_metadata=None,
        **stats.to_serialized_dict(),
    )
