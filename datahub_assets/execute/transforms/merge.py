"""`merge`: row-wise union of several datasets."""

from __future__ import annotations

from functools import reduce

from pyspark.sql import DataFrame

from datahub_assets.execute.context import ExecContext
from datahub_assets.execute.transforms._base import TransformError, dataset, register
from datahub_assets.spec.models import Merge


def _check_shapes(step: Merge, frames: list[DataFrame]) -> None:
    first, base = step.sources[0], frames[0].columns
    for name, df in zip(step.sources[1:], frames[1:], strict=True):
        cols = df.columns
        if step.mode == "union" and len(cols) != len(base):
            raise TransformError(
                f"merge: dataset {name!r} has {len(cols)} columns but {first!r} has "
                f"{len(base)}; mode='union' matches columns by position"
            )
        if step.mode == "unionByName" and not step.allow_missing_columns:
            missing = [c for c in base if c not in cols] + [c for c in cols if c not in base]
            if missing:
                raise TransformError(
                    f"merge: datasets {first!r} and {name!r} differ in columns "
                    f"{', '.join(missing)}; set allowMissingColumns=true to fill them with nulls"
                )


@register("merge")
def merge(step: Merge, datasets: dict[str, DataFrame], _ctx: ExecContext) -> DataFrame:
    """mode=union: by position (names from the first source); unionByName: by name,
    with allowMissingColumns filling absent columns with nulls."""
    if len(step.sources) < 1:
        raise TransformError("merge: `sources` names no dataset")
    frames = [dataset(datasets, name, step.kind) for name in step.sources]
    _check_shapes(step, frames)
    if step.mode == "union":
        return reduce(lambda a, b: a.union(b), frames)
    return reduce(
        lambda a, b: a.unionByName(b, allowMissingColumns=step.allow_missing_columns), frames
    )
