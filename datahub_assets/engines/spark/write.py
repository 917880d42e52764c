"""The Spark engine's writing, storage and column operations (`engines.write_ops.WriteOps`).

Table storage: Spark reads a table's Parquet data files with the table's read schema
(`spark.read.schema(...).parquet`, each row's file from `_metadata.file_path`) and writes
staged files with `partitionBy` on an `xxhash64` of the partition columns (hash distribution,
Iceberg's default for partitioned tables: one file per partition and task). CSV exports are
Spark's CSV writer. Columns are PySpark's functions; the `sql` step's query binds the datasets
inside the plan on Spark Connect (`WithRelations`); the mask step's AES is Spark's
`aes_encrypt` (GCM), its key relation a broadcast one-row frame.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from datahub_assets.engines.write_ops import MASK_IV_BYTES, TOKEN_PREFIX, WriteOps
from datahub_resources import s3


def _csv_writer(
    df: DataFrame,
    mode: str,
    partition_by: Sequence[str],
    header: bool,
    delimiter: str,
    compression: str,
) -> Any:
    options = {"header": str(header).lower(), "sep": delimiter, "compression": compression}
    writer = df.write.mode(mode).options(**options)
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    return writer


def _with_relations(session: Any, query: str, datasets: Mapping[str, DataFrame]) -> DataFrame:
    """The query with every dataset bound as a relation *inside the plan* (Spark Connect's
    `WithRelations`, what `spark.sql("... {df} ...", df=df)` uses), not as a session view."""
    from pyspark.sql.connect.dataframe import DataFrame as ConnectDataFrame
    from pyspark.sql.connect.plan import SQL, SubqueryAlias

    # the pyspark stubs type these internals loosely (a plan where a Column is declared,
    # the classic SparkSession): the values are the Connect ones at run time
    views = [SubqueryAlias(df._plan, name) for name, df in datasets.items()]  # pyright: ignore[reportArgumentType]
    return ConnectDataFrame(SQL(query, [], {}, views), session)


class SparkWriteOps(WriteOps):
    """Writing on Spark Connect."""

    # --- table storage ------------------------------------------------------------------------

    def read_data_files(
        self, session: Any, paths: Sequence[str], schema: Any, file_column: str | None = None
    ) -> DataFrame:
        if not paths:
            empty = session.createDataFrame([], schema)
            if file_column:
                return empty.withColumn(file_column, F.lit(None).cast("string"))
            return empty
        df = session.read.schema(schema).parquet(*[s3.to_spark(p) for p in paths])
        if file_column:
            return df.select("*", F.col("_metadata.file_path").alias(file_column))
        return df

    def write_staged_parquet(
        self, df: DataFrame, folder: str, partition_by: Sequence[str], part_column: str
    ) -> None:
        writer = df
        if partition_by:
            # hash distribution (Iceberg's default for partitioned tables): one file per
            # partition and task instead of one per partition and input split
            writer = df.withColumn(part_column, F.xxhash64(*[F.col(c) for c in partition_by]))
            writer = writer.repartition(F.col(part_column))
        w = writer.write.mode("error").option(
            "mapreduce.fileoutputcommitter.marksuccessfuljobs", "false"
        )
        (w.partitionBy(part_column) if partition_by else w).parquet(s3.to_spark(folder))

    def with_row_order(self, df: DataFrame, column: str) -> DataFrame:
        return df.withColumn(column, F.monotonically_increasing_id())

    def error_column(self, message: str) -> Column:
        return F.raise_error(F.lit(message))

    # --- CSV exports --------------------------------------------------------------------------

    def write_csv_folder(
        self,
        df: DataFrame,
        folder: str,
        partition_by: Sequence[str],
        header: bool,
        delimiter: str,
        compression: str,
    ) -> None:
        _csv_writer(df, "error", partition_by, header, delimiter, compression).csv(folder)

    def write_csv_remote(
        self,
        df: DataFrame,
        path: str,
        mode: str,
        partition_by: Sequence[str],
        header: bool,
        delimiter: str,
        compression: str,
    ) -> None:
        writer = _csv_writer(df, mode, partition_by, header, delimiter, compression)
        writer.csv(s3.to_spark(path))

    # --- columns ------------------------------------------------------------------------------

    def broadcast(self, df: DataFrame) -> DataFrame:
        return F.broadcast(df)

    def explode_outer(self, col: Column) -> Column:
        return F.explode_outer(col)

    def row_order_id(self) -> Column:
        return F.monotonically_increasing_id()

    def try_cast(self, col: Column, dtype: Any, source: Any) -> Column:  # noqa: ARG002
        return col.try_cast(dtype)

    def cast(self, col: Column, to: str, source: Any) -> Column:  # noqa: ARG002
        return col.cast(to)

    def element_count(self, col: Column, dtype: Any) -> Column:  # noqa: ARG002
        return F.size(col)

    def aggregate_result(self, fn: str, out: Column, dtype: Any) -> Column:  # noqa: ARG002
        return out

    def map_entries(self, col: Column) -> Column:
        return F.map_entries(col)

    def to_json(self, col: Column, dtype: Any) -> Column:  # noqa: ARG002
        return F.to_json(col)

    def expr(self, text: str, df: Any) -> Column:  # noqa: ARG002
        return F.expr(text)

    def array_field(self, col: Column, name: str) -> Column:
        return col.getField(name)

    # --- steps --------------------------------------------------------------------------------

    def select_exprs(self, df: DataFrame, exprs: Sequence[str]) -> DataFrame:
        return df.selectExpr(*exprs)

    def sql_query(self, session: Any, query: str, datasets: Mapping[str, DataFrame]) -> DataFrame:
        """On Spark Connect the datasets are bound inside the plan (`_with_relations`); on a
        classic session they are registered with `createOrReplaceTempView`."""
        if all(type(df).__module__.startswith("pyspark.sql.connect") for df in datasets.values()):
            return _with_relations(session, query, datasets)
        for name, df in datasets.items():
            df.createOrReplaceTempView(name)
        return session.sql(query)

    def mask_token(self, key: Column, value: Column) -> Column:
        data = value.cast("binary")
        iv = F.substring(F.unhex(F.sha2(F.concat(key, data), 256)), 1, MASK_IV_BYTES)
        sealed = F.aes_encrypt(data, key, F.lit("GCM"), F.lit("DEFAULT"), iv)
        return F.concat(F.lit(TOKEN_PREFIX), F.base64(sealed))

    def mask_encrypt(self, key: Column, value: Column) -> Column:
        return F.base64(F.aes_encrypt(value, key, F.lit("GCM")))

    def key_relation(
        self, session: Any, salt_column: str, salt: str, key_column: str, key: bytes
    ) -> DataFrame:
        keys = session.createDataFrame([(salt, key)], f"{salt_column} string, {key_column} binary")
        return F.broadcast(keys)

    def collect_dicts(self, df: DataFrame) -> list[dict[str, Any]]:
        return [row.asDict() for row in df.collect()]
