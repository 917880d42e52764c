"""`database` targets (contract 4.3): a DataFrame into a PostgreSQL or MariaDB/MySQL table.

Two phases, so the reporting table only ever changes inside one database transaction:

1. **Stage.** Spark writes the frame in parallel over JDBC into a fresh staging table next to
   the target (same schema/database), named `<first 40 bytes of table>__dhstage_<10 hex>`:
   at most 60 bytes, so no database cuts it, unique per write, and checked to be no existing
   relation's name (`batchsize` = `writeBatchSize`). Nothing reads it; a failure here leaves
   the target untouched. A column whose name has a quote character (`"`, `` ` ``) is staged
   under a plain alias (`jdbc.spark_aliases`: Spark before 4.1 does not double the quote in
   the SQL it generates) and gets its name back by a quoted RENAME COLUMN / INSERT ... SELECT.
2. **Move.** One DB-API transaction (`Endpoint.connect()`) moves the rows into the target:

   - append: INSERT … SELECT (PostgreSQL also drops the staging table inside the transaction:
     its DDL is transactional).
   - overwrite: PostgreSQL DROP target + RENAME staging → target in one transaction; MariaDB
     `RENAME TABLE target TO old, staging TO target` (one atomic statement), then DROP old.
   - truncateInsert: PostgreSQL TRUNCATE + INSERT … SELECT in one transaction; MariaDB
     DELETE + INSERT … SELECT (its TRUNCATE commits implicitly, so it could not roll back).
   - merge: PostgreSQL INSERT … SELECT … ON CONFLICT (keys) DO UPDATE; MariaDB INSERT … SELECT
     … ON DUPLICATE KEY UPDATE.

   A missing target is created from the staging table (renamed into place; for `merge` with a
   primary key on `keys`). `merge` into an existing table needs a primary key or unique
   constraint on exactly `keys` (the error names the statement to add); incoming rows with
   the same key fail the write (the database cannot say which one wins).

Names the database cannot hold as written (a PostgreSQL name over 63 bytes, which it would
cut; a MariaDB one over 64 characters; empty names, NUL, ...: `Dialect.name_problem`) are
refused, naming the column or table, before anything is written.

Any failure rolls the transaction back (the target is exactly as before) and the staging
table is dropped in a `finally` (best effort); the cleanup drops only tables this write
created. Errors are `DatabaseTargetError`s whose text has the password scrubbed and which
chain no driver exception (the cause's text could carry it).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql.types import StringType

from datahub_assets.execute.jdbc import (
    DbConnection,
    DbCursor,
    Dialect,
    Endpoint,
    JdbcError,
    spark_aliases,
)
from datahub_assets.execute.outcomes import TargetOutcome
from datahub_assets.spec.models import DatabaseTarget, TableRef

LOG = logging.getLogger("datahub")
STAGE_TAG = "__dhstage_"
OLD_TAG = "__dhold_"
SIDE_HEAD_BYTES = 40
"""Bytes of the target's name that start its staging/swapped-out table names (`_side_name`)."""
MARIADB_KEY_VARCHAR = 255
"""String key columns of a merge target MariaDB creates: VARCHAR(255) (a key cannot be TEXT)."""
TRANSACTIONAL_ENGINES = {"innodb", "rocksdb"}


class DatabaseTargetError(JdbcError):
    """A database export failed; the message never carries a credential."""


@dataclass
class _Table:
    """Where the target lives: schema (PostgreSQL) or database (MariaDB) and bare name."""

    schema: str
    name: str
    exists: bool
    columns: list[str]
    unique_keys: list[set[str]]
    engine: str | None = None

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


class _Sql:
    """Identifier quoting of one dialect; table names are quoted per part."""

    def __init__(self, endpoint: Endpoint):
        self.dialect = endpoint.dialect
        self.pg = endpoint.dialect.name == "postgresql"

    def col(self, name: str) -> str:
        """One column name, quoted whole (a dot in it stays part of the name)."""
        return self.dialect.quote_name(name)

    def table(self, schema: str, name: str) -> str:
        return f"{self.col(schema)}.{self.col(name)}"


def write_database(
    df: DataFrame,
    target: DatabaseTarget,
    endpoint: Endpoint,
    ref: TableRef,
    log: logging.Logger | None = None,
) -> TargetOutcome:
    """Write `df` to `target`'s table through `endpoint` (see the module doc)."""
    log = log or LOG
    sql = _Sql(endpoint)
    error: str | None = None
    try:
        return _write(df, target, endpoint, ref, sql, log)
    except JdbcError as exc:  # ours and jdbc's (connect): already say what failed
        error = endpoint.scrub(str(exc))
    except Exception as exc:  # driver / Spark errors: scrubbed, never chained
        error = endpoint.scrub(f"{type(exc).__name__}: {_short(exc)}")
    raise DatabaseTargetError(error)


def _short(exc: Exception) -> str:
    """The first lines of an error (Spark's carry a JVM stack trace after them)."""
    text = str(exc).strip()
    lines = text.splitlines()
    return "\n".join(lines[:6]) + (" …" if len(lines) > 6 else "")


def _write(
    df: DataFrame,
    target: DatabaseTarget,
    endpoint: Endpoint,
    ref: TableRef,
    sql: _Sql,
    log: logging.Logger,
) -> TargetOutcome:
    incoming = list(df.columns)
    mode = target.mode
    keys = list(target.keys)
    _check_columns(incoming, keys, mode, target.table_name or "", endpoint.dialect)
    # Spark writes the staging table under names it quotes right; the statements here
    # (quoted by `_Sql`) give the columns their names back
    aliases = spark_aliases(incoming)
    staged = {c: aliases.get(c, c) for c in incoming}

    conn = endpoint.connect()
    owned: list[str] = []  # tables this write made: the only ones the cleanup may drop
    table: _Table | None = None
    committed = False
    try:
        table = _locate(conn, sql, target.table_name)
        _precheck(table, incoming, keys, mode, sql)
        stage_name = _fresh_name(conn.cursor(), sql, table, STAGE_TAG)
        conn.rollback()  # end the catalog reads: no snapshot or lock held during the write
        stage = sql.table(table.schema, stage_name)
        log.info(
            "database target %s (%s, %s): staging %d columns into %s",
            table.qualified,
            mode,
            endpoint.dialect.name,
            len(incoming),
            stage_name,
        )
        owned.append(stage_name)  # absent a moment ago; Spark creates it or fails ("error")
        _stage(df, target, endpoint, stage, staged, table, sql)

        cur = conn.cursor()
        rows = _count(cur, f"SELECT COUNT(*) FROM {stage}")
        if mode == "merge":
            _no_duplicate_keys(cur, sql, stage, keys, staged, table.qualified)
            conn.rollback()
        tgt = sql.table(table.schema, table.name)
        created = not table.exists
        if created or mode == "overwrite":
            _name_columns(cur, sql, stage, aliases)
        if created:
            _create_from_stage(cur, sql, table, stage_name, keys if mode == "merge" else [])
        elif mode == "overwrite":
            # MariaDB swaps the old table out under a fresh name and drops it after the swap
            old_name = None if sql.pg else _fresh_name(cur, sql, table, OLD_TAG)
            _replace(cur, sql, table, stage_name, old_name)
            owned += [old_name] if old_name else []
        else:
            if mode == "truncateInsert":
                cur.execute(f"TRUNCATE TABLE {tgt}" if sql.pg else f"DELETE FROM {tgt}")
            cur.execute(_insert(sql, tgt, stage, staged, table, mode, keys))
            if sql.pg:
                cur.execute(f"DROP TABLE {stage}")
        in_target = _count(cur, f"SELECT COUNT(*) FROM {tgt}")
        conn.commit()
        committed = True
        log.info(
            "database target %s: %d rows %s, %d rows in the table",
            table.qualified,
            rows,
            "written" if mode != "merge" else "merged",
            in_target,
        )
        return TargetOutcome(
            ref=ref,
            kind="database",
            rows=rows,
            extra={
                "mode": mode,
                "table": table.qualified,
                "rows_in_table": in_target,
                "created": created,
                "database": endpoint.database,
                "dialect": endpoint.dialect.name,
            },
        )
    finally:  # runs before the outcome is returned
        if not committed:
            _quietly(conn.rollback)
        _cleanup(conn, endpoint, sql, table, owned, log)


def _check_columns(
    incoming: list[str], keys: list[str], mode: str, where: str, dialect: Dialect
) -> None:
    """The data's column names as the target needs them: merge keys among them, no two
    differing only in case, each one the database holds as written."""
    if mode == "merge":
        missing = [k for k in keys if k not in incoming]
        if missing:
            raise DatabaseTargetError(
                f"merge keys {', '.join(missing)} are not columns of the data "
                f"(columns: {', '.join(incoming)})"
            )
    lowered = [c.lower() for c in incoming]
    if len(set(lowered)) != len(lowered):
        raise DatabaseTargetError(
            f"the data has columns differing only in case ({', '.join(incoming)}); rename one"
        )
    for name in incoming:
        problem = dialect.name_problem(name)
        if problem:
            raise DatabaseTargetError(
                f"column {name!r} cannot be a column of {where} ({dialect.label}): it "
                f"{problem}; give it another name with a <rename> step before the target"
            )


def _stage(
    df: DataFrame,
    target: DatabaseTarget,
    endpoint: Endpoint,
    stage: str,
    staged: dict[str, str],
    table: _Table,
    sql: _Sql,
) -> None:
    """Spark writes `df` into the new table `stage`, its columns named as `staged` says."""
    frame = df.toDF(*staged.values()) if any(k != v for k, v in staged.items()) else df
    writer = (
        frame.write.format("jdbc")
        .options(**endpoint.spark_options())
        .option("dbtable", stage)
        .mode("error")
    )
    if target.write_batch_size:
        writer = writer.option("batchsize", str(target.write_batch_size))
    keys = [staged[k] for k in target.keys]
    types = (
        _create_types(frame, keys)
        if (target.mode == "merge" and not table.exists and not sql.pg)
        else None
    )
    if types:
        writer = writer.option("createTableColumnTypes", types)
    writer.save()


def _head(name: str) -> str:
    """The first `SIDE_HEAD_BYTES` bytes of `name` (whole characters) that start the names
    of its staging and swapped-out tables."""
    return name.encode()[:SIDE_HEAD_BYTES].decode(errors="ignore")


def _side_name(name: str, tag: str) -> str:
    """A staging (`STAGE_TAG`) or swapped-out (`OLD_TAG`) table name of table `name`:
    `<_head(name)><tag><10 random hex>`, at most 60 bytes and 60 characters, so no database
    cuts it (PostgreSQL keeps 63 bytes, MariaDB/MySQL 64 characters) and its whole random
    suffix makes it unique."""
    return f"{_head(name)}{tag}{uuid.uuid4().hex[:10]}"


def _fresh_name(cur: DbCursor, sql: _Sql, table: _Table, tag: str) -> str:
    """A `_side_name` of `table` that is neither the table's own name nor the name of any
    relation in its schema now: the write creates it, so the cleanup can drop it."""
    for _ in range(5):
        name = _side_name(table.name, tag)
        if name.lower() != table.name.lower() and not _relation_exists(cur, sql, table, name):
            return name
    raise DatabaseTargetError(
        f"no free name for a {tag.strip('_')} table next to {table.qualified} (5 tries)"
    )


def _relation_exists(cur: DbCursor, sql: _Sql, table: _Table, name: str) -> bool:
    if sql.pg:  # tables, views, indexes, sequences share one namespace
        statement = (
            "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s"
        )
    else:
        statement = (
            "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s"
        )
    cur.execute(statement, (table.schema, name))
    return cur.fetchone() is not None


# ----------------------------------------------------------------------------- the target


def _locate(conn, sql: _Sql, name: str | None) -> _Table:
    if not name:
        raise DatabaseTargetError("<database> target has no <table name=...>")
    parts = name.split(".")
    if len(parts) > 2 or not all(parts):
        raise DatabaseTargetError(
            f"table name {name!r} must be `table` or `{'schema' if sql.pg else 'database'}.table`"
        )
    for part in parts:
        problem = sql.dialect.name_problem(part)
        if problem:
            what = f"table name {name!r}" + (f": {part!r}" if len(parts) > 1 else "")
            raise DatabaseTargetError(f"{what} {problem}; shorten it")
    cur = conn.cursor()
    return _locate_pg(cur, parts) if sql.pg else _locate_mariadb(cur, parts)


def _locate_pg(cur, parts: list[str]) -> _Table:
    if len(parts) == 2:
        schema, name = parts
    else:
        name = parts[0]
        # an unqualified name means what the search_path finds, else the current schema
        cur.execute(
            "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = "
            "c.relnamespace WHERE c.oid = to_regclass(%s)",
            ('"' + name.replace('"', '""') + '"',),
        )
        row = cur.fetchone()
        schema = row[0] if row else _scalar(cur, "SELECT current_schema()")
        if schema is None:
            raise DatabaseTargetError(
                f"table {name!r}: the connection has no current schema; write it as schema.table"
            )
    cur.execute(
        "SELECT c.oid, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = "
        "c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
        (schema, name),
    )
    row = cur.fetchone()
    if row is None:
        return _Table(schema, name, False, [], [])
    oid, kind = row
    if kind not in ("r", "p"):
        raise DatabaseTargetError(f"{schema}.{name} is not a table (relkind {kind!r})")
    cur.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s AND attnum > 0 "
        "AND NOT attisdropped ORDER BY attnum",
        (oid,),
    )
    columns = [r[0] for r in cur.fetchall()]
    cur.execute(
        "SELECT ARRAY(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = "
        "i.indrelid AND a.attnum = ANY(i.indkey)) FROM pg_index i WHERE i.indrelid = "
        "%s AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL",
        (oid,),
    )
    unique = [set(r[0]) for r in cur.fetchall()]
    return _Table(schema, name, True, columns, unique)


def _locate_mariadb(cur, parts: list[str]) -> _Table:
    if len(parts) == 2:
        schema, name = parts
    else:
        name = parts[0]
        schema = _scalar(cur, "SELECT DATABASE()")
        if not schema:
            raise DatabaseTargetError(
                f"table {name!r}: the jdbcUrl names no database; add "
                "it to the URL or write the table as database.table"
            )
    cur.execute(
        "SELECT TABLE_TYPE, ENGINE FROM information_schema.TABLES WHERE "
        "TABLE_SCHEMA = %s AND TABLE_NAME = %s",
        (schema, name),
    )
    row = cur.fetchone()
    if row is None:
        return _Table(schema, name, False, [], [])
    if row[0] != "BASE TABLE":
        raise DatabaseTargetError(f"{schema}.{name} is not a table ({row[0]})")
    cur.execute(
        "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s "
        "AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
        (schema, name),
    )
    columns = [r[0] for r in cur.fetchall()]
    cur.execute(
        "SELECT INDEX_NAME, COLUMN_NAME, SUB_PART FROM information_schema.STATISTICS "
        "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND NON_UNIQUE = 0",
        (schema, name),
    )
    indexes: dict[str, set[str]] = {}
    prefixed: set[str] = set()
    for index, column, sub_part in cur.fetchall():
        indexes.setdefault(index, set()).add(column)
        if sub_part is not None:
            prefixed.add(index)  # unique on a prefix only: not a key on the whole value
    unique = [cols for index, cols in indexes.items() if index not in prefixed]
    return _Table(schema, name, True, columns, unique, row[1])


def _precheck(table: _Table, incoming: list[str], keys: list[str], mode: str, sql: _Sql) -> None:
    """Everything that can be refused before Spark writes a row."""
    if not table.exists or mode == "overwrite":
        return
    if not sql.pg and (table.engine or "").lower() not in TRANSACTIONAL_ENGINES:
        raise DatabaseTargetError(
            f"{table.qualified} uses the {table.engine or 'unknown'} engine, which cannot roll "
            f"a failed {mode} back; convert it (ALTER TABLE {sql.table(table.schema, table.name)}"
            ' ENGINE=InnoDB) or use mode="overwrite"'
        )
    target_cols = _column_map(table)
    extra = [c for c in incoming if c.lower() not in target_cols]
    if extra:
        raise DatabaseTargetError(
            f"the data has columns that {table.qualified} lacks: {', '.join(extra)} (table "
            f"columns: {', '.join(table.columns)}); add them to the table, drop them with a "
            '<select> step, or use mode="overwrite" to replace the table'
        )
    if mode == "merge":
        wanted = {target_cols[k.lower()] for k in keys}
        if not any(u == wanted for u in table.unique_keys):
            cols = ", ".join(sql.col(target_cols[k.lower()]) for k in keys)
            tgt = sql.table(table.schema, table.name)
            add = (
                f"ALTER TABLE {tgt} ADD CONSTRAINT "
                f"{sql.col(_head(table.name) + '_merge_key')} UNIQUE ({cols})"
                if sql.pg
                else f"ALTER TABLE {tgt} ADD UNIQUE KEY ({cols})"
            )
            raise DatabaseTargetError(
                f'mode="merge" upserts on ({", ".join(keys)}), but {table.qualified} has no '
                f"primary key or unique constraint on exactly those columns; add one: {add}"
            )


def _column_map(table: _Table) -> dict[str, str]:
    """lower-cased name -> the table's column (names match case-insensitively; an exact match
    wins where two columns differ only in case)."""
    out: dict[str, str] = {}
    for c in table.columns:
        out.setdefault(c.lower(), c)
    for c in table.columns:
        if c.lower() == c:
            out[c] = c
    return out


def _create_types(df: DataFrame, keys: list[str]) -> str | None:
    """MariaDB cannot index TEXT: string key columns of a merge target it creates are
    VARCHAR(255) (Spark's `createTableColumnTypes`)."""
    string_keys = [
        f.name for f in df.schema.fields if f.name in keys and isinstance(f.dataType, StringType)
    ]
    return (
        ", ".join(f"`{k.replace('`', '``')}` VARCHAR({MARIADB_KEY_VARCHAR})" for k in string_keys)
        or None
    )


# ----------------------------------------------------------------------------- the move


def _scalar(cur: DbCursor, statement: str, params: Any = None) -> Any:
    cur.execute(statement, params)
    row = cur.fetchone()
    return row[0] if row else None


def _count(cur: DbCursor, statement: str) -> int:
    """The number a `SELECT COUNT(*) ...` statement returns."""
    return int(_scalar(cur, statement))


def _no_duplicate_keys(
    cur, sql: _Sql, stage: str, keys: list[str], staged: dict[str, str], where: str
) -> None:
    cols = ", ".join(sql.col(staged[k]) for k in keys)
    cur.execute(
        f"SELECT {cols}, COUNT(*) FROM {stage} GROUP BY {cols} HAVING COUNT(*) > 1 "
        f"ORDER BY COUNT(*) DESC LIMIT 3"
    )
    dupes = cur.fetchall()
    if dupes:
        total = _scalar(
            cur,
            f"SELECT COUNT(*) FROM (SELECT 1 AS x FROM {stage} GROUP BY {cols} "
            "HAVING COUNT(*) > 1) d",
        )
        sample = "; ".join(
            ", ".join(f"{k}={v!r}" for k, v in zip(keys, row[:-1], strict=True))
            + f" ({row[-1]} rows)"
            for row in dupes
        )
        raise DatabaseTargetError(
            f"merge into {where}: {total} key(s) occur more than once in the data, e.g. "
            f"{sample}; an upsert needs one row per key: add <deduplicate keys="
            f'"{",".join(keys)}"/> before the target'
        )


def _insert(
    sql: _Sql,
    tgt: str,
    stage: str,
    staged: dict[str, str],
    table: _Table,
    mode: str,
    keys: list[str],
) -> str:
    """INSERT ... SELECT of the staging table's columns (`staged`: data column -> staging
    column) into the target's columns of the same names."""
    names = _column_map(table)
    into = [names[c.lower()] for c in staged]
    statement = (
        f"INSERT INTO {tgt} ({', '.join(sql.col(c) for c in into)}) "
        f"SELECT {', '.join(sql.col(c) for c in staged.values())} FROM {stage}"
    )
    if mode != "merge":
        return statement
    key_cols = {names[k.lower()] for k in keys}
    update = [c for c in into if c not in key_cols]
    if sql.pg:
        conflict = ", ".join(sql.col(names[k.lower()]) for k in keys)
        if not update:
            return f"{statement} ON CONFLICT ({conflict}) DO NOTHING"
        sets = ", ".join(f"{sql.col(c)} = EXCLUDED.{sql.col(c)}" for c in update)
        return f"{statement} ON CONFLICT ({conflict}) DO UPDATE SET {sets}"
    # the target's columns qualified: the SELECT's columns have the same names
    sets = ", ".join(f"{tgt}.{sql.col(c)} = VALUES({sql.col(c)})" for c in update) or ", ".join(
        f"{tgt}.{sql.col(c)} = {tgt}.{sql.col(c)}" for c in key_cols
    )
    return f"{statement} ON DUPLICATE KEY UPDATE {sets}"


def _name_columns(cur, sql: _Sql, stage: str, aliases: dict[str, str]) -> None:
    """The staging table's aliased columns (`jdbc.spark_aliases`) get their names back
    before it becomes the target."""
    if not aliases:
        return
    renames = [f"RENAME COLUMN {sql.col(a)} TO {sql.col(n)}" for n, a in aliases.items()]
    if sql.pg:  # one RENAME per ALTER TABLE
        for rename in renames:
            cur.execute(f"ALTER TABLE {stage} {rename}")
    else:
        cur.execute(f"ALTER TABLE {stage} {', '.join(renames)}")


def _create_from_stage(cur, sql: _Sql, table: _Table, stage_name: str, keys: list[str]) -> None:
    """A missing target: the staging table becomes it (with a primary key on merge keys)."""
    stage = sql.table(table.schema, stage_name)
    if keys:
        cur.execute(f"ALTER TABLE {stage} ADD PRIMARY KEY ({', '.join(sql.col(k) for k in keys)})")
    if sql.pg:
        cur.execute(f"ALTER TABLE {stage} RENAME TO {sql.col(table.name)}")
    else:
        cur.execute(f"RENAME TABLE {stage} TO {sql.table(table.schema, table.name)}")


def _replace(cur, sql: _Sql, table: _Table, stage_name: str, old_name: str | None) -> None:
    """The staging table replaces the target (MariaDB: the target moves to `old_name`, None
    on PostgreSQL)."""
    tgt = sql.table(table.schema, table.name)
    stage = sql.table(table.schema, stage_name)
    if sql.pg or old_name is None:  # transactional DDL: readers see the old table until COMMIT
        cur.execute(f"DROP TABLE {tgt}")
        cur.execute(f"ALTER TABLE {stage} RENAME TO {sql.col(table.name)}")
    else:  # one RENAME TABLE swaps both names atomically
        cur.execute(f"RENAME TABLE {tgt} TO {sql.table(table.schema, old_name)}, {stage} TO {tgt}")


def _quietly(fn, *args) -> Exception | None:
    try:
        fn(*args)
    except Exception as exc:
        return exc
    return None


def _cleanup(
    conn: DbConnection,
    endpoint: Endpoint,
    sql: _Sql,
    table: _Table | None,
    leftovers: list[str],
    log: logging.Logger,
) -> None:
    """Drop the staging (and swapped-out) table if still there; best effort. `leftovers`
    holds only names this write made (`_fresh_name`): never a table it did not create."""
    try:
        if table is not None and leftovers:
            own = _quietly(conn.rollback) is None
            if not own:
                _quietly(conn.close)
                conn = endpoint.connect()
            endpoint.autocommit_on(conn)
            cur = conn.cursor()
            for name in leftovers:
                failed = _quietly(
                    cur.execute, f"DROP TABLE IF EXISTS {sql.table(table.schema, name)}"
                )
                if failed is not None:
                    log.warning(
                        "could not drop %s.%s: %s", table.schema, name, endpoint.scrub(str(failed))
                    )
    except Exception as exc:
        log.warning("could not drop the staging table: %s", endpoint.scrub(str(exc)))
    finally:
        _quietly(conn.close)
