"""`lookup`: enrich a dataset with fields of a small reference dataset (broadcast)."""

from __future__ import annotations

from pyspark.sql import DataFrame

from datahub_assets.engines.api import F
from datahub_assets.engines.columns import broadcast
from datahub_assets.execute.context import ExecContext
from datahub_assets.execute.transforms._base import (
    TransformError,
    dataset,
    register,
    require_columns,
)
from datahub_assets.spec.models import Lookup

_KEY = "__dh_lookup_key_{}"


@register("lookup")
def lookup(step: Lookup, datasets: dict[str, DataFrame], _ctx: ExecContext) -> DataFrame:
    """`on="country_code=code[,a=b]"` (source column = reference column); adds
    `outputFields` of the reference; joinType=left keeps unmatched rows (fields null, or
    the `defaults="field:value,..."` value cast to the field's type), inner drops them.

    The reference should have one row per key: a key matching several reference rows
    multiplies the source row, as any join would. Output field names already present in
    the source are an error (rename or drop them first).
    """
    df = dataset(datasets, step.source, step.kind)
    ref = dataset(datasets, step.reference, step.kind)
    pairs = list(step.on)  # (source column, reference column), parsed at load (spec/mini.py)
    if not pairs:  # defensive: the loader refuses an empty on=
        raise TransformError(f"lookup: `on` names no key for dataset {step.source!r}")
    require_columns(df, [s for s, _ in pairs], step.kind, step.source)
    require_columns(ref, [*(r for _, r in pairs), *step.output_fields], step.kind, step.reference)
    clash = [f for f in step.output_fields if f in df.columns]
    if clash:
        raise TransformError(
            f"lookup: output field(s) {', '.join(clash)} of {step.reference!r} already exist "
            f"in dataset {step.source!r}"
        )
    defaults = dict(step.defaults or ())
    unknown = [f for f in defaults if f not in step.output_fields]
    if unknown:  # defensive: the loader refuses these
        raise TransformError(
            f"lookup: defaults name {', '.join(unknown)}, which are not outputFields "
            f"({', '.join(step.output_fields)})"
        )
    small = ref.select(
        *[F.col(f"`{r}`").alias(_KEY.format(i)) for i, (_, r) in enumerate(pairs)],
        *[F.col(f"`{f}`") for f in step.output_fields],
    )
    cond = [F.col(f"`{s}`") == F.col(_KEY.format(i)) for i, (s, _) in enumerate(pairs)]
    out = df.join(broadcast(small), on=cond, how=step.join_type)
    out = out.drop(*[_KEY.format(i) for i in range(len(pairs))])
    if not defaults:
        return out
    types = {f.name: f.dataType.simpleString() for f in small.schema.fields}
    filled = {f: F.coalesce(F.col(f"`{f}`"), F.lit(v).cast(types[f])) for f, v in defaults.items()}
    return out.select(
        *[filled[c].alias(c) if c in filled else F.col(f"`{c}`") for c in out.columns]
    )
