"""The DuckDB engine's writing, storage and column operations (`DuckDBWriteOps`, the
`engines.write_ops.WriteOps` of DuckDB), and the table storage they use.

- `read_files`: Parquet data files planned by pyiceberg, read by DuckDB's `read_parquet`
  with the table's read schema (a Spark or sqlframe `StructType`): columns matched by name
  (`union_by_name`), a column no file has is a typed null, narrower old types are cast up.
  The result is a view of the run's in-memory database wrapped as a sqlframe frame: no row
  passes through Python. `file_column` adds the path of each row's file (`filename=`; Spark
  uses `_metadata.file_path`).
- `write_parquet`: `COPY (<the frame's DuckDB SQL>) TO <folder> (FORMAT parquet, ...)`;
  partitioned tables hash their partition columns with DuckDB's `hash()` into the one
  `PARTITION_BY` column (Spark: `xxhash64`), so each file holds one partition value. File
  names and hash values differ from Spark's, the rows and the Parquet types are the same:
  TIMESTAMP WITH TIME ZONE as INT64 micros adjusted to UTC, TIMESTAMP as INT64 micros,
  decimals as Parquet DECIMAL, no field ids (the table's name mapping matches by name).
- `with_input_order`: the frame materialised with its input order as a column (Spark:
  `monotonically_increasing_id`), for last-wins deduplication.
- `write_csv_folder`: the CSV files of an export, laid out and formatted as Spark writes
  them (`part-00000-<uuid>-c000.csv`, `col=value/` folders, Spark's value formats).
- `DuckDBWriteOps`: the operations over the functions above, and columns with Spark's results
  where sqlframe's differ (Spark SQL through `engines.duckdb.spark_sql`, the Python functions
  of `engines.duckdb.udfs`).

Object storage: s3:// and s3a:// paths go to DuckDB as written; the run's connection serves
them through pyarrow's S3 client (`engines.duckdb.s3`, DuckDB's httpfs extension cannot be
downloaded offline). `write_csv_s3`: a CSV export to S3 with Spark's save modes.
"""

from __future__ import annotations

import itertools
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
from sqlframe.duckdb import DuckDBDataFrame, DuckDBSession
from sqlframe.duckdb import functions as DF

from datahub_assets.engines.duckdb import s3 as duckdb_s3
from datahub_assets.engines.duckdb import spark_sql
from datahub_assets.engines.duckdb.spark_json import type_json
from datahub_assets.engines.duckdb.udfs import (
    ENCRYPT_FN,
    SPARK_JSON_FN,
    TOKENIZE_FN,
    call,
    ensure_functions,
)
from datahub_assets.engines.write_ops import WriteOps

_NAMES = itertools.count(1)

_PRIMITIVES = {
    "StringType": "VARCHAR",
    "CharType": "VARCHAR",
    "VarcharType": "VARCHAR",
    "ByteType": "TINYINT",
    "ShortType": "SMALLINT",
    "IntegerType": "INTEGER",
    "LongType": "BIGINT",
    "FloatType": "FLOAT",
    "DoubleType": "DOUBLE",
    "BooleanType": "BOOLEAN",
    "DateType": "DATE",
    "TimestampType": "TIMESTAMPTZ",
    "TimestampNTZType": "TIMESTAMP",
    "BinaryType": "BLOB",
}


class _String:
    """The type of the `filename=` column (VARCHAR) as `_view` registers it."""

    @staticmethod
    def simpleString() -> str:  # noqa: N802  (the Spark types' name)
        return "string"


_STRING = _String()


class DuckDBStorageError(NotImplementedError):
    pass


def is_duckdb(obj: Any) -> bool:
    """True for a sqlframe DuckDB session or frame."""
    return isinstance(obj, DuckDBSession | DuckDBDataFrame)


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def duckdb_type(dt: Any) -> str:
    """The DuckDB SQL type of a Spark or sqlframe data type (matched by class name)."""
    kind = type(dt).__name__
    if kind == "DecimalType":
        return f"DECIMAL({dt.precision}, {dt.scale})"
    if kind == "ArrayType":
        return f"{duckdb_type(dt.elementType)}[]"
    if kind == "MapType":
        return f"MAP({duckdb_type(dt.keyType)}, {duckdb_type(dt.valueType)})"
    if kind == "StructType":
        return (
            f"STRUCT({', '.join(f'{quote(f.name)} {duckdb_type(f.dataType)}' for f in dt.fields)})"
        )
    if kind in _PRIMITIVES:
        return _PRIMITIVES[kind]
    raise TypeError(f"type {dt} has no DuckDB equivalent")


def local_path(uri: str) -> str:
    """A path DuckDB opens: `file:///x` -> `/x`; s3:// and s3a:// as written (module doc);
    other schemes are refused."""
    if uri.startswith("file://"):
        return uri.removeprefix("file://")
    if uri.startswith("file:"):
        return uri.removeprefix("file:")
    if "://" not in uri or duckdb_s3.is_s3(uri):
        return uri
    raise DuckDBStorageError(
        f"{uri}: the DuckDB engine reads and writes local files and s3:// objects only; run "
        "this pipeline on Spark"
    )


def _conn(session: Any) -> duckdb.DuckDBPyConnection:
    """The DuckDB connection under a sqlframe DuckDB session."""
    return session._conn


_PLAIN_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_PLAIN_TYPE = re.compile(r"^[a-z0-9_<>:, ()]*$")


def _plain_columns(columns: list[tuple[str, Any]] | None) -> dict[str, str] | None:
    """name -> Spark type text of `columns` when sqlframe would register exactly that for the
    view (lowercase plain names, nested names too); else None."""
    if not columns:
        return None
    mapping = {}
    for name, dtype in columns:
        text = dtype.simpleString() if hasattr(dtype, "simpleString") else ""
        if not (_PLAIN_NAME.match(name) and text and _PLAIN_TYPE.match(text)):
            return None
        mapping[name] = text
    return mapping


def _view(session: Any, sql: str, columns: list[tuple[str, Any]] | None = None) -> Any:
    """`sql` as a view of the run's database, as a sqlframe frame (sqlframe cannot see TEMP
    views). `columns`: the view's (name, Spark/sqlframe type) when known: registered with
    sqlframe directly instead of its information_schema lookup (~10 ms a view)."""
    name = f"__datahub_read_{next(_NAMES)}_{uuid.uuid4().hex[:8]}"
    _conn(session).execute(f"CREATE VIEW {quote(name)} AS {sql}")
    mapping = _plain_columns(columns)
    if mapping is None:
        return session.table(name)
    session.catalog.add_table(name, mapping)
    frame = session.table(name)
    if hasattr(frame, "known_schema"):  # engines.duckdb's frames: no DESCRIBE for df.schema
        frame.known_schema(mapping)
    return frame


def read_files(session: Any, paths: list[str], schema: Any, file_column: str | None = None) -> Any:
    """A frame over the Parquet `paths` with `schema` (module doc); no paths: no rows."""
    fields = list(schema.fields)
    known = [(f.name, f.dataType) for f in fields]
    if file_column:
        known.append((file_column, _STRING))
    if not paths:
        cols = [f"CAST(NULL AS {duckdb_type(f.dataType)}) AS {quote(f.name)}" for f in fields]
        if file_column:
            cols.append(f"CAST(NULL AS VARCHAR) AS {quote(file_column)}")
        return _view(session, f"SELECT {', '.join(cols)} WHERE false", known)
    files = ", ".join(literal(local_path(p)) for p in paths)
    options = ", union_by_name = true"
    if file_column:
        options += f", filename = {literal(file_column)}"
    source = f"read_parquet([{files}]{options})"
    present = {r[0] for r in _conn(session).execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    cols = []
    for f in fields:
        value = quote(f.name) if f.name in present else "NULL"
        cols.append(f"CAST({value} AS {duckdb_type(f.dataType)}) AS {quote(f.name)}")
    if file_column:
        cols.append(quote(file_column))
    return _view(session, f"SELECT {', '.join(cols)} FROM {source}", known)


def frame_sql(df: Any) -> str:
    return df.sql(dialect="duckdb", optimize=False)


def write_parquet(df: Any, folder: str, partition_by: list[str], part_column: str) -> None:
    """The rows of `df` as Parquet files under `folder` (module doc); `partition_by`: the
    table's partition columns, hashed into `part_column` folders (one value per file)."""
    path = local_path(folder)
    if not duckdb_s3.is_s3(path):
        Path(path).mkdir(parents=True, exist_ok=True)
    sql = frame_sql(df)
    options = "FORMAT parquet, FILENAME_PATTERN 'part-{uuid}', OVERWRITE_OR_IGNORE true"
    if partition_by:
        keys = ", ".join(quote(c) for c in partition_by)
        sql = f"SELECT *, hash({keys}) AS {quote(part_column)} FROM ({sql})"
        options += f", PARTITION_BY ({quote(part_column)})"
    else:
        options += ", FILE_SIZE_BYTES '512MB'"
    _conn(df.session).execute(f"COPY ({sql}) TO {literal(path)} ({options})")


def with_input_order(df: Any, column: str) -> Any:
    """`df` computed once into a table of the run's database, plus `column`: each row's
    position in the frame's output (DuckDB keeps insertion order: `preserve_insertion_order`)."""
    conn = _conn(df.session)
    name = f"__datahub_ordered_{next(_NAMES)}_{uuid.uuid4().hex[:8]}"
    conn.execute(f"CREATE TABLE {quote(name)} AS {frame_sql(df)}")
    return _view(df.session, f"SELECT *, rowid AS {quote(column)} FROM {quote(name)}")


def error_column(F: Any, message: str) -> Any:
    """A column failing the query with `message` (PySpark's `raise_error`; DuckDB's
    `error()`), for a `when(...)` branch."""
    escaped = message.replace("\\", "\\\\").replace("'", "\\'")
    return F.expr(f"error('{escaped}')")


# ----------------------------------------------------------------------------- CSV exports

_HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"
_PATH_ESCAPED = set("\"#%'*/:=?\\\x7f{[]^") | {chr(i) for i in range(1, 32)}


def _java_float(col: str, kind: str) -> str:
    """Java's Double/Float.toString of a DOUBLE/FLOAT column (Spark's CSV text): the
    shortest digits (DuckDB's VARCHAR cast), in decimal notation for 1e-3 <= |x| < 1e7,
    else as d.dddE<n>; NaN, Infinity, -0.0 as Java writes them."""
    text = f"CAST(abs({col}) AS VARCHAR)"
    mant = f"split_part({text}, 'e', 1)"
    plain_int, plain_frac = f"split_part({text}, '.', 1)", f"split_part({text}, '.', 2)"
    lead = f"(length({plain_frac}) - length(ltrim({plain_frac}, '0')))"
    digits = (
        f"CASE WHEN contains({text}, 'e') THEN replace({mant}, '.', '') "
        f"WHEN {plain_int} <> '0' THEN {plain_int} || {plain_frac} "
        f"ELSE ltrim({plain_frac}, '0') END"
    )
    exponent = (
        f"CASE WHEN contains({text}, 'e') THEN CAST(split_part({text}, 'e', 2) AS INTEGER) "
        f"WHEN {plain_int} <> '0' THEN length({plain_int}) - 1 ELSE -({lead} + 1) END"
    )
    trimmed = f"rtrim({digits}, '0')"
    sci = (
        f"left({trimmed}, 1) || '.' || coalesce(nullif(substr({trimmed}, 2), ''), '0') "
        f"|| 'E' || CAST({exponent} AS VARCHAR)"
    )
    sign = f"CASE WHEN signbit({col}) THEN '-' ELSE '' END"
    dec = f"CASE WHEN contains({text}, '.') THEN {text} ELSE {text} || '.0' END"
    del kind
    return (
        f"CASE WHEN {col} IS NULL THEN NULL WHEN isnan({col}) THEN 'NaN' "
        f"WHEN isinf({col}) THEN {sign} || 'Infinity' WHEN {col} = 0 THEN {sign} || '0.0' "
        f"WHEN abs({col}) >= 0.001 AND abs({col}) < 10000000 AND NOT contains({text}, 'e') "
        f"THEN {sign} || {dec} ELSE {sign} || {sci} END"
    )


def _csv_value(name: str, dt: Any) -> str:
    """The column `name` as Spark's CSV writer prints it (values trimmed of leading and
    trailing whitespace, timestamps to milliseconds with the session zone's offset)."""
    col = quote(name)
    kind = type(dt).__name__
    if kind in ("StringType", "CharType", "VarcharType"):
        return f"regexp_replace({col}, '^[\\x01-\\x20]+|[\\x01-\\x20]+$', '', 'g')"
    if kind in ("DoubleType", "FloatType"):
        return _java_float(col, kind)
    if kind == "TimestampType":
        off = f"CAST(date_part('timezone', {col}) AS INTEGER)"
        zone = (
            f"CASE WHEN {off} = 0 THEN 'Z' ELSE (CASE WHEN {off} < 0 THEN '-' ELSE '+' END) "
            f"|| lpad(CAST(abs({off}) // 3600 AS VARCHAR), 2, '0') || ':' "
            f"|| lpad(CAST(abs({off}) % 3600 // 60 AS VARCHAR), 2, '0') END"
        )
        return f"strftime({col}, '%Y-%m-%dT%H:%M:%S.%g') || {zone}"
    if kind == "TimestampNTZType":
        return f"strftime({col}, '%Y-%m-%dT%H:%M:%S.%g')"
    if kind == "DecimalType" and dt.scale > 6:
        return _java_decimal(col, dt.scale)
    return col


def _java_decimal(col: str, scale: int) -> str:
    """Java's BigDecimal.toString (Spark's CSV text of decimals): plain unless the adjusted
    exponent is below -6, then <digits>E<n> (0 at scale 10 is `0E-10`)."""
    digits = f"coalesce(nullif(ltrim(replace(CAST(abs({col}) AS VARCHAR), '.', ''), '0'), ''), '0')"
    adjusted = f"(length({digits}) - 1 - {scale})"
    sign = f"CASE WHEN {col} < 0 THEN '-' ELSE '' END"
    sci = (
        f"{sign} || left({digits}, 1) || CASE WHEN length({digits}) > 1 THEN '.' || "
        f"substr({digits}, 2) ELSE '' END || 'E' || CAST({adjusted} AS VARCHAR)"
    )
    return (
        f"CASE WHEN {col} IS NULL THEN NULL WHEN {adjusted} >= -6 THEN CAST({col} AS VARCHAR) "
        f"ELSE {sci} END"
    )


def _partition_dir(values: list[tuple[str, Any]]) -> str:
    parts = []
    for name, value in values:
        text = _HIVE_NULL if value is None or value == "" else str(value)
        if text != _HIVE_NULL:
            text = "".join(f"%{ord(ch):02X}" if ch in _PATH_ESCAPED else ch for ch in text)
        parts.append(f"{name}={text}")
    return "/".join(parts)


def write_csv_folder(
    df: Any,
    folder: str,
    partition_by: list[str],
    header: bool,
    delimiter: str,
    compression: str,
) -> None:
    """The rows of `df` as CSV files under `folder` (a new local folder, or an s3:// prefix),
    as Spark writes them: `part-00000-<uuid>-c000.csv` (`.c000.csv` inside `col=value`
    partition folders, partition columns left out of the files, null and "" as
    __HIVE_DEFAULT_PARTITION__),
    a header in every file, Spark's quoting (`"`, escape `\\`) and value formats; gzip by
    DuckDB, bzip2 (which DuckDB cannot write) compressed afterwards."""
    conn = _conn(df.session)
    remote = duckdb_s3.is_s3(folder)
    base = folder.rstrip("/") if remote else local_path(folder)
    if not remote:
        Path(base).mkdir(parents=True)
    job = uuid.uuid4()
    source = f"__datahub_csv_{next(_NAMES)}_{job.hex[:8]}"
    conn.execute(f"CREATE VIEW {quote(source)} AS {frame_sql(df)}")
    fields = [f for f in df.schema.fields if f.name not in partition_by]
    select = ", ".join(f"{_csv_value(f.name, f.dataType)} AS {quote(f.name)}" for f in fields)
    ext = {"gzip": ".gz", "bzip2": ".bz2"}.get(compression, "")
    options = (
        f"FORMAT csv, HEADER {str(header).lower()}, DELIMITER {literal(delimiter)}, "
        f"QUOTE '\"', ESCAPE '\\', NULLSTR ''"
        + (", COMPRESSION 'gzip'" if compression == "gzip" else "")
    )
    outputs: list[tuple[str, str]] = []
    if not partition_by:
        outputs.append((f"{base}/part-00000-{job}-c000.csv", "true"))
    else:
        texts = [f"coalesce(CAST({quote(c)} AS VARCHAR), '')" for c in partition_by]
        combos = conn.execute(f"SELECT DISTINCT {', '.join(texts)} FROM {quote(source)}").fetchall()
        by_dir: dict[str, list[str]] = {}
        for combo in combos:
            cond = " AND ".join(f"{t} = {literal(v)}" for t, v in zip(texts, combo, strict=True))
            rel = _partition_dir(list(zip(partition_by, combo, strict=True)))
            by_dir.setdefault(rel, []).append(f"({cond})")
        for rel, conds in sorted(by_dir.items()):
            if not remote:
                Path(base, rel).mkdir(parents=True, exist_ok=True)
            outputs.append((f"{base}/{rel}/part-00000-{job}.c000.csv", " OR ".join(conds)))
    for path, where in outputs:
        target = path + (ext if compression == "gzip" else "")
        query = f"SELECT {select} FROM {quote(source)} WHERE {where}"
        conn.execute(f"COPY ({query}) TO {literal(target)} ({options})")
        if compression == "bzip2":
            _bzip2(conn, path)
    conn.execute(f"DROP VIEW {quote(source)}")


def _bzip2(conn: duckdb.DuckDBPyConnection, path: str) -> None:
    """`path` compressed into `path.bz2` (local or on S3), then removed."""
    import bz2
    import shutil

    fs: Any = duckdb_s3.filesystem(conn) if duckdb_s3.is_s3(path) else None
    with (
        fs.open(path, "rb") if fs else Path(path).open("rb") as raw,
        bz2.open(fs.open(path + ".bz2", "wb") if fs else path + ".bz2", "wb") as packed,
    ):
        shutil.copyfileobj(raw, packed, 1 << 20)
    if fs:
        fs.rm_file(path)
    else:
        Path(path).unlink()


def write_csv_s3(
    df: Any,
    folder: str,
    mode: str,
    partition_by: list[str],
    header: bool,
    delimiter: str,
    compression: str,
) -> bool:
    """A CSV export to the s3:// prefix `folder` with Spark's save modes (S3 has no rename:
    readers may see a partly written export, as with Spark's writer): `overwrite` removes
    the objects below `folder` first, `append` adds files, `error` fails and `ignore` writes
    nothing when objects exist below it. False when nothing was written (ignore)."""
    conn = _conn(df.session)
    prefix = folder.rstrip("/")
    exists = bool(duckdb_s3.objects_below(conn, prefix))
    if exists and mode == "error":
        raise FileExistsError(f"CSV export {folder} already exists (mode=error)")
    if exists and mode == "ignore":
        return False
    if exists and mode == "overwrite":
        duckdb_s3.delete_below(conn, prefix)
    write_csv_folder(df, prefix, partition_by, header, delimiter, compression)
    return True


# ----------------------------------------------------------------------------- the operations

_INTEGRAL = ("ByteType", "ShortType", "IntegerType", "LongType")
_INTEGER_TYPES = ("tinyint", "smallint", "int", "integer", "bigint")
_KEY_TABLES = itertools.count(1)


class DuckDBWriteOps(WriteOps):
    """Writing on DuckDB (module doc)."""

    # --- table storage ------------------------------------------------------------------------

    def read_data_files(
        self, session: Any, paths: Sequence[str], schema: Any, file_column: str | None = None
    ) -> Any:
        return read_files(session, list(paths), schema, file_column)

    def write_staged_parquet(
        self, df: Any, folder: str, partition_by: Sequence[str], part_column: str
    ) -> None:
        write_parquet(df, folder, list(partition_by), part_column)

    def with_row_order(self, df: Any, column: str) -> Any:
        return with_input_order(df, column)

    def error_column(self, message: str) -> Any:
        return error_column(DF, message)

    # --- CSV exports --------------------------------------------------------------------------

    def write_csv_folder(
        self,
        df: Any,
        folder: str,
        partition_by: Sequence[str],
        header: bool,
        delimiter: str,
        compression: str,
    ) -> None:
        write_csv_folder(df, folder, list(partition_by), header, delimiter, compression)

    def write_csv_remote(
        self,
        df: Any,
        path: str,
        mode: str,
        partition_by: Sequence[str],
        header: bool,
        delimiter: str,
        compression: str,
    ) -> None:
        write_csv_s3(df, path, mode, list(partition_by), header, delimiter, compression)

    # --- columns ------------------------------------------------------------------------------

    def broadcast(self, df: Any) -> Any:
        """A hint only: the frame itself (DuckDB's optimiser picks the build side)."""
        return df

    def explode_outer(self, col: Any) -> Any:
        """UNNEST of the list, a null or empty list giving one null row."""
        return DF.explode(DF.when(DF.size(col) > 0, col).otherwise(DF.array(DF.lit(None))))

    def row_order_id(self) -> Any:
        """`row_number() OVER ()`: consecutive, in the input order (the connection keeps
        insertion order: `preserve_insertion_order`)."""
        from sqlglot import exp

        return spark_sql.column_of(exp.Window(this=exp.RowNumber()))

    def try_cast(self, col: Any, dtype: Any, source: Any) -> Any:
        """DuckDB's TRY_CAST to the Spark type; a string becomes an integer only when it is
        written as one (DuckDB's TRY_CAST also reads '1.5' and '1e3', Spark's does not)."""
        from sqlglot import exp

        to = exp.DataType.build(dtype.simpleString(), dialect="spark")
        cast = spark_sql.column_of(exp.TryCast(this=col.expression, to=to))
        if type(dtype).__name__ in _INTEGRAL and type(source).__name__ == "StringType":
            return DF.when(DF.trim(col).rlike(r"^[+-]?[0-9]+$"), cast)
        return cast

    def cast(self, col: Any, to: str, source: Any) -> Any:
        """A double becomes a decimal through its shortest text, a timestamp a string
        without an offset, a string an integer only when written as one (else an error)."""
        kind = type(source).__name__
        target = to.strip().lower()
        if kind == "DoubleType" and target.startswith("decimal"):
            return col.cast("string").cast(to)
        if kind == "TimestampType" and target == "string":
            return col.cast("timestamp_ntz").cast("string")
        if kind == "StringType" and target in _INTEGER_TYPES:
            ok = col.isNull() | col.rlike(spark_sql.INTEGER_TEXT)
            fail = call("error", DF.lit("[CAST_INVALID_INPUT] not an integer"))
            return DF.when(ok, col).otherwise(fail).cast(to)
        return col.cast(to)

    def element_count(self, col: Any, dtype: Any) -> Any:
        fn = "cardinality" if type(dtype).__name__ == "MapType" else "len"
        return call(fn, col).cast("int")  # DuckDB's is UBIGINT

    def aggregate_result(self, fn: str, out: Any, dtype: Any) -> Any:
        """Spark's result types: DuckDB's sum of integers is HUGEINT and of decimal(p,s)
        decimal(38,s), its avg of a decimal a double; Spark gives bigint, decimal(p+10,s) and
        decimal(p+4,s+4)."""
        if fn not in ("sum", "avg"):
            return out
        kind = type(dtype).__name__
        if kind == "DecimalType":
            p, s = dtype.precision, dtype.scale
            extra = 10 if fn == "sum" else 4
            scale = s if fn == "sum" else min(38, s + 4)
            return out.cast(f"decimal({min(38, p + extra)},{scale})")
        if fn == "sum" and kind in _INTEGRAL:
            return out.cast("bigint")
        return out.cast("double")

    def map_entries(self, col: Any) -> Any:
        return call("map_entries", col)

    def to_json(self, col: Any, dtype: Any) -> Any:
        """DuckDB's `to_json` re-written as Spark's text (`engines.duckdb.spark_json`)."""
        ensure_functions(names={SPARK_JSON_FN})
        return call(SPARK_JSON_FN, call("to_json", col), DF.lit(json.dumps(type_json(dtype))))

    def expr(self, text: str, df: Any) -> Any:
        return spark_sql.expr(text, df)

    def array_field(self, col: Any, name: str) -> Any:
        """DuckDB cannot take a field of a list of structs: a lambda over the list."""
        return DF.transform(col, lambda e: e.getField(name))

    # --- steps --------------------------------------------------------------------------------

    def select_exprs(self, df: Any, exprs: Sequence[str]) -> Any:
        return df.select(*[c for e in exprs for c in spark_sql.select_list(e, df)])

    def sql_query(self, session: Any, query: str, datasets: Mapping[str, Any]) -> Any:
        """The datasets as views of the session; the query translated with Spark's result
        types (`engines.duckdb.spark_sql.spark_query`)."""
        for name, df in datasets.items():
            df.createOrReplaceTempView(name)
        return session.sql(spark_sql.spark_query(query, dict(datasets)))

    def mask_token(self, key: Any, value: Any) -> Any:
        """The registered tokenize function (`engines.duckdb.udfs`: Spark's bytes)."""
        ensure_functions(names={TOKENIZE_FN})
        return call(TOKENIZE_FN, key, value)

    def mask_encrypt(self, key: Any, value: Any) -> Any:
        ensure_functions(names={ENCRYPT_FN})
        return call(ENCRYPT_FN, key, value)

    def key_relation(
        self, session: Any, salt_column: str, salt: str, key_column: str, key: bytes
    ) -> Any:
        """A table of the run's database filled through query parameters."""
        name = f"__datahub_mask_keys_{next(_KEY_TABLES)}"
        _conn(session).execute(
            f'CREATE OR REPLACE TABLE "{name}" AS SELECT ?::VARCHAR AS "{salt_column}", '
            f'?::BLOB AS "{key_column}"',
            [salt, key],
        )
        return session.table(name)

    def collect_dicts(self, df: Any) -> list[dict[str, Any]]:
        """Through Arrow: sqlframe's collect() turns decimals into floats."""
        return df.toArrow().to_pylist()
