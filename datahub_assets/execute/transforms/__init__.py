"""Transformations (contract 4.2): one module per element, registered by element name.

`apply_steps` runs a pipeline's steps over its datasets (sources by id) and returns the
datasets after the last step. Each step function takes `(step, datasets, ctx)` and returns
the DataFrame stored under `step.result` (its `output`, else it replaces its `source`).
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import DataFrame

from datahub_assets.engines.api import current
from datahub_assets.execute.context import ExecContext
from datahub_assets.execute.transforms import (  # noqa: F401  (each module registers itself)
    aggregate,
    cast,
    deduplicate,
    derive,
    filter,
    flatten,
    join,
    lookup,
    mask,
    merge,
    rename,
    select,
    sort,
    sql,
)
from datahub_assets.execute.transforms._base import (
    TRANSFORMS,
    TransformError,
    register,
    spark_message,
)

_ENGINE_NAMES = {"spark": "Spark", "duckdb": "DuckDB"}
__all__ = ["TRANSFORMS", "TransformError", "apply_steps", "register"]


def _describe(step, position: int) -> str:
    where = f" at {step.loc}" if getattr(step, "loc", None) else ""
    return f"step {position} <{step.kind}> -> {step.result!r}{where}"


def _next_runnable(pending: list, datasets: dict[str, DataFrame]) -> int:
    """Index of the first pending step whose inputs all exist (written order otherwise)."""
    produced_later = {s.result for s in pending}
    for i, step in enumerate(pending):
        if all(name in datasets or name not in produced_later for name in step.inputs):
            return i
    return 0  # a cycle or a missing dataset: let the step report it


def apply_steps(
    steps: Sequence, datasets: dict[str, DataFrame], ctx: ExecContext
) -> dict[str, DataFrame]:
    """Run `steps` and return a new dict of datasets (the input dict is not modified).

    Steps run in written order, except that a step reading a dataset which a later step
    creates (`output`) waits until that step has run. `sql` steps run where written.
    Every result is analysed at once, so a bad column or expression fails here with the
    step's kind, dataset and location instead of later, at write time.
    """
    datasets = dict(datasets)
    engine = current()
    pending = list(enumerate(steps, start=1))
    while pending:
        idx = _next_runnable([s for _, s in pending], datasets)
        position, step = pending.pop(idx)
        fn = TRANSFORMS.get(step.kind)
        if fn is None:
            raise TransformError(
                f"{_describe(step, position)}: unknown transformation {step.kind!r}; "
                f"known: {', '.join(sorted(TRANSFORMS))}"
            )
        try:
            result = fn(step, datasets, ctx)
            result.isLocal()  # analyses the plan on the server (`columns` may be cached)
        except TransformError as exc:
            raise TransformError(f"{_describe(step, position)}: {exc}") from exc
        except engine.errors as exc:
            # Spark's full text carries the plan (with a mask step's key material) and the
            # JVM stack, DuckDB's the query: keep the first line, scrubbed, and drop the
            # chained exception.
            names = ", ".join(repr(n) for n in step.inputs) or repr(step.result)
            who = _ENGINE_NAMES[engine.name]
            raise TransformError(
                f"{_describe(step, position)}: {who} rejected the step on dataset "
                f"{names}: {spark_message(exc)}"
            ) from None
        ctx.log.debug("transformation %s -> %s", step.kind, step.result)
        datasets[step.result] = result
    return datasets
