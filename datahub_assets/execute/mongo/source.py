"""A `mongo` source inside a run: misfit documents (`onInvalid`), flatten, incremental.

`read_mongo_source` is what the runner calls for every mongo source (it needs the run's
quarantine gate and watermarks, which `read_source` does not carry); `read_mongo` is the
plain reader behind `read_source` (misfits fail the read; `drop`/`quarantine` just drop).

Misfits: a document that does not fit the schema (pinned, or inferred from the sample) — a
value that does not convert (`column 'amount': value 'abc' is not bigint`, rule `cast`) or a
non-nullable field null or missing without a declared `default` (`column 'sku' is required`,
rule `required`) — follows `onInvalid` (default `fail`): `fail` stops the Spark task at the
first one, naming the document's `_id` and the reason; `drop` and `quarantine` read the
collection ONCE into Spark (a local checkpoint: MongoDB is not read again, so the kept and
the quarantined documents come from the same read), count the misfits, and `quarantine`
appends them to `<table>__quarantine` as `_id`, `document` (relaxed extended JSON), `_reason`,
`_rule` + the lineage columns, after the run's tables publish.

Incremental: the watermark filter `column > watermark` (and, once the new watermark is known,
`column <= new watermark`) is pushed into the MongoDB query when the column is a document
field (flattened names map back to `a.b` paths) and every sampled value of it has the
watermark's BSON type (dates for timestamp, numbers, strings; ObjectId for an `_id` hex
string column); the same bounds are always applied in Spark too, so a pushed-down filter only
saves reading, never changes the result.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from datahub_assets.execute.context import ExecContext
from datahub_assets.execute.mongo import worker
from datahub_assets.execute.mongo.read import MongoPlan, bracket, column_paths, plan_read
from datahub_assets.execute.outcomes import PipelineRunError
from datahub_assets.execute.quality import Prepared
from datahub_assets.execute.quarantine import InvalidRowsError, apply_policy, quarantine_ref
from datahub_assets.execute.sources import materialise
from datahub_assets.execute.transforms.flatten import flatten_frame
from datahub_assets.execute.watermarks import (
    Watermark,
    WatermarkState,
    max_watermark,
    resolve_column,
)
from datahub_assets.spec.models import MongoSource, TableRef


def _valid(raw: DataFrame, plan: MongoPlan) -> DataFrame:
    return raw.where(F.col(worker.REASON).isNull()).select(
        *[F.col(f"`{f.name}`") for f in plan.schema.fields]
    )


def _invalid(raw: DataFrame) -> DataFrame:
    return raw.where(F.col(worker.REASON).isNotNull()).select(
        F.col(worker.DOC_ID).alias("_id"),
        F.col(worker.DOC).alias("document"),
        F.col(worker.REASON).alias("_reason"),
        F.col(worker.RULE).alias("_rule"),
    )


def _shape(df: DataFrame, source: MongoSource) -> DataFrame:
    return flatten_frame(df, name=source.id) if source.flatten else df


def read_mongo(source: MongoSource, ctx: ExecContext) -> DataFrame:
    """The source's documents as a lazy DataFrame (misfits: see the module docstring)."""
    plan = plan_read(source, ctx)
    policy = source.on_invalid or "fail"
    raw = plan.frame("fail" if policy == "fail" else "drop")
    return _shape(_valid(raw, plan), source)


# -------------------------------------------------------------------- incremental


def _bson_bound(wm: Watermark, values: list[Any]) -> Any:
    """The watermark as the BSON value the column's documents hold, or None (no push-down)
    when the sampled values are not all of that type."""
    seen = {bracket(v) for v in values if v is not None}
    if not seen or len(seen) > 1:
        return None
    kind = seen.pop()
    t = wm.type
    if t == "timestamp" and kind == "date":
        return datetime.fromisoformat(wm.value)
    if t in ("tinyint", "smallint", "int", "bigint") and kind == "number":
        return int(wm.value)
    if t in ("double", "float") and kind == "number":
        return float(wm.value)
    if t == "string" and kind == "string":
        return wm.value
    if t == "string" and kind == "objectid":
        from bson import ObjectId

        return ObjectId(wm.value) if ObjectId.is_valid(wm.value) else None
    return None


def _path_values(docs: list[dict], path: tuple[str, ...]) -> list[Any]:
    out = []
    for d in docs:
        node: Any = d
        for p in path:
            node = node.get(p) if isinstance(node, dict) else None
        out.append(node)
    return out


def _pushdown(
    plan: MongoPlan, column: str, low: Watermark | None, high: Watermark | None
) -> dict | None:
    path = column_paths(plan.schema, plan.source.flatten).get(column)
    if path is None:
        return None
    values = _path_values(plan.sample, path)
    cond = {}
    for op, wm in (("$gt", low), ("$lte", high)):
        if wm is not None:
            bound = _bson_bound(wm, values)
            if bound is None:
                return None
            cond[op] = bound
    return {".".join(path): cond} if cond else None


Rebuild = Callable[[str, Watermark], DataFrame | None]
"""(watermark column, new watermark) -> the source read again with the bounds pushed down
into MongoDB, or None when they cannot be pushed down."""


def _incremental(
    plan: MongoPlan,
    ctx: ExecContext,
    df: DataFrame,
    incremental_column: str,
    previous: Watermark | None,
    rebuild: Rebuild | None,
) -> tuple[DataFrame, Watermark | None]:
    """(rows above `previous` and at most the new watermark, new watermark)."""
    source = plan.source
    column = resolve_column(df, source.id, incremental_column)
    col = F.col(f"`{column.name}`")
    df = df.where(col.isNotNull()) if previous is None else df.where(col > previous.literal())
    newest = max_watermark(df, col, column.dataType)
    if newest is None:
        ctx.log.info(
            "source %s: no documents above watermark %s",
            source.id,
            previous.value if previous else "(none)",
        )
        return df.where(F.lit(False)), previous
    bounded = rebuild(column.name, newest) if rebuild else None
    if bounded is not None:
        df = bounded if previous is None else bounded.where(col > previous.literal())
    df = df.where(col <= newest.literal())
    ctx.log.info(
        "source %s: reading documents with %s in (%s, %s]",
        source.id,
        column.name,
        previous.value if previous else "-inf",
        newest.value,
    )
    return df, newest


# -------------------------------------------------------------------------- the run


def read_mongo_source(
    ctx: ExecContext,
    source: MongoSource,
    into: TableRef | None,
    where: str,
    prepared: Prepared,
    watermarks: WatermarkState | None,
) -> DataFrame:
    """The source's dataset in a pipeline run: misfits per `onInvalid` (counted and
    quarantined into `prepared`), flattened, above its watermark (recorded in
    `watermarks.current`)."""
    policy = source.on_invalid or "fail"
    if policy == "quarantine" and into is None:
        raise PipelineRunError(
            f'{where}: onInvalid="quarantine" needs a table target to '
            "put <table>__quarantine next to"
        )
    previous = (
        watermarks.previous.get(source.id)
        if watermarks is not None and source.incremental
        else None
    )
    plan = plan_read(source, ctx, need_sample=source.incremental is not None)
    column = source.incremental.column if source.incremental else None
    extra = _pushdown(plan, column, previous, None) if column and previous else None
    if column and previous and extra is None:
        ctx.log.info(
            "source %s: watermark filter on %s applied in Spark (not pushed to MongoDB)",
            source.id,
            column,
        )
    raw = plan.frame(policy, extra)
    rebuild: Rebuild | None = None
    if policy == "fail":
        df = _shape(_valid(raw, plan), source)

        def read_bounded(name: str, newest: Watermark) -> DataFrame | None:
            bounds = _pushdown(plan, name, previous, newest)
            return _shape(_valid(plan.frame(policy, bounds), plan), source) if bounds else None

        rebuild = read_bounded
    else:
        raw = materialise(raw)  # one MongoDB read feeds kept rows, count and quarantine
        invalid = _invalid(raw)
        try:
            df, rows, count = apply_policy(
                policy, _valid(raw, plan), invalid, where, run_id=ctx.run_id
            )
        except InvalidRowsError as exc:  # pragma: no cover - policy is drop|quarantine here
            raise PipelineRunError(str(exc)) from exc
        prepared.extra["invalid_rows"] = prepared.extra.get("invalid_rows", 0) + count
        if rows is not None and into is not None:
            prepared.quarantine.append((quarantine_ref(into), rows))
            prepared.extra["quarantine_table"] = quarantine_ref(into).identifier
        if count:
            ctx.log.warning(
                "source %s: %d document(s) did not fit the schema (onInvalid=%s)",
                source.id,
                count,
                policy,
            )
        df = _shape(df, source)
    if source.incremental is not None:
        df, newest = _incremental(plan, ctx, df, source.incremental.column, previous, rebuild)
        if watermarks is not None and newest is not None:
            watermarks.current[source.id] = newest
    if source.load_policy == "eager" and policy == "fail":
        df = materialise(df)
    return df


__all__ = ["read_mongo", "read_mongo_source"]
