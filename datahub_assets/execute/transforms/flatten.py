"""`flatten`: nested structs to top-level columns, arrays and maps per the `arrays` policy.

`flatten_frame` is the one flattening code path: the `flatten` transformation and the
`mongo` source's `flatten="true"` both call it.
"""

from __future__ import annotations

from collections import Counter

from pyspark.sql import Column, DataFrame
from pyspark.sql.types import ArrayType, DataType, MapType

from datahub_assets.engines.api import F, T
from datahub_assets.engines.columns import explode_outer, map_entries, size, to_json
from datahub_assets.execute.context import ExecContext
from datahub_assets.execute.transforms._base import TransformError, dataset, register
from datahub_assets.spec.models import Flatten

_MAX_PASSES = 64
ARRAY_MODES = ("explode", "first", "count", "json", "index")
DEFAULT_MAX_INDEX = 5


class _Pass:
    """One select over the current schema; at most one explode per pass (a Spark rule)."""

    def __init__(self, separator: str, arrays: str, max_index: int) -> None:
        self.sep, self.arrays, self.max_index = separator, arrays, max_index
        self.exploded = False

    def expand(self, col: Column, name: str, dtype: DataType) -> list[Column]:
        if isinstance(dtype, T.StructType):
            return [
                c
                for f in dtype.fields
                for c in self.expand(col.getField(f.name), f"{name}{self.sep}{f.name}", f.dataType)
            ]
        if isinstance(dtype, T.ArrayType):
            return self._array(col, name, dtype)
        if isinstance(dtype, T.MapType):
            return self._map(col, name, dtype)
        return [col.alias(name)]

    def _array(self, col: Column, name: str, dtype: ArrayType) -> list[Column]:
        if self.arrays == "first":
            return self.expand(F.try_element_at(col, F.lit(1)), name, dtype.elementType)
        if self.arrays == "count":
            return [size(col, dtype).alias(name)]
        if self.arrays == "json":
            return [to_json(col, dtype).alias(name)]
        if self.arrays == "index":  # items_0_name, items_1_name, ... (null past the end)
            return [
                c
                for i in range(self.max_index)
                for c in self.expand(
                    F.try_element_at(col, F.lit(i + 1)), f"{name}{self.sep}{i}", dtype.elementType
                )
            ]
        if self.exploded:  # explode: one array per pass, the rest on the next passes
            return [col.alias(name)]
        self.exploded = True
        return [explode_outer(col).alias(name)]

    def _map(self, col: Column, name: str, dtype: MapType) -> list[Column]:
        """Maps as key/value: entries sorted by key, then the array policy applies to them
        (`m_key`/`m_value` per row for explode and first, `m_0_key`... for index)."""
        if self.arrays == "json":
            return [to_json(col, dtype).alias(name)]
        if self.arrays == "count":
            return [size(col, dtype).alias(name)]
        entries = F.array_sort(map_entries(col))
        entry_type = T.ArrayType(
            T.StructType(
                [
                    T.StructField("key", dtype.keyType, False),
                    T.StructField("value", dtype.valueType, dtype.valueContainsNull),
                ]
            )
        )
        return self._array(entries, name, entry_type)


def _is_nested(dtype: DataType) -> bool:
    return isinstance(dtype, T.StructType | T.ArrayType | T.MapType)


def flatten_frame(
    df: DataFrame,
    separator: str = "_",
    arrays: str = "json",
    max_index: int = DEFAULT_MAX_INDEX,
    name: str = "dataset",
) -> DataFrame:
    """`order.shipping.city` -> `order_shipping_city` (with `separator`), at any depth.

    arrays: `json` (default) -> to_json string (maps too); `count` -> size (null stays
    null); `first` -> element 0 (null when empty), flattened further if a struct;
    `explode` -> one row per element (explode_outer: empty/null arrays keep the row with
    null), structs inside flattened further; `index` -> Morphix-style columns for the first
    `max_index` elements, `items_0_name`, `items_1_name`, ... (null past the end; longer
    arrays are cut). Several exploded arrays multiply (a cross product per row). Maps are
    key/value arrays (sorted by key) under every policy but json and count: `m_key`,
    `m_value` (explode, first) or `m_0_key`, `m_0_value`, ... (index).
    """
    if arrays not in ARRAY_MODES:
        raise TransformError(f"flatten: arrays={arrays!r} is not one of {', '.join(ARRAY_MODES)}")
    if max_index < 1:
        raise TransformError(f"flatten: maxIndex must be at least 1, got {max_index}")
    for _ in range(_MAX_PASSES):
        p = _Pass(separator, arrays, max_index)
        fields = df.schema.fields
        if not any(_is_nested(f.dataType) for f in fields):
            return df
        cols = [c for f in fields for c in p.expand(F.col(f"`{f.name}`"), f.name, f.dataType)]
        df = df.select(*cols)
        dupes = [c for c, n in Counter(df.columns).items() if n > 1]
        if dupes:
            raise TransformError(
                f"flatten: dataset {name!r} would get duplicate column(s) "
                f"{', '.join(dupes)}; choose another separator or rename first"
            )
    raise TransformError(f"flatten: dataset {name!r} is nested too deeply")


@register("flatten")
def flatten(step: Flatten, datasets: dict[str, DataFrame], _ctx: ExecContext) -> DataFrame:
    """The `flatten` step: `flatten_frame` with the step's separator, arrays and maxIndex."""
    df = dataset(datasets, step.source, step.kind)
    return flatten_frame(df, step.separator, step.arrays, step.max_index, step.source)
