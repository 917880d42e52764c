"""`rename`: rename columns (`old:new,old2:new2`)."""

from __future__ import annotations

from pyspark.sql import DataFrame

from datahub_assets.execute.context import ExecContext
from datahub_assets.execute.transforms._base import (
    TransformError,
    dataset,
    register,
    require_columns,
)
from datahub_assets.spec.models import Rename


@register("rename")
def rename(step: Rename, datasets: dict[str, DataFrame], _ctx: ExecContext) -> DataFrame:
    """Unknown old names and new names that collide with a kept column are errors."""
    df = dataset(datasets, step.source, step.kind)
    mapping = dict(step.mapping)  # (old, new) pairs parsed at load (spec/mini.py)
    if not mapping:  # defensive: the loader refuses an empty mapping=
        raise TransformError(f"rename: no `old:new` items given for dataset {step.source!r}")
    require_columns(df, mapping, step.kind, step.source)
    kept = [c for c in df.columns if c not in mapping]
    new_names = list(mapping.values())
    for new in new_names:
        if new in kept or new_names.count(new) > 1:
            raise TransformError(
                f"rename: new name {new!r} would duplicate a column in dataset {step.source!r}"
            )
    return df.withColumnsRenamed(mapping)
