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
    """The Iceberg catalog for asset bodies. Connects lazily, on the first `catalog()` call."""

    catalog_uri: str | None = Field(
        default=None,
        description="SQLAlchemy URI of the catalog database; unset uses DATAHUB_CATALOG_URI "
        "(default sqlite:///$DATAHUB_HOME/catalog.db).",
    )
    warehouse: str | None = Field(
        default=None,
        description="Warehouse root for new tables (file:// or s3://); unset uses "
        "DATAHUB_WAREHOUSE (default file://$DATAHUB_HOME/warehouse).",
    )

    def catalog(self) -> Catalog:
        settings = Settings.from_env()
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


# ------------------------------------------------------------------ evolution and alignment


class SchemaMismatchError(ValueError):
    pass


def _widens(old: it.IcebergType, new: it.IcebergType) -> bool:
    """True when `old` values can be read as `new` (Iceberg's safe type promotions)."""
    if isinstance(old, it.IntegerType) and isinstance(new, it.LongType):
        return True
    if isinstance(old, it.FloatType) and isinstance(new, it.DoubleType):
        return True
    return (
        isinstance(old, it.DecimalType)
        and isinstance(new, it.DecimalType)
        and old.scale == new.scale
        and new.precision > old.precision
    )


def spark_type_widens(old: st.DataType, new: st.DataType) -> bool:
    """`_widens` for Spark types: the same promotions the writer applies to a table."""

    def iceberg(dt: st.DataType) -> it.IcebergType:
        return (
            spark_to_iceberg_schema(st.StructType([st.StructField("c", dt)])).fields[0].field_type
        )

    try:
        return _widens(iceberg(old), iceberg(new))
    except TypeError:  # a type Iceberg cannot store
        return False


def _diff(
    path: tuple[str, ...],
    old: it.IcebergType,
    new: it.IcebergType,
    where: str,
    ops: list[tuple[str, tuple[str, ...], it.IcebergType]],
) -> None:
    if isinstance(old, it.StructType) and isinstance(new, it.StructType):
        known = {f.name: f for f in old.fields}
        for f in new.fields:
            if f.name in known:
                _diff((*path, f.name), known[f.name].field_type, f.field_type, where, ops)
            else:
                ops.append(("add", (*path, f.name), f.field_type))
    elif isinstance(old, it.ListType) and isinstance(new, it.ListType):
        _diff((*path, "element"), old.element_type, new.element_type, where, ops)
    elif isinstance(old, it.MapType) and isinstance(new, it.MapType):
        _diff((*path, "key"), old.key_type, new.key_type, where, ops)
        _diff((*path, "value"), old.value_type, new.value_type, where, ops)
    elif old.is_primitive and new.is_primitive and (old == new or _widens(new, old)):
        return  # same type, or the frame is narrower: cast on write
    elif old.is_primitive and new.is_primitive and _widens(old, new):
        ops.append(("widen", path, new))
    else:
        raise SchemaMismatchError(
            f"table {where}: column {'.'.join(path)} cannot change type from {old} to {new} "
            "(only int->long, float->double and decimal precision widening are safe)"
        )


def evolve_schema(txn, frame_schema: st.StructType, where: str) -> bool:
    """Stage in `txn` the schema changes the frame needs: new columns (optional) and safe
    widenings. Raises SchemaMismatchError for any other type change. True if changed."""
    ops: list[tuple[str, tuple[str, ...], it.IcebergType]] = []
    incoming = spark_to_iceberg_schema(frame_schema)
    _diff((), txn.table_metadata.schema().as_struct(), incoming.as_struct(), where, ops)
    if ops:
        with txn.update_schema() as update:
            for op, path, t in ops:
                if op == "add":
                    update.add_column(path, t)
                else:
                    update.update_column(path, field_type=t)
    return bool(ops)


def without_nullability(dt: st.DataType) -> st.DataType:
    """`dt` with every nested field nullable: types compared regardless of nullability."""
    if isinstance(dt, st.StructType):
        return st.StructType(
            [st.StructField(f.name, without_nullability(f.dataType)) for f in dt.fields]
        )
    if isinstance(dt, st.ArrayType):
        return st.ArrayType(without_nullability(dt.elementType))
    if isinstance(dt, st.MapType):
        return st.MapType(without_nullability(dt.keyType), without_nullability(dt.valueType))
    return dt


def _same_shape(a: st.DataType, b: st.DataType) -> bool:
    """Structs with the same field names in the same order (a Spark cast is positional)."""
    if isinstance(a, st.StructType) and isinstance(b, st.StructType):
        return [f.name for f in a.fields] == [f.name for f in b.fields] and all(
            _same_shape(x.dataType, y.dataType) for x, y in zip(a.fields, b.fields, strict=True)
        )
    if isinstance(a, st.ArrayType) and isinstance(b, st.ArrayType):
        return _same_shape(a.elementType, b.elementType)
    if isinstance(a, st.MapType) and isinstance(b, st.MapType):
        return _same_shape(a.keyType, b.keyType) and _same_shape(a.valueType, b.valueType)
    return not isinstance(a, st.StructType | st.ArrayType | st.MapType | st.NullType)


def align(df, schema: Schema, where: str):
    """`df` as the table `schema` writes it: table column order, narrower types cast up,
    absent optional columns null, absent or null values of required columns an error."""
    from pyspark.sql import functions as F

    frame = {f.name: f for f in df.schema.fields}
    cols = []
    for f in schema.fields:
        target = without_nullability(iceberg_type_to_spark(f.field_type))
        if f.name not in frame:
            if f.required:
                raise SchemaMismatchError(
                    f"table {where}: required column {f.name} is missing from the data"
                )
            cols.append(F.lit(None).cast(target).alias(f.name))
            continue
        col = F.col(f"`{f.name}`")
        source = frame[f.name].dataType
        if without_nullability(source) != target and (
            _same_shape(source, target) or isinstance(source, st.NullType)
        ):
            col = col.cast(target)
        if f.required and frame[f.name].nullable:
            message = f"table {where}: required column {f.name} has a null value"
            col = F.when(col.isNull(), F.raise_error(F.lit(message))).otherwise(col)
        cols.append(col.alias(f.name))
    return df.select(*cols)
