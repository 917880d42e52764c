"""Schema evolution and alignment of a frame to an Iceberg table (the writer's schema rules).

`evolve_schema` stages in a pyiceberg transaction the changes a frame needs: new (optional)
columns and Iceberg's safe type promotions (int->long, float->double, decimal precision);
any other type change is a `SchemaMismatchError`. `align` then shapes the frame as the table
writes it (column order, narrower types cast up, absent optional columns null, nulls in
required columns an error). `spark_type_widens`/`without_nullability` are the same rules on
Spark types, for schema drift (`execute.drift`). Frames and types of either engine (PySpark,
or sqlframe on DuckDB) are handled alike: types are matched by class name. The Spark <->
Iceberg type mapping stays in `datahub_resources.iceberg` (resources use it too).
"""

from __future__ import annotations

import sys
from typing import Any

from pyiceberg import types as it
from pyiceberg.schema import Schema
from pyspark.sql import DataFrame
from pyspark.sql import types as st

from datahub_assets.engines.api import F, T
from datahub_assets.engines.frames import write_ops_of
from datahub_resources.iceberg import iceberg_type_to_spark, spark_to_iceberg_schema


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
        ns = sys.modules[type(dt).__module__]  # PySpark's or sqlframe's types
        return (
            spark_to_iceberg_schema(ns.StructType([ns.StructField("c", dt)])).fields[0].field_type
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


def _kind(dt: object) -> str:
    """The type's class name: the same in PySpark and sqlframe (the DuckDB engine)."""
    return type(dt).__name__


def without_nullability(dt: st.DataType) -> st.DataType:
    """`dt` with every nested field nullable: types compared regardless of nullability
    (built from `dt`'s own namespace: PySpark or sqlframe types)."""
    d: Any = dt
    kind = _kind(d)
    if kind == "StructType":
        field = type(d.fields[0]) if d.fields else None
        return type(d)(
            [field(f.name, without_nullability(f.dataType)) for f in d.fields] if field else []
        )
    if kind == "ArrayType":
        return type(d)(without_nullability(d.elementType))
    if kind == "MapType":
        return type(d)(without_nullability(d.keyType), without_nullability(d.valueType))
    return dt


def _same_shape(a: Any, b: Any) -> bool:
    """Structs with the same field names in the same order (a Spark cast is positional)."""
    ka, kb = _kind(a), _kind(b)
    if ka == kb == "StructType":
        return [f.name for f in a.fields] == [f.name for f in b.fields] and all(
            _same_shape(x.dataType, y.dataType) for x, y in zip(a.fields, b.fields, strict=True)
        )
    if ka == kb == "ArrayType":
        return _same_shape(a.elementType, b.elementType)
    if ka == kb == "MapType":
        return _same_shape(a.keyType, b.keyType) and _same_shape(a.valueType, b.valueType)
    return ka not in ("StructType", "ArrayType", "MapType", "NullType")


def _raise_error(df: DataFrame, message: str):
    """A column failing the query with `message` (Spark `raise_error`, DuckDB `error()`)."""
    return write_ops_of(df).error_column(message)


def align(df: DataFrame, schema: Schema, where: str) -> DataFrame:
    """`df` as the table `schema` writes it: table column order, narrower types cast up,
    absent optional columns null, absent or null values of required columns an error."""
    fields = df.schema.fields
    frame = {f.name: f for f in fields}
    cols = []
    same = [f.name for f in fields] == [f.name for f in schema.fields]
    for f in schema.fields:
        target = without_nullability(iceberg_type_to_spark(f.field_type, T))
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
            _same_shape(source, target) or _kind(source) == "NullType"
        ):
            col = col.cast(target)
            same = False
        if f.required and frame[f.name].nullable:
            message = f"table {where}: required column {f.name} has a null value"
            col = F.when(col.isNull(), _raise_error(df, message)).otherwise(col)
            same = False
        cols.append(col.alias(f.name))
    # already the table's columns, in order, as written: the frame itself (a projection
    # that changes nothing costs a query plan and, on DuckDB, a schema lookup)
    return df if same else df.select(*cols)
