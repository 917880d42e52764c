"""Source helpers of the wizard (the Morphix design): what an app can read, without writing.

    connections(pipelines_dir, app)                  [{"name", "kind"}] from app.yaml
    tables(pipelines_dir, app, name, settings)       [{"name", "schema", "table"}] (JDBC) or
                                                     [{"name", "database", "collection"}] (mongo)
    table_schema(pipelines_dir, app, name, table, settings)
                                                     {"name", "columns": [{"name", "type",
                                                     "nullable"}]} (+ "json_schema", "sampled"
                                                     for mongo: `datahub mongo infer-schema`'s
                                                     inference)
    landing_files(pipelines_dir, app, settings)      [{"name", "size", "source", "pipeline"}]
    landing_header(pipelines_dir, app, name, settings)
                                                     {"name", "header", "rows"}

Secrets: a connection's credentials are resolved within the app's scope
(`datahub_resources.secrets.resolve`) and never returned; errors are scrubbed of them (the
JDBC endpoint's `scrub`, the mongo reader's `scrub`). Answers carry names and kinds only,
never a URL.

User text never becomes SQL or a path: a table name must match `TABLE_NAME` and reaches the
database as a bound parameter of an information_schema query; a landing file is chosen
by its exact name among the listed ones (the listing is computed again), read capped at
`HEADER_BYTES`.

Errors: `UnknownName` (404: no such connection, table or landing file), `BadName` (422), and
`ConnectionFailed` (502: the database could not be reached or answered an error).
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datahub_assets.spec.models import AppConfig, Connection

TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}(\.[A-Za-z_][A-Za-z0-9_$]{0,62})?$")
COLLECTION_NAME = re.compile(
    r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,62}(\.[A-Za-z0-9_][A-Za-z0-9_.-]{0,119})?$"
)
MAX_TABLES = 2000
MAX_FILES = 1000
HEADER_BYTES = 64 * 1024
HEADER_ROWS = 10
STATEMENT_TIMEOUT_S = 10
MONGO_TIMEOUT_MS = 5000
SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "mysql", "performance_schema", "sys")
LANDING_KINDS = ("csv", "json")


class SourceHelperError(Exception):
    status = 400


class UnknownName(SourceHelperError):
    status = 404


class BadName(SourceHelperError):
    status = 422


class ConnectionFailed(SourceHelperError):
    status = 502


# ------------------------------------------------------------------------------ app.yaml


def app_config(pipelines_dir: Path, app: str) -> AppConfig:
    """The app's app.yaml as the loader reads it (defaults when absent)."""
    from datahub_assets.spec.errors import SpecErrors
    from datahub_assets.spec.loader import read_definition
    from datahub_assets.spec.yaml_reader import read_app_yaml

    for name in ("app.yaml", "app.yml"):
        path = Path(pipelines_dir) / app / name
        if path.is_file():
            rel = f"{app}/{name}"
            try:
                return read_app_yaml(read_definition(path, rel), rel)
            except SpecErrors as exc:
                raise BadName(f"{rel} does not load: {exc.errors[0]}") from None
    return AppConfig()


def _kind(conn: Connection) -> str:
    if conn.uri_secret_ref:
        return "mongo"
    url = (conn.jdbc_url or "").lower()
    for scheme in ("postgresql", "mariadb", "mysql"):
        if url.startswith(f"jdbc:{scheme}:"):
            return "postgresql" if scheme == "postgresql" else "mariadb"
    return "unknown"


def connections(pipelines_dir: Path, app: str) -> list[dict]:
    """The app's named connections: name and kind (postgresql | mariadb | mongo) only."""
    config = app_config(pipelines_dir, app)
    return [{"name": n, "kind": _kind(c)} for n, c in sorted(config.connections.items())]


def _connection(pipelines_dir: Path, app: str, name: str) -> Connection:
    conn = app_config(pipelines_dir, app).connections.get(name)
    if conn is None:
        raise UnknownName(f"app {app} has no connection {name!r} in its app.yaml")
    return conn


# ---------------------------------------------------------------------------------- JDBC


@dataclass(frozen=True)
class _Jdbc:
    endpoint: Any

    def run(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Rows of one read-only statement (bound parameters), under a statement timeout."""
        from datahub_assets.execute.jdbc import JdbcError
        from datahub_assets.execute.preview import query_rows
        from datahub_assets.execute.sources import SourceError

        try:
            return query_rows(self.endpoint, sql, params, STATEMENT_TIMEOUT_S)[1]
        except (JdbcError, SourceError) as exc:  # both scrubbed of the password
            raise ConnectionFailed(self.endpoint.scrub(str(exc))) from None


def _jdbc(conn: Connection, app: str) -> _Jdbc:
    from datahub_assets.execute.jdbc import JdbcError, endpoint

    try:
        return _Jdbc(endpoint(conn.jdbc_url or "", conn.user_secret_ref, app))
    except (JdbcError, KeyError) as exc:  # the secret's name, never its value
        raise ConnectionFailed(str(exc)) from None


def _jdbc_tables(db: _Jdbc) -> list[dict]:
    marks = ", ".join(["%s"] * len(SYSTEM_SCHEMAS))
    where = f"table_schema NOT IN ({marks}) AND table_schema NOT LIKE %s"
    params: tuple = (*SYSTEM_SCHEMAS, "pg_%")
    if db.endpoint.dialect.name != "postgresql" and db.endpoint.database:
        where += " AND table_schema = DATABASE()"
    rows = db.run(
        "SELECT table_schema, table_name FROM information_schema.tables "
        f"WHERE {where} ORDER BY table_schema, table_name LIMIT {MAX_TABLES}",
        params,
    )
    pg = db.endpoint.dialect.name == "postgresql"
    return [
        {"name": t if (pg and s == "public") or not pg else f"{s}.{t}", "schema": s, "table": t}
        for s, t in rows
    ]


def _jdbc_schema(db: _Jdbc, table: str) -> list[dict]:
    pg = db.endpoint.dialect.name == "postgresql"
    if "." in table:
        schema, name = table.split(".", 1)
        where, params = "table_schema = %s AND table_name = %s", (schema, name)
    elif pg:
        where, params = "table_schema = %s AND table_name = %s", ("public", table)
    else:
        where, params = "table_schema = DATABASE() AND table_name = %s", (table,)
    type_col = "data_type" if pg else "column_type"
    rows = db.run(
        f"SELECT column_name, {type_col}, is_nullable FROM information_schema.columns "
        f"WHERE {where} ORDER BY ordinal_position",
        params,
    )
    return [{"name": c, "type": str(t), "nullable": str(n).upper() == "YES"} for c, t, n in rows]


# --------------------------------------------------------------------------------- mongo


def _mongo_uri(conn: Connection, app: str) -> str:
    from datahub_resources import secrets

    try:
        return secrets.resolve(conn.uri_secret_ref or "", app)
    except KeyError as exc:
        raise ConnectionFailed(str(exc)) from None


def _mongo(uri: str, work):
    from datahub_assets.execute.mongo.read import mongo_client, secrets_of
    from datahub_assets.execute.mongo.worker import scrub

    try:
        client = mongo_client(uri, MONGO_TIMEOUT_MS)
        try:
            return work(client)
        finally:
            client.close()
    except SourceHelperError:
        raise
    except Exception as exc:  # noqa: BLE001 - the driver's errors, scrubbed
        text = scrub(f"{type(exc).__name__}: {exc}", secrets_of(uri))
        raise ConnectionFailed(f"MongoDB answered: {text.splitlines()[0][:300]}") from None


def _default_db(client) -> str | None:
    try:
        return client.get_default_database().name
    except Exception:  # noqa: BLE001 - ConfigurationError: the URI names no database
        return None


def _mongo_tables(uri: str) -> list[dict]:
    def work(client):
        default = _default_db(client)
        names = (
            [default]
            if default
            else [d for d in client.list_database_names() if d not in ("admin", "local", "config")]
        )
        out = []
        for db in names:
            for coll in sorted(client[db].list_collection_names()):
                if coll.startswith("system."):
                    continue
                name = coll if default else f"{db}.{coll}"
                out.append({"name": name, "database": db, "collection": coll})
        return out[:MAX_TABLES]

    return _mongo(uri, work)


def _mongo_schema(uri: str, table: str, sample: int = 1000) -> dict:
    from datahub_assets.execute.mongo import infer
    from datahub_assets.execute.mongo.read import sample_documents

    def work(client):
        default = _default_db(client)
        if default:
            db, coll = default, table
        elif "." in table:
            db, coll = table.split(".", 1)
        else:
            raise BadName(
                f"{table!r}: the connection's URI names no database; write <db>.<collection>"
            )
        if coll not in client[db].list_collection_names():
            raise UnknownName(f"no collection {table!r}")
        docs = sample_documents(client[db][coll], {}, sample, None)
        schema = infer.infer_schema(docs)
        return {
            "name": table,
            "columns": [
                {"name": f.name, "type": infer.type_name(f.type), "nullable": f.nullable}
                for f in schema.fields
            ],
            "sampled": len(docs),
            "json_schema": infer.to_json_schema(schema, f"{db}.{coll}", len(docs)),
        }

    return _mongo(uri, work)


# --------------------------------------------------------------------------- public calls


def tables(pipelines_dir: Path, app: str, name: str) -> list[dict]:
    """The tables (JDBC) or collections (mongo) of the app's connection `name`."""
    conn = _connection(pipelines_dir, app, name)
    if conn.uri_secret_ref:
        return _mongo_tables(_mongo_uri(conn, app))
    if not conn.jdbc_url:
        raise BadName(f"connection {name!r} has neither jdbcUrl nor uriSecretRef")
    return _jdbc_tables(_jdbc(conn, app))


def table_schema(pipelines_dir: Path, app: str, name: str, table: str) -> dict:
    """The columns and types of `table` of connection `name` (mongo: inferred from a sample,
    as `datahub mongo infer-schema` infers it)."""
    conn = _connection(pipelines_dir, app, name)
    if conn.uri_secret_ref:
        if not COLLECTION_NAME.fullmatch(table or ""):
            raise BadName(
                "collection: letters, digits, _ and - (and <db>.<collection>), at most 120"
            )
        return _mongo_schema(_mongo_uri(conn, app), table)
    if not TABLE_NAME.fullmatch(table or ""):
        raise BadName(
            "table: an identifier (letters, digits, _ and $, starting with a letter or _), "
            "optionally schema-qualified (schema.table)"
        )
    columns = _jdbc_schema(_jdbc(conn, app), table)
    if not columns:
        raise UnknownName(f"connection {name!r} has no table {table!r}")
    return {"name": table, "columns": columns}


# -------------------------------------------------------------------------------- landing


@dataclass(frozen=True)
class LandingFile:
    name: str
    path: Path
    size: int
    source: str
    pipeline: str
    kind: str
    delimiter: str


def _pipeline_sources(pipelines_dir: Path, app: str) -> list[tuple[str, Any]]:
    """(pipeline id, source) of the app's csv/json sources; files that do not read are
    skipped (the wizard lists what it can)."""
    from datahub_assets.spec.loader import LAYER_DIRS, SUFFIXES, read_definition, read_pipeline_text

    out = []
    app_dir = Path(pipelines_dir) / app
    for layer in LAYER_DIRS:
        folder = app_dir / layer
        if not folder.is_dir() or folder.is_symlink():
            continue
        for file in sorted(folder.iterdir()):
            if not (file.is_file() and file.suffix in SUFFIXES) or file.is_symlink():
                continue
            rel = f"{app}/{layer}/{file.name}"
            try:
                pipeline = read_pipeline_text(read_definition(file, rel), rel)
            except Exception:  # noqa: BLE001 - a broken file has no landing folder to offer
                continue
            out += [(pipeline.id, s) for s in pipeline.sources if s.kind in LANDING_KINDS]
    return out


def _landing_folder(root: Path, pattern: str) -> Path:
    """The folder a source's path names: the part of a glob before its first wildcard, a
    file's parent, else the path itself (a folder not made yet lists nothing, never its
    parent's other files)."""
    parts = Path(pattern).parts
    fixed: list[str] = []
    for part in parts:
        if any(ch in part for ch in "*?[{"):
            return root.joinpath(*fixed)
        fixed.append(part)
    path = root.joinpath(*fixed)
    return path.parent if path.is_file() else path


def landing(pipelines_dir: Path, app: str, data_dir: Path) -> list[LandingFile]:
    """Files in the landing folders of the app's csv/json sources, and in the app's drop
    folder DATAHUB_DATA_DIR/<app>/landing/ (where a new pipeline's files wait before any
    pipeline reads them), below DATAHUB_DATA_DIR/<app>/ (symlinks leaving it are not
    listed)."""
    root = (Path(data_dir) / app).resolve()
    found: dict[str, LandingFile] = {}
    for pipeline_id, source in _pipeline_sources(pipelines_dir, app):
        path = source.path
        if "://" in path or path.startswith("/") or ".." in Path(path).parts:
            continue
        delimiter = getattr(source, "delimiter", ",") or ","
        _collect(
            found, root, _landing_folder(root, path), source.id, pipeline_id, source.kind, delimiter
        )
    for file_kind, suffixes in UNREAD_KINDS.items():
        _collect(found, root, root / "landing", "", "", file_kind, ",", suffixes)
    return sorted(found.values(), key=lambda f: f.name)


# files in <app>/landing/ that no pipeline reads yet, by suffix
UNREAD_KINDS = {"csv": (".csv", ".tsv", ".txt"), "json": (".json", ".jsonl", ".ndjson")}


def _collect(
    found: dict[str, LandingFile],
    root: Path,
    folder: Path,
    source: str,
    pipeline: str,
    kind: str,
    delimiter: str,
    suffixes: tuple[str, ...] | None = None,
) -> None:
    """Add the files below `folder` (not dot/underscore ones, not leaving `root`) to
    `found`, first come first kept, at most MAX_FILES in all."""
    if not folder.is_dir():
        return
    for file in sorted(folder.rglob("*")):
        if len(found) >= MAX_FILES:
            return
        rel_parts = file.relative_to(root).parts
        if any(p.startswith((".", "_")) for p in rel_parts) or not file.is_file():
            continue
        if suffixes is not None and file.suffix.lower() not in suffixes:
            continue
        real = file.resolve()
        if not real.is_relative_to(root):
            continue
        name = "/".join(rel_parts)
        found.setdefault(
            name,
            LandingFile(name, real, real.stat().st_size, source, pipeline, kind, delimiter),
        )


def landing_files(pipelines_dir: Path, app: str, data_dir: Path) -> list[dict]:
    return [
        {"name": f.name, "size": f.size, "source": f.source or None, "pipeline": f.pipeline or None}
        for f in landing(pipelines_dir, app, data_dir)
    ]


def landing_header(pipelines_dir: Path, app: str, name: str, data_dir: Path) -> dict:
    """The header and first rows of the landing file named `name` (exactly one of the listed
    names; read at most HEADER_BYTES)."""
    match = next((f for f in landing(pipelines_dir, app, data_dir) if f.name == name), None)
    if match is None:
        raise UnknownName(f"no landing file {name!r} in app {app} (GET .../landing lists them)")
    with match.path.open("rb") as fh:
        data = fh.read(HEADER_BYTES + 1)
    truncated = len(data) > HEADER_BYTES
    text = data[:HEADER_BYTES].decode("utf-8", errors="replace")
    lines = text.splitlines()
    if truncated and lines:
        lines = lines[:-1]  # the last line may be cut
    if match.kind == "json":
        return _json_header(name, lines)
    rows = list(
        csv.reader(
            io.StringIO("\n".join(lines[: HEADER_ROWS + 1])), delimiter=match.delimiter[:1] or ","
        )
    )
    return {
        "name": name,
        "kind": "csv",
        "header": rows[0] if rows else [],
        "rows": rows[1 : HEADER_ROWS + 1],
    }


def _json_header(name: str, lines: list[str]) -> dict:
    records = []
    for line in lines:
        if len(records) >= HEADER_ROWS:
            break
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            records.append(value)
    header: list[str] = []
    for r in records:
        header += [k for k in r if k not in header]
    rows = [[_cell(r.get(k)) for k in header] for r in records]
    return {"name": name, "kind": "json", "header": header, "rows": rows}


def _cell(value: Any) -> Any:
    return (
        value if isinstance(value, str | int | float | bool) or value is None else json.dumps(value)
    )
