"""`pyiceberg_compat.data_file` on Parquet files Spark wrote, against pyiceberg's own
`parquet_file_to_data_file`: the same statistics and partition values wherever pyiceberg's
works, and right where it is not (see the compat module doc). When a pyiceberg upgrade makes
the two `differs` assertions fail, pyiceberg handles those cases: switch to it."""

from __future__ import annotations

from datetime import date

import pyarrow.parquet as pq
import pytest
from pyiceberg.io.pyarrow import parquet_file_to_data_file

from datahub_assets.iceberg import pyiceberg_compat as compat
from datahub_assets.iceberg.table import abort, commit, stage_write
from datahub_assets.spec.models import TableRef, TableTarget
from datahub_resources.iceberg import load_catalog

pytestmark = pytest.mark.spark

FIELDS = (
    "record_count",
    "column_sizes",
    "value_counts",
    "null_value_counts",
    "nan_value_counts",
    "lower_bounds",
    "upper_bounds",
    "split_offsets",
    "partition",
    "file_size_in_bytes",
)
EPOCH = date(1970, 1, 1)
LONG = 5000  # above Parquet's 4 KiB statistics limit


def test_data_file_matches_pyiceberg_and_fixes_its_two_gaps(spark, settings):
    catalog = load_catalog(settings)
    ref = TableRef(app="x", layer="raw", table="parts")
    df = spark.sql(
        "select id, if(id % 3 = 0, null, if(id % 3 = 1, 'DE', 'FR')) country, "
        "date_add(date'2024-01-01', cast(id % 2 as int)) day, "
        f"if(id % 2 = 0, repeat('x', {LONG}), repeat('y', {LONG})) note from range(12)"
    )
    # (country, day): statistics give the values; a file with a null country has none
    target = TableTarget(table="parts", mode="append", partitionBy=["country", "day"])
    commit(stage_write(spark, catalog, ref, df, target, "r1"))
    table = catalog.load_table((ref.namespace, ref.table))
    seen = set()
    for task in table.scan().plan_files():
        path = task.file.file_path
        ours = compat.data_file(table.io, table.metadata, path)
        theirs = parquet_file_to_data_file(table.io, table.metadata, path)
        for name in FIELDS:
            assert getattr(ours, name) == getattr(theirs, name), name
        rows = pq.read_table(path.removeprefix("file://")).to_pylist()
        assert ours.record_count == len(rows)
        # Iceberg keeps a date partition value as days since 1970-01-01
        days = {(r["country"], (r["day"] - EPOCH).days) for r in rows}
        assert days == {(ours.partition[0], ours.partition[1])}
        seen.add((ours.partition[0], ours.partition[1]))
    assert {c for c, _ in seen} == {None, "DE", "FR"}
    assert {d for _, d in seen} == {19723, 19724}  # 2024-01-01, 2024-01-02

    # partitioned by a value too long for statistics: pyiceberg says None, the file says x/y
    long_ref = TableRef(app="x", layer="raw", table="long_parts")
    commit(
        stage_write(
            spark,
            catalog,
            long_ref,
            df.select("id", "note"),
            TableTarget(table="long_parts", mode="append", partitionBy=["note"]),
            "r1",
        )
    )
    table = catalog.load_table((long_ref.namespace, long_ref.table))
    values = set()
    for task in table.scan().plan_files():
        ours = compat.data_file(table.io, table.metadata, task.file.file_path)
        theirs = parquet_file_to_data_file(table.io, table.metadata, task.file.file_path)
        values.add(ours.partition[0][:1] + str(len(ours.partition[0])))
        assert theirs.partition[0] is None, "pyiceberg now reads long partition values: switch"
    assert values == {f"x{LONG}", f"y{LONG}"}

    # a required table column written by Spark as optional (align null-checks it)
    req = TableRef(app="x", layer="raw", table="req")
    first = spark.sql("select id from range(3)")  # range(): id is not nullable -> required
    commit(stage_write(spark, catalog, req, first, TableTarget(table="req"), "r1"))
    assert catalog.load_table((req.namespace, req.table)).schema().fields[0].required
    nullable = spark.sql("select if(id > 100, null, id) id from range(3, 5)")
    staged = stage_write(spark, catalog, req, nullable, TableTarget(table="req"), "r2")
    assert sorted(f.record_count for f in staged.added) in ([2], [1, 1])
    with pytest.raises(ValueError, match="Mismatch in fields"):  # pyiceberg refuses the file
        parquet_file_to_data_file(
            compat.transaction_table(staged.txn).io,
            staged.txn.table_metadata,
            staged.added[0].file_path,
        )
    abort(staged)
