"""The Iceberg catalog and the Spark <-> Iceberg schema mapping.

There is no Iceberg Spark runtime: Spark writes and reads plain Parquet files, and pyiceberg
(a SQL catalog named `datahub`: SQLite on a laptop, PostgreSQL in production) owns the table
metadata. This module opens that catalog and translates schemas both ways:

    Spark TimestampType    <-> Iceberg timestamptz     Spark TimestampNTZType <-> timestamp
    byte/short/int         --> int                     long <-> long, float, double, boolean,
    string/char/varchar    --> string                  date, binary, decimal(p,s), struct,
                                                       array, map map one to one
"""

from __future__ import annotations

import time
from pathlib import Path
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

_PRIMITIVES_TO_ICEBERG: dict[type, it.IcebergType] = {
    st.StringType: it.StringType(),
    st.CharType: it.StringType(),
    st.VarcharType: it.StringType(),
    st.ByteType: it.IntegerType(),
    st.ShortType: it.IntegerType(),
    st.IntegerType: it.IntegerType(),
    st.LongType: it.LongType(),
    st.FloatType: it.FloatType(),
    st.DoubleType: it.DoubleType(),
    st.BooleanType: it.BooleanType(),
    st.DateType: it.DateType(),
    st.TimestampType: it.TimestamptzType(),
    st.TimestampNTZType: it.TimestampType(),
    st.BinaryType: it.BinaryType(),
}


class _Ids:
    def __init__(self) -> None:
        self.last = 0

    def next(self) -> int:
        self.last += 1
        return self.last


def _to_iceberg(dt: st.DataType, ids: _Ids, path: str) -> it.IcebergType:
    if isinstance(dt, st.DecimalType):
        return it.DecimalType(dt.precision, dt.scale)
    if isinstance(dt, st.StructType):
        fields = []
        for f in dt.fields:
            fid = ids.next()
            ftype = _to_iceberg(f.dataType, ids, f"{path}.{f.name}")
            fields.append(it.NestedField(fid, f.name, ftype, required=not f.nullable))
        return it.StructType(*fields)
    if isinstance(dt, st.ArrayType):
        eid = ids.next()
        return it.ListType(
            eid, _to_iceberg(dt.elementType, ids, path), element_required=not dt.containsNull
        )
    if isinstance(dt, st.MapType):
        kid, vid = ids.next(), ids.next()
        return it.MapType(
            kid,
            _to_iceberg(dt.keyType, ids, path),
            vid,
            _to_iceberg(dt.valueType, ids, path),
            value_required=not dt.valueContainsNull,
        )
    for spark_type, iceberg_type in _PRIMITIVES_TO_ICEBERG.items():
        if isinstance(dt, spark_type):
            return iceberg_type
    raise TypeError(f"column {path}: Spark type {dt.simpleString()} has no Iceberg equivalent")


def spark_to_iceberg_schema(schema: st.StructType) -> Schema:
    """An Iceberg schema (fresh ids 1..n; the catalog reassigns on create)."""
    struct = _to_iceberg(schema, _Ids(), "")
    assert isinstance(struct, it.StructType)
    return Schema(*struct.fields)


# ------------------------------------------------------------------------ Iceberg -> Spark

_PRIMITIVES_TO_SPARK: dict[type, st.DataType] = {
    it.StringType: st.StringType(),
    it.IntegerType: st.IntegerType(),
    it.LongType: st.LongType(),
    it.FloatType: st.FloatType(),
    it.DoubleType: st.DoubleType(),
    it.BooleanType: st.BooleanType(),
    it.DateType: st.DateType(),
    it.TimestamptzType: st.TimestampType(),
    it.TimestampType: st.TimestampNTZType(),
    it.BinaryType: st.BinaryType(),
    it.FixedType: st.BinaryType(),
    it.UUIDType: st.StringType(),
}


def iceberg_type_to_spark(t: it.IcebergType) -> st.DataType:
    if isinstance(t, it.DecimalType):
        return st.DecimalType(t.precision, t.scale)
    if isinstance(t, it.StructType):
        return st.StructType(
            [
                st.StructField(f.name, iceberg_type_to_spark(f.field_type), not f.required)
                for f in t.fields
            ]
        )
    if isinstance(t, it.ListType):
        return st.ArrayType(iceberg_type_to_spark(t.element_type), not t.element_required)
    if isinstance(t, it.MapType):
        return st.MapType(
            iceberg_type_to_spark(t.key_type),
            iceberg_type_to_spark(t.value_type),
            not t.value_required,
        )
    for iceberg_type, spark_type in _PRIMITIVES_TO_SPARK.items():
        if isinstance(t, iceberg_type):
            return spark_type
    raise TypeError(f"Iceberg type {t} has no Spark equivalent")


def iceberg_to_spark_schema(schema: Schema) -> st.StructType:
    """The Spark read schema of an Iceberg schema (every field nullable, as Spark reads)."""
    return st.StructType(
        [st.StructField(f.name, iceberg_type_to_spark(f.field_type), True) for f in schema.fields]
    )


def schema_summary(schema: Schema) -> list[tuple[str, str, bool]]:
    """[(name, type, nullable)] of the top-level columns, for run metadata."""
    return [(f.name, str(f.field_type), not f.required) for f in schema.fields]
