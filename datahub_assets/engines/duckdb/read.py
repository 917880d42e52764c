"""The DuckDB engine's reading operations (`DuckDBReadOps`, `engines.read_ops.ReadOps`): file
sources and file drops read as Spark reads them (same columns, types, values).

Every reader runs DuckDB SQL on the run's connection (`engines.api.current().connection`),
keeps the result as a plain view or table of the run's in-memory database (sqlframe cannot
see TEMP objects) and returns `session.table(name)`, a frame of the sqlframe DuckDB session.
Paths are local files: the operations ask the caller for local copies (`FileSet.local_files`,
`DropFiles.local_files`: s3:// objects downloaded first, as DuckDB's httpfs extension cannot
be installed offline).

CSV. DuckDB's own parser reads every value as VARCHAR, so the column types are decided here
by Spark's `inferSchema` rules (`infer_csv_types`: int, bigint, decimal(n,0) for integers
above bigint, double, date, timestamp, boolean, else string; a column of nulls only is a
string), or come from the declared schema by position (`cast_text`: a value that does not
parse is null, or makes the record malformed when `corrupt` is asked for). Header names are
made safe as Spark does (`_safe_header`). Spark reads CSV line by line (a quote never spans
lines); DuckDB's parser lets a quoted value run over newlines and refuses unbalanced quotes.
So DuckDB's parser (`_fast_csv`) is kept only when it agrees with Spark: no parse error, no
value with a newline, no value failing its declared type, the header's field count (checked by
one `count(*)` pass that materialises nothing; the read itself stays a lazy view, streamed by
the query that consumes it, e.g. the staging COPY to Parquet). Otherwise
(and for a burst of many small files, where DuckDB's parser pays ~0.5 ms per file) the files
are read line by line (`_lines_sql`: small files split from their text, large ones by DuckDB's
CSV reader in one-column mode), each non-blank line split into fields by a regular expression
(delimiter, quote, escape as Spark uses them; an unclosed quote runs to the end of its line);
a line whose field count is not the header's, or whose value does not parse as its declared
type, is malformed: `_corrupt_record` holds its raw text, as in Spark's PERMISSIVE mode.

JSON. Lines (or whole files with `multiline`: an array gives one record per element) are read
as text; a record that is not a JSON object, or whose value is of another JSON kind than its
declared type (`_json_kind_fits`), is malformed. The schema is the declared one or Spark's
inference (`json_group_structure` mapped to Spark's types: integers bigint, numbers double,
strings string, nulls only string, conflicting kinds string, objects structs with their
fields sorted by name, top-level columns sorted by name). Known difference: an object or
array read into a string column is DuckDB's normalised JSON text, Spark keeps the raw text.

Parquet: `read_parquet` by column name; the `key=value` folders below the path read are
partition columns typed as Spark infers them (`partition_types`).

The source file column (`__dh_file`) is `file:` + the absolute path, as Spark's
`_metadata.file_path` gives it for local files; `with_lineage` turns it into a file drop's
`_source_file`, `_ingested_at`, `_run_id`.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from datahub_assets.engines.api import current
from datahub_assets.engines.read_ops import (
    CORRUPT,
    FILE_COL,
    CsvFormat,
    DropFiles,
    FileReadError,
    FileSet,
    Lineage,
    ReadOps,
)

if TYPE_CHECKING:
    import pyarrow as pa

_NAMES = itertools.count(1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICRO = timedelta(microseconds=1)


class DuckReadError(ValueError):
    """DuckDB could not read a file source (the message names the files)."""


# ------------------------------------------------------------------------------- helpers


def lit(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _list(paths: Sequence[str]) -> str:
    return "[" + ", ".join(lit(p) for p in paths) + "]"


def _conn() -> duckdb.DuckDBPyConnection:
    conn = current().connection
    conn.execute("SET TimeZone = 'UTC'")  # Spark's session time zone (spark_server.py)
    return conn


def create(sql: str, table: bool = False) -> str:
    """`sql` as a new view (or a table: computed now) of the run's database; its name."""
    name = f"__dh_read_{next(_NAMES)}"
    _conn().execute(f"CREATE {'TABLE' if table else 'VIEW'} {ident(name)} AS {sql}")
    return name


def register(sql: str, table: bool = False) -> Any:
    """`sql` as a view (or a table: computed now) of the run's database, as a frame."""
    return current().session.table(create(sql, table))


def _count(conn: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = conn.execute(sql).fetchone()
    return int(row[0]) if row else 0


def _columns(conn: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[str, str]]:
    rel = conn.sql(sql)
    return [(n, str(t)) for n, t in zip(rel.columns, rel.types, strict=True)]


def _file_expr(col: str) -> str:
    return f"'file:' || {col}"


# ----------------------------------------------------------------------------- types


_SPARK_TO_DUCK = {
    "string": "VARCHAR",
    "int": "INTEGER",
    "bigint": "BIGINT",
    "smallint": "SMALLINT",
    "tinyint": "TINYINT",
    "double": "DOUBLE",
    "float": "FLOAT",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMPTZ",
    "timestamp_ntz": "TIMESTAMP",
    "binary": "BLOB",
}


def duck_type(dtype: Any) -> str:
    """The DuckDB type of a (PySpark or sqlframe) DataType."""
    name = type(dtype).__name__
    if name == "StructType":
        inner = ", ".join(f"{ident(f.name)} {duck_type(f.dataType)}" for f in dtype.fields)
        return f"STRUCT({inner})"
    if name == "ArrayType":
        return duck_type(dtype.elementType) + "[]"
    if name == "MapType":
        return f"MAP({duck_type(dtype.keyType)}, {duck_type(dtype.valueType)})"
    if name == "DecimalType":
        return f"DECIMAL({dtype.precision}, {dtype.scale})"
    simple = dtype.simpleString()
    if simple not in _SPARK_TO_DUCK:
        raise DuckReadError(f"type {simple} is not readable on the DuckDB engine")
    return _SPARK_TO_DUCK[simple]


def _json_structure(dtype: Any) -> Any:
    """json_transform's structure for a DataType."""
    name = type(dtype).__name__
    if name == "StructType":
        return {f.name: _json_structure(f.dataType) for f in dtype.fields}
    if name == "ArrayType":
        return [_json_structure(dtype.elementType)]
    if name in ("StringType",):
        return "VARCHAR"
    if name == "TimestampType":
        return "VARCHAR"  # parsed by a cast below (json_transform does not read offsets)
    return duck_type(dtype)


_DATE_TOKENS = [
    ("yyyy", "%Y"),
    ("yy", "%y"),
    ("MMMM", "%B"),
    ("MMM", "%b"),
    ("MM", "%m"),
    ("M", "%-m"),
    ("dd", "%d"),
    ("d", "%-d"),
    ("HH", "%H"),
    ("mm", "%M"),
    ("ss", "%S"),
    ("SSSSSS", "%f"),
    ("SSS", "%g"),
    ("EEE", "%a"),
    ("a", "%p"),
]


def strftime_format(java: str) -> str:
    """A Java/Spark datetime pattern (dd/MM/yyyy) as a strptime format (%d/%m/%Y)."""
    out, i = "", 0
    while i < len(java):
        if java[i] == "'":
            end = java.find("'", i + 1)
            out += java[i + 1 : end if end > 0 else len(java)]
            i = end + 1 if end > 0 else len(java)
            continue
        for token, fmt in _DATE_TOKENS:
            if java.startswith(token, i):
                out += fmt
                i += len(token)
                break
        else:
            out += "%%" if java[i] == "%" else java[i]
            i += 1
    return out


def cast_text(col: str, dtype: Any, date_format: str | None = None) -> str:
    """SQL parsing the VARCHAR `col` as `dtype` like Spark's CSV parser: NULL when it does
    not parse."""
    simple = dtype.simpleString()
    text = f"trim({col})" if simple not in ("string",) else col
    if simple == "string":
        return col
    if simple == "boolean":
        return f"CASE lower({text}) WHEN 'true' THEN true WHEN 'false' THEN false ELSE NULL END"
    if simple == "date" and date_format:
        return f"try_strptime({col}, {lit(strftime_format(date_format))})::DATE"
    if simple in ("int", "bigint", "smallint", "tinyint"):
        integer = f"regexp_full_match({text}, {lit(_INT)})"
        return f"CASE WHEN {integer} THEN try_cast({text} AS {duck_type(dtype)}) END"
    return f"try_cast({text} AS {duck_type(dtype)})"


_INT = "[+-]?[0-9]+"
_DOUBLE = "[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?|[+-]?(NaN|Infinity|Inf)"
_DATE = "[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}"
_TIMESTAMP = (
    _DATE + "([T ][0-9]{1,2}:[0-9]{2}(:[0-9]{2}([.][0-9]{1,9})?)?)?(Z|[+-][0-9]{2}:?[0-9]{2})?"
)


def _all(v: str, pattern: str, duck: str | None) -> str:
    """SQL: every value of column `v` matches `pattern` (and casts to `duck`; the cast only
    runs on matching values: a failing cast is slow)."""
    ok = f"regexp_full_match({v}, {lit(pattern)})"
    if duck:
        ok = f"CASE WHEN {ok} THEN try_cast({v} AS {duck}) IS NOT NULL ELSE false END"
    return f"bool_and({v} IS NULL OR ({ok}))"


# Spark's inference order (CSVInferSchema): the first kind every value parses as wins
_KINDS = ("i", "l", "n", "d", "t", "s", "b")
_KIND_TYPES = {
    "i": "int",
    "l": "bigint",
    "d": "double",
    "t": "date",
    "s": "timestamp",
    "b": "boolean",
}


def _flag(kind: str, v: str) -> str:
    return {
        "i": _all(v, _INT, "INTEGER"),
        "l": _all(v, _INT, "BIGINT"),
        "n": _all(v, "[+-]?[0-9]{1,38}", None),
        "d": _all(v, _DOUBLE, "DOUBLE"),
        "t": _all(v, _DATE, "DATE"),
        "s": _all(v, _TIMESTAMP, "TIMESTAMPTZ"),
        "b": f"bool_and({v} IS NULL OR lower({v}) IN ('true', 'false'))",
    }[kind]


def _flags(
    conn: duckdb.DuckDBPyConnection,
    checks: dict[int, tuple[str, ...]],
    names: Sequence[str],
    src: str,
) -> dict[str, Any]:
    """{kind+index: whether every value of column `index` parses as kind, "c"+index: count,
    "p"+index: most integer digits} for the `checks` asked."""
    parts = []
    for i, kinds in checks.items():
        v = ident(names[i])
        parts += [f"{_flag(k, v)} AS {k}{i}" for k in kinds]
        parts.append(f"count({v}) AS c{i}")
        if "n" in kinds:
            digits = (
                f"CASE WHEN regexp_full_match({v}, {lit(_INT)}) THEN length(ltrim({v}, '+-')) END"
            )
            parts.append(f"max({digits}) AS p{i}")
    cursor = conn.execute(f"SELECT {', '.join(parts)} FROM {src}")
    row = cursor.fetchone() or ()
    return dict(zip([c[0] for c in cursor.description or []], row, strict=True))


def infer_csv_types(
    conn: duckdb.DuckDBPyConnection, names: Sequence[str], src: str, sample: int = 10_000
) -> list[str]:
    """Spark's inferred type (simpleString) of each VARCHAR column of `src`, over every row.

    The kinds a column's first `sample` rows do not parse as cannot hold for all rows, so
    only the remaining ones are checked over the whole input, narrowest first (usually one
    pass over the data)."""
    first = _flags(
        conn,
        dict.fromkeys(range(len(names)), _KINDS),
        names,
        f"(SELECT * FROM {src} LIMIT {sample})",
    )
    left = {i: [k for k in _KINDS if first[f"{k}{i}"]] for i in range(len(names))}
    types: dict[int, str] = {}
    while len(types) < len(names):
        pending = {i: (kinds[0],) for i, kinds in left.items() if i not in types and kinds}
        for i, kinds in left.items():
            if i not in types and not kinds:
                types[i] = "string"
        if not pending:
            break
        got = _flags(conn, pending, names, src)
        for i, (kind,) in pending.items():
            if not got[f"c{i}"]:
                types[i] = "string"  # only nulls: Spark gives string
            elif got[f"{kind}{i}"]:
                types[i] = (
                    f"decimal({max(got[f'p{i}'] or 1, 1)},0)" if kind == "n" else _KIND_TYPES[kind]
                )
            else:
                left[i].pop(0)
    return [types[i] for i in range(len(names))]


def _spark_type_sql(simple: str) -> str:
    if simple.startswith("decimal("):
        p = simple[len("decimal(") : -1].split(",")[0]
        return f"DECIMAL({p}, 0)"
    return _SPARK_TO_DUCK[simple]


# ------------------------------------------------------------------------------- CSV


_ENCODINGS = {  # Spark's charset names -> DuckDB's (read_csv knows utf-8, utf-16, latin-1)
    "utf-8": "utf-8",
    "utf8": "utf-8",
    "us-ascii": "utf-8",
    "ascii": "utf-8",
    "iso-8859-1": "latin-1",
    "latin1": "latin-1",
    "latin-1": "latin-1",
    "utf-16": "utf-16",
}


class CsvOptions:
    def __init__(
        self,
        header: bool = True,
        delimiter: str | None = None,
        quote: str | None = None,
        escape: str | None = None,
        encoding: str | None = None,
        null_value: str | None = None,
        date_format: str | None = None,
    ) -> None:
        self.header = header
        self.delimiter = "\t" if delimiter == "\\t" else (delimiter or ",")
        self.quote = '"' if quote is None else quote
        self.escape = "\\" if escape is None else escape
        self.encoding = _ENCODINGS.get(
            (encoding or "utf-8").lower().replace("_", "-"), (encoding or "").lower()
        )
        self.null_value = null_value
        self.date_format = date_format


def _safe_header(fields: list[str]) -> list[str]:
    """Spark's column names from a header: blank names `_c<i>`, names that repeat
    (case-insensitively) suffixed with their position."""
    lowered = [f.lower() for f in fields]
    out = []
    for i, f in enumerate(fields):
        if not f:
            out.append(f"_c{i}")
        elif lowered.count(f.lower()) > 1:
            out.append(f"{f}{i}")
        else:
            out.append(f)
    return out


def _header_names(files: Sequence[str], o: CsvOptions) -> list[str]:
    """Column names as Spark gives them: the first file's first non-blank line (or _c0..)."""
    for file in files:
        with Path(file).open(encoding=o.encoding, errors="replace", newline="") as stream:
            for line in stream:
                text = line.rstrip("\r\n").removeprefix("\ufeff")
                if not text:
                    continue
                fields = next(
                    csv.reader(
                        io.StringIO(text),
                        delimiter=o.delimiter if len(o.delimiter) == 1 else "\x00",
                        quotechar=o.quote or None,
                        escapechar=o.escape or None,
                    ),
                    [],
                )
                if len(o.delimiter) != 1:
                    fields = text.split(o.delimiter)
                if not o.header:
                    return [f"_c{i}" for i in range(len(fields))]
                return _safe_header(fields)
    return []


def _fast_csv(
    files: Sequence[str], o: CsvOptions, names: list[str], typed_ok: str = "true"
) -> str | None:
    """DuckDB's parser as a subquery (all VARCHAR), streamed by whoever reads it; None when
    it does not agree with Spark. One aggregate pass checks it first: a parse error (field
    count, unbalanced quote, encoding), a value with a newline, or (`typed_ok`, SQL over the
    columns) a row whose values do not parse as their declared types."""
    conn = _conn()
    nulls = ["", *([o.null_value] if o.null_value else [])]
    columns = "{" + ", ".join(f"{lit(n)}: 'VARCHAR'" for n in names) + "}"
    args = [
        f"header={str(o.header).lower()}",
        f"delim={lit(o.delimiter)}",
        f"quote={lit(o.quote)}",
        f"escape={lit(o.escape)}",
        f"columns={columns}",
        "auto_detect=false",
        "strict_mode=true",
        f"nullstr={_list(nulls)}",
        f"filename={lit(FILE_COL)}",
        "ignore_errors=false",
    ]
    if o.encoding != "utf-8":
        args.append(f"encoding={lit(o.encoding)}")
    reader = f"(SELECT * FROM read_csv({_list(files)}, {', '.join(args)}))"
    multiline = " OR ".join(f"contains({ident(n)}, chr(10))" for n in names) or "false"
    try:
        bad = _count(conn, f"SELECT count(*) FROM {reader} WHERE {multiline} OR NOT ({typed_ok})")
    except duckdb.Error:
        return None
    return None if bad else reader


def _token_regex(o: CsvOptions) -> str:
    d, q, e = (re.escape(x) if x else "" for x in (o.delimiter, o.quote, o.escape))
    plain = f"[^{d}]*" if len(o.delimiter) == 1 else f"(?:(?!{d}).)*"
    if not q:
        return f"(?:^|{d})({plain})"
    inside = f"[^{q}{e}]|{e}." if e else f"[^{q}]"
    return f"(?:^|{d})({q}(?:{inside})*(?:{q}|$)|{plain})"


def _unquote(tok: str, o: CsvOptions) -> str:
    if not o.quote:
        return tok
    q = lit(o.quote)
    closed = f"suffix({tok}, {q}) AND length({tok}) > 1"
    body = f"CASE WHEN {closed} THEN {tok}[2:-2] ELSE {tok}[2:] END"
    if o.escape:
        body = f"replace({body}, {lit(o.escape + o.quote)}, {q})"
    return f"CASE WHEN prefix({tok}, {q}) THEN {body} ELSE {tok} END"


MANY_FILES = 64
SMALL_FILE = 1 << 20
"""Files up to this size are split into lines from their whole text (`read_text`, fast for
many small files); larger ones by DuckDB's CSV reader in one-column mode (splitting one
large text is slow in DuckDB)."""


def _lines_sql(
    files: Sequence[str], o: CsvOptions | None, skip_header: bool, col: str = "line"
) -> str:
    """(f, n, line) of every non-blank physical line of `files` (the first line of each file
    dropped with `skip_header`; `n` is the line number, or NULL for large files)."""
    encoding = o.encoding if o is not None else "utf-8"
    if encoding == "utf-8" and all(Path(f).stat().st_size <= SMALL_FILE for f in files):
        split = "string_split(replace(content, chr(13) || chr(10), chr(10)), chr(10))"
        base = f"""
            SELECT filename AS f, unnest({split}) AS line, unnest(range(1, len({split}) + 1)) AS n
            FROM read_text({_list(files)})"""
        sql = f"""SELECT f, n, CASE WHEN n = 1 THEN ltrim(line, chr(65279)) ELSE line END AS {col}
            FROM ({base}) WHERE line <> ''"""
        if skip_header:
            sql = f"""SELECT f, n, {col} FROM (SELECT *, row_number() OVER (PARTITION BY f
                ORDER BY n) AS k FROM ({sql})) WHERE k > 1"""
        return sql
    args = [
        "columns={'line': 'VARCHAR'}",
        "delim=chr(1)",  # a control character: the whole line is the one column
        "quote=''",
        "escape=''",
        f"header={str(skip_header).lower()}",
        "auto_detect=false",
        "strict_mode=false",
        "filename=true",
        f"encoding={lit(encoding)}",
    ]
    reader = f"read_csv({_list(files)}, {', '.join(args)})"
    return f"""SELECT filename AS f, NULL::BIGINT AS n,
        ltrim(rtrim(line, chr(13)), chr(65279)) AS {col}
        FROM {reader} WHERE line IS NOT NULL AND rtrim(line, chr(13)) <> ''"""


def _slow_csv(files: Sequence[str], o: CsvOptions, names: list[str]) -> str:
    """The line-by-line read (module doc): a view of the VARCHAR fields, the field count
    `__dh_n` and the raw line `__dh_line`."""
    lines = _lines_sql(files, o, o.header)
    toks = f"regexp_extract_all(line, {lit(_token_regex(o))}, 1)"
    nulls = ["", *([o.null_value] if o.null_value else [])]
    fields = []
    for i, n in enumerate(names):
        tok = f"tokens[{i + 1}]"
        quoted_empty = f"({tok} = {lit(o.quote * 2)})" if o.quote else "false"
        raw = _unquote(tok, o)
        null = f"{tok} IS NULL OR {quoted_empty} OR {tok} IN ({', '.join(lit(x) for x in nulls)})"
        fields.append(f"CASE WHEN {null} THEN NULL ELSE {raw} END AS {ident(n)}")
    return f"""SELECT {", ".join(fields)}, f AS {ident(FILE_COL)}, len(tokens) AS __dh_n,
        line AS __dh_line FROM (SELECT f, n, line, {toks} AS tokens FROM ({lines}))"""


def _inferred(conn: duckdb.DuckDBPyConnection, names: list[str], source: str) -> list[str]:
    """SELECT expressions giving each VARCHAR column Spark's inferred type."""
    exprs = []
    for n, t in zip(names, infer_csv_types(conn, names, source), strict=True):
        v = ident(n)
        if t == "string":
            exprs.append(f"{v} AS {v}")
        elif t == "boolean":
            exprs.append(
                f"CASE lower({v}) WHEN 'true' THEN true WHEN 'false' THEN false END AS {v}"
            )
        else:
            exprs.append(f"CAST({v} AS {_spark_type_sql(t)}) AS {v}")
    return exprs


def _declared(names: list[str], schema: Any, date_format: str | None) -> tuple[list[str], str]:
    """(SELECT expressions casting the VARCHAR columns to `schema` by position, SQL true when
    every value of a row parses as its type)."""
    exprs, checks = [], []
    for i, f in enumerate(schema.fields):
        col = ident(names[i]) if i < len(names) else "NULL"
        expr = cast_text(col, f.dataType, date_format)
        exprs.append(f"{expr} AS {ident(f.name)}")
        if f.dataType.simpleString() != "string" and col != "NULL":
            checks.append(f"({col} IS NULL OR ({expr}) IS NOT NULL)")
    return exprs, " AND ".join(checks) or "true"


def read_csv(
    files: Sequence[str],
    o: CsvOptions,
    schema: Any = None,
    infer: bool = False,
    corrupt: bool = False,
) -> Any:
    """The frame Spark reads from CSV `files` (module doc). `schema`: the declared
    StructType (by position); `corrupt`: add `_corrupt_record` and `__dh_file`."""
    files = [f for f in files if Path(f).stat().st_size > 0]
    if not files:
        raise DuckReadError("every file is empty: no columns to read")
    names = _header_names(files, o)
    conn = _conn()
    width = len(schema.fields) if schema is not None else len(names)
    # another field count than the schema's makes every record malformed (line by line);
    # many small files (a file-drop burst) are faster line by line than by DuckDB's parser,
    # which pays ~0.5 ms per file
    many_small = (
        len(files) >= MANY_FILES
        and o.encoding == "utf-8"
        and all(Path(f).stat().st_size <= SMALL_FILE // 16 for f in files)
    )
    typed_ok = "true"
    if schema is not None:
        exprs, typed_ok = _declared(names, schema, o.date_format)
    check = typed_ok if corrupt else "true"  # a value failing its type: malformed, line by line
    fast = _fast_csv(files, o, names, check) if width == len(names) and not many_small else None
    source = fast if fast is not None else f"({_slow_csv(files, o, names)})"
    if schema is None and infer:
        exprs = _inferred(conn, names, source)
    elif schema is None:
        exprs = [f"{ident(n)} AS {ident(n)}" for n in names]
    select = ", ".join(exprs)
    if corrupt:
        bad = "NULL::VARCHAR"
        if fast is None:
            bad = f"CASE WHEN __dh_n <> {width} OR NOT ({typed_ok}) THEN __dh_line END"
        select += f", {bad} AS {CORRUPT}, {_file_expr(ident(FILE_COL))} AS {FILE_COL}"
    return register(f"SELECT {select} FROM {source}", table=fast is None)


# ------------------------------------------------------------------------------ JSON


_JSON_TO_SPARK = {
    "UBIGINT": "bigint",
    "BIGINT": "bigint",
    "DOUBLE": "double",
    "VARCHAR": "string",
    "BOOLEAN": "boolean",
    "NULL": "string",
    "JSON": "string",
}


def _spark_from_structure(s: Any) -> Any:
    """A sqlframe/PySpark DataType from json_group_structure's description."""
    T = current().types
    if isinstance(s, dict):
        return T.StructType(
            [T.StructField(k, _spark_from_structure(s[k]), True) for k in sorted(s)]
        )
    if isinstance(s, list):
        inner = _spark_from_structure(s[0]) if s else T.StringType()
        return T.ArrayType(inner, True)
    simple = _JSON_TO_SPARK.get(str(s), "string")
    return {
        "bigint": T.LongType(),
        "double": T.DoubleType(),
        "boolean": T.BooleanType(),
    }.get(simple, T.StringType())


def _is_json(col: str, kind: str) -> str:
    """SQL: `col` is valid JSON of `kind` (OBJECT, ARRAY)."""
    return f"CASE WHEN json_valid({col}) THEN json_type({col}::JSON) = {lit(kind)} ELSE false END"


_JSON_NUMBERS = "('BIGINT', 'UBIGINT', 'DOUBLE')"


def _json_kind_fits(kind: str, dtype: Any) -> str:
    """SQL: a JSON value of `kind` (json_type) is read as `dtype` by Spark's JSON parser
    (numbers for numbers, integers only for integral types, true/false for booleans, strings
    for dates and timestamps, objects for structs and maps, arrays for arrays; anything for a
    string, as text). A JSON null always fits."""
    name = type(dtype).__name__
    if name == "StringType":
        return "true"
    if name in ("ByteType", "ShortType", "IntegerType", "LongType"):
        allowed = "('BIGINT', 'UBIGINT')"
    elif name in ("FloatType", "DoubleType", "DecimalType"):
        allowed = _JSON_NUMBERS
    elif name == "BooleanType":
        allowed = "('BOOLEAN')"
    elif name in ("StructType", "MapType"):
        allowed = "('OBJECT')"
    elif name == "ArrayType":
        allowed = "('ARRAY')"
    else:  # dates, timestamps: strings
        allowed = "('VARCHAR')"
    return f"(coalesce({kind}, 'NULL') = 'NULL' OR {kind} IN {allowed})"


def _json_records(files: Sequence[str], multiline: bool) -> str:
    """(f, n, rec) of every record's raw text."""
    if not multiline:
        return _lines_sql(files, None, skip_header=False, col="rec")
    return f"""SELECT f, 1 AS n, rec FROM (
        SELECT filename AS f, content, {_is_json("content", "ARRAY")} AS arr
        FROM read_text({_list(files)})) t,
        LATERAL (SELECT unnest(CASE WHEN arr THEN from_json(content, '["JSON"]')::VARCHAR[]
                                    ELSE [content] END) AS rec)"""


def read_json(
    files: Sequence[str], multiline: bool, schema: Any = None, corrupt: bool = False
) -> Any:
    """The frame Spark reads from JSON `files` (module doc)."""
    conn = _conn()
    records = f"""SELECT f, n, rec, {_is_json("rec", "OBJECT")} AS ok
        FROM ({_json_records(files, multiline)})"""
    table = ident(create(records, table=True))
    if schema is None:
        (structure,) = conn.execute(
            f"SELECT json_group_structure(rec::JSON) FROM {table} WHERE ok"
        ).fetchone() or (None,)
        parsed = json.loads(structure) if structure else {}
        schema = _spark_from_structure(parsed if isinstance(parsed, dict) else {})
    if not schema.fields and not corrupt:
        raise DuckReadError("no JSON object to infer columns from")
    shape = json.dumps({f.name: _json_structure(f.dataType) for f in schema.fields})
    exprs, checks = [], []
    for f in schema.fields:
        got = f"s.{ident(f.name)}"
        simple = f.dataType.simpleString()
        if simple == "timestamp":
            got = f"try_cast({got} AS TIMESTAMPTZ)"
        kind = f"json_type(json_extract(rec, {lit('$.' + json.dumps(f.name))}))"
        fits = _json_kind_fits(kind, f.dataType)
        # nested CASE: the JSON functions never see a record that is not valid JSON
        exprs.append(f"CASE WHEN ok THEN CASE WHEN {fits} THEN {got} END END AS {ident(f.name)}")
        if simple != "string":
            checks.append(f"({kind} IS NULL OR {kind} = 'NULL' OR ({fits} AND {got} IS NOT NULL))")
    typed_ok = " AND ".join(checks) or "true"
    transform = (
        f"CASE WHEN ok THEN json_transform(rec, {lit(shape)}) END" if schema.fields else "NULL"
    )
    select = ", ".join(exprs)
    extra = ""
    if corrupt:
        extra = (
            f", CASE WHEN NOT ok THEN rec WHEN NOT ({typed_ok}) THEN rec END AS {CORRUPT}, "
            f"{_file_expr('f')} AS {FILE_COL}"
        )
    inner = f"SELECT *, {transform} AS s FROM {table}"
    if not corrupt:
        inner += " WHERE ok"
    return register(
        f"SELECT {select}{', ' if select and extra else ''}{extra.lstrip(', ')} FROM ({inner})"
    )


# --------------------------------------------------------------------------- Parquet


def _partition_type(values: set[str]) -> str:
    """DuckDB type of a partition column as Spark infers it from the folder names
    (int, bigint, double, date, else string; `__HIVE_DEFAULT_PARTITION__` is null)."""
    values = values - {"__HIVE_DEFAULT_PARTITION__"}

    def every(pattern: str, ok=lambda _: True) -> bool:
        return bool(values) and all(re.fullmatch(pattern, v) and ok(v) for v in values)

    if every(_INT, lambda v: -(2**31) <= int(v) < 2**31):
        return "INTEGER"
    if every(_INT, lambda v: -(2**63) <= int(v) < 2**63):
        return "BIGINT"
    if every(_DOUBLE):
        return "DOUBLE"
    if every(_DATE):
        return "DATE"
    return "VARCHAR"


def partition_types(files: Sequence[str], root: str) -> dict[str, str]:
    """{column: DuckDB type} of the `key=value` folders between `root` and each file."""
    found: dict[str, set[str]] = {}
    for file in files:
        for part in Path(file).relative_to(root).parts[:-1]:
            if "=" in part:
                key, _, value = part.partition("=")
                found.setdefault(key, set()).add(value)
    return {k: _partition_type(v) for k, v in found.items()}


def read_parquet(files: Sequence[str], file_col: bool = False, root: str | None = None) -> Any:
    """Parquet `files` by column name (`union_by_name`); `root`: the folder read, whose
    `key=value` sub-folders are partition columns (last, typed as Spark infers them)."""
    extra = f", filename={lit(FILE_COL)}" if file_col else ""
    parts = partition_types(files, root) if root else {}
    if parts:
        types = ", ".join(f"{lit(k)}: {lit(t)}" for k, t in parts.items())
        extra += f", hive_partitioning=true, hive_types={{{types}}}"
    else:
        extra += ", hive_partitioning=false"
    sql = f"SELECT * FROM read_parquet({_list(files)}, union_by_name=true{extra})"
    if file_col:
        sql = f"SELECT * REPLACE ({_file_expr(ident(FILE_COL))} AS {ident(FILE_COL)}) FROM ({sql})"
    return register(sql)


# ---------------------------------------------------------------------- drops, helpers


def with_lineage(df: Any, landed: dict[str, str], ingested_at: Any, run_id: str) -> Any:
    """`df` (read with `__dh_file`) with `__dh_file` replaced by the file drop's lineage
    columns: `_source_file` (the landed path of the local file read), `_ingested_at`, `_run_id`
    (as `execute.drops` adds them on Spark)."""
    conn = _conn()
    mapping = create(
        "SELECT * FROM (VALUES "
        + ", ".join(f"({lit('file:' + k)}, {lit(v)})" for k, v in landed.items())
        + ") t(local, landed)",
        table=True,
    )
    sql = df.sql(dialect="duckdb", optimize=False)
    cols = [c for c in _columns(conn, sql) if c[0] != FILE_COL]
    select = ", ".join(f"r.{ident(n)}" for n, _ in cols)
    at = lit(ingested_at.isoformat())
    return register(
        f"""SELECT {select}, m.landed AS _source_file, CAST({at} AS TIMESTAMPTZ) AS _ingested_at,
        {lit(run_id)} AS _run_id FROM ({sql}) r LEFT JOIN {ident(mapping)} m
        ON r.{ident(FILE_COL)} = m.local"""
    )


def empty(schema: Any) -> Any:
    """A frame with no row and the columns of `schema`."""
    cols = ", ".join(f"NULL::{duck_type(f.dataType)} AS {ident(f.name)}" for f in schema.fields)
    return register(f"SELECT {cols or '1 AS __dh_none'} WHERE false")


def from_arrow(table: Any) -> Any:
    """A pyarrow Table as a table of the run's database, as a frame."""
    name = f"__dh_read_{next(_NAMES)}"
    _conn().from_arrow(table).create(name)
    return current().session.table(name)


def rebase_files(df: Any, old: str, new: str) -> Any:
    """`df` with the prefix `old` of its file column (if any) replaced by `new`."""
    if FILE_COL not in df.columns:
        return df
    sql = df.sql(dialect="duckdb", optimize=False)
    col = ident(FILE_COL)
    fixed = f"CASE WHEN prefix({col}, {lit(old)}) THEN {lit(new)} || {col}[{len(old) + 1}:] END"
    return register(f"SELECT * REPLACE ({fixed} AS {col}) FROM ({sql})")


def csv_options(fmt: CsvFormat) -> CsvOptions:
    """The `CsvOptions` of a source's CSV format."""
    return CsvOptions(
        header=fmt.header,
        delimiter=fmt.delimiter,
        quote=fmt.quote,
        escape=fmt.escape,
        encoding=fmt.encoding,
        null_value=fmt.null_value,
        date_format=fmt.date_format,
    )


class DuckDBReadOps(ReadOps):
    """Reading on DuckDB (`engines.read_ops.ReadOps`): the readers above on local copies of
    the files (`FileSet.local_files`, `DropFiles.local_files`)."""

    errors: tuple[type[BaseException], ...]
    functions: Any

    def _read(self, files: FileSet, read: Callable[[], Any]) -> Any:
        """`read()`, its errors as `FileReadError`. Downloaded objects: the rows are computed
        into the run's database, the copies removed, the file column names the objects
        (s3a://, as Spark's does)."""
        try:
            df = read()
            folder = files.download_folder()
            if folder is not None:
                df = rebase_files(df, f"file:{folder}/", "s3a://").localCheckpoint()
                files.release()
            return df
        except (*self.errors, ValueError, OSError) as exc:
            raise FileReadError(str(exc).strip().split("\n", 1)[0][:600]) from None

    # --- file sources -------------------------------------------------------------------------

    def read_csv(
        self,
        files: FileSet,
        fmt: CsvFormat,
        schema: Any = None,
        infer: bool = False,
        corrupt: bool = False,
    ) -> Any:
        local = files.local_files()
        return self._read(
            files,
            lambda: read_csv(local, csv_options(fmt), schema=schema, infer=infer, corrupt=corrupt),
        )

    def read_json(
        self, files: FileSet, multiline: bool, schema: Any = None, corrupt: bool = False
    ) -> Any:
        local = files.local_files()
        return self._read(files, lambda: read_json(local, multiline, schema, corrupt))

    def read_parquet(self, files: FileSet) -> Any:
        local = files.local_files(parquet=True)
        root = files.local_root()
        return self._read(files, lambda: read_parquet(local, root=root))

    # --- file drops ---------------------------------------------------------------------------

    def read_drop_csv(
        self,
        files: DropFiles,
        fmt: CsvFormat,
        schema: Any,
        infer: bool,
        lineage: Lineage,
    ) -> Any:
        landed = files.local_files()
        df = read_csv(list(landed), csv_options(fmt), schema=schema, infer=infer, corrupt=True)
        return with_lineage(df, landed, lineage.ingested_at, lineage.run_id)

    def read_drop_json(
        self, files: DropFiles, multiline: bool, schema: Any, lineage: Lineage
    ) -> Any:
        landed = files.local_files()
        df = read_json(list(landed), multiline, schema, corrupt=True)
        return with_lineage(df, landed, lineage.ingested_at, lineage.run_id)

    def read_drop_parquet(self, files: DropFiles, lineage: Lineage) -> Any:
        landed = files.local_files()
        df = read_parquet(list(landed), file_col=True)
        return with_lineage(df, landed, lineage.ingested_at, lineage.run_id)

    def empty_frame(self, schema: Any) -> Any:
        return empty(schema)

    # --- malformed records --------------------------------------------------------------------

    def parse_every_field(self, df: Any) -> None:
        """Nothing to do: the CSV reader above checks every field of each record."""

    def from_arrow(self, table: pa.Table, schema: Any, session: Any) -> Any:  # noqa: ARG002
        """A table of the run's database (the Arrow types are the columns' types)."""
        return from_arrow(table)

    # --- incremental reads --------------------------------------------------------------------

    def timestamp_literal(self, iso: str) -> Any:
        """No timestamp_micros in sqlframe; DuckDB parses ISO-8601."""
        return self.functions.lit(iso).cast("timestamp")

    def max_micros(self, df: Any, col: Any) -> int | None:
        """The newest value itself (a datetime; sqlframe gives UTC as a naive one)."""
        row = df.agg(self.functions.max(col)).first()
        newest = row[0] if row is not None else None
        if newest is None:
            return None
        if newest.tzinfo is None:
            newest = newest.replace(tzinfo=UTC)
        return (newest - EPOCH) // MICRO
