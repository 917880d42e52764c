"""`flatten`: nested structs to top-level columns, arrays per the `arrays` policy."""

from __future__ import annotations

from collections import Counter

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, DataType, MapType, StructType

from datahub_assets.execute.context import ExecContext
from datahub_assets.execute.transforms._base import TransformError, dataset, register
from datahub_assets.spec.models import Flatten

_MAX_PASSES = 64


class _Pass:
    """One select over the current schema; at most one explode per pass (a Spark rule)."""

    def __init__(self, separator: str, arrays: str) -> None:
        self.sep, self.arrays = separator, arrays
        self.exploded = False

    def expand(self, col: Column, name: str, dtype: DataType) -> list[Column]:
        if isinstance(dtype, StructType):
            return [
                c
                for f in dtype.fields
                for c in self.expand(col.getField(f.name), f"{name}{self.sep}{f.name}", f.dataType)
            ]
        if isinstance(dtype, ArrayType):
            return self._array(col, name, dtype)
        if isinstance(dtype, MapType) and self.arrays == "json":
            return [F.to_json(col).alias(name)]
        return [col.alias(name)]

    def _array(self, col: Column, name: str, dtype: ArrayType) -> list[Column]:
        if self.arrays == "first":
            return self.expand(F.try_element_at(col, F.lit(1)), name, dtype.elementType)
        if self.arrays == "count":
            return [F.when(col.isNotNull(), F.size(col)).alias(name)]
        if self.arrays == "json":
            return [F.to_json(col).alias(name)]
        if self.exploded:  # explode: one array per pass, the rest on the next passes
            return [col.alias(name)]
        self.exploded = True
        return [F.explode_outer(col).alias(name)]


@register("flatten")
def flatten(step: Flatten, datasets: dict[str, DataFrame], ctx: ExecContext) -> DataFrame:
    """`order.shipping.city` -> `order_shipping_city` (with `separator`), at any depth.

    arrays: `json` (default) -> to_json string (maps too); `count` -> size (null stays
    null); `first` -> element 0 (null when empty), flattened further if a struct;
    `explode` -> one row per element (explode_outer: empty/null arrays keep the row with
    null), structs inside flattened further. Several exploded arrays multiply (a cross
    product per row). Map columns are kept as maps except with arrays=json.
    """
    df = dataset(datasets, step.source, step.kind)
    for _ in range(_MAX_PASSES):
        p = _Pass(step.separator, step.arrays)
        fields = df.schema.fields
        if not any(isinstance(f.dataType, StructType | ArrayType) for f in fields) and not (
            step.arrays == "json" and any(isinstance(f.dataType, MapType) for f in fields)
        ):
            return df
        cols = [c for f in fields for c in p.expand(F.col(f"`{f.name}`"), f.name, f.dataType)]
        df = df.select(*cols)
        dupes = [c for c, n in Counter(df.columns).items() if n > 1]
        if dupes:
            raise TransformError(
                f"flatten: dataset {step.source!r} would get duplicate column(s) "
                f"{', '.join(dupes)}; choose another separator or rename first"
            )
    raise TransformError(f"flatten: dataset {step.source!r} is nested too deeply")
