"""The Iceberg catalog and the Spark <-> Iceberg schema mapping.

There is no Iceberg Spark runtime: Spark writes and reads plain Parquet files, and pyiceberg
(a SQL catalog named `datahub`: SQLite on a laptop, PostgreSQL in production) owns the table
metadata. This module opens that catalog and translates schemas both ways:

    Spark TimestampType    <-> Iceberg timestamptz     Spark TimestampNTZType <-> timestamp
    byte/short/int         --> int                     long <-> long, float, double, boolean,
    string/char/varchar    --> string                  date, binary, decimal(p,s), struct,
                                                       array, map map one to one

Spark -> Iceberg matches types by class name, so `StructType`s of PySpark and of sqlframe
(the DuckDB engine) translate alike; Iceberg -> Spark builds from a `types` namespace
(default `pyspark.sql.types`; callers running on DuckDB pass `engines.api.T`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import dagster as dg
from pydantic import Field
from pyiceberg import types as it
from pyiceberg.catalog import Catalog
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.schema import Schema
from pyspark.sql import types as st
from sqlalchemy.exc import IntegrityError, OperationalError

from datahub_resources import s3
from datahub_resources.settings import Settings

CATALOG_NAME = "datahub"


def _ensure_sqlite_dir(uri: str) -> None:
    if uri.startswith("sqlite:///"):
        path = uri.removeprefix("sqlite:///").split("?", 1)[0]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)


def _ensure_warehouse_dir(warehouse: str) -> None:
    parsed = urlparse(warehouse)
    if parsed.scheme in ("", "file"):
        Path(parsed.path if parsed.scheme else warehouse).mkdir(parents=True, exist_ok=True)


def open_catalog(uri: str, warehouse: str) -> Catalog:
    """A pyiceberg SqlCatalog `datahub` over `uri` (sqlite:/// or postgresql+psycopg://).
    An `s3://` warehouse is reached with the endpoint and credentials of the AWS environment
    (`s3.iceberg_properties`)."""
    _ensure_sqlite_dir(uri)
    _ensure_warehouse_dir(warehouse)
    props = s3.iceberg_properties()
    try:
        return SqlCatalog(CATALOG_NAME, uri=uri, warehouse=warehouse, **props)
    except (OperationalError, IntegrityError):
        # the first processes to open a new catalog database race to create its tables;
        # the loser finds them created when it opens again
        time.sleep(0.5)
        return SqlCatalog(CATALOG_NAME, uri=uri, warehouse=warehouse, **props)


def load_catalog(settings: Settings | None = None) -> Catalog:
    """The platform catalog from DATAHUB_CATALOG_URI / DATAHUB_WAREHOUSE (contract section 3)."""
    settings = settings or Settings.from_env()
    return open_catalog(settings.catalog_uri, settings.warehouse)


def ensure_namespace(catalog: Catalog, namespace: str) -> None:
    """create_namespace_if_not_exists, also when another process creates it at the same time
    (the SQL catalog then fails on its unique key instead of NamespaceAlreadyExistsError)."""
    try:
        catalog.create_namespace_if_not_exists(namespace)
    except IntegrityError:
        if not catalog.namespace_exists(namespace):
            raise


class IcebergResource(dg.ConfigurableResource):
    """The Iceberg catalog for asset bodies. Connects lazily, on the first `catalog()` call.

    `deployment.resources()` fills both fields from the environment read at load (`dg.EnvVar`
    for the variables that are set, so the UI names them, else the defaults)."""

    catalog_uri: str | None = Field(
        default=None,
        description="DATAHUB_CATALOG_URI: SQLAlchemy URI of the catalog database "
        "(default sqlite:///$DATAHUB_HOME/catalog.db).",
    )
    warehouse: str | None = Field(
        default=None,
        description="DATAHUB_WAREHOUSE: root of new tables, file:// or s3:// "
        "(default file://$DATAHUB_HOME/warehouse).",
    )

    def catalog(self) -> Catalog:
        if self.catalog_uri and self.warehouse:
            return open_catalog(self.catalog_uri, self.warehouse)
        settings = Settings.from_env()  # built without deployment.resources() (tests, scripts)
        return open_catalog(
            self.catalog_uri or settings.catalog_uri, self.warehouse or settings.warehouse
        )


# ------------------------------------------------------------------------ Spark -> Iceberg

# Keyed by class NAME: the same names in `pyspark.sql.types` and `sqlframe.base.types`, so
# frames of either engine (Spark Connect or sqlframe DuckDB) translate alike.
_PRIMITIVES_TO_ICEBERG: dict[str, it.IcebergType] = {
    "StringType": it.StringType(),
    "CharType": it.StringType(),
    "VarcharType": it.StringType(),
    "ByteType": it.IntegerType(),
    "ShortType": it.IntegerType(),
    "IntegerType": it.IntegerType(),
    "LongType": it.LongType(),
    "FloatType": it.FloatType(),
    "DoubleType": it.DoubleType(),
    "BooleanType": it.BooleanType(),
    "DateType": it.DateType(),
    "TimestampType": it.TimestamptzType(),
    "TimestampNTZType": it.TimestampType(),
    "BinaryType": it.BinaryType(),
}


class _Ids:
    def __init__(self) -> None:
        self.last = 0

    def next(self) -> int:
        self.last += 1
        return self.last


def _to_iceberg(dt: Any, ids: _Ids, path: str) -> it.IcebergType:
    kind = type(dt).__name__
    if kind == "DecimalType":
        return it.DecimalType(dt.precision, dt.scale)
    if kind == "StructType":
        fields = []
        for f in dt.fields:
            fid = ids.next()
            ftype = _to_iceberg(f.dataType, ids, f"{path}.{f.name}")
            fields.append(it.NestedField(fid, f.name, ftype, required=not f.nullable))
        return it.StructType(*fields)
    if kind == "ArrayType":
        eid = ids.next()
        return it.ListType(
            eid, _to_iceberg(dt.elementType, ids, path), element_required=not dt.containsNull
        )
    if kind == "MapType":
        kid, vid = ids.next(), ids.next()
        return it.MapType(
            kid,
            _to_iceberg(dt.keyType, ids, path),
            vid,
            _to_iceberg(dt.valueType, ids, path),
            value_required=not dt.valueContainsNull,
        )
    if kind in _PRIMITIVES_TO_ICEBERG:
        return _PRIMITIVES_TO_ICEBERG[kind]
    raise TypeError(f"column {path}: Spark type {dt.simpleString()} has no Iceberg equivalent")


def spark_to_iceberg_schema(schema: st.StructType) -> Schema:
    """An Iceberg schema (fresh ids 1..n; the catalog reassigns on create). `schema` is a
    `StructType` of PySpark or of sqlframe (the DuckDB engine): matched by type names."""
    struct = _to_iceberg(schema, _Ids(), "")
    assert isinstance(struct, it.StructType)
    return Schema(*struct.fields)


# ------------------------------------------------------------------------ Iceberg -> Spark

_PRIMITIVES_TO_SPARK: dict[type, str] = {
    it.StringType: "StringType",
    it.IntegerType: "IntegerType",
    it.LongType: "LongType",
    it.FloatType: "FloatType",
    it.DoubleType: "DoubleType",
    it.BooleanType: "BooleanType",
    it.DateType: "DateType",
    it.TimestamptzType: "TimestampType",
    it.TimestampType: "TimestampNTZType",
    it.BinaryType: "BinaryType",
    it.FixedType: "BinaryType",
    it.UUIDType: "StringType",
}


def iceberg_type_to_spark(t: it.IcebergType, types: Any = None) -> st.DataType:
    """The Spark type of `t`, built from `types`: `pyspark.sql.types` (default) or the
    running engine's types namespace (`engines.api.T`: sqlframe's on DuckDB)."""
    ns = types if types is not None else st
    if isinstance(t, it.DecimalType):
        return ns.DecimalType(t.precision, t.scale)
    if isinstance(t, it.StructType):
        return ns.StructType(
            [
                ns.StructField(f.name, iceberg_type_to_spark(f.field_type, ns), not f.required)
                for f in t.fields
            ]
        )
    if isinstance(t, it.ListType):
        return ns.ArrayType(iceberg_type_to_spark(t.element_type, ns), not t.element_required)
    if isinstance(t, it.MapType):
        return ns.MapType(
            iceberg_type_to_spark(t.key_type, ns),
            iceberg_type_to_spark(t.value_type, ns),
            not t.value_required,
        )
    for iceberg_type, name in _PRIMITIVES_TO_SPARK.items():
        if isinstance(t, iceberg_type):
            return getattr(ns, name)()
    raise TypeError(f"Iceberg type {t} has no Spark equivalent")


def iceberg_to_spark_schema(schema: Schema, types: Any = None) -> st.StructType:
    """The Spark read schema of an Iceberg schema (every field nullable, as Spark reads);
    `types` as in `iceberg_type_to_spark`."""
    ns = types if types is not None else st
    return ns.StructType(
        [
            ns.StructField(f.name, iceberg_type_to_spark(f.field_type, ns), True)
            for f in schema.fields
        ]
    )


def schema_summary(schema: Schema) -> list[tuple[str, str, bool]]:
    """[(name, type, nullable)] of the top-level columns, for run metadata."""
    return [(f.name, str(f.field_type), not f.required) for f in schema.fields]
