"""The Spark engine's reading operations (`engines.read_ops.ReadOps`).

File sources are Spark's own readers on one path (a file, folder or glob; s3:// read as
s3a://), resolved at once (`resolve`: the plan is analysed on the server, so a missing path
or a bad option fails the read, not a later step). With `corrupt`, csv and json are read in
PERMISSIVE mode with the helper column `_corrupt_record` in the read schema (`with_corrupt`,
`CORRUPT_OPTIONS`): Spark fills it with a record's raw text exactly when the record is
malformed; each row's file is `_metadata.file_path`. A schema the source does not declare is
Spark's own (the header's names, or its inference) from a first read.

File drops are read from one folder per group (`read_drops` in `execute/drops.py` stages it:
Spark lists one path, not hundreds); `_source_file` maps `_metadata.file_name` to the landed
path.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from datahub_assets.engines.read_ops import (
    CORRUPT,
    FILE_COL,
    CsvFormat,
    DropFiles,
    FileReadError,
    FileSet,
    Lineage,
    NoFileMatches,
    ReadOps,
    StagedFolder,
)
from datahub_resources import s3

if TYPE_CHECKING:
    import pyarrow as pa

CORRUPT_OPTIONS = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICRO = timedelta(microseconds=1)


def options(**values: object) -> dict[str, str]:
    """Reader options without the unset ones, as strings Spark understands."""
    out = {}
    for key, value in values.items():
        if value is not None:
            out[key] = str(value).lower() if isinstance(value, bool) else str(value)
    return out


def csv_options(fmt: CsvFormat, infer: bool) -> dict[str, str]:
    """Spark's CSV reader options of `fmt` (`inferSchema` from `infer`)."""
    return options(
        header=fmt.header,
        sep=fmt.delimiter,
        inferSchema=infer,
        quote=fmt.quote,
        escape=fmt.escape,
        encoding=fmt.encoding,
        nullValue=fmt.null_value,
        dateFormat=fmt.date_format,
    )


def with_corrupt(schema: T.StructType) -> T.StructType:
    """`schema` plus the helper column (string, last) when it lacks it."""
    if CORRUPT in schema.fieldNames():
        return schema
    return T.StructType([*schema.fields, T.StructField(CORRUPT, T.StringType())])


def first_line(exc: BaseException) -> str:
    return str(exc).strip().split("\n", 1)[0][:600]


def resolve(df: DataFrame) -> DataFrame:
    """Analyse `df` now, so a missing path or bad option fails here (`FileReadError`)."""
    try:
        df.isLocal()  # analyses the plan on the server: paths, schema inference, options
    except AnalysisException as exc:
        if "PATH_NOT_FOUND" in str(exc):
            raise NoFileMatches(first_line(exc)) from None
        raise FileReadError(first_line(exc)) from None
    return df


def _with_file(df: DataFrame) -> DataFrame:
    return df.select("*", F.col("_metadata.file_path").alias(FILE_COL))


def _with_lineage(df: DataFrame, names: Mapping[str, str], lineage: Lineage) -> DataFrame:
    mapping = F.create_map(*[F.lit(x) for kv in names.items() for x in kv])
    return df.select(
        "*",
        F.element_at(mapping, F.col("_metadata.file_name")).alias("_source_file"),
        F.lit(lineage.ingested_at).cast(T.TimestampType()).alias("_ingested_at"),
        F.lit(lineage.run_id).alias("_run_id"),
    )


class SparkReadOps(ReadOps):
    """Reading on Spark Connect (the module docstring)."""

    session: Any

    def _reader(self, schema: Any) -> Any:
        """A DataFrameReader with the explicit `schema`, if any."""
        r = self.session.read
        return r.schema(schema) if schema is not None else r

    def _staged(self, files: DropFiles) -> tuple[str, StagedFolder]:
        """The group's folder as Spark reads it, its bucket reachable from the session."""
        staged = files.folder()
        for key, value in staged.settings.items():
            self.session.conf.set(key, value)
        return s3.to_spark(staged.path), staged

    # --- file sources -------------------------------------------------------------------------

    def read_csv(
        self,
        files: FileSet,
        fmt: CsvFormat,
        schema: Any = None,
        infer: bool = False,
        corrupt: bool = False,
    ) -> DataFrame:
        path = s3.to_spark(files.path)
        opts = csv_options(fmt, infer)
        if not corrupt:
            return resolve(self._reader(schema).options(**opts).csv(path))
        if schema is None:  # the header's names (or _c0..), typed by inferSchema when asked for
            schema = resolve(self.session.read.options(**opts).csv(path)).schema
        read = self.session.read.schema(with_corrupt(schema)).options(**opts, **CORRUPT_OPTIONS)
        return resolve(_with_file(read.csv(path)))

    def read_json(
        self, files: FileSet, multiline: bool, schema: Any = None, corrupt: bool = False
    ) -> DataFrame:
        path = s3.to_spark(files.path)
        opts = options(multiLine=multiline)
        if not corrupt:
            return resolve(self._reader(schema).options(**opts).json(path))
        if schema is None:
            schema = resolve(self.session.read.options(**opts).json(path)).schema
        read = self.session.read.schema(with_corrupt(schema)).options(**opts, **CORRUPT_OPTIONS)
        return resolve(_with_file(read.json(path)))

    def read_parquet(self, files: FileSet) -> DataFrame:
        return resolve(self.session.read.parquet(s3.to_spark(files.path)))

    # --- file drops ---------------------------------------------------------------------------

    def read_drop_csv(
        self,
        files: DropFiles,
        fmt: CsvFormat,
        schema: Any,
        infer: bool,
        lineage: Lineage,
    ) -> DataFrame:
        opts = csv_options(fmt, infer)
        reader = self.session.read.options(**opts, **CORRUPT_OPTIONS)
        folder, staged = self._staged(files)
        if schema is None:  # malformed records need an explicit schema: Spark's own
            schema = self.session.read.options(**opts).csv(folder).schema
        df = reader.schema(with_corrupt(schema)).csv(folder)
        return _with_lineage(df, staged.names, lineage)

    def read_drop_json(
        self, files: DropFiles, multiline: bool, schema: Any, lineage: Lineage
    ) -> DataFrame:
        folder, staged = self._staged(files)
        reader = self.session.read.options(**options(multiLine=multiline))
        if schema is None:
            schema = reader.json(folder).schema
        df = reader.schema(with_corrupt(schema)).options(**CORRUPT_OPTIONS).json(folder)
        return _with_lineage(df, staged.names, lineage)

    def read_drop_parquet(self, files: DropFiles, lineage: Lineage) -> DataFrame:
        folder, staged = self._staged(files)
        df = self.session.read.option("mergeSchema", "true").parquet(folder)
        return _with_lineage(df, staged.names, lineage)

    def empty_frame(self, schema: Any) -> DataFrame:
        return self.session.createDataFrame([], schema)

    # --- malformed records --------------------------------------------------------------------

    def parse_every_field(self, df: DataFrame) -> None:
        """Spark's CSV parser checks the field count only over the columns a query needs:
        column pruning off for the session."""
        df.sparkSession.conf.set("spark.sql.csv.parser.columnPruning.enabled", "false")

    def from_arrow(self, table: pa.Table, schema: Any, session: Any) -> DataFrame:
        return session.createDataFrame(table.to_pandas(), schema)

    # --- incremental reads --------------------------------------------------------------------

    def timestamp_literal(self, iso: str) -> Column:
        micros = (datetime.fromisoformat(iso) - EPOCH) // MICRO
        return F.timestamp_micros(F.lit(micros))

    def max_micros(self, df: DataFrame, col: Column) -> int | None:
        row = df.agg(F.unix_micros(F.max(col))).first()
        return row[0] if row is not None else None
