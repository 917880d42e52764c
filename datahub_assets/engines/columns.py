"""Column functions and type helpers that pipeline code uses on both engines.

Each function builds its column with the running engine (`engines.api.current`): the part
that differs per engine is an operation of the `Engine` (`engines.write_ops.WriteOps`; on
Spark the PySpark function, on DuckDB a column with Spark's result):
- `broadcast`: a join hint (nothing on DuckDB: its optimiser picks the build side);
- `explode_outer`: one row per element, a null or empty array one null row;
- `row_order_id`: a number increasing with the input order (Spark's
  `monotonically_increasing_id`, DuckDB's `row_number() OVER ()`);
- `try_cast`, `cast`: Spark's conversions; `size`, `aggregate`, `map_entries`, `to_json`:
  Spark's results and result types; `expr`: a Spark SQL expression with Spark's result types;
- `array_field`: a field of each struct of an array.
`type_string` is Spark's text of a type of either engine; `engine_type` rebuilds a type with
the running engine's `T`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from datahub_assets.engines.api import F, T, current

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame


def broadcast(df: DataFrame) -> DataFrame:
    """Spark's broadcast hint; the frame itself on DuckDB."""
    return current().broadcast(df)


def explode_outer(col: Column) -> Column:
    """One row per element; a null or empty array gives one row with null."""
    return current().explode_outer(col)


def row_order_id() -> Column:
    """An id increasing with the rows' incoming order (not consecutive on Spark)."""
    return current().row_order_id()


def try_cast(col: Column, dtype: Any, source: Any = None) -> Column:
    """`col` as `dtype` (a DataType of the current engine), null when it does not convert;
    `source`: the column's type."""
    return current().try_cast(col, dtype, source)


def cast(col: Column, to: str, source: Any) -> Column:
    """`col.cast(to)` (`source`: the column's type) with Spark's result on either engine."""
    return current().cast(col, to, source)


def size(col: Column, dtype: Any) -> Column:
    """Elements of an array / entries of a map (`dtype`); null stays null."""
    return F.when(col.isNotNull(), current().element_count(col, dtype))


def aggregate(fn: str, col: Column, dtype: Any) -> Column:
    """`F.<fn>(col)` with Spark's result type (`dtype` is the column's type)."""
    return current().aggregate_result(fn, getattr(F, fn)(col), dtype)


def map_entries(col: Column) -> Column:
    """The map's entries as an array of (key, value) structs."""
    return current().map_entries(col)


def to_json(col: Column, dtype: Any) -> Column:
    """Spark's `to_json` text of a struct/array/map column of type `dtype`."""
    return current().to_json(col, dtype)


def expr(text: str, df: Any = None) -> Column:
    """`F.expr(text)` with Spark's result types (`df`: the frame it runs on)."""
    return current().expr(text, df)


def array_field(col: Column, name: str) -> Column:
    """The field `name` of each struct of an array column, as an array."""
    return current().array_field(col, name)


# --- types ------------------------------------------------------------------------------------


def type_string(dtype: Any) -> str:
    """Spark's `simpleString` of a PySpark or sqlframe type (sqlframe writes `decimal(12, 2)`
    and `struct<a:int, b:string>`; Spark has no spaces)."""
    return dtype.simpleString().replace(", ", ",")


def engine_type(dtype: Any) -> Any:
    """`dtype` (a PySpark or sqlframe DataType) rebuilt from the running engine's `T`
    (the class names are the same in both)."""
    kind = type(dtype).__name__
    if kind == "StructType":
        return T.StructType(
            [T.StructField(f.name, engine_type(f.dataType), f.nullable) for f in dtype.fields]
        )
    if kind == "ArrayType":
        return T.ArrayType(engine_type(dtype.elementType), dtype.containsNull)
    if kind == "MapType":
        return T.MapType(
            engine_type(dtype.keyType), engine_type(dtype.valueType), dtype.valueContainsNull
        )
    if kind == "DecimalType":
        return T.DecimalType(dtype.precision, dtype.scale)
    if kind in ("CharType", "VarcharType"):
        return T.StringType()
    return getattr(T, kind)()
