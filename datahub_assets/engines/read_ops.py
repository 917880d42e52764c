"""The `Engine` operations that read: file sources, a file drop's files, frames from Arrow, and
the pieces of incremental reads whose code differs per engine.

Declared here, implemented by each engine in its package's `read.py`
(`engines/spark/read.py` `SparkReadOps`, `engines/duckdb/read.py` `DuckDBReadOps`):

- file sources (`execute/readers/`): `read_csv`, `read_json`, `read_parquet` of a `FileSet`;
  with `corrupt`, csv and json frames keep malformed records in `CORRUPT` and name each
  row's file in `FILE_COL` (`execute/malformed.py` splits them off);
- file drops (`execute/drops.py`, one loop for both engines): `read_drop_csv`,
  `read_drop_json`, `read_drop_parquet` of a `DropFiles` group, with the lineage columns
  (`LINEAGE_COLUMNS`); `empty_frame` when a watched source has no new file;
- malformed records (`execute/malformed.py`): `parse_every_field` before the split,
  `from_arrow` for the quarantine rows;
- incremental reads (`execute/watermarks.py`): a timestamp watermark as a literal
  (`timestamp_literal`) and the newest timestamp of a frame (`max_micros`).

The caller knows where the files are (the source's path, a drop's stores); the engine knows
what it can open: it asks a `FileSet` / `DropFiles` for one path naming every file (Spark:
local, s3a://) or for local copies (DuckDB). A read the engine rejects raises
`FileReadError` (`NoFileMatches` when nothing matches the path); the readers turn it into the
source's error. Callers never test which engine runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import Column, DataFrame

CORRUPT = "_corrupt_record"
"""The helper column holding a malformed record's raw text (null for a good record)."""
FILE_COL = "__dh_file"
"""The helper column naming each row's file (`file:` + the absolute path for local files)."""
LINEAGE_COLUMNS = ("_source_file", "_ingested_at", "_run_id")
"""The columns a file drop's rows get: the file as landed, the run's ingest time, the run."""


class FileReadError(ValueError):
    """The engine could not read the files: the first line of its message."""


class NoFileMatches(FileReadError):
    """No file matches the path read."""


@dataclass(frozen=True)
class CsvFormat:
    """A CSV source's options as the source states them (each engine maps them to its own:
    Spark's reader options, DuckDB's `CsvOptions`); None: the engine's default, as Spark's."""

    header: bool = True
    delimiter: str | None = None
    quote: str | None = None
    escape: str | None = None
    encoding: str | None = None
    null_value: str | None = None
    date_format: str | None = None


@dataclass(frozen=True)
class Lineage:
    """The values of a file drop's lineage columns shared by every row of a read."""

    ingested_at: datetime
    run_id: str


@dataclass(frozen=True)
class StagedFolder:
    """A drop group's files in one folder (`DropFiles.folder`)."""

    path: str
    """The folder (local, or s3a:// for objects): reading it reads every file of the group."""
    names: Mapping[str, str]
    """File name in the folder -> the file's path as landed (`_source_file`)."""
    settings: Mapping[str, str] = field(default_factory=dict)
    """Session settings an engine needs to reach the folder's bucket (Spark's S3A keys)."""


class FileSet(Protocol):
    """The files of a file source, in the form the engine asks for."""

    @property
    def path(self) -> str:
        """The path read (a file, folder or glob; local, or s3://), as errors name it."""
        ...

    def local_files(self, parquet: bool = False) -> list[str]:
        """The files as local paths, objects downloaded first (`parquet`: a folder's part
        files, without `_`/`.` files); a path no file matches is the source's error."""
        ...

    def local_root(self) -> str | None:
        """The local folder a parquet read starts from (its `key=value` sub-folders are
        partition columns), None for files and globs."""
        ...

    def download_folder(self) -> str | None:
        """Where `local_files` downloaded objects to (None: the path is local)."""
        ...

    def release(self) -> None:
        """Remove the downloaded copies (the rows were computed)."""
        ...


class DropFiles(Protocol):
    """One group of a file drop's files (read together), staged in the form the engine asks
    for; both forms keep the landed path of every file for `_source_file`."""

    def folder(self) -> StagedFolder:
        """The files in one folder an engine reads whole: links in the run's work folder, or
        server-side copies next to them in their bucket."""
        ...

    def local_files(self) -> dict[str, str]:
        """Absolute local path -> landed path: links in the run's work folder, objects
        downloaded there."""
        ...


class ReadOps:
    """Reading operations of an engine (declared here, implemented per engine; the module
    docstring lists them)."""

    # --- file sources -------------------------------------------------------------------------

    def read_csv(
        self,
        files: FileSet,
        fmt: CsvFormat,
        schema: Any = None,
        infer: bool = False,
        corrupt: bool = False,
    ) -> DataFrame:
        """CSV `files` as Spark reads them: `schema` (a StructType, columns by position), else
        the header's names (or _c0, _c1...) with every column a string, or Spark's inferred
        types with `infer`. `corrupt`: malformed records kept in `CORRUPT`, the file in
        `FILE_COL`. Raises `FileReadError`."""
        raise NotImplementedError

    def read_json(
        self, files: FileSet, multiline: bool, schema: Any = None, corrupt: bool = False
    ) -> DataFrame:
        """JSON lines (or whole documents with `multiline`: an array gives one row per
        element) with `schema`, else Spark's inferred one. `corrupt`: as `read_csv`."""
        raise NotImplementedError

    def read_parquet(self, files: FileSet) -> DataFrame:
        """Parquet files by column name; a folder's `key=value` sub-folders are partition
        columns. Raises `FileReadError`."""
        raise NotImplementedError

    # --- file drops ---------------------------------------------------------------------------

    def read_drop_csv(
        self,
        files: DropFiles,
        fmt: CsvFormat,
        schema: Any,
        infer: bool,
        lineage: Lineage,
    ) -> DataFrame:
        """A group of dropped CSV files with `CORRUPT` and the lineage columns (`schema`
        None: the header's names, typed by Spark's inference with `infer`)."""
        raise NotImplementedError

    def read_drop_json(
        self, files: DropFiles, multiline: bool, schema: Any, lineage: Lineage
    ) -> DataFrame:
        """Dropped JSON files with `CORRUPT` and the lineage columns."""
        raise NotImplementedError

    def read_drop_parquet(self, files: DropFiles, lineage: Lineage) -> DataFrame:
        """Dropped Parquet files (columns by name, the union of the files') with the lineage
        columns."""
        raise NotImplementedError

    def empty_frame(self, schema: Any) -> DataFrame:
        """A frame with no row and the columns of `schema`."""
        raise NotImplementedError

    # --- malformed records --------------------------------------------------------------------

    def parse_every_field(self, df: DataFrame) -> None:
        """Make every read behind `df` check all fields of a record, whatever columns a query
        selects (the malformed split queries the good and the bad rows apart)."""
        raise NotImplementedError

    def from_arrow(self, table: pa.Table, schema: Any, session: Any) -> DataFrame:
        """The rows of the Arrow `table` as a frame of `session` (`schema`: the table's
        columns as a StructType)."""
        raise NotImplementedError

    # --- incremental reads --------------------------------------------------------------------

    def timestamp_literal(self, iso: str) -> Column:
        """The timestamp `iso` (ISO-8601 with offset, microseconds) as a literal column."""
        raise NotImplementedError

    def max_micros(self, df: DataFrame, col: Column) -> int | None:
        """The largest value of the timestamp column `col` over `df` in microseconds since
        the epoch (one aggregate job); None when `df` has no row with a value."""
        raise NotImplementedError
