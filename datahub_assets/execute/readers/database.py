"""`database` source (contract 4.1): a relational query or table read through Spark JDBC.

The statement Spark runs is always `(<base>) datahub_src`, where `<base>` is the source's
`<sql>` with each `:name` parameter replaced by a typed literal of the database's dialect
(`jdbc.Dialect.literal`: quotes doubled, backslashes escaped, dates and timestamps typed), or
`SELECT * FROM <quoted table>` for `<table name=.../>`. A parameter value is one literal, so
it can never change the statement's structure.

Parameters: `:runDate` (DATE, the run's date), `:watermark` (the committed watermark of an
incremental source, typed; NULL before the first commit) and the run's own parameters
(`ctx.params`). Unknown names are refused by the loader with file:line.

Parallel reads: with `partitionColumn` and `numPartitions`, ONE bounds query
(`SELECT min(p), max(p)[, max(incremental)] FROM (<base>) ... [WHERE slice]`) finds the
bounds and Spark opens `numPartitions` connections over equal ranges of the column. Rows
outside the bounds still land in the first or last partition, so bounds never lose rows.

Incremental (`<incremental column=.../>`, see `read_increment`): the slice is
`watermark <= column <= newest`, where `newest` is max(column) in the same bounds query:
inclusive at the watermark so a row committed later with the watermark's exact value is not
lost; the rows read again at the boundary are not duplicated because validation requires the
pipeline's table targets to `merge` on keys.

Every connection runs `sessionInitStatement`: the session time zone is UTC (like Spark's) and
`isolationLevel`, when given, sets the session's transaction isolation (only then, on
MariaDB/MySQL, may a connection run two statements in one call). `fetchSize` defaults
to 10,000 rows per round trip (the PostgreSQL driver otherwise buffers the whole result).
Credentials go to Spark as JDBC options, which Spark redacts in plans and its UI; errors are
scrubbed of the password before they are raised.

Column names are the source's, whatever they contain: Spark lists the columns it reads by
name, and its dialects before 4.1 do not double a quote character inside a name, so a column
whose name has `"` or `` ` `` reaches Spark under a plain alias (`SELECT ... "a""b" AS
"_dh_c3" ...`, quoted here) and gets its name back in the frame (`_Reader.load`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from datahub_assets.execute.context import ExecContext
from datahub_assets.execute.jdbc import Endpoint, JdbcError, endpoint_for, spark_aliases
from datahub_assets.execute.readers._files import schema_for
from datahub_assets.execute.sources import SourceError
from datahub_assets.execute.watermarks import Watermark
from datahub_assets.spec import sql_params
from datahub_assets.spec.models import DatabaseSource

DEFAULT_FETCH_SIZE = 10_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ISOLATION_SQL = {
    "READ_UNCOMMITTED": "READ UNCOMMITTED",
    "READ_COMMITTED": "READ COMMITTED",
    "REPEATABLE_READ": "REPEATABLE READ",
    "SERIALIZABLE": "SERIALIZABLE",
}
PARTITION_TYPES = (
    T.IntegralType,
    T.DecimalType,
    T.DoubleType,
    T.FloatType,
    T.DateType,
    T.TimestampType,
    T.TimestampNTZType,
)


def _endpoint(source: DatabaseSource, ctx: ExecContext) -> Endpoint:
    if ctx.spec is not None:
        return endpoint_for(ctx.spec, source)
    from datahub_assets.execute.jdbc import endpoint

    return endpoint(source.jdbc_url or "", source.user_secret_ref, ctx.app)


def _session_init(source: DatabaseSource, ep: Endpoint) -> list[str]:
    """Statements each JDBC connection runs first: UTC session zone, then the isolation level.
    (Two statements run as one multi-statement: see `Endpoint.spark_options`.)"""
    utc = "SET TIME ZONE 'UTC'" if ep.dialect.name == "postgresql" else "SET time_zone = '+00:00'"
    level = source.isolation_level
    if not level or level == "NONE":
        return [utc]
    if ep.dialect.name == "postgresql":
        # the read runs in the transaction this opens: Spark's cursor-based fetch would
        # otherwise begin one at the driver's default level, ignoring session settings
        return [utc, f"BEGIN ISOLATION LEVEL {ISOLATION_SQL[level]}"]
    return [utc, f"SET SESSION TRANSACTION ISOLATION LEVEL {ISOLATION_SQL[level]}"]


def _backquoted(name: str) -> str:
    """`name` as Spark SQL writes one name (a column reference, a customSchema field):
    backquoted, backquotes doubled."""
    return "`" + name.replace("`", "``") + "`"


def _spark_col(name: str) -> Column:
    """The column `name` of a frame, whatever characters the name has."""
    return F.col(_backquoted(name))


class _Reader:
    """One database source in one run: its endpoint, base statement and JDBC options."""

    def __init__(self, source: DatabaseSource, ctx: ExecContext, watermark: Any = None):
        self.source, self.ctx = source, ctx
        self.ep = _endpoint(source, ctx)
        self.base = self._base(watermark)

    def _base(self, watermark: Any) -> str:
        src = self.source
        if src.table_name:
            for part in src.table_name.split("."):
                problem = self.ep.dialect.name_problem(part)
                if problem:  # PostgreSQL would read the table of the name's first 63 bytes
                    raise SourceError(
                        f"source {src.id!r}: <table name={src.table_name!r}>: {part!r} {problem}"
                    )
            return f"SELECT * FROM {self.ep.dialect.quote(src.table_name)}"
        values = {"runDate": self.ctx.run_date, **self.ctx.params, "watermark": watermark}

        def literal(name: str) -> str:
            if name not in values:
                raise SourceError(
                    f"source {src.id!r}: <sql> names parameter :{name}, which "
                    "this run does not define"
                )
            return self.ep.dialect.literal(values[name])

        if src.sql is None:  # the spec validation requires <table> or <sql>
            raise SourceError(f"source {src.id!r}: neither <table> nor <sql> is set")
        # a trailing `-- comment` must not swallow the `) alias` the statement is wrapped in
        try:
            sql = sql_params.render(src.sql.strip().rstrip(";"), literal, self.ep.dialect.name)
        except sql_params.SqlScanError as e:  # the loader refuses it first; a run may skip it
            raise SourceError(f"source {src.id!r}: {e}") from e
        return sql + "\n"

    def options(self, fetch: bool = True) -> dict[str, str]:
        init = _session_init(self.source, self.ep)
        opts = self.ep.spark_options(multi_statements=len(init) > 1) | {
            "sessionInitStatement": "; ".join(init)
        }
        if fetch:
            opts["fetchsize"] = str(self.source.fetch_size or DEFAULT_FETCH_SIZE)
        return opts

    def load(self, statement: str, **extra: str) -> DataFrame:
        """The rows of `statement`. Spark names the columns it reads in the SQL it runs: a
        column whose name Spark cannot quote (`jdbc.spark_aliases`) is read under an alias
        this statement gives it, and renamed back in the frame."""
        df = self._jdbc(statement, extra, {})
        aliases = spark_aliases(df.columns)  # resolving the schema runs no column name
        if not aliases:
            return df
        pc = extra.get("partitionColumn")
        if pc is not None and any(pc.lower() == c.lower() for c in aliases):
            raise SourceError(
                f"source {self.source.id!r}: partitionColumn {pc!r} has a quote character "
                '(" or `) in its name, which Spark cannot partition on; give the column '
                "another name in the <sql> (SELECT ... AS part_key) and partition on that"
            )
        q = self.ep.dialect.quote_name
        cols = ", ".join(f"{q(c)} AS {q(aliases[c])}" if c in aliases else q(c) for c in df.columns)
        named = self._jdbc(f"SELECT {cols} FROM ({statement}) datahub_n", extra, aliases)
        return named.withColumnsRenamed({alias: name for name, alias in aliases.items()})

    def _jdbc(self, statement: str, extra: dict[str, str], aliases: dict[str, str]) -> DataFrame:
        reader = self.ctx.spark.read.format("jdbc").options(**self.options(), **extra)
        if self.source.schema_ref:
            declared = schema_for(self.source.schema_ref, self.ctx)
            alias_of = {name.lower(): alias for name, alias in aliases.items()}
            reader = reader.option(
                "customSchema",
                ", ".join(
                    _backquoted(alias_of.get(f.name.lower(), f.name))
                    + f" {f.dataType.simpleString()}"
                    for f in declared.fields
                ),
            )
        return reader.option("dbtable", f"({statement}) datahub_src").load()

    def first(self, statement: str) -> tuple[T.StructType, dict[str, Any]]:
        """The first row of a small query (bounds), run by Spark over the same JDBC options.
        Timestamps come back as UTC-aware datetimes (read as epoch micros, so the Python
        process's own time zone never shifts them)."""
        df = (
            self.ctx.spark.read.format("jdbc")
            .options(**self.options(fetch=False))
            .option("query", statement)
            .load()
        )
        ts = {f.name for f in df.schema.fields if isinstance(f.dataType, T.TimestampType)}
        row = df.select(
            *[F.unix_micros(F.col(c)).alias(c) if c in ts else F.col(c) for c in df.columns]
        ).first()
        if row is None:  # cannot happen: an aggregate query without GROUP BY has one row
            raise SourceError(f"source {self.source.id!r}: the bounds query returned no row")
        values = {
            c: (
                EPOCH + timedelta(microseconds=row[c]) if c in ts and row[c] is not None else row[c]
            )
            for c in df.columns
        }
        return df.schema, values

    def declared(self, df: DataFrame) -> DataFrame:
        """With a schemaRef: exactly the declared columns, in the declared order."""
        if not self.source.schema_ref:
            return df
        declared = schema_for(self.source.schema_ref, self.ctx)
        have = {c.lower(): c for c in df.columns}
        missing = [f.name for f in declared.fields if f.name.lower() not in have]
        if missing:
            raise SourceError(
                f"source {self.source.id!r}: schemaRef declares column(s) "
                f"{', '.join(missing)} that the query does not return; it "
                f"returns {', '.join(df.columns)}"
            )
        return df.select(*[_spark_col(have[f.name.lower()]) for f in declared.fields])

    def bounds(self, schema: T.StructType, row) -> tuple[Any, Any] | None:
        """(min, max) of the partition column from a bounds query's row (None: no split)."""
        if "lo" not in schema.names:
            return None
        if not isinstance(schema["lo"].dataType, PARTITION_TYPES):
            raise SourceError(
                f"source {self.source.id!r}: partitionColumn {self.source.partition_column!r} "
                f"has type {schema['lo'].dataType.simpleString()}; allowed: a numeric, date or "
                "timestamp column"
            )
        return row["lo"], row["hi"]

    def read(self, statement: str, bounds: tuple[Any, Any] | None) -> DataFrame:
        src = self.source
        extra: dict[str, str] = {}
        if src.partition_column and src.num_partitions and bounds and bounds[0] is not None:
            low, high = bounds
            extra = {
                "partitionColumn": src.partition_column,
                "lowerBound": _bound_text(low),
                "upperBound": _bound_text(high),
                "numPartitions": str(src.num_partitions if low != high else 1),
            }
        return self.declared(self.load(statement, **extra))

    def _partition_bounds(self) -> list[str]:
        """`lo`/`hi` (MIN/MAX of the partition column) when the read is split, else none."""
        if self.source.partition_column and self.source.num_partitions:
            pc = self.ep.dialect.quote(self.source.partition_column)
            return [f"MIN({pc}) AS lo", f"MAX({pc}) AS hi"]
        return []

    def _bounds_select(self, columns: list[str], where: str) -> str:
        return f"SELECT {', '.join(columns)} FROM ({self.base}) datahub_b{where}"

    def bounds_sql(self) -> str | None:
        """The query of the partition bounds; None when the read is not split."""
        columns = self._partition_bounds()
        return self._bounds_select(columns, "") if columns else None

    def bounds_and_newest_sql(self, where: str, column: str) -> str:
        """The partition bounds (if split) and `newest`, MAX(`column`), of the rows `where`
        keeps."""
        newest = f"MAX({self.ep.dialect.quote(column)}) AS newest"
        return self._bounds_select([*self._partition_bounds(), newest], where)

    def fail(self, exc: Exception, what: str) -> SourceError:
        return SourceError(
            f"source {self.source.id!r}: {what} on {self.ep.url} failed: "
            f"{self.ep.scrub(_first_line(exc))}"
        )


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:500] if text else type(exc).__name__


def _bound_text(value: Any) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal | float):
        return str(int(value))
    return str(value)


def read_database(source: DatabaseSource, ctx: ExecContext) -> DataFrame:
    """Every row of the source (partitioned when partitionColumn/numPartitions say so)."""
    try:
        reader = _Reader(source, ctx)
        bounds = None
        sql = reader.bounds_sql()
        if sql:
            bounds = reader.bounds(*reader.first(sql))
        df = reader.read(reader.base, bounds)
        df.schema  # noqa: B018  (resolves the statement on the database now)
        return df
    except (SourceError, JdbcError):
        raise
    except Exception as exc:
        raise _scrubbed(source, ctx, exc) from None


def _scrubbed(source: DatabaseSource, ctx: ExecContext, exc: Exception) -> SourceError:
    try:
        ep = _endpoint(source, ctx)
    except Exception:  # the endpoint itself failed: its message names no secret value
        return SourceError(f"source {source.id!r}: {_first_line(exc)}")
    message = _first_line(exc)
    if "FAILED_JDBC.CONNECTION" in message:
        # Spark says only "Couldn't connect"; the database's own reason (bad password, no such
        # database, refused) comes from one connection attempt of the Python driver
        try:
            ep.connect().close()
        except JdbcError as why:
            return SourceError(f"source {source.id!r}: {why}")
        # the database takes connections again: the one Spark opened was dropped or reset
        return SourceError(
            f"source {source.id!r}: reading {ep.url} failed: a connection was "
            "dropped or reset while connecting (SQLSTATE 08001), and a new one "
            "succeeds; a transient failure, retried"
        )
    return SourceError(f"source {source.id!r}: reading {ep.url} failed: {ep.scrub(message)}")


# ----------------------------------------------------------------------------- incremental


def watermark_value(wm: Watermark | None) -> Any:
    """A committed `Watermark` as a Python value for `Dialect.literal`."""
    if wm is None:
        return None
    kind = wm.type
    if kind == "timestamp":
        return datetime.fromisoformat(wm.value)
    if kind == "timestamp_ntz":
        return datetime.fromisoformat(wm.value.replace("T", " "))
    if kind == "date":
        return date.fromisoformat(wm.value)
    if kind in ("tinyint", "smallint", "int", "bigint"):
        return int(wm.value)
    if kind.startswith("decimal"):
        return Decimal(wm.value)
    if kind in ("float", "double"):
        return float(wm.value)
    return wm.value


def _watermark_of(value: Any, dtype: T.DataType) -> Watermark | None:
    if value is None:
        return None
    if isinstance(dtype, T.TimestampType):  # `_Reader.first` made it UTC-aware
        text = value.astimezone(UTC).isoformat(timespec="microseconds")
        return Watermark(type="timestamp", value=text)
    if isinstance(dtype, T.TimestampNTZType):
        return Watermark(
            type="timestamp_ntz", value=value.isoformat(sep=" ", timespec="microseconds")
        )
    if isinstance(dtype, T.DateType):
        return Watermark(type="date", value=value.isoformat())
    return Watermark(type=dtype.simpleString(), value=str(value))


def read_increment(
    source: DatabaseSource, ctx: ExecContext, previous: Watermark | None
) -> tuple[DataFrame, Watermark | None]:
    """(rows with previous <= column <= newest, newest watermark); `previous` None reads all.

    The slice is computed on the database in the same query as the partition bounds, so the
    rows written are exactly those the new watermark covers."""
    if source.incremental is None:
        raise SourceError(f"source {source.id!r} has no <incremental>: it has no watermark")
    column = source.incremental.column
    try:
        reader = _Reader(source, ctx, watermark_value(previous))
        q = reader.ep.dialect.quote(column)
        low = (
            f" WHERE {q} >= {reader.ep.dialect.literal(watermark_value(previous))}"
            if previous is not None
            else f" WHERE {q} IS NOT NULL"
        )
        schema, row = reader.first(reader.bounds_and_newest_sql(low, column))
        dtype = schema["newest"].dataType
        newest_value = row["newest"]
        newest = _watermark_of(newest_value, dtype)
        if newest is None:
            ctx.log.info(
                "source %s: no rows at or above watermark %s",
                source.id,
                previous.value if previous else "(none)",
            )
            empty = reader.read(f"SELECT * FROM ({reader.base}) datahub_e WHERE 1 = 0", None)
            return empty, previous
        upper = reader.ep.dialect.literal(_upper_literal_value(newest_value, dtype))
        statement = f"SELECT * FROM ({reader.base}) datahub_s{low} AND {q} <= {upper}"
        df = reader.read(statement, reader.bounds(schema, row))
        ctx.log.info(
            "source %s: reading rows with %s in [%s, %s]",
            source.id,
            column,
            previous.value if previous else "-inf",
            newest.value,
        )
        return df, newest
    except (SourceError, JdbcError):
        raise
    except Exception as exc:
        raise _scrubbed(source, ctx, exc) from None


def _upper_literal_value(value: Any, dtype: T.DataType) -> Any:
    """max(column) as a literal the database compares exactly (timestamps in UTC)."""
    if isinstance(dtype, T.TimestampType) and isinstance(value, datetime) and value.tzinfo:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value
