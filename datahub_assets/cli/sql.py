"""`datahub sql "select ..."`: SQL over every Iceberg table of the catalog, by name.

An analyst writes tables as the catalog names them, `<app>_<layer>.<table>` (also
`datahub.<app>_<layer>.<table>`, the name Trino gives them through deploy/trino/), never a
file path. The query runs on Spark Connect like a pipeline step:

1. the catalog is listed (metadata only) and the query is scanned for dotted names that are
   tables of it, skipping string literals, quoted identifiers and comments;
2. each table named is read as the pipelines read it (`iceberg/read.py`: pyiceberg
   plans the current snapshot's files, Spark reads them with the table's schema) and
   registered as a temporary view of the session, named `` `<namespace>.<table>` ``;
3. the query, with those names pointing at the views, runs on Spark; at most `--limit` rows
   come back to print.

Only the tables a query names are planned, so a query costs the same in a catalog of ten
tables or of ten thousand. Views live in this command's Spark session alone: nothing is
registered on the shared server for anyone else, and nothing is written.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections.abc import Container, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TextIO

from datahub_resources.settings import Settings

CATALOG_ALIAS = "datahub"
"""A leading `datahub.` is accepted and dropped: Trino's catalog of the same tables."""

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class _Name:
    start: int
    end: int
    parts: tuple[str, ...]


def _quoted_end(sql: str, i: int, quote: str) -> int:
    """Index just past the literal or quoted identifier opening at `i` (doubled quotes and,
    in string literals, backslash escapes stay inside)."""
    j = i + 1
    while j < len(sql):
        c = sql[j]
        if c == "\\" and quote != "`":
            j += 2
            continue
        if c == quote:
            if j + 1 < len(sql) and sql[j + 1] == quote:
                j += 2
                continue
            return j + 1
        j += 1
    return len(sql)


def _part(sql: str, i: int) -> tuple[str, int] | None:
    """(identifier, end) of a plain or backticked identifier at `i`."""
    if i < len(sql) and sql[i] == "`":
        end = _quoted_end(sql, i, "`")
        return sql[i + 1 : end - 1].replace("``", "`"), end
    match = _WORD.match(sql, i)
    return (match.group(0), match.end()) if match else None


def dotted_names(sql: str) -> Iterator[_Name]:
    """Every dotted identifier chain (`a.b`, `` `a`.b.c ``) outside literals and comments."""
    i = 0
    while i < len(sql):
        c = sql[i]
        if c in "'\"":
            i = _quoted_end(sql, i, c)
        elif sql.startswith("--", i):
            newline = sql.find("\n", i)
            i = len(sql) if newline < 0 else newline
        elif sql.startswith("/*", i):
            close = sql.find("*/", i + 2)
            i = len(sql) if close < 0 else close + 2
        elif c == "`" or (
            (c.isalpha() or c == "_")
            and (i == 0 or not (sql[i - 1].isalnum() or sql[i - 1] in "_$"))
        ):
            start, parts = i, []
            while (found := _part(sql, i)) is not None:
                parts.append(found[0])
                i = found[1]
                if i < len(sql) and sql[i] == "." and _part(sql, i + 1) is not None:
                    i += 1
                    continue
                break
            if len(parts) > 1:
                yield _Name(start, i, tuple(parts))
            if i == start:
                i += 1
        else:
            i += 1


def view_name(namespace: str, table: str) -> str:
    """The temporary view of a table: one backticked identifier that reads like its name."""
    return f"`{namespace}.{table}`"


def _without_catalog(parts: tuple[str, ...], namespaces: Container[str]) -> tuple[str, ...]:
    """`datahub.ns.table...` -> `ns.table...` when `ns` is a namespace; else `parts`."""
    if len(parts) >= 3 and parts[0].lower() == CATALOG_ALIAS and parts[1].lower() in namespaces:
        return parts[1:]
    return parts


def resolve(sql: str, tables: dict[str, set[str]]) -> tuple[str, list[tuple[str, str]]]:
    """The query with each catalog table name pointing at its view, and the tables named.

    `tables` maps namespace -> table names. `ns.table` and `datahub.ns.table` are tables
    (names compare case-insensitively, as Spark's do); a longer chain keeps its tail
    (`ns.table.column`). A name whose first part is a namespace but whose table is not in
    it is an error that lists the namespace's tables."""
    lowered = {ns.lower(): (ns, {t.lower(): t for t in names}) for ns, names in tables.items()}
    out, used, last = [], [], 0
    for name in dotted_names(sql):
        parts = _without_catalog(name.parts, lowered)
        if parts[0].lower() not in lowered:
            continue
        namespace, known = lowered[parts[0].lower()]
        table = known.get(parts[1].lower())
        if table is None:
            if len(parts) == 2 or name.parts[0].lower() == CATALOG_ALIAS:
                listing = ", ".join(sorted(known.values())) or "none"
                raise LookupError(
                    f"table {parts[0]}.{parts[1]} does not exist; tables in {namespace}: {listing}"
                )
            continue  # `alias.column.field` where the alias happens to be a namespace
        tail = "".join(f".`{p.replace('`', '``')}`" for p in parts[2:])
        out.append(sql[last : name.start] + view_name(namespace, table) + tail)
        last = name.end
        if (namespace, table) not in used:
            used.append((namespace, table))
    out.append(sql[last:])
    return "".join(out), used


def list_tables(catalog) -> dict[str, set[str]]:
    """namespace -> table names of every namespace in the catalog (metadata only)."""
    return {
        ns[0]: {ident[-1] for ident in catalog.list_tables(ns[0])}
        for ns in catalog.list_namespaces()
    }


def register_views(spark, catalog, used: Sequence[tuple[str, str]]) -> None:
    """Each table of `used` as a temporary view of its current snapshot."""
    from datahub_assets.iceberg.read import data_files, read_files
    from datahub_resources.iceberg import iceberg_to_spark_schema

    for namespace, table_name in used:
        table = catalog.load_table((namespace, table_name))
        paths = [f.file_path for f in data_files(table)]
        frame = read_files(spark, paths, iceberg_to_spark_schema(table.schema()))
        frame.createOrReplaceTempView(view_name(namespace, table_name))


# ---------------------------------------------------------------------------- printing


def _text(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, datetime | date):
        return value.isoformat(sep=" ") if isinstance(value, datetime) else value.isoformat()
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    return str(value)


def _json_value(value: object) -> object:
    from pyspark.sql.types import Row

    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)  # exact: a float would round 0.1-style amounts
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, Row):  # a nested struct: an object (checked first: a Row is a tuple)
        return _json_value(value.asDict(recursive=False))
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return value


MAX_CELL = 60


def write_table(columns: list[str], rows: list[tuple], out: TextIO) -> None:
    """An aligned text table; cells longer than MAX_CELL characters end in `…`."""
    cells = [[_text(v).replace("\n", "\\n") for v in row] for row in rows]
    cells = [[c if len(c) <= MAX_CELL else c[: MAX_CELL - 1] + "…" for c in row] for row in cells]
    width = [max([len(col)] + [len(row[i]) for row in cells]) for i, col in enumerate(columns)]
    out.write(" | ".join(c.ljust(w) for c, w in zip(columns, width, strict=True)).rstrip() + "\n")
    out.write("-+-".join("-" * w for w in width) + "\n")
    for row in cells:
        out.write(" | ".join(c.ljust(w) for c, w in zip(row, width, strict=True)).rstrip() + "\n")


def write_rows(fmt: str, columns: list[str], rows: list[tuple], out: TextIO) -> None:
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([["" if v is None else _text(v) for v in row] for row in rows])
    elif fmt == "json":  # JSON lines: one object per row
        for row in rows:
            out.write(
                json.dumps(
                    {c: _json_value(v) for c, v in zip(columns, row, strict=True)},
                    ensure_ascii=False,
                )
                + "\n"
            )
    else:
        write_table(columns, rows, out)


# ------------------------------------------------------------------------------ command


def query(
    sql: str, settings: Settings, limit: int | None, spark=None, catalog=None
) -> tuple[list[str], list[tuple], bool]:
    """(columns, rows, truncated) of `sql` over the catalog; at most `limit` rows."""
    from datahub_resources.iceberg import load_catalog
    from datahub_resources.spark import connect

    catalog = catalog or load_catalog(settings)
    rewritten, used = resolve(sql, list_tables(catalog))
    spark = spark or connect(settings)
    register_views(spark, catalog, used)
    frame = spark.sql(rewritten)
    rows = frame.limit(limit + 1).collect() if limit else frame.collect()
    truncated = bool(limit) and len(rows) > limit
    rows = rows[:limit] if limit else rows
    return list(frame.columns), [tuple(r) for r in rows], truncated


def add_parser(sub) -> None:
    p = sub.add_parser(
        "sql", help="run a Spark SQL query over the Iceberg tables, named <app>_<layer>.<table>"
    )
    p.add_argument(
        "query",
        nargs="?",
        help='e.g. "select * from shop_raw.orders"; - reads it from standard input',
    )
    p.add_argument("--limit", type=int, default=100, help="rows to print (default 100; 0: all)")
    p.add_argument(
        "--format",
        choices=["table", "csv", "json"],
        default="table",
        help="table (default), csv with a header, or json (one object per line)",
    )
    p.add_argument(
        "--tables",
        action="store_true",
        help="list the queryable table names instead of running a query",
    )


def run(args: argparse.Namespace, settings: Settings, out: TextIO | None = None) -> int:
    from pyspark.errors import PySparkException

    stream: TextIO = sys.stdout if out is None else out
    if args.tables:
        from datahub_resources.iceberg import load_catalog

        for ns, names in sorted(list_tables(load_catalog(settings)).items()):
            for name in sorted(names):
                stream.write(f"{ns}.{name}\n")
        return 0
    sql = sys.stdin.read() if args.query in (None, "-") else args.query
    if not sql.strip():
        sys.stderr.write("error: no query: pass one, or - to read it from standard input\n")
        return 2
    if args.limit < 0:
        raise ValueError(f"--limit {args.limit}: expected 0 (all rows) or more")
    try:
        columns, rows, truncated = query(sql, settings, args.limit)
    except PySparkException as exc:
        message = str(exc).strip().splitlines()[0]
        hint = (
            " (datahub sql --tables lists the tables)"
            if "TABLE_OR_VIEW_NOT_FOUND" in message
            else ""
        )
        sys.stderr.write(f"error: {message}{hint}\n")
        return 1
    write_rows(args.format, columns, rows, stream)
    if args.format == "table":
        more = f", first {args.limit} shown (--limit)" if truncated else ""
        count = f"more than {args.limit}" if truncated else str(len(rows))
        stream.write(f"({count} row{'s' if count != '1' else ''}{more})\n")
    elif truncated:
        sys.stderr.write(f"note: first {args.limit} rows written; --limit 0 for all\n")
    return 0
