"""`T` on the DuckDB engine: sqlframe's PySpark-compatible types, plus PySpark's abstract
groups (`IntegralType`, `FractionalType`, `NumericType`) as tuples usable in isinstance."""

from __future__ import annotations

from sqlframe.base.types import (
    ArrayType,
    BinaryType,
    BooleanType,
    ByteType,
    CharType,
    DataType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    MapType,
    Row,
    ShortType,
    StringType,
    StructField,
    StructType,
    TimestampNTZType,
    TimestampType,
    VarcharType,
)

IntegralType = (ByteType, ShortType, IntegerType, LongType)
FractionalType = (FloatType, DoubleType, DecimalType)
NumericType = (*IntegralType, *FractionalType)

__all__ = [
    "ArrayType",
    "BinaryType",
    "BooleanType",
    "ByteType",
    "CharType",
    "DataType",
    "DateType",
    "DecimalType",
    "DoubleType",
    "FloatType",
    "FractionalType",
    "IntegerType",
    "IntegralType",
    "LongType",
    "MapType",
    "NumericType",
    "Row",
    "ShortType",
    "StringType",
    "StructField",
    "StructType",
    "TimestampNTZType",
    "TimestampType",
    "VarcharType",
]
