"""Malformed records of csv and json file sources: found, counted, never loaded silently.

A record is malformed when it does not parse against the source's shape: the header (or the
declared `schemaRef`) for CSV, a JSON object (with the declared field types) for JSON. That is
a CSV line with more or fewer fields than the header, a line whose quote is not closed (its
fields run together, so the count is off), a JSON line that is not valid JSON or not an object,
and, with a declared schema, a value that does not parse as its type.

How they are found. The engine reads every csv/json source with the helper column
`_corrupt_record` (`engines.read_ops`, `corrupt=True`): it holds the record's raw text exactly
when the record is malformed (Spark's PERMISSIVE mode, where a CSV record with another token
count than the schema is malformed in Spark 4; DuckDB's reader gives the same verdicts).
`check` then splits the frame:

- good rows: `_corrupt_record IS NULL`, helper column removed, so it never reaches a table's
  schema (and a JSON source without schemaRef never infers it into the table);
- malformed rows: collected to the driver (ONE Spark job that parses the input; for a clean
  input it finds nothing), each with its file, the raw text, a reason computed here from the
  raw text ("7 fields, expected 5", "unbalanced quote", "invalid JSON (...)", "column 'amount':
  value 'abc' is not double") and its physical line number. Line numbers are found by reading
  the few files that hold malformed records once more, in Python, streaming, matching lines
  (a run folder link, a downloaded S3 object or a local source path; elsewhere the line is
  null). At most `MAX_MALFORMED_PER_RUN` records are collected: more fails the run, as a file
  in which that many records do not parse is not in the source's format.

The caller applies the source's `onInvalid` (unset: `quarantine` in the raw layer, `fail`
elsewhere): `quarantine_frame` gives the rows for `<table>__quarantine` (`_raw`,
`_source_file`, `_line`, `_reason`, `_rule`="malformed", plus `_run_id`, `_source`,
`_quarantined_at`), committed with the run's tables; `drop` only counts; `fail` rejects the
files (file drops) or stops the run (`first_lines` gives the message).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import pyarrow as pa
from pyspark.sql import DataFrame

from datahub_assets.engines.api import F, T, current
from datahub_assets.engines.read_ops import CORRUPT, FILE_COL, LINEAGE_COLUMNS

MALFORMED_RULE = "malformed"
MAX_MALFORMED_PER_RUN = 200_000

QUARANTINE_SCHEMA = T.StructType(
    [
        T.StructField("_raw", T.StringType()),
        T.StructField("_source_file", T.StringType()),
        T.StructField("_line", T.LongType()),
        T.StructField("_reason", T.StringType()),
        T.StructField("_rule", T.StringType()),
        T.StructField("_run_id", T.StringType()),
        T.StructField("_source", T.StringType()),
        T.StructField("_quarantined_at", T.TimestampType()),
    ]
)


class MalformedError(ValueError):
    """Too many malformed records, or onInvalid="fail" on a source that is not a file drop."""


@dataclass
class Record:
    file: str
    raw: str
    reason: str
    line: int | None = None


@dataclass
class Found:
    """The malformed records of one source read."""

    records: list[Record] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.records)

    def by_file(self) -> dict[str, int]:
        return dict(Counter(r.file for r in self.records))

    def first_lines(self, file: str | None = None, limit: int = 5) -> list[str]:
        """`line N: reason: raw` of the first `limit` records (of `file`), in line order."""
        chosen = [r for r in self.records if file is None or r.file == file]
        chosen.sort(key=lambda r: (r.file, r.line or 0))
        return [
            f"{'line ' + str(r.line) if r.line else r.file}: {r.reason}: {r.raw[:200]!r}"
            for r in chosen[:limit]
        ]


def check(
    df: DataFrame,
    source,
    local_of: dict[str, str] | None = None,
    limit: int = MAX_MALFORMED_PER_RUN,
) -> tuple[DataFrame, Found]:
    """(good rows without the helper column, the malformed records) of a csv/json frame read
    with the helper column. `df` has `_source_file` (file drops; `local_of` maps it to the
    local file the engine read) or the helper `__dh_file` (a plain read)."""
    if CORRUPT not in df.columns:
        return df, Found()
    # the good and the malformed frames must see every field, whatever the query selects
    current().parse_every_field(df)
    file_col = "_source_file" if "_source_file" in df.columns else FILE_COL
    data = [c for c in df.columns if c not in (CORRUPT, FILE_COL, *LINEAGE_COLUMNS)]
    good = df.where(F.col(CORRUPT).isNull()).drop(CORRUPT, FILE_COL)
    if not data:  # Spark refuses a query of the helper column alone
        raise MalformedError(f"source {source.id!r}: no record parses as {source.kind}")
    bad = df.where(F.col(CORRUPT).isNotNull()).select(
        F.col(CORRUPT).alias("raw"),
        F.col(file_col).alias("file"),
        *[F.col("`" + c.replace("`", "``") + "`") for c in data],
    )
    rows = bad.limit(limit + 1).toArrow().select(["raw", "file"]).to_pylist()
    if len(rows) > limit:
        raise MalformedError(
            f"source {source.id!r}: more than {limit:,} malformed records in this run; the "
            f"files are not in the source's {source.kind} shape (delimiter, header, quoting, "
            "encoding?)"
        )
    schema = T.StructType(
        [f for f in df.schema.fields if f.name not in (CORRUPT, FILE_COL, *LINEAGE_COLUMNS)]
    )
    records = [
        Record(file=r["file"], raw=r["raw"], reason=reason(r["raw"], source, schema)) for r in rows
    ]
    _number_lines(
        records,
        local_of or {},
        getattr(source, "encoding", None) or "utf-8",
        bool(getattr(source, "multiline", False)),
    )
    return good, Found(records)


def quarantine_frame(spark, found: Found, run_id: str, where: str) -> DataFrame:
    """The quarantine rows of `found` (QUARANTINE_SCHEMA)."""
    table = pa.Table.from_pylist(
        [
            {
                "_raw": r.raw,
                "_source_file": r.file,
                "_line": r.line,
                "_reason": r.reason,
                "_rule": MALFORMED_RULE,
                "_run_id": run_id,
                "_source": where,
            }
            for r in found.records
        ],
        schema=pa.schema(
            [
                ("_raw", pa.string()),
                ("_source_file", pa.string()),
                ("_line", pa.int64()),
                ("_reason", pa.string()),
                ("_rule", pa.string()),
                ("_run_id", pa.string()),
                ("_source", pa.string()),
            ]
        ),
    )
    df = current().from_arrow(table, T.StructType(QUARANTINE_SCHEMA.fields[:-1]), spark)
    return df.withColumn("_quarantined_at", F.current_timestamp().cast(T.TimestampType()))


# ------------------------------------------------------------------------------ reasons


def reason(raw: str, source, schema: T.StructType) -> str:
    """Why `raw` did not parse against `schema` (the data columns Spark read)."""
    if source.kind == "csv":
        return _csv_reason(raw, source, schema)
    return _json_reason(raw, schema)


def _csv_reason(raw: str, source, schema: T.StructType) -> str:
    delimiter = "\t" if source.delimiter == "\\t" else source.delimiter
    quote = '"' if source.quote is None else source.quote
    expected = len(schema.fields)
    if len(delimiter) == 1 and quote and raw.count(quote) % 2 == 1:
        return f"unbalanced quote ({quote}): the line's fields run together"
    try:
        if len(delimiter) != 1:
            fields = raw.split(delimiter)
        else:
            fields = next(
                csv.reader(
                    io.StringIO(raw), delimiter=delimiter, quotechar=quote or None, strict=False
                ),
                [],
            )
    except csv.Error as exc:
        return f"not readable as CSV: {exc}"
    if len(fields) != expected:
        return f"{len(fields)} fields, expected {expected}"
    for value, f in zip(fields, schema.fields, strict=False):
        problem = _type_problem(value, f)
        if problem:
            return problem
    return "does not parse against the declared schema"


def _json_reason(raw: str, schema: T.StructType) -> str:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        return f"invalid JSON ({exc.msg} at column {exc.colno})"
    if not isinstance(value, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
            type(value), "a number"
        )
        return f"{kind}, not a JSON object"
    for f in schema.fields:
        if f.name in value and value[f.name] is not None:
            v = value[f.name]
            problem = _type_problem(
                v if isinstance(v, str) else json.dumps(v), f, typed=not isinstance(v, str)
            )
            if problem:
                return problem
    return "does not parse against the declared schema"


def _type_problem(value: str, f: T.StructField, typed: bool = False) -> str | None:
    """'column x: value v is not T' when `value` cannot be `f`'s type (a quick check of the
    common types; None when it looks fine or the type is not checked here)."""
    t = f.dataType
    text = value.strip()
    if not text:
        return None
    ok = True
    if isinstance(t, T.IntegralType):
        ok = text.lstrip("+-").isdigit()
    elif isinstance(t, T.FractionalType):
        try:
            float(text)
        except ValueError:
            ok = False
    elif isinstance(t, T.BooleanType):
        ok = text.lower() in ("true", "false")
    elif isinstance(t, T.StringType) and typed:
        ok = True
    elif isinstance(t, T.StructType | T.ArrayType | T.MapType):
        ok = text[:1] in "{[" if typed else True
    if ok:
        return None
    return f"column '{f.name}': value '{text[:80]}' is not {t.simpleString()}"


# --------------------------------------------------------------------------- line numbers


def _local_path(file: str, local_of: dict[str, str]) -> str | None:
    if file in local_of:
        return local_of[file]
    if file.startswith("file:"):
        return file[len("file:") :].removeprefix("//")
    return file if file.startswith("/") else None


def _number_lines(
    records: list[Record], local_of: dict[str, str], encoding: str, multiline: bool
) -> None:
    """Set `line` of each record by streaming its (local) file once; identical malformed
    lines of one file get their occurrences in order."""
    by_file: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        by_file[r.file].append(r)
    for file, recs in by_file.items():
        path = _local_path(file, local_of)
        if path is None or multiline:
            continue
        wanted: dict[bytes, list[Record]] = defaultdict(list)
        for r in recs:
            try:
                wanted[r.raw.encode(encoding)].append(r)
            except (LookupError, UnicodeEncodeError):
                continue
        left = sum(len(v) for v in wanted.values())
        opener = gzip.open if path.endswith(".gz") else open
        try:
            with opener(path, "rb") as stream:
                for number, line in enumerate(stream, 1):
                    key = line.rstrip(b"\r\n")
                    if number == 1:
                        key = key.removeprefix(b"\xef\xbb\xbf")
                    pending = wanted.get(key)
                    if pending:
                        pending.pop(0).line = number
                        left -= 1
                        if not left:
                            break
        except OSError:
            continue
