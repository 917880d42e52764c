"""Every environment variable the platform reads, read here and nowhere else (contract
section 3 and the platform's own tuning variables).

`Settings.from_env()` builds the settings once, at load (the definitions builder, the CLI);
asset bodies and sensors get them from the resources (`deployment.resources()`) or from the
object built at load, never from the environment at run time. `VARIABLES` is the one list
of the variables, with their defaults: README.md's environment table is checked against it
(tests/unit/test_settings_env.py). Every default makes a laptop run work; production sets
the variables.

Two other readers are allowed, each for one reason: `datahub_resources/secrets.py` resolves
`*SecretRef` names (a secret's value never becomes a setting), and `env_value` below expands
`${VAR}` references in app.yaml (the variable names are the user's, not the platform's).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Variable:
    name: str
    default: str
    description: str


VARIABLES: tuple[Variable, ...] = (
    Variable("DATAHUB_HOME", ".datahub", "Local state: catalog, warehouse, Spark, Dagster."),
    Variable("DATAHUB_PIPELINES_DIR", "pipelines_xml", "Folder of pipeline definitions."),
    Variable(
        "DATAHUB_DATA_DIR", "data", "Root of relative data paths (`<dir>/<app>/...`); s3:// too."
    ),
    Variable(
        "DATAHUB_EXPORT_ROOTS",
        "(unset: exports only below $DATAHUB_DATA_DIR/<app>/)",
        "Folders or s3:// prefixes, comma-separated, below which CSV exports may also write.",
    ),
    Variable(
        "DATAHUB_CATALOG_URI",
        "sqlite:///$DATAHUB_HOME/catalog.db",
        "SQLAlchemy URI of the Iceberg catalog database.",
    ),
    Variable("DATAHUB_WAREHOUSE", "file://$DATAHUB_HOME/warehouse", "Root of new Iceberg tables."),
    Variable(
        "DATAHUB_SPARK_REMOTE",
        "(unset: a local server)",
        "sc://host:port of a Spark Connect endpoint.",
    ),
    Variable(
        "DATAHUB_SPARK_STATE", "$DATAHUB_HOME/spark", "State and log of the local Spark server."
    ),
    Variable("DAGSTER_HOME", "$DATAHUB_HOME/dagster", "Dagster instance folder."),
    Variable("DATAHUB_EXECUTOR", "in_process", "How a run's steps execute: or multiprocess."),
    Variable("DATAHUB_WATCH_MAX_RUNS_PER_TICK", "20", "Runs one file-drop sensor tick may start."),
    Variable("DATAHUB_UI_URL", "http://localhost:3000", "Dagster UI address in notifications."),
    Variable("DATAHUB_SPARK_MASTER", "local[*]", "Master of the local server (spark://host:7077)."),
    Variable("DATAHUB_SPARK_DRIVER_MEMORY", "4g", "spark.driver.memory of the local server."),
    Variable(
        "DATAHUB_SPARK_SHUFFLE_PARTITIONS",
        "8",
        "spark.sql.shuffle.partitions of the local server.",
    ),
    Variable("DATAHUB_SPARK_UI", "false", "spark.ui.enabled of the local server."),
    Variable("DATAHUB_SPARK_PORT", "(a free port)", "Port the local server listens on."),
    Variable(
        "DATAHUB_SPARK_RETRY_SECONDS",
        "10",
        "How long a Spark Connect call retries an unreachable server.",
    ),
    Variable(
        "DATAHUB_SPARK_WATCHDOG_SECONDS", "1", "How often a step checks the local server's pid."
    ),
    Variable("DATAHUB_JARS_DIR", "~/.cache/datahub/jars", "The S3A jars `make setup` fetches."),
    Variable("DATAHUB_S3_EVENTS_QUEUE_URL", "(unset)", "SQS queue of S3 event notifications."),
    Variable("DATAHUB_S3_RELIST_SECONDS", "900", "Full re-listing interval with an events queue."),
    Variable("DATAHUB_MONGO_TIMEOUT_MS", "10000", "MongoDB server selection and connect timeout."),
    Variable("DATAHUB_MONGO_BATCH_SIZE", "2000", "Documents per MongoDB cursor batch."),
    Variable("DATAHUB_MONGO_DOCS_PER_PARTITION", "250000", "Documents per Spark read partition."),
    Variable("DATAHUB_MONGO_MAX_PARTITIONS", "8", "Upper bound of Mongo read partitions."),
    Variable(
        "DATAHUB_ENGINE",
        "spark",
        "Engine of pipelines whose definition and app.yaml name none: spark, duckdb or auto.",
    ),
    Variable(
        "DATAHUB_ENGINE_AUTO_MAX_MB",
        "2048",
        "engine=auto picks DuckDB when a pipeline's inputs total at most this many MB.",
    ),
    Variable(
        "DATAHUB_DUCKDB_MEMORY_LIMIT", "2GB", "DuckDB memory_limit; beyond it, spills to disk."
    ),
    Variable("DATAHUB_DUCKDB_THREADS", "(all cores)", "DuckDB worker threads."),
    Variable(
        "DATAHUB_MASK_KEY",
        "(a key file in $DATAHUB_HOME/secrets)",
        "Masking key when a step names no secretRef (read by secrets.py).",
    ),
    Variable(
        "DATAHUB_SECRETS_ALLOW",
        "{APP}_*,DATAHUB_SECRET_*",
        "Variables an app's *SecretRef and ${VAR} may name: fnmatch patterns, {APP} = app name.",
    ),
    Variable(
        "DATAHUB_WEBHOOK_ALLOW_HTTP",
        "0",
        "1: webhooks may use http:// to any host (default: https://, http:// to loopback only).",
    ),
    Variable("DATAHUB_SMTP_CA_FILE", "(the system CAs)", "CA bundle that verifies SMTP TLS."),
    # the front door (`datahub serve`, datahub_assets/service/settings.py reads these)
    Variable(
        "DATAHUB_STATE_URI",
        "sqlite:///$DATAHUB_HOME/hub.db",
        "SQLAlchemy URI of the service's state (users, tokens, changes, audit).",
    ),
    Variable(
        "DATAHUB_SERVICE_SECRET",
        "(a key file $DATAHUB_HOME/secrets/service.key)",
        "Key that signs access tokens (at least 32 characters).",
    ),
    Variable(
        "DATAHUB_DAGSTER_URL",
        "(unset: no reload)",
        "Dagster webserver the service reloads the code location on after a merge.",
    ),
    Variable("DATAHUB_COOKIE_SECURE", "0", "1: the session cookie is sent over HTTPS only."),
    Variable("DATAHUB_ACCESS_TOKEN_MINUTES", "15", "Lifetime of an access token."),
    Variable("DATAHUB_SESSION_HOURS", "8", "Lifetime of a browser session."),
    Variable("DATAHUB_MAX_BODY_BYTES", "5242880", "Largest request body the service reads."),
    Variable("DATAHUB_OIDC_ISSUER", "(unset: no OpenID Connect)", "OpenID Connect issuer URL."),
    Variable("DATAHUB_OIDC_CLIENT_ID", "(unset)", "OpenID Connect client id."),
    Variable("DATAHUB_OIDC_CLIENT_SECRET", "(unset)", "OpenID Connect client secret."),
    Variable("DATAHUB_OIDC_GROUPS_CLAIM", "groups", "ID-token claim listing the user's groups."),
    Variable(
        "DATAHUB_OIDC_GROUP_GRANTS",
        "(unset)",
        "group:app:role[:pii] comma-separated; app * with admin or operator: platform roles.",
    ),
)
NAMES = frozenset(v.name for v in VARIABLES)


def environ() -> Mapping[str, str]:
    """The process environment, for code that hands it on as a whole (the local Spark
    server's process, boto3-style AWS_* lookups in `s3.py`)."""
    return os.environ


def env_value(name: str) -> str | None:
    """One variable named by a user (`${VAR}` in app.yaml, the demo's CRM_DB_ADDRESS)."""
    return os.environ.get(name)


DEFAULT_SECRETS_ALLOW = ("{APP}_*", "DATAHUB_SECRET_*")
_ALLOW_PATTERN = re.compile(r"(?:[A-Za-z0-9_*?\[\]!]|\{APP\})+")


def _secrets_allow(env: Mapping[str, str]) -> tuple[str, ...]:
    """DATAHUB_SECRETS_ALLOW: comma- or space-separated fnmatch patterns of variable names."""
    value = env.get("DATAHUB_SECRETS_ALLOW") or ""
    patterns = tuple(p for p in re.split(r"[\s,]+", value) if p)
    bad = [p for p in patterns if not _ALLOW_PATTERN.fullmatch(p)]
    if bad:
        raise ValueError(
            f"DATAHUB_SECRETS_ALLOW={value!r}: {bad[0]!r} is not a pattern of variable names "
            "(letters, digits, _, the wildcards * ? [...], and {APP} for the app's name)"
        )
    return patterns or DEFAULT_SECRETS_ALLOW


def _path(env: Mapping[str, str], name: str, default: Path) -> Path:
    value = env.get(name)
    return Path(value).expanduser().resolve() if value else default.resolve()


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name) or ""
    try:
        return int(value) if value else default
    except ValueError:
        raise ValueError(f"{name}={value!r} is not an integer (default {default})") from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    value = env.get(name) or ""
    try:
        return float(value) if value else default
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a number (default {default})") from None


def _export_roots(env: Mapping[str, str]) -> tuple[str, ...]:
    value = env.get("DATAHUB_EXPORT_ROOTS") or ""
    roots = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        root = _location(str(Path(item).expanduser()) if item.startswith("~") else item)
        if not (root.startswith("/") or "://" in root):
            raise ValueError(
                f"DATAHUB_EXPORT_ROOTS={value!r}: {item!r} is neither an absolute folder nor "
                "a URI prefix such as s3://bucket/exports"
            )
        roots.append(root)
    return tuple(roots)


def _location(path: str) -> str:
    """`path` in the form export paths are compared in: local paths (file:// too) normalised
    and absolute when they were, URIs with s3a:// written s3://, no trailing slash."""
    if path.startswith("file://"):
        path = path.removeprefix("file://")
    if "://" not in path:
        return os.path.normpath(path) if path else path
    if path.startswith("s3a://"):
        path = "s3://" + path.removeprefix("s3a://")
    return path.rstrip("/")


def _below(path: str, root: str) -> bool:
    """`path` lies strictly below `root` (both `_location` forms)."""
    return path.startswith(root.rstrip("/") + "/") and len(path) > len(root.rstrip("/")) + 1


def _has_dotdot(path: str) -> bool:
    return ".." in path.split("/")


ENGINES = ("spark", "duckdb", "auto")


def _engine(env: Mapping[str, str]) -> str:
    value = (env.get("DATAHUB_ENGINE") or "spark").strip().lower()
    if value not in ENGINES:
        raise ValueError(f"DATAHUB_ENGINE={value!r} is not one of {', '.join(ENGINES)}")
    return value


@dataclass(frozen=True)
class Settings:
    home: Path
    pipelines_dir: Path
    data_dir: Path
    catalog_uri: str
    warehouse: str
    spark_remote: str | None
    spark_state_dir: Path
    dagster_home: Path
    data_uri: str | None = None
    """DATAHUB_DATA_DIR when it is an `s3://` URI (data paths resolve below it; `data_dir`
    then stays the local default, used only by local helpers such as `datahub demo`)."""
    export_roots: tuple[str, ...] = ()
    """DATAHUB_EXPORT_ROOTS: absolute folders and URI prefixes (`s3://bucket/prefix`, s3a://
    written s3://) below which a CSV export may write besides DATAHUB_DATA_DIR/<app>/."""
    executor: str | None = None
    """DATAHUB_EXECUTOR when set (it wins over the component's `executor`)."""
    watch_max_runs_per_tick: int = 20
    ui_url: str = "http://localhost:3000"
    spark_master: str = "local[*]"
    spark_driver_memory: str = "4g"
    spark_shuffle_partitions: str = "8"
    spark_ui: str = "false"
    spark_port: int | None = None
    spark_retry_seconds: float = 10.0
    spark_watchdog_seconds: float = 1.0
    jars_dir: Path = field(default_factory=lambda: Path.home() / ".cache" / "datahub" / "jars")
    s3_events_queue_url: str | None = None
    s3_relist_seconds: float = 900.0
    mongo_timeout_ms: int = 10000
    mongo_batch_size: int = 2000
    mongo_docs_per_partition: int = 250_000
    mongo_max_partitions: int = 8
    engine: str = "spark"
    """DATAHUB_ENGINE: the deployment-wide default engine (app.yaml and pipelines override)."""
    engine_auto_max_bytes: int = 2048 * 1024 * 1024
    duckdb_memory_limit: str = "2GB"
    duckdb_threads: int | None = None
    secrets_allow: tuple[str, ...] = DEFAULT_SECRETS_ALLOW
    """DATAHUB_SECRETS_ALLOW: what a definition's secrets may be named (secrets.py)."""
    webhook_allow_http: bool = False
    """DATAHUB_WEBHOOK_ALLOW_HTTP=1: plain-HTTP webhooks to any host."""
    smtp_ca_file: Path | None = None
    """DATAHUB_SMTP_CA_FILE: the CAs that verify the SMTP server (default: the system's)."""
    explicit: frozenset[str] = frozenset()
    """The variables that were set (non-empty) when the settings were read: deployment passes
    those to resources as `dg.EnvVar` so the UI names them."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings of `env` (default: the process environment). Reading the process
        environment again with the same variables (and working directory) returns the same
        object: the builder asks once per pipeline."""
        if env is None:
            key = (tuple(os.environ.get(n) for n in NAMES), str(Path.cwd()), os.environ.get("HOME"))
            cached = _CACHE.get(key)
            if cached is None:
                cached = _CACHE[key] = cls._read(os.environ)
                if len(_CACHE) > 64:
                    _CACHE.pop(next(iter(_CACHE)))
            return cached
        return cls._read(env)

    @classmethod
    def _read(cls, env: Mapping[str, str]) -> Settings:
        home = _path(env, "DATAHUB_HOME", Path(".datahub"))
        data = env.get("DATAHUB_DATA_DIR") or ""
        remote = data.rstrip("/") if data.startswith(("s3://", "s3a://")) else None
        jars = env.get("DATAHUB_JARS_DIR")
        smtp_ca = env.get("DATAHUB_SMTP_CA_FILE")
        return cls(
            home=home,
            pipelines_dir=_path(env, "DATAHUB_PIPELINES_DIR", Path("pipelines_xml")),
            data_dir=Path("data").resolve()
            if remote
            else _path(env, "DATAHUB_DATA_DIR", Path("data")),
            catalog_uri=env.get("DATAHUB_CATALOG_URI") or f"sqlite:///{home}/catalog.db",
            warehouse=env.get("DATAHUB_WAREHOUSE") or f"file://{home}/warehouse",
            spark_remote=env.get("DATAHUB_SPARK_REMOTE") or None,
            spark_state_dir=_path(env, "DATAHUB_SPARK_STATE", home / "spark"),
            dagster_home=_path(env, "DAGSTER_HOME", home / "dagster"),
            data_uri=remote,
            export_roots=_export_roots(env),
            executor=env.get("DATAHUB_EXECUTOR") or None,
            watch_max_runs_per_tick=_int(env, "DATAHUB_WATCH_MAX_RUNS_PER_TICK", 20),
            ui_url=(env.get("DATAHUB_UI_URL") or "http://localhost:3000").rstrip("/"),
            spark_master=env.get("DATAHUB_SPARK_MASTER") or "local[*]",
            spark_driver_memory=env.get("DATAHUB_SPARK_DRIVER_MEMORY") or "4g",
            spark_shuffle_partitions=env.get("DATAHUB_SPARK_SHUFFLE_PARTITIONS") or "8",
            spark_ui=env.get("DATAHUB_SPARK_UI") or "false",
            spark_port=_int(env, "DATAHUB_SPARK_PORT", 0) or None,
            spark_retry_seconds=_float(env, "DATAHUB_SPARK_RETRY_SECONDS", 10.0),
            spark_watchdog_seconds=_float(env, "DATAHUB_SPARK_WATCHDOG_SECONDS", 1.0),
            jars_dir=Path(jars).expanduser()
            if jars
            else Path.home() / ".cache" / "datahub" / "jars",
            s3_events_queue_url=env.get("DATAHUB_S3_EVENTS_QUEUE_URL") or None,
            s3_relist_seconds=_float(env, "DATAHUB_S3_RELIST_SECONDS", 900.0),
            mongo_timeout_ms=_int(env, "DATAHUB_MONGO_TIMEOUT_MS", 10000),
            mongo_batch_size=_int(env, "DATAHUB_MONGO_BATCH_SIZE", 2000),
            mongo_docs_per_partition=_int(env, "DATAHUB_MONGO_DOCS_PER_PARTITION", 250_000),
            mongo_max_partitions=_int(env, "DATAHUB_MONGO_MAX_PARTITIONS", 8),
            engine=_engine(env),
            engine_auto_max_bytes=_int(env, "DATAHUB_ENGINE_AUTO_MAX_MB", 2048) * 1024 * 1024,
            duckdb_memory_limit=env.get("DATAHUB_DUCKDB_MEMORY_LIMIT") or "2GB",
            duckdb_threads=_int(env, "DATAHUB_DUCKDB_THREADS", 0) or None,
            secrets_allow=_secrets_allow(env),
            webhook_allow_http=(env.get("DATAHUB_WEBHOOK_ALLOW_HTTP") or "0").strip() == "1",
            smtp_ca_file=Path(smtp_ca).expanduser().resolve() if smtp_ca else None,
            explicit=frozenset(n for n in NAMES if env.get(n)),
        )

    def data_path(self, app: str, path: str) -> str:
        """A data path: s3:// and absolute paths as written, else under DATAHUB_DATA_DIR/<app>/
        (which a relative path cannot leave: a `..` component is refused)."""
        if "://" in path or path.startswith("/"):
            return path
        if _has_dotdot(path):
            raise ValueError(
                f"data path {path!r} has a '..' component: relative data paths stay below "
                f"DATAHUB_DATA_DIR/{app}/"
            )
        if self.data_uri:
            return f"{self.data_uri}/{app}/{path}"
        return str(self.data_dir / app / path)

    def export_path(self, app: str, path: str) -> str:
        """Where a CSV export of `app` to `path` writes (`data_path`), if an export may write
        there (`export_path_problem`); else ValueError saying why."""
        problem = self.export_path_problem(app, path)
        if problem:
            raise ValueError(f'export path "{path}" {problem}')
        return self.data_path(app, path)

    def export_path_problem(self, app: str, path: str) -> str | None:
        """Why a CSV export of `app` may not write `path` (None: it may). An export replaces
        its folder (mode="overwrite"), so it writes only strictly below the app's data folder
        (a relative path without `..`; absolute or s3:// paths inside it) or below a folder
        the operator lists in DATAHUB_EXPORT_ROOTS."""
        roots = ", ".join(self.export_roots) or "unset"
        if _has_dotdot(path):
            return (
                f"has a '..' component; an export writes below DATAHUB_DATA_DIR/{app}/ or "
                f"below an export root (DATAHUB_EXPORT_ROOTS: {roots}): write the path without '..'"
            )
        relative = not ("://" in path or path.startswith("/"))
        if relative and _location(path) in ("", "."):
            return (
                f"names the app's data folder itself (DATAHUB_DATA_DIR/{app}/), which an "
                "overwrite would replace; name a folder below it, e.g. service/<name>"
            )
        data_root = _location(
            f"{self.data_uri}/{app}" if self.data_uri else str(self.data_dir / app)
        )
        where = _location(self.data_path(app, path))
        if any(_below(where, root) for root in (data_root, *self.export_roots)):
            return None
        return (
            f"is outside the folders an export may write: below DATAHUB_DATA_DIR/{app}/ (use "
            f"a relative path such as service/<name>) or below an export root the operator "
            f"allows (DATAHUB_EXPORT_ROOTS: {roots})"
        )


_CACHE: dict[tuple, Settings] = {}
