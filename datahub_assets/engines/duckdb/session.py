"""The DuckDB engine: a sqlframe DuckDB session over one in-process DuckDB connection.

The session is injected (a new `DatahubDuckDBSession` per run, made sqlframe's process-wide
one), never `sqlframe.activate()`d: PySpark keeps working for Spark pipelines in the same
process. The connection is opened per run with the deployment's limits: `memory_limit`
(DATAHUB_DUCKDB_MEMORY_LIMIT), `threads` (DATAHUB_DUCKDB_THREADS) and `temp_directory` =
$DATAHUB_HOME/duckdb_tmp, where DuckDB spills joins, aggregations and sorts that do not fit.

`DatahubDuckDBDataFrame` adds the PySpark DataFrame methods the platform uses that sqlframe
lacks or gets wrong (`selectExpr`, `isLocal`, `localCheckpoint`, `withColumn(s)` replacing in
place) and computes a frame's schema once; everything else is sqlframe's.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
from sqlframe.base.session import _BaseSession
from sqlframe.duckdb import DuckDBDataFrame, DuckDBSession, Window
from sqlframe.duckdb import functions as DF
from sqlframe.duckdb.table import DuckDBTable

from datahub_assets.engines.base import Engine
from datahub_assets.engines.duckdb import s3 as duckdb_s3
from datahub_assets.engines.duckdb import types as duckdb_types
from datahub_assets.engines.duckdb.read import DuckDBReadOps
from datahub_assets.engines.duckdb.write import DuckDBWriteOps
from datahub_resources.settings import Settings

_TEMP_TABLES = itertools.count(1)


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


class DatahubDuckDBDataFrame(DuckDBDataFrame):
    def selectExpr(self, *exprs: str) -> DatahubDuckDBDataFrame:  # noqa: N802  (PySpark's name)
        return self.select(*[DF.expr(e) for e in exprs])

    def withColumns(self, *colsMap: dict[str, Any]) -> DatahubDuckDBDataFrame:  # noqa: N802
        """PySpark's withColumns as one select: a column of that name is replaced in place,
        others are appended (sqlframe's own appends a duplicate after some joins)."""
        (changes,) = colsMap
        present = self.columns
        lowered = {c.lower(): c for c in changes}
        cols = [
            changes[lowered[c.lower()]].alias(lowered[c.lower()])
            if c.lower() in lowered
            else DF.col(_quote(c))
            for c in present
        ]
        seen = {c.lower() for c in present}
        cols += [v.alias(c) for c, v in changes.items() if c.lower() not in seen]
        return self.select(*cols)

    def withColumn(self, colName: str, col: Any) -> DatahubDuckDBDataFrame:  # noqa: N802,N803
        return self.withColumns({colName: col})

    @property
    def schema(self) -> Any:
        """sqlframe's schema (a DESCRIBE of a temp view, ~10 ms), computed once per frame:
        sqlframe frames are immutable (every operation returns a copy with a new expression;
        the cache is tied to this frame's expression object)."""
        cached = self.__dict__.get("_datahub_schema")
        if cached is None or cached[0] is not self.expression:
            cached = (self.expression, super().schema)
            self.__dict__["_datahub_schema"] = cached
        return type(cached[1])(list(cached[1].fields))

    def known_schema(self, columns: dict[str, str]) -> None:
        """Give this frame the schema sqlframe would derive for `columns` (name -> Spark type
        text, in the frame's order), without the DESCRIBE (a view whose types are known)."""
        from sqlframe.base import types
        from sqlframe.base.util import sqlglot_to_spark
        from sqlglot import exp

        dialect = self._schema_dialect
        schema = types.StructType(
            [
                types.StructField(
                    self.display_name_mapping.get(name, name),
                    sqlglot_to_spark(exp.DataType.build(text, dialect=dialect)),
                )
                for name, text in columns.items()
            ]
        )
        self.__dict__["_datahub_schema"] = (self.expression, schema)

    def isLocal(self) -> bool:  # noqa: N802  (PySpark's name)
        """Binds the query in DuckDB (names, types, functions) without running it."""
        self.session._conn.sql(self.sql(dialect="duckdb", optimize=False)).columns  # noqa: B018
        return False

    def localCheckpoint(self, eager: bool = True) -> DatahubDuckDBDataFrame:  # noqa: N802,ARG002
        """The rows computed once into a table of the run's in-memory database (PySpark's
        localCheckpoint; sqlframe cannot see TEMP tables)."""
        name = f"__datahub_ckpt_{next(_TEMP_TABLES)}"
        sql = self.sql(dialect="duckdb", optimize=False)
        self.session._conn.execute(f'CREATE TABLE "{name}" AS {sql}')
        return self.session.table(name)


class DatahubDuckDBTable(DatahubDuckDBDataFrame, DuckDBTable):
    """`session.table(name)` frames (and every frame derived from them) with the same
    added methods."""

    _df = DatahubDuckDBDataFrame  # what a table frame's transformations return


class DatahubDuckDBSession(DuckDBSession):
    _df = DatahubDuckDBDataFrame
    _table = DatahubDuckDBTable


@dataclass(frozen=True)
class DuckDBEngine(DuckDBReadOps, DuckDBWriteOps, Engine):
    """DuckDB through sqlframe: the operations of `duckdb/read.py` and `duckdb/write.py`."""


def _errors() -> tuple[type[BaseException], ...]:
    from sqlframe.base.exceptions import SQLFrameException
    from sqlglot.errors import SqlglotError

    return (duckdb.Error, SqlglotError, SQLFrameException)


def connect(settings: Settings) -> duckdb.DuckDBPyConnection:
    """A new in-memory DuckDB connection with the deployment's memory limit and spill folder."""
    spill = settings.home / "duckdb_tmp"
    spill.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "memory_limit": settings.duckdb_memory_limit,
        "temp_directory": str(spill),
        # rows keep their input order (deduplicate keep=first, merge's last-wins rely on it)
        "preserve_insertion_order": True,
    }
    if settings.duckdb_threads:
        config["threads"] = settings.duckdb_threads
    conn = duckdb.connect(":memory:", config=config)
    # Spark's session time zone (datahub_resources/spark_server.py): timestamps print and cast
    # alike on both engines (set after connecting: the setting belongs to the icu extension)
    conn.execute("SET TimeZone = 'UTC'")
    # footers are read once per run, not each time a view over the files is bound
    conn.execute("SET parquet_metadata_cache = true")
    # s3:// and s3a:// through pyarrow's S3 client (no httpfs offline; made on first use)
    duckdb_s3.register_s3(conn)
    return conn


def duckdb_engine(settings: Settings, conn: duckdb.DuckDBPyConnection | None = None) -> Engine:
    """The DuckDB engine over `conn` (default: a new connection from `connect`).

    sqlframe keeps one session object per process (`_BaseSession._instance`, which its
    column and alias code looks up) holding the previous run's views, cached schemas and
    alias ids: each engine gets a new session object, made the process's one."""
    conn = conn or connect(settings)
    session = object.__new__(DatahubDuckDBSession)  # not the singleton of the last run
    session.__init__(conn=conn)
    _BaseSession._instance = session
    return DuckDBEngine("duckdb", DF, duckdb_types, Window, session, _errors())


def spill_dir(settings: Settings) -> Path:
    return settings.home / "duckdb_tmp"
