"""Rules within one pipeline (beyond the XSD / model), and its targets' asset identities."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from datahub_assets.spec.durations import DURATION
from datahub_assets.spec.errors import SpecError
from datahub_assets.spec.models import (
    LAYER_ALIASES,
    LAYERS,
    Aggregate,
    AppConfig,
    Connection,
    CsvSource,
    CsvTarget,
    DatabaseSource,
    DatabaseTarget,
    Deduplicate,
    FreshnessCheck,
    Join,
    JsonSource,
    Lookup,
    LookupSource,
    Mask,
    Merge,
    MongoSource,
    Pipeline,
    ReferentialCheck,
    ResolvedTarget,
    Select,
    Sql,
    TableRef,
    TableTarget,
)
from datahub_assets.spec.schema_files import (
    SchemaFile,
    SchemaFileError,
    is_remote,
    read_schema_file,
)
from datahub_assets.spec.sql_params import Param, SqlScanError, dialect_of_url, find_params
from datahub_resources.settings import Settings

METRIC_FUNCTIONS = (
    "count",
    "count_distinct",
    "sum",
    "avg",
    "min",
    "max",
    "first",
    "last",
    "stddev",
)
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
CRON_MACROS = ("@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually")
CRON_HELP = (
    "allowed: 5 fields 'minute hour day-of-month month day-of-week' (e.g. \"0 2 * * *\", "
    '"*/15 * * * 1-5") or one of ' + ", ".join(CRON_MACROS)
)
_GLOB = set("*?[]{}%")


def canonical_layer(value: str) -> str:
    return LAYER_ALIASES.get(value, value)


CRON_FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")


def cron_problem(cron: str) -> str | None:
    """Why Dagster would refuse `cron` as a schedule (None: it accepts it). Uses Dagster's own
    check (`dagster._utils.schedules.is_valid_cron_string`, its vendored croniter underneath),
    imported only when a definition has a schedule: the spec layer imports without dagster."""
    from dagster._utils.schedules import CroniterShim, is_valid_cron_string

    fields = cron.split()
    if not (len(fields) == 1 and fields[0].startswith("@")) and len(fields) != 5:
        return f"found {len(fields)} fields, Dagster schedules have 5 (no seconds)"
    if is_valid_cron_string(cron):
        return None
    for i, field in enumerate(fields if len(fields) == 5 else ()):
        probe = ["*"] * 5
        probe[i] = field
        try:
            CroniterShim.expand(" ".join(probe))
        except Exception as exc:  # noqa: BLE001 - croniter raises several types; its text says why
            why = "out of range" if "range" in str(exc) else "not valid"
            return f"{CRON_FIELDS[i]} field {field!r} is {why}"
    if len(fields) == 1:
        return f"unknown macro {fields[0]!r}"
    return "it never fires (e.g. the 30th or 31st of February)"


class PipelineCheck:
    """Collects errors for one pipeline; `node` positions come from each element's Loc."""

    def __init__(self, pipeline: Pipeline, file: str) -> None:
        self.p, self.file = pipeline, file
        self.errors: list[SpecError] = []

    def err(self, node: Any, message: str) -> None:
        loc = getattr(node, "loc", None) or self.p.loc
        line, col = (loc.line, loc.column) if loc else (0, 0)
        self.errors.append(SpecError(self.file, line, col, message))

    # ------------------------------------------------------------------ rules
    def run(
        self,
        folder_layer: str,
        app: AppConfig,
        job_params: frozenset[str] = frozenset(),
        app_dir: Path | None = None,
    ) -> list[SpecError]:
        """`job_params`: parameters declared by every job pipeline that runs this pipeline
        (its database <sql> may use them). `app_dir`: the app's folder, where schemaRef files
        are read and parsed (`self.schemas`); None skips them (a pipeline read alone)."""
        self.job_params = job_params
        self.schemas: dict[str, SchemaFile] = {}
        p = self.p
        if p.layer != canonical_layer(folder_layer):
            self.err(
                p,
                f'layer="{p.layer}" does not match its folder "{folder_layer}/"; '
                f"allowed: {canonical_layer(folder_layer)} (or move the file)",
            )
        self.metadata()
        datasets = self.sources(app)
        self.steps(datasets)
        self.targets(datasets, app)
        self.checks()
        self.incremental()
        self.quarantine()
        if app_dir is not None:
            self.schema_refs(app_dir)
            self.lookup_files(app_dir)
            self.data_paths(app_dir.name)
        return self.errors

    def data_paths(self, app: str) -> None:
        """A relative data path stays in the app's data folder (no `..`), and a csv target
        writes only where an export may replace a folder (`Settings.export_path_problem`:
        below DATAHUB_DATA_DIR/<app>/ or below a DATAHUB_EXPORT_ROOTS folder)."""
        for src in self.p.sources:
            path = "" if isinstance(src, LookupSource) else getattr(src, "path", None) or ""
            if ".." in path.split("/"):
                self.err(
                    src,
                    f'path="{path}" on <{src.kind}> source "{src.id}" has a \'..\' component; '
                    f"data paths stay below DATAHUB_DATA_DIR/{app}/: write it without '..'",
                )
        settings = Settings.from_env()
        for target in self.p.targets:
            if not isinstance(target, CsvTarget):
                continue
            problem = settings.export_path_problem(app, target.path)
            if problem:
                name = self.asset_name(target)
                self.err(target, f'path="{target.path}" on <csv> target "{name}" {problem}')

    def incremental(self) -> None:
        """An incremental source's watermark is committed with its pipeline's first table
        target, and each run reads only the new rows (execute/runner.py `_watermarks`)."""
        sources = [s for s in self.p.sources if s.incremental is not None]
        if not sources:
            return
        first = sources[0]
        tables = [t for t in self.p.targets if isinstance(t, TableTarget)]
        if not tables:
            self.err(
                first.incremental,
                f'source "{first.id}" is incremental but the pipeline has no <table> target '
                "to record its watermark in; add a <table> target or remove <incremental>",
            )
        for t in tables:
            if t.mode == "overwrite" and not t.partition_by:
                self.err(
                    t,
                    f'<table table="{t.table}"> is written with mode="overwrite" from '
                    f'incremental source "{first.id}", which would replace the table with only '
                    'the new rows; use mode="append" or "merge", or add partitionBy= to '
                    "replace only the partitions that changed",
                )

    def quarantine(self) -> None:
        """Quarantined rows go to `<first table target>__quarantine`: an explicit
        onInvalid="quarantine" needs one. (The raw layer's unset default for malformed csv/json
        records is quarantine only when there is a table to put them next to, else fail:
        `malformed_policy`.)"""
        if any(isinstance(t, TableTarget) for t in self.p.targets):
            return
        for src in self.p.sources:
            policy = getattr(src, "on_invalid", None)
            if policy == "quarantine":
                self.err(
                    src,
                    f'onInvalid="quarantine" on <{src.kind}> source "{src.id}" puts bad rows in '
                    "<table>__quarantine next to the pipeline's first <table> target, and "
                    'it has none; add a <table> target or set onInvalid="fail" or "drop"',
                )

    def lookup_files(self, app_dir: Path) -> None:
        """A lookup source's CSV ships with the definitions: under the app folder (or its
        `lookups/`), or absolute; `s3://` lookups are read only at run time."""
        for src in self.p.sources:
            if not isinstance(src, LookupSource) or "://" in src.path:
                continue
            base = Path(src.path) if src.path.startswith("/") else app_dir / src.path
            candidates = (
                [base] if src.path.startswith("/") else [base, app_dir / "lookups" / src.path]
            )
            if not any(c.exists() or any(c.parent.glob(c.name)) for c in candidates):
                self.err(
                    src,
                    f'path="{src.path}" on <lookup> source "{src.id}" names no file; looked '
                    f"in {', '.join(str(c) for c in candidates)}",
                )

    def schema_refs(self, app_dir: Path) -> None:
        """Every local schemaRef file exists and parses (spec/schema_files.py); the parsed
        columns are kept for the run and for column descriptions."""
        nodes = [*self.p.sources, *self.p.targets, *self.p.checks]
        for node in nodes:
            ref = getattr(node, "schema_ref", None)
            if not ref or is_remote(ref):
                continue
            if ref in self.schemas:
                continue
            try:
                self.schemas[ref] = read_schema_file(app_dir, ref)
            except SchemaFileError as exc:
                what = f"<{node.kind}>" + (f' source "{node.id}"' if node in self.p.sources else "")
                where = " (schemaRef resolves under the app folder, e.g. schemas/x.avsc)"
                self.err(node, f'schemaRef="{ref}" on {what}: {exc}{where}')

    def metadata(self) -> None:
        meta = self.p.metadata
        if meta.sla is not None and not DURATION.match(meta.sla):
            self.err(
                meta,
                f'sla="{meta.sla}" in <metadata> is not an ISO-8601 duration; '
                "allowed: e.g. PT2H, PT30M, P1D",
            )
        if meta.schedule is not None:
            self.cron(meta, meta.schedule)

    def cron(self, node: Any, cron: str) -> None:
        problem = cron_problem(cron)
        if problem:
            self.err(node, f'schedule="{cron}" is not a cron expression: {problem}; {CRON_HELP}')

    def sources(self, app: AppConfig) -> list[str]:
        for section in ("sources", "targets"):
            if not getattr(self.p, section):
                self.err(self.p, f"a pipeline needs at least one entry in {section}")
        seen: dict[str, Any] = {}
        for src in self.p.sources:
            if src.id in seen:
                line = seen[src.id].loc.line if seen[src.id].loc else 0
                self.err(
                    src,
                    f'source id="{src.id}" is already used at line {line}; '
                    "source ids must be unique within a pipeline",
                )
            seen.setdefault(src.id, src)
            watch = getattr(src, "watch", None)
            if watch is not None and self.p.layer != "raw":
                self.err(
                    watch,
                    f'<watch> on source "{src.id}" is only allowed in raw-layer '
                    f"pipelines; this pipeline's layer is {self.p.layer}",
                )
            if watch is not None and not any(isinstance(t, TableTarget) for t in self.p.targets):
                self.err(
                    watch,
                    f'<watch> on source "{src.id}" needs a <table> target: the '
                    "rows and the record of the files they came from commit "
                    "together to Iceberg",
                )
            if watch is not None and src.incremental is not None:
                self.err(
                    src.incremental,
                    f'source "{src.id}" has both <watch> and '
                    "<incremental>: a watched source already reads each "
                    "file once; remove <incremental>",
                )
            if isinstance(src, DatabaseSource):
                self.database_source(src, app)
            if isinstance(src, MongoSource):
                self.mongo_source(src, app)
            on_invalid = getattr(src, "on_invalid", None)
            # csv/json: without schemaRef onInvalid governs malformed records only
            if (
                on_invalid is not None
                and not getattr(src, "schema_ref", None)
                and not (isinstance(src, MongoSource | CsvSource | JsonSource))
            ):
                self.err(
                    src,
                    f'onInvalid="{on_invalid}" on <{src.kind}> source '
                    f'"{src.id}" requires schemaRef= (the declared schema rows '
                    "are cast to and validated against)",
                )
        return list(seen)

    def connection(self, node: Any, app: AppConfig) -> Connection | None:
        """The app.yaml connection `node` names (None: it names none, or an unknown one)."""
        name = node.connection
        if name is not None and name not in app.connections:
            allowed = ", ".join(sorted(app.connections)) or "none (app.yaml defines none)"
            self.err(
                node,
                f'connection="{name}" on <{node.kind}> is not defined in the '
                f"app's app.yaml connections; allowed: {allowed}",
            )
            return None
        return app.connections.get(name) if name else None

    def jdbc_endpoint(self, node: Any, app: AppConfig, what: str) -> None:
        """jdbcUrl= or connection= given, known, and a JDBC URL Data Hub can use."""
        conn = self.connection(node, app)
        if node.connection is not None and conn is None:
            return
        url = node.jdbc_url or (conn.jdbc_url if conn else None)
        if url is None:
            via = f' (connection "{node.connection}" in app.yaml has no jdbcUrl)' if conn else ""
            self.err(node, f"{what} needs jdbcUrl= or connection={via}")
            return
        problem = jdbc_url_problem(url)
        if problem:
            via = f' (from connection "{node.connection}" in app.yaml)' if not node.jdbc_url else ""
            self.err(node, f'jdbcUrl "{redact_jdbc_url(url)}"{via} {problem}')

    def database_source(self, src: DatabaseSource, app: AppConfig) -> None:
        what = f'<database> source "{src.id}"'
        self.jdbc_endpoint(src, app, what)
        if (src.sql is None) == (src.table_name is None):
            self.err(src, f"{what} needs exactly one of <sql> or <table name=...>")
        self.db_table_name(src, src.table_name, what, app)
        if (src.partition_column is None) != (src.num_partitions is None):
            self.err(
                src,
                f"{what}: partitionColumn= and numPartitions= go together (the column "
                "to split on and how many parallel reads)",
            )
        if src.sql is not None:
            allowed = (
                ["runDate"]
                + (["watermark"] if src.incremental else [])
                + sorted(getattr(self, "job_params", frozenset()) - {"runDate"})
            )
            for param in self.sql_params(src, app, what):
                if param.name not in allowed:
                    self.err(
                        src,
                        f"{what}: <sql> names parameter :{param.name}, which no run "
                        f"defines; allowed: {', '.join(':' + a for a in allowed)} "
                        "(and parameters declared by every job pipeline that runs "
                        "this pipeline; write :: for a PostgreSQL cast)",
                    )
        if src.incremental is not None:
            tables = [t for t in self.p.targets if isinstance(t, TableTarget)]
            if not tables or any(t.mode != "merge" or not t.keys for t in tables):
                self.err(
                    src.incremental,
                    f"{what} is incremental: each run reads the rows at "
                    "or above the watermark again (so rows committed later with the same "
                    'value are not lost), so its <table> targets must use mode="merge" '
                    "with keys= to keep them once",
                )

    def sql_params(self, src: DatabaseSource, app: AppConfig, what: str) -> list[Param]:
        """The `:name` parameters of a source's <sql> as its database reads them (none when
        the URL names no supported database: `jdbc_endpoint` reports that)."""
        conn = app.connections.get(src.connection) if src.connection else None
        dialect = dialect_of_url(src.jdbc_url or (conn.jdbc_url if conn else None))
        if dialect is None or src.sql is None:
            return []
        try:
            return find_params(src.sql, dialect)
        except SqlScanError as e:
            self.err(src, f"{what}: {e}")
            return []

    def db_table_name(self, node: Any, name: str | None, what: str, app: AppConfig) -> None:
        """`table` or `schema.table` (PostgreSQL) / `database.table` (MariaDB, MySQL): what
        the JDBC reader quotes and the database writer locates; each part a name the
        database holds as written (PostgreSQL would cut a long one: a write under the cut
        name is never found again)."""
        if name is None:
            return
        parts = name.split(".")
        if len(parts) > 2 or not all(p.strip() for p in parts):
            self.err(
                node,
                f'{what}: <table name="{name}"> is not a table name; allowed: table or '
                "schema.table (database.table on MariaDB/MySQL)",
            )
            return
        conn = app.connections.get(node.connection) if node.connection else None
        dialect = dialect_of_url(node.jdbc_url or (conn.jdbc_url if conn else None))
        for part in parts if dialect else ():
            problem = jdbc_name_problem(part, dialect or "")
            if problem:
                self.err(node, f'{what}: <table name="{name}">: "{part}" {problem}; shorten it')

    def mongo_source(self, src: MongoSource, app: AppConfig) -> None:
        what = f'<mongo> source "{src.id}"'
        conn = self.connection(src, app)
        if src.connection is not None and conn is None:
            pass
        elif not (src.uri_secret_ref or (conn and conn.uri_secret_ref)):
            via = (
                f' (connection "{src.connection}" in app.yaml has no uriSecretRef)' if conn else ""
            )
            self.err(
                src,
                f"{what} needs uriSecretRef= (the secret holding the mongodb:// URI) "
                f"or connection={via}",
            )
        for element in ("filter", "projection"):
            text = getattr(src, element)
            if text is None:
                continue
            problem = json_object_problem(text)
            if problem:
                self.err(src, f"{what}: <{element}> {problem}")
        if src.on_invalid is not None and not src.schema_ref:
            self.err(
                src,
                f'onInvalid="{src.on_invalid}" on {what} requires schemaRef= (the '
                "pinned schema documents are checked against)",
            )

    def steps(self, datasets: list[str]) -> None:
        for step in self.p.transformations:
            for attr, ref in _step_refs(step):
                if ref not in datasets:
                    self.err(
                        step,
                        f'{attr}="{ref}" on <{step.kind}> names no dataset defined '
                        f"before this step; allowed: {', '.join(datasets)}",
                    )
            if isinstance(step, Sql) and not step.query.strip():
                self.err(
                    step,
                    f'<sql output="{step.output}"> has an empty query; allowed: '
                    "a Spark SQL SELECT over datasets by id",
                )
            if isinstance(step, Deduplicate) and step.keep == "latest" and not step.order_by:
                self.err(
                    step,
                    'keep="latest" on <deduplicate> requires orderBy= (the column '
                    "that decides the latest row)",
                )
            if isinstance(step, Aggregate):
                self.aggregate(step)
            self.step_shape(step)
            if step.result not in datasets:
                datasets.append(step.result)

    def step_shape(self, step: Any) -> None:
        """What a transformation refuses before it looks at any data (execute/transforms/)."""
        if isinstance(step, Join) and step.left == step.right:
            self.err(step, f'<join> has left="{step.left}" and right="{step.right}": a join needs '
                     "two different datasets")  # fmt: skip
        empty = {
            Mask: ("columns", "the columns to mask"),
            Select: ("columns", "the select list"),
            Merge: ("sources", "the datasets to merge"),
            Aggregate: ("metrics", "e.g. count:n, sum:amount"),
        }
        for cls, (attr, what) in empty.items():
            value = getattr(step, attr, None)
            if isinstance(step, cls) and not (value.strip() if isinstance(value, str) else value):
                self.err(step, f"{attr}= on <{step.kind}> is empty; it needs {what}")
        if isinstance(step, Lookup) and step.defaults:
            unknown = [f for f, _ in step.defaults if f not in step.output_fields]
            if unknown:
                self.err(
                    step,
                    f"defaults= on <lookup> names {', '.join(unknown)}, which are not "
                    f"outputFields; allowed: {', '.join(step.output_fields)}",
                )

    def aggregate(self, step: Aggregate) -> None:
        if step.window and not step.time_column:
            self.err(step, f'window="{step.window}" on <aggregate> requires timeColumn=')
        for metric in step.metrics:
            parts = [p.strip() for p in metric.split(":")]
            star = len(parts) == 3 and parts[0] == "count" and parts[1] == "*"
            ok = len(parts) in (2, 3) and all(NAME.match(x) for x in parts[1 + star :])
            if not ok or parts[0] not in METRIC_FUNCTIONS:
                self.err(
                    step,
                    f'metrics item "{metric}" on <aggregate> is not valid; allowed: '
                    "count:alias, fn:column or fn:column:alias (count:*:alias counts rows) "
                    "with fn one of " + ", ".join(METRIC_FUNCTIONS),
                )

    def targets(self, datasets: list[str], app: AppConfig) -> None:
        for target in self.p.targets:
            if target.source is not None and target.source not in datasets:
                self.err(
                    target,
                    f'source="{target.source}" on <{target.kind}> target is not '
                    f"a dataset of this pipeline; allowed: {', '.join(datasets)}",
                )
            mode = target.mode
            if (
                isinstance(target, TableTarget | DatabaseTarget)
                and mode == "merge"
                and (not target.keys)
            ):
                self.err(
                    target,
                    f'mode="merge" on <{target.kind}> target requires keys= '
                    "(the upsert key columns)",
                )
            if isinstance(target, TableTarget):
                self.table_name(target)
                self.column_docs(target)
            if isinstance(target, DatabaseTarget):
                self.jdbc_endpoint(target, app, "<database> target")
                if target.table_name is None:
                    self.err(target, "<database> target needs <table name=...>")
                self.db_table_name(target, target.table_name, "<database> target", app)
                if target.keys and mode != "merge":
                    self.err(
                        target,
                        f'keys= on a <database> target with mode="{mode}" '
                        "has no effect; keys are the upsert columns of "
                        'mode="merge"',
                    )

    def column_docs(self, target: TableTarget) -> None:
        seen: dict[str, Any] = {}
        for doc in target.columns:
            if doc.name in seen:
                line = seen[doc.name].loc.line if seen[doc.name].loc else 0
                self.err(
                    doc,
                    f'<column name="{doc.name}"> is described twice in <columns> (first at '
                    f"line {line}); keep one description per column",
                )
            seen.setdefault(doc.name, doc)

    def table_name(self, target: TableTarget, report: bool = True) -> str | None:
        if not report:
            parts = target.table.split(".")
            return parts[-1] if NAME.match(parts[-1]) and self._prefix_ok(target.table) else None
        parts = target.table.split(".")
        layer = self.p.layer
        allowed = f'allowed: "name" or "{layer}.name"'
        if len(parts) == 2 and canonical_layer(parts[0]) != layer:
            self.err(
                target,
                f'table="{target.table}": the layer prefix must be this '
                f'pipeline\'s layer "{layer}"; {allowed}',
            )
            return None
        if len(parts) > 2 or not NAME.match(parts[-1]):
            self.err(
                target,
                f'table="{target.table}" is not a table name; {allowed} (letters, digits and _)',
            )
            return None
        return parts[-1]

    def checks(self) -> None:
        tables = [t.table.split(".")[-1] for t in self.p.targets if isinstance(t, TableTarget)]
        names: dict[tuple[str, str], Any] = {}
        for check in self.p.checks:
            table = (
                check.target.split(".")[-1]
                if check.target
                else (tables[0] if len(tables) == 1 else None)
            )
            if table is not None:
                first = names.setdefault((table, check.check_name), check)
                if first is not check:
                    self.duplicate_check(first, check, table)
            if isinstance(check, ReferentialCheck):
                self.referential_ref(check)
            if isinstance(check, FreshnessCheck) and not DURATION.match(check.max_age):
                self.err(
                    check,
                    f'maxAge="{check.max_age}" on <freshness> is not an ISO-8601 '
                    "duration; allowed: e.g. PT6H, P1D",
                )
            if check.target is None:
                if len(tables) != 1:
                    self.err(
                        check,
                        f"<{check.kind}> needs target=: the pipeline has "
                        f"{len(tables)} table targets; allowed: {', '.join(tables)}",
                    )
            elif check.target.split(".")[-1] not in tables or not self._prefix_ok(check.target):
                self.err(
                    check,
                    f'target="{check.target}" on <{check.kind}> names no table '
                    f"target of this pipeline; allowed: {', '.join(tables)}",
                )

    def referential_ref(self, check: ReferentialCheck) -> None:
        """`ref="[app.]layer.table.column"`; that the table exists is checked across the
        project by the loader."""
        parts = check.ref.split(".")
        ok = len(parts) in (3, 4) and all(NAME.match(p) for p in parts)
        layer = parts[-3] if ok else ""
        if ok and canonical_layer(layer) in LAYERS:
            return
        why = f'layer "{layer}" is not one of {", ".join(LAYERS)}' if ok else "malformed"
        self.err(
            check,
            f'ref="{check.ref}" on <referential> is {why}; allowed: '
            "<layer>.<table>.<column> or <app>.<layer>.<table>.<column>",
        )

    def duplicate_check(self, first: Any, check: Any, table: str) -> None:
        line = first.loc.line if first.loc else 0
        here = check.loc.line if check.loc else 0
        self.err(
            check,
            f'<{check.kind}> check name "{check.check_name}" on target '
            f'"{table}" (line {here}) is already used by the <{first.kind}> '
            f"check at line {line}; check names must be unique per target: give "
            "one of them a distinct name=",
        )

    def _prefix_ok(self, name: str) -> bool:
        parts = name.split(".")
        return len(parts) == 1 or (len(parts) == 2 and canonical_layer(parts[0]) == self.p.layer)

    # ------------------------------------------------------------- resolution
    def resolve_targets(self, app: str) -> list[ResolvedTarget]:
        p = self.p
        if not p.sources:
            return []
        default = p.transformations[-1].result if p.transformations else p.sources[-1].id
        out: list[ResolvedTarget] = []
        seen: dict[str, Any] = {}
        for target in p.targets:
            name = self.asset_name(target)
            if name is None:
                continue
            if name in seen:
                first = seen[name].loc.line if seen[name].loc else 0
                self.err(
                    target,
                    f'target asset "{name}" is already defined at line {first}; '
                    "give one of them a distinct name (name= / id= / table=)",
                )
                continue
            seen[name] = target
            ref = TableRef(app=app, layer=p.layer, table=name)
            out.append(ResolvedTarget(ref=ref, dataset=target.source or default, target=target))
        return out

    def asset_name(self, target: Any) -> str | None:
        if isinstance(target, TableTarget):
            return self.table_name(target, report=False)
        if isinstance(target, CsvTarget):
            return target.name or csv_asset_name(target.path) or f"{self.p.id}_export"
        return target.id or f"{self.p.id}_export"


JDBC_SCHEMES = ("postgresql", "mariadb", "mysql")
_JDBC = re.compile(r"^jdbc:([a-z0-9]+)://([^/?#]*)", re.IGNORECASE)
_URL_PROPERTY = re.compile(r"(?<=[?&;(,])\s*([^=?&;(),\s]+)\s*=")
"""A `key=` of a JDBC URL: in the query (`?a=1&b=2`, also `;`-separated) and in MySQL-style
host specs (`address=(host=h)(user=u)`, `(host=h,password=p)`)."""
_CREDENTIAL_PROPERTY = re.compile(r"user|.*password\d*", re.IGNORECASE)
"""Properties that carry a credential: `user` and every `...password` the drivers read:
`password`; PostgreSQL's `sslpassword` (the client key's); MariaDB Connector/J's
`keyPassword`, `keyStorePassword`, `trustStorePassword`; MySQL Connector/J's `password1`..
`password3` (multi-factor), `clientCertificateKeyStorePassword`,
`trustCertificateKeyStorePassword`. (Not `passwordCharacterEncoding` or
`sslpasswordcallback`: names of an encoding and a class.)"""


def jdbc_url_problem(url: str) -> str | None:
    """Why Data Hub cannot use `url` (None: it can): the scheme must be one whose driver ships
    with the platform, and credentials belong in userSecretRef, never in the URL (where
    plans, logs and the UI would show them)."""
    m = _JDBC.match(url.strip())
    if not m:
        return (
            "is not a JDBC URL; allowed: jdbc:postgresql://host:port/db, "
            "jdbc:mariadb://host:port/db, jdbc:mysql://host:port/db"
        )
    if m.group(1).lower() not in JDBC_SCHEMES:
        return f'uses the unsupported JDBC scheme "{m.group(1)}"; allowed: ' + ", ".join(
            JDBC_SCHEMES
        )
    found = ["user:password@"] if "@" in m.group(2) else []
    found += [f"{unquote(p[1])}=" for p in _credential_properties(url)]
    if found:
        return (
            f"carries credentials ({', '.join(found)}); put them in the secret named by "
            "userSecretRef"
        )
    if not m.group(2) or m.group(2).startswith(":"):
        return "names no host"
    return None


PG_NAME_BYTES = 63
"""PostgreSQL's NAMEDATALEN - 1: a longer identifier is cut to this many bytes."""
MARIADB_NAME_CHARS = 64
"""MariaDB's and MySQL's longest table or column name, in characters."""


def jdbc_name_problem(name: str, scheme: str) -> str | None:
    """Why the database of JDBC scheme `scheme` cannot hold `name` as one table or column
    name as written (None: it can): PostgreSQL silently keeps only the first 63 bytes of a
    longer name (a table made under it is never found again by its whole name); MariaDB and
    MySQL refuse names over 64 characters, ending in a space or with a character outside
    the Basic Multilingual Plane; neither takes an empty name or a NUL."""
    if not name:
        return "is empty"
    if "\x00" in name:
        return "contains a NUL character, which no name can hold"
    if scheme.lower() == "postgresql":
        size = len(name.encode())
        if size > PG_NAME_BYTES:
            return (
                f"is {size} bytes long in UTF-8; PostgreSQL keeps only the first "
                f"{PG_NAME_BYTES} bytes of a name"
            )
        return None
    if len(name) > MARIADB_NAME_CHARS:
        return (
            f"is {len(name)} characters long; MariaDB/MySQL names hold at most {MARIADB_NAME_CHARS}"
        )
    if name.endswith(" "):
        return "ends with a space, which a MariaDB/MySQL name cannot"
    if any(ord(ch) > 0xFFFF for ch in name):
        return (
            "has a character outside the Basic Multilingual Plane (an emoji?), which a "
            "MariaDB/MySQL name cannot hold"
        )
    return None


def _credential_properties(url: str) -> list[re.Match[str]]:
    """The `key=` matches of `url` whose (percent-decoded) key carries a credential."""
    return [p for p in _URL_PROPERTY.finditer(url) if _CREDENTIAL_PROPERTY.fullmatch(unquote(p[1]))]


def redact_jdbc_url(url: str) -> str:
    """A URL fit for an error message: the credentials in it replaced by ***."""
    url = re.sub(r"//[^/@]*@", "//***@", url)
    for p in reversed(_credential_properties(url)):
        value_end = re.search(r"[&;)]", url[p.end() :])
        end = p.end() + value_end.start() if value_end else len(url)
        url = url[: p.end()] + "***" + url[end:]
    return url


def json_object_problem(text: str) -> str | None:
    """Why `text` is not a JSON object (MongoDB extended JSON such as {"$oid": ...} is fine)."""
    import json

    try:
        value = json.loads(text)
    except ValueError as exc:
        return f"is not valid JSON: {exc}"
    if not isinstance(value, dict):
        return f"must be a JSON object ({{...}}), not {type(value).__name__}"
    return None


def csv_asset_name(path: str) -> str | None:
    """`service/customer_360/%Y/%m/%d` -> `customer_360`; `out/customers.csv` -> `customers`."""
    for segment in reversed([s for s in path.split("/") if s]):
        if _GLOB & set(segment) or segment.endswith(":"):
            continue
        stem = re.sub(r"\.(csv|txt|tsv)(\.(gz|bz2))?$", "", segment)
        name = re.sub(r"[^A-Za-z0-9_]", "_", stem)
        return name if not name[0].isdigit() else f"_{name}"
    return None


def _step_refs(step: Any) -> list[tuple[str, str]]:
    if isinstance(step, Join):
        return [("left", step.left), ("right", step.right)]
    if isinstance(step, Lookup):
        return [("source", step.source), ("reference", step.reference)]
    if isinstance(step, Merge):
        return [("sources", s) for s in step.sources]
    return [("source", step.source)] if step.source else []


__all__ = ["LAYERS", "PipelineCheck", "canonical_layer", "csv_asset_name"]
