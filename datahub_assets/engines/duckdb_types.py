"""`T` on the DuckDB engine: sqlframe's PySpark-compatible types, plus PySpark's abstract
groups (`IntegralType`, `FractionalType`, `NumericType`) as tuples usable in isinstance."""

from __future__ import annotations

from sqlframe.base.types import *  # noqa: F403  (the PySpark type names, re-exported)
from sqlframe.base.types import (
    ByteType,
    DecimalType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    ShortType,
)

IntegralType = (ByteType, ShortType, IntegerType, LongType)
FractionalType = (FloatType, DoubleType, DecimalType)
NumericType = (*IntegralType, *FractionalType)
