"""The typed pipeline model: what a definition file says (contract sections 4, 5 and 7).

Field names are snake_case; the XML attribute / YAML key is the camelCase alias
(`keep_last` <-> `keepLast`). Readers (xml_reader, yaml_reader) turn a file into a plain
tree of dicts carrying source locations and validate it into these frozen models. Every element
is a `spec/nodes.py` `Node`; app.yaml's notifications and the project's jobs are the models of
`spec/job_models.py`.
This module imports neither dagster nor pyspark.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from datahub_assets.spec.job_models import AppNotifications, JobSpec
from datahub_assets.spec.mini import (
    parse_cast_types,
    parse_defaults,
    parse_lookup_on,
    parse_rename_mapping,
)
from datahub_assets.spec.nodes import CommaList, Node
from datahub_assets.spec.nodes import Loc as Loc  # the model's API too (secrets_policy)
from datahub_assets.spec.schema_files import SchemaFile

LAYERS: tuple[str, ...] = ("raw", "bronze", "silver", "gold", "service")
LAYER_ALIASES: dict[str, str] = {"staging": "raw", "standardization": "silver"}

Layer = Literal["raw", "bronze", "silver", "gold", "service"]
OnInvalid = Literal["fail", "quarantine", "drop"]
OnSchemaChange = Literal["evolve", "freeze", "fail"]
EngineName = Literal["spark", "duckdb", "auto"]
ENGINE_NAMES: tuple[str, ...] = ("spark", "duckdb", "auto")
_ENGINE_HELP = (
    "Engine that runs the pipeline: spark, duckdb, or auto (DuckDB when the inputs total at "
    "most DATAHUB_ENGINE_AUTO_MAX_MB, else Spark); unset: app.yaml's engine, then "
    "DATAHUB_ENGINE."
)
_ON_INVALID_HELP = (
    "Row validation against the declared schema and the row-level checks: "
    "fail stops the run, quarantine writes bad rows to <table>__quarantine, "
    "drop discards them; absent = no row validation."
)


def _canonical_layer(value: Any) -> Any:
    if isinstance(value, str):
        return LAYER_ALIASES.get(value.strip(), value.strip())
    return value


CanonicalLayer = Annotated[Layer, BeforeValidator(_canonical_layer)]


def _pairs_schema(example: str) -> WithJsonSchema:
    """JSON Schema of a mini-language attribute (spec/mini.py): text, or in YAML a list of
    items or a mapping; the model holds a tuple of (left, right) pairs."""
    return WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "description": f"comma-separated, e.g. {example}"},
                {"type": "array", "items": {"type": "string"}},
                {"type": "object", "additionalProperties": {"type": "string"}},
            ]
        }
    )


Pairs = tuple[tuple[str, str], ...]
CastTypes = Annotated[
    Pairs, BeforeValidator(parse_cast_types), _pairs_schema("amount:decimal(12,2),ts:timestamp")
]
RenameMapping = Annotated[
    Pairs, BeforeValidator(parse_rename_mapping), _pairs_schema("old:new,old2:new2")
]
LookupOn = Annotated[Pairs, BeforeValidator(parse_lookup_on), _pairs_schema("country_code=code")]
LookupDefaults = Annotated[
    Pairs, BeforeValidator(parse_defaults), _pairs_schema("country_name:Unknown")
]


# --------------------------------------------------------------------------- sources


class Incremental(Node):
    column: str = Field(description="Monotonic column; only rows above the watermark are read.")


class Watch(Node):
    enabled: bool = Field(default=True, description="Sensor starts running by default.")
    poll_seconds: int = Field(default=30, ge=1, description="Seconds between sensor ticks.")
    min_age_seconds: int = Field(default=10, ge=0, description="Younger files are not taken.")
    max_size_bytes: int | None = Field(default=None, ge=1, description="Larger files rejected.")
    max_files_per_run: int = Field(default=500, ge=1, description="Files per requested run.")


class _SourceBase(Node):
    id: str = Field(description="Dataset name used by transformations and targets.")
    load_policy: Literal["eager", "onDemand"] = Field(
        default="onDemand", description="eager caches the source before transformations."
    )
    incremental: Incremental | None = Field(
        default=None, description="Read only rows above the committed watermark."
    )


class CsvSource(_SourceBase):
    kind: Literal["csv"] = Field(default="csv", description="Element name (the discriminator).")
    path: str = Field(description="Glob; relative to DATAHUB_DATA_DIR/<app>/ or s3://.")
    header: bool = Field(default=True, description="First line holds the column names.")
    delimiter: str = Field(default=",", description="Field separator.")
    infer_schema: bool = Field(
        default=False, description="Let Spark infer column types (else all strings)."
    )
    quote: str | None = Field(default=None, description="Quote character (Spark's default: \").")
    escape: str | None = Field(default=None, description="Escape character inside quoted fields.")
    encoding: str | None = Field(
        default=None, description="File encoding (Spark's default: UTF-8)."
    )
    null_value: str | None = Field(default=None, description="Text read as null.")
    date_format: str | None = Field(
        default=None, description="Spark date pattern of date columns, e.g. yyyy-MM-dd."
    )
    schema_ref: str | None = Field(default=None, description="Avro/JSON schema in the app.")
    watch: Watch | None = Field(
        default=None, description="File drops: a sensor ingests new files (raw layer)."
    )
    on_invalid: OnInvalid | None = Field(default=None, description=_ON_INVALID_HELP)


class JsonSource(_SourceBase):
    kind: Literal["json"] = Field(default="json", description="Element name (the discriminator).")
    path: str = Field(description="Glob; relative to DATAHUB_DATA_DIR/<app>/ or s3://.")
    multiline: bool = Field(
        default=False, description="One JSON document per file (else one per line)."
    )
    schema_ref: str | None = Field(
        default=None, description="Avro/JSON schema in the app (validated at load)."
    )
    watch: Watch | None = Field(
        default=None, description="File drops: a sensor ingests new files (raw layer)."
    )
    on_invalid: OnInvalid | None = Field(default=None, description=_ON_INVALID_HELP)


class ParquetSource(_SourceBase):
    kind: Literal["parquet"] = Field(
        default="parquet", description="Element name (the discriminator)."
    )
    path: str = Field(description="Glob; relative to DATAHUB_DATA_DIR/<app>/ or s3://.")
    watch: Watch | None = Field(
        default=None, description="File drops: a sensor ingests new files (raw layer)."
    )
    schema_ref: str | None = Field(default=None, description="Declared schema (onInvalid).")
    on_invalid: OnInvalid | None = Field(default=None, description=_ON_INVALID_HELP)


IsolationLevel = Literal[
    "READ_UNCOMMITTED", "READ_COMMITTED", "REPEATABLE_READ", "SERIALIZABLE", "NONE"
]


class DatabaseSource(_SourceBase):
    kind: Literal["database"] = Field(
        default="database", description="Element name (the discriminator)."
    )
    jdbc_url: str | None = Field(
        default=None,
        description="jdbc:postgresql://, jdbc:mariadb:// or jdbc:mysql:// URL "
        "without credentials; or use connection=.",
    )
    connection: str | None = Field(default=None, description="Name in app.yaml connections.")
    user_secret_ref: str | None = Field(
        default=None, description="Secret holding `user:password` for the database."
    )
    fetch_size: int | None = Field(default=None, ge=1, description="Rows per JDBC round trip.")
    partition_column: str | None = Field(
        default=None, description="Numeric, date or timestamp column to split parallel reads on."
    )
    num_partitions: int | None = Field(
        default=None, ge=1, description="Parallel JDBC connections (with partitionColumn)."
    )
    schema_ref: str | None = Field(default=None, description="Declared schema of the rows read.")
    isolation_level: IsolationLevel | None = Field(
        default=None, description="Transaction isolation of the read connections."
    )
    sql: str | None = Field(default=None, description="Query with :named parameters.")
    table_name: str | None = Field(default=None, description="<table name=...> full load.")


class MongoSource(_SourceBase):
    kind: Literal["mongo"] = Field(default="mongo", description="Element name (the discriminator).")
    database: str = Field(description="MongoDB database name.")
    collection: str = Field(description="Collection read.")
    uri_secret_ref: str | None = Field(
        default=None, description="Secret holding the mongodb:// URI; or use connection=."
    )
    connection: str | None = Field(default=None, description="Name in app.yaml connections.")
    flatten: bool = Field(default=False, description="Nested documents to parent_child columns.")
    sample_size: int = Field(
        default=1000,
        ge=1,
        description="Documents sampled to infer the schema when no schemaRef pins it.",
    )
    schema_ref: str | None = Field(default=None, description="Pinned JSON schema of documents.")
    filter: str | None = Field(default=None, description="JSON filter document.")
    projection: str | None = Field(default=None, description="JSON projection document.")
    on_invalid: OnInvalid | None = Field(
        default=None,
        description="Documents that do not fit schemaRef: fail the run, "
        "quarantine them with the reason, or drop them (default fail with a schemaRef).",
    )


class TableSource(_SourceBase):
    kind: Literal["table"] = Field(default="table", description="Element name (the discriminator).")
    ref: str = Field(description="<app>.<layer>.<table> or <layer>.<table>.")


class LookupSource(_SourceBase):
    kind: Literal["lookup"] = Field(
        default="lookup", description="Element name (the discriminator)."
    )
    path: str = Field(description="CSV file in the app's lookups/ folder.")


Source = Annotated[
    CsvSource
    | JsonSource
    | ParquetSource
    | DatabaseSource
    | MongoSource
    | TableSource
    | LookupSource,
    Field(discriminator="kind"),
]
FILE_SOURCE_KINDS = ("csv", "json", "parquet")

# ------------------------------------------------------------------- transformations


class _Step(Node):
    source: str | None = Field(default=None, description="Dataset this step reads.")
    output: str | None = Field(
        default=None, description="Dataset written; default: replaces `source`."
    )

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.source,) if self.source else ()

    @property
    def result(self) -> str:
        """Dataset this step writes: `output`, else it replaces `source`."""
        return self.output or self.inputs[0]


class Deduplicate(_Step):
    kind: Literal["deduplicate"] = Field(
        default="deduplicate", description="Element name (the discriminator)."
    )
    source: str = Field(description="Dataset this step reads.")
    keys: CommaList = Field(description="Columns that identify a row.")
    keep: Literal["first", "last", "latest"] = Field(
        default="first", description="Row kept per key: first, last, or latest by orderBy."
    )
    order_by: str | None = Field(
        default=None, description="Order deciding first/last; required by keep=latest."
    )


class Sort(_Step):
    kind: Literal["sort"] = Field(default="sort", description="Element name (the discriminator).")
    source: str = Field(description="Dataset this step reads.")
    order_by: str = Field(description="`a, b desc`: columns or expressions, each with a direction.")
    direction: Literal["asc", "desc"] = Field(
        default="asc", description="Direction of items without their own."
    )
    nulls: Literal["first", "last"] | None = Field(
        default=None, description="Nulls first or last for every item (unset: Spark's default)."
    )


class Join(_Step):
    kind: Literal["join"] = Field(default="join", description="Element name (the discriminator).")
    left: str = Field(description="Left dataset (its id qualifies columns in condition).")
    right: str = Field(description="Right dataset (its id qualifies columns in condition).")
    condition: str = Field(description="Spark SQL join condition, e.g. `a.id = b.a_id`.")
    type: Literal["inner", "left", "right", "full", "semi", "anti"] = Field(
        default="inner", description="Join type; semi/anti keep the left columns only."
    )
    broadcast: Literal["left", "right", "true", "false"] | bool | None = Field(
        default=None, description="Broadcast hint: right/true, left, or false."
    )
    select: str | None = Field(default=None, description="Columns to keep after the join.")
    right_prefix: str | None = Field(
        default=None, description="Prefix given to every right-side column."
    )

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.left, self.right)


class Lookup(_Step):
    kind: Literal["lookup"] = Field(
        default="lookup", description="Element name (the discriminator)."
    )
    source: str = Field(description="Dataset this step reads.")
    reference: str = Field(description="Small reference dataset (broadcast).")
    on: LookupOn = Field(
        description="`source_col=reference_col[,...]`: the join keys, held as (source column, "
        "reference column) pairs."
    )
    output_fields: CommaList = Field(description="Reference columns added to the source.")
    join_type: Literal["left", "inner"] = Field(
        default="left", description="left keeps unmatched rows; inner drops them."
    )
    defaults: LookupDefaults | None = Field(
        default=None,
        description="`field:value,...`: values of outputFields for rows without a match "
        "(cast to the field's type); held as (field, value) pairs.",
    )

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.source, self.reference)


class Merge(_Step):
    kind: Literal["merge"] = Field(default="merge", description="Element name (the discriminator).")
    sources: CommaList = Field(description="Datasets unioned, in order.")
    output: str = Field(description="Dataset written.")
    mode: Literal["union", "unionByName"] = Field(
        default="unionByName", description="union matches columns by position, unionByName by name."
    )
    allow_missing_columns: bool = Field(
        default=False, description="unionByName: fill absent columns with nulls."
    )

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.sources


class Aggregate(_Step):
    kind: Literal["aggregate"] = Field(
        default="aggregate", description="Element name (the discriminator)."
    )
    source: str = Field(description="Dataset this step reads.")
    group_by: CommaList = Field(description="Grouping columns (empty: one row).")
    metrics: CommaList = Field(description="`fn:column[:alias]` or `count:alias` items.")
    window: Literal["daily", "weekly", "monthly"] | None = Field(
        default=None, description="Also group by the day/week/month of timeColumn."
    )
    time_column: str | None = Field(default=None, description="Date/timestamp column of window=.")


class Mask(_Step):
    kind: Literal["mask"] = Field(default="mask", description="Element name (the discriminator).")
    source: str = Field(description="Dataset this step reads.")
    columns: CommaList = Field(description="Columns to mask.")
    strategy: Literal["hash", "redact", "tokenize", "encrypt"] = Field(
        description="hash, redact, tokenize (reversible) or encrypt."
    )
    secret_ref: str | None = Field(
        default=None, description="Secret holding the key (default: the platform's key)."
    )
    keep_last: int = Field(default=0, ge=0, description="redact: trailing characters left visible.")


class Filter(_Step):
    kind: Literal["filter"] = Field(
        default="filter", description="Element name (the discriminator)."
    )
    source: str = Field(description="Dataset this step reads.")
    condition: str = Field(description="Spark SQL predicate; rows where it is true are kept.")


class Select(_Step):
    kind: Literal["select"] = Field(
        default="select", description="Element name (the discriminator)."
    )
    source: str = Field(description="Dataset this step reads.")
    columns: str = Field(description="`a, b as c, upper(d) as d` (commas inside () allowed).")


class Derive(_Step):
    kind: Literal["derive"] = Field(
        default="derive", description="Element name (the discriminator)."
    )
    source: str = Field(description="Dataset this step reads.")
    column: str = Field(description="Column added (or replaced in place).")
    expr: str = Field(description="Spark SQL expression of the column.")


class Rename(_Step):
    kind: Literal["rename"] = Field(
        default="rename", description="Element name (the discriminator)."
    )
    source: str = Field(description="Dataset this step reads.")
    mapping: RenameMapping = Field(
        description="`old:new,...`: columns to rename, held as (old, new) pairs; "
        "each old and each new name once."
    )


class Cast(_Step):
    kind: Literal["cast"] = Field(default="cast", description="Element name (the discriminator).")
    source: str = Field(description="Dataset this step reads.")
    types: CastTypes = Field(
        description="`col:type,...` with Spark SQL type names (commas inside decimal(12,2) "
        "or <...> are kept), held as (column, type) pairs; checked at load."
    )


class Flatten(_Step):
    kind: Literal["flatten"] = Field(
        default="flatten", description="Element name (the discriminator)."
    )
    source: str = Field(description="Dataset this step reads.")
    separator: str = Field(default="_", description="Between parent and child names.")
    arrays: Literal["explode", "first", "count", "json", "index"] = Field(
        default="json",
        description="Arrays: explode to rows, first element, count, JSON text, "
        "or index columns items_0_x, items_1_x, ... for the first maxIndex elements.",
    )
    max_index: int = Field(default=5, ge=1, description='Elements kept by arrays="index".')


class Sql(_Step):
    kind: Literal["sql"] = Field(default="sql", description="Element name (the discriminator).")
    output: str = Field(description="Dataset written.")
    query: str = Field(description="Spark SQL over datasets by id (the element's CDATA).")

    @property
    def inputs(self) -> tuple[str, ...]:
        return ()


Transformation = Annotated[
    Deduplicate
    | Sort
    | Join
    | Lookup
    | Merge
    | Aggregate
    | Mask
    | Filter
    | Select
    | Derive
    | Rename
    | Cast
    | Flatten
    | Sql,
    Field(discriminator="kind"),
]

# ---------------------------------------------------------------------------- targets


class ColumnDoc(Node):
    """`<column name=... description=.../>` in a table target's `<columns>`."""

    name: str = Field(description="Column of the target table.")
    description: str = Field(description="What the column holds; shown in the Dagster UI.")


def _column_docs(value: Any) -> Any:
    """YAML `columns: {id: "..."}` -> [{name: id, description: "..."}]; lists pass through."""
    if isinstance(value, dict):
        return [{"name": k, "description": v} for k, v in value.items()]
    return value


class TableTarget(Node):
    kind: Literal["table"] = Field(default="table", description="Element name (the discriminator).")
    table: str = Field(description="`name` or `<layer>.name`.")
    source: str | None = Field(
        default=None, description="Dataset written; default: the last one produced."
    )
    mode: Literal["append", "overwrite", "merge"] = Field(
        default="append", description="append, overwrite, or merge (upsert on keys)."
    )
    keys: CommaList = Field(default=(), description="Upsert key columns of mode=merge.")
    partition_by: CommaList = Field(
        default=(), description="Partition columns of the Iceberg table."
    )
    format: Literal["iceberg"] | None = Field(
        default=None, description="Table format; only iceberg (the default) exists."
    )
    schema_ref: str | None = Field(
        default=None, description="Declared schema rows are validated against."
    )
    on_invalid: OnInvalid | None = Field(default=None, description=_ON_INVALID_HELP)
    columns: Annotated[tuple[ColumnDoc, ...], BeforeValidator(_column_docs)] = Field(
        default=(),
        description="Column descriptions (`<columns><column name= description=/></columns>`); "
        "they override those of schemaRef files.",
    )
    on_schema_change: OnSchemaChange = Field(
        default="evolve",
        description="Incoming vs table schema: evolve adds columns and widens types, freeze "
        "keeps the table schema, fail stops on any difference.",
    )


class CsvTarget(Node):
    kind: Literal["csv"] = Field(default="csv", description="Element name (the discriminator).")
    path: str = Field(description="Relative to DATAHUB_DATA_DIR/<app>/; %Y/%m/%d expand.")
    name: str | None = Field(default=None, description="Asset name; default from the path.")
    source: str | None = Field(
        default=None, description="Dataset written; default: the last one produced."
    )
    mode: Literal["append", "overwrite", "ignore", "error"] = Field(
        default="overwrite", description="Spark save mode at the path."
    )
    compression: Literal["none", "gzip", "bzip2"] = Field(
        default="none", description="Compression of the written files."
    )
    partition_by: CommaList = Field(default=(), description="Columns written as key=value folders.")
    header: bool = Field(default=True, description="Write a header line.")
    delimiter: str = Field(default=",", description="Field separator.")
    schema_ref: str | None = Field(
        default=None, description="Declared schema of the export (validated at load)."
    )


class DatabaseTarget(Node):
    kind: Literal["database"] = Field(
        default="database", description="Element name (the discriminator)."
    )
    id: str | None = Field(default=None, description="Asset name; default `<pipeline id>_export`.")
    jdbc_url: str | None = Field(
        default=None, description="JDBC URL without credentials; or use connection=."
    )
    connection: str | None = Field(default=None, description="Name in app.yaml connections.")
    source: str | None = Field(
        default=None, description="Dataset written; default: the last one produced."
    )
    mode: Literal["append", "overwrite", "merge", "truncateInsert"] = Field(
        default="append", description="append, overwrite, merge (upsert on keys), truncateInsert."
    )
    keys: CommaList = Field(default=(), description="Upsert key columns of mode=merge.")
    write_batch_size: int | None = Field(default=None, description="Rows per JDBC batch insert.")
    user_secret_ref: str | None = Field(default=None, description="Secret holding `user:password`.")
    table_name: str | None = Field(default=None, description="<table name=...>: the table written.")
    schema_ref: str | None = Field(default=None, description="Declared schema of the rows written.")


Target = Annotated[TableTarget | CsvTarget | DatabaseTarget, Field(discriminator="kind")]

# ----------------------------------------------------------------------------- checks


class _Check(Node):
    target: str | None = Field(
        default=None, description="Table target checked; optional with one table target."
    )
    name: str | None = Field(default=None, description="Check name; default from kind and columns.")
    severity: Literal["error", "warn"] = Field(
        default="error", description="error blocks the publish; warn only reports."
    )

    @property
    def check_name(self) -> str:
        """`name`, else derived from kind and columns (`notNull_customer_id_email`); always a
        valid Dagster check name."""
        if self.name:
            raw = self.name
        else:
            column: str | None = getattr(self, "column", None)
            cols: tuple[str, ...] = getattr(self, "columns", None) or ((column,) if column else ())
            raw = "_".join([getattr(self, "kind", "check"), *cols])
        return re.sub(r"[^A-Za-z0-9_]", "_", raw)


class NotNullCheck(_Check):
    kind: Literal["notNull"] = Field(
        default="notNull", description="Element name (the discriminator)."
    )
    columns: CommaList = Field(description="Columns that must not be null.")


class UniqueCheck(_Check):
    kind: Literal["unique"] = Field(
        default="unique", description="Element name (the discriminator)."
    )
    columns: CommaList = Field(description="Columns whose combination must be unique.")


class RowCountCheck(_Check):
    kind: Literal["rowCount"] = Field(
        default="rowCount", description="Element name (the discriminator)."
    )
    min: int | None = Field(default=None, description="Fewest rows allowed.")
    max: int | None = Field(default=None, description="Most rows allowed.")


class RangeCheck(_Check):
    kind: Literal["range"] = Field(default="range", description="Element name (the discriminator).")
    column: str = Field(description="Numeric or date column checked.")
    min: float | None = Field(default=None, description="Smallest value allowed.")
    max: float | None = Field(default=None, description="Largest value allowed.")


class AcceptedValuesCheck(_Check):
    kind: Literal["acceptedValues"] = Field(
        default="acceptedValues", description="Element name (the discriminator)."
    )
    column: str = Field(description="Column checked.")
    values: CommaList = Field(description="Values allowed (nulls pass).")


class RegexCheck(_Check):
    kind: Literal["regex"] = Field(default="regex", description="Element name (the discriminator).")
    column: str = Field(description="Column checked.")
    pattern: str = Field(description="Java regex every non-null value must match.")


class FreshnessCheck(_Check):
    kind: Literal["freshness"] = Field(
        default="freshness", description="Element name (the discriminator)."
    )
    column: str = Field(description="Timestamp column whose newest value is checked.")
    max_age: str = Field(description="ISO-8601 duration.")


class ExpressionCheck(_Check):
    kind: Literal["expression"] = Field(
        default="expression", description="Element name (the discriminator)."
    )
    expr: str = Field(description="Spark SQL predicate true on every row.")


class ReferentialCheck(_Check):
    kind: Literal["referential"] = Field(
        default="referential", description="Element name (the discriminator)."
    )
    column: str = Field(description="Column whose values must exist in `ref`.")
    ref: str = Field(description="`[<app>.]<layer>.<table>.<column>`.")


class SchemaCheck(_Check):
    kind: Literal["schema"] = Field(
        default="schema", description="Element name (the discriminator)."
    )
    schema_ref: str = Field(description="Schema file the table must match (validated at load).")


Check = Annotated[
    NotNullCheck
    | UniqueCheck
    | RowCountCheck
    | RangeCheck
    | AcceptedValuesCheck
    | RegexCheck
    | FreshnessCheck
    | ExpressionCheck
    | ReferentialCheck
    | SchemaCheck,
    Field(discriminator="kind"),
]

# --------------------------------------------------------------------------- pipeline


class Metadata(Node):
    owner: str | None = Field(
        default=None, description="Team or person owning the pipeline's assets."
    )
    description: str | None = Field(default=None, description="Shown on the assets in the UI.")
    sla: str | None = Field(default=None, description="ISO-8601 duration.")
    schedule: str | None = Field(default=None, description="Cron expression.")
    tags: dict[str, str] = Field(default_factory=dict, description="Key/value tags on the assets.")


class Pipeline(Node):
    """One data pipeline file, as written (contract section 4)."""

    id: str = Field(description="Pipeline id, unique within the app.")
    version: str = Field(default="1.0.0", description="Definition version, as written.")
    layer: CanonicalLayer = Field(
        description="raw, bronze, silver, gold or service (staging = raw)."
    )
    # unset is left out of dumps, so the code_version digest of a pipeline without it is
    # what it was before the attribute existed
    engine: EngineName | None = Field(
        default=None, exclude_if=lambda v: v is None, description=_ENGINE_HELP
    )
    metadata: Metadata = Field(
        default_factory=Metadata, description="Owner, description, SLA, schedule and tags."
    )
    sources: tuple[Source, ...] = Field(description="Datasets read.")
    transformations: tuple[Transformation, ...] = Field(
        default=(), description="Steps over the datasets, in order."
    )
    targets: tuple[Target, ...] = Field(description="Tables and exports written.")
    checks: tuple[Check, ...] = Field(
        default=(), description="Data quality checks on the table targets."
    )


class Connection(Node):
    """A named database endpoint in app.yaml (contract section 7)."""

    jdbc_url: str | None = Field(default=None, description="JDBC URL without credentials.")
    user_secret_ref: str | None = Field(default=None, description="Secret: `user:password`.")
    uri_secret_ref: str | None = Field(default=None, description="Secret: a mongodb:// URI.")


class Maintenance(Node):
    """`maintenance:` in app.yaml: how `datahub maintain` and the daily maintenance keep the
    app's tables small (datahub_assets/maintenance/)."""

    snapshot_retention: str = Field(
        default="P7D",
        description="ISO-8601 duration: snapshots older than this are expired "
        "(never the current one or a branch/tag head).",
    )
    orphan_after: str = Field(
        default="P3D",
        description="ISO-8601 duration: files under a table's location that no "
        "snapshot references are deleted once older than this (a safety window for writes "
        "in flight).",
    )
    target_file_size_mb: int = Field(
        default=128,
        ge=1,
        description="Compaction rewrites data files smaller than 3/4 of "
        "this into files of about this size.",
    )
    schedule: str = Field(
        default="0 3 * * *", description="Cron (UTC) of the daily maintenance of the app's tables."
    )


class AppConfig(Node):
    """Optional `app.yaml` of an application (contract section 7)."""

    maintenance: Maintenance = Field(
        default_factory=Maintenance,
        description="Table maintenance settings (snapshot expiry, orphan files, compaction).",
    )

    owner: str | None = Field(default=None, description="Default owner of the app's assets.")
    engine: EngineName | None = Field(
        default=None,
        description="Default engine of the app's pipelines (a pipeline's engine= wins); "
        "unset: DATAHUB_ENGINE.",
    )
    tags: dict[str, str] = Field(
        default_factory=dict, description="Tags on every asset of the app."
    )
    connections: dict[str, Connection] = Field(
        default_factory=dict, description="Named database endpoints (connection=)."
    )
    notifications: AppNotifications | None = Field(
        default=None,
        description="SMTP server and default notification targets of the "
        "app's job pipelines and SLA misses (spec/job_models.py).",
    )


# ----------------------------------------------------------------- resolved (validated)


class TableRef(BaseModel):
    """A table's identity: Dagster key [app, layer, table]; Iceberg `<app>_<layer>.<table>`."""

    model_config = ConfigDict(frozen=True)
    app: str = Field(description="App folder name.")
    layer: Layer = Field(description="Layer of the table.")
    table: str = Field(description="Table name.")

    @property
    def asset_path(self) -> list[str]:
        return [self.app, self.layer, self.table]

    @property
    def namespace(self) -> str:
        return f"{self.app}_{self.layer}"

    @property
    def identifier(self) -> str:
        return f"{self.namespace}.{self.table}"

    def __str__(self) -> str:
        return f"{self.app}.{self.layer}.{self.table}"


class ResolvedTarget(BaseModel):
    """A target with its asset identity and the dataset it writes."""

    model_config = ConfigDict(frozen=True)
    ref: TableRef = Field(description="The target's table identity (the asset key).")
    dataset: str = Field(description="Dataset written (the target's source, defaulted).")
    target: TableTarget | CsvTarget | DatabaseTarget = Field(description="The target as written.")


class PipelineSpec(BaseModel):
    """A validated pipeline with everything the build and execute stages need."""

    model_config = ConfigDict(frozen=True)
    app: str = Field(description="App folder name.")
    file: str = Field(description="Definition file, relative to the pipelines dir.")
    line: int = Field(description="Line of the <pipeline> element.")
    pipeline: Pipeline = Field(description="The pipeline as written.")
    targets: tuple[ResolvedTarget, ...] = Field(description="Targets with their asset identities.")
    upstream: tuple[TableRef, ...] = Field(description="Tables read (table sources/lookups).")
    source_refs: dict[str, TableRef] = Field(
        default_factory=dict, description="Source id -> table, for `table` sources."
    )
    owner: str | None = Field(default=None, description="metadata owner, else the app's.")
    tags: dict[str, str] = Field(
        default_factory=dict, description="App tags overlaid with the pipeline's."
    )
    connections: dict[str, Connection] = Field(
        default_factory=dict, description="The app.yaml connections this pipeline names."
    )
    schemas: dict[str, SchemaFile] = Field(
        default_factory=dict,
        description="schemaRef as written -> the file parsed at load (s3:// refs are read at "
        "run time and are absent here).",
    )
    app_engine: EngineName | None = Field(
        default=None, description="app.yaml's engine (the pipeline's own engine= wins)."
    )

    def endpoint(self, node: Any) -> Connection:
        """Where a database/mongo source or target connects: its own attributes, else those of
        its `connection=` (validation guarantees the connection exists)."""
        named = self.connections.get(node.connection) if getattr(node, "connection", None) else None
        base = named or Connection()
        return Connection(
            jdbc_url=getattr(node, "jdbc_url", None) or base.jdbc_url,
            user_secret_ref=getattr(node, "user_secret_ref", None) or base.user_secret_ref,
            uri_secret_ref=getattr(node, "uri_secret_ref", None) or base.uri_secret_ref,
        )

    @property
    def key(self) -> str:
        return f"{self.app}.{self.pipeline.id}"

    @property
    def layer(self) -> str:
        return self.pipeline.layer

    @property
    def watched_sources(self) -> list:
        """The file sources carrying `<watch>` (file drops; raw layer only, by validation)."""
        return [
            s
            for s in self.pipeline.sources
            if s.kind in FILE_SOURCE_KINDS and getattr(s, "watch", None) is not None
        ]


class Project(BaseModel):
    """Every validated pipeline under DATAHUB_PIPELINES_DIR."""

    model_config = ConfigDict(frozen=True)
    root: str = Field(description="The pipelines dir.")
    apps: dict[str, AppConfig] = Field(description="app.yaml of every app (defaults when absent).")
    pipelines: tuple[PipelineSpec, ...] = Field(
        description="Every validated pipeline, by app and file."
    )
    jobs: tuple[JobSpec, ...] = Field(default=(), description="Job pipelines (section 6).")

    def by_table(self) -> dict[TableRef, PipelineSpec]:
        return {t.ref: p for p in self.pipelines for t in p.targets}
