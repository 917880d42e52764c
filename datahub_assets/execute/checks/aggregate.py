"""The single Spark aggregation shared by a target's column checks.

Every row-level check contributes measures (`sum` of a 0/1 failing flag, `max` of a
freshness column); all of them plus count(*) become ONE `agg` and one job. With a unique
check, the frame is first grouped by that check's key and the measures are computed per key
group, then combined (sum of sums, max of maxes) in the same job; the group sizes give the
exact rows whose key occurs more than once and the number of such keys — so unique costs a
shuffle on its key but no extra job. A second unique check with another key needs its own
grouping job (`unique_counts`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce

from pyspark.sql import Column, DataFrame, Row

from datahub_assets.engines.api import F
from datahub_assets.execute.checks.predicates import qcol

TOTAL, DUP_ROWS, DUP_KEYS, GROUP_N = "__total", "__dup_rows", "__dup_keys", "__n"


@dataclass(frozen=True)
class Measure:
    alias: str
    expr: Column
    """Row-level value."""
    op: str  # "sum" | "max" | "min"


def failing_count(alias: str, predicate: Column) -> Measure:
    return Measure(alias, F.when(predicate, F.lit(1)).otherwise(F.lit(0)), "sum")


def run_aggregation(frame: DataFrame) -> Row:
    """Runs one aggregation frame: the only place the checks start a counting job (tests
    monkeypatch it to count jobs)."""
    row = frame.first()
    if row is None:  # cannot happen: an aggregation without grouping has exactly one row
        raise RuntimeError("a check aggregation returned no row")
    return row


def _key_ok(key: Sequence[str]) -> Column:
    return reduce(lambda a, b: a & b, [qcol(k).isNotNull() for k in key])


def aggregate(
    df: DataFrame, measures: Sequence[Measure], unique_key: Sequence[str] | None = None
) -> dict:
    """{alias: value} for every measure plus TOTAL (and DUP_ROWS, DUP_KEYS with a key), in one
    job. Keys with a null part are never duplicates (as in SQL UNIQUE)."""
    if not unique_key:
        frame = df.agg(
            F.count(F.lit(1)).alias(TOTAL),
            *[getattr(F, m.op)(m.expr).alias(m.alias) for m in measures],
        )
    else:
        groups = df.groupBy(*[qcol(k) for k in unique_key]).agg(
            F.count(F.lit(1)).alias(GROUP_N),
            *[getattr(F, m.op)(m.expr).alias(m.alias) for m in measures],
        )
        dup = (F.col(GROUP_N) > 1) & _key_ok(unique_key)
        frame = groups.agg(
            F.sum(GROUP_N).alias(TOTAL),
            F.sum(F.when(dup, F.col(GROUP_N)).otherwise(0)).alias(DUP_ROWS),
            F.sum(F.when(dup, 1).otherwise(0)).alias(DUP_KEYS),
            *[getattr(F, m.op)(F.col(m.alias)).alias(m.alias) for m in measures],
        )
    row = run_aggregation(frame).asDict()
    for name in (TOTAL, DUP_ROWS, DUP_KEYS, *[m.alias for m in measures if m.op == "sum"]):
        if name in row and row[name] is None:  # sums over no rows
            row[name] = 0
    return row


def unique_counts(df: DataFrame, key: Sequence[str]) -> tuple[int, int]:
    """(rows whose key occurs more than once, such keys) for an additional unique check."""
    groups = df.groupBy(*[qcol(k) for k in key]).agg(F.count(F.lit(1)).alias(GROUP_N))
    dup = (F.col(GROUP_N) > 1) & _key_ok(key)
    row = run_aggregation(
        groups.agg(
            F.sum(F.when(dup, F.col(GROUP_N)).otherwise(0)).alias(DUP_ROWS),
            F.sum(F.when(dup, 1).otherwise(0)).alias(DUP_KEYS),
        )
    )
    return int(row[DUP_ROWS] or 0), int(row[DUP_KEYS] or 0)


def referential_count(df: DataFrame, column: str, ref_df: DataFrame, ref_column: str) -> int:
    """Rows of `df` whose non-null `column` has no equal value in `ref_df.ref_column`."""
    return int(
        run_aggregation(
            anti_join(df, column, ref_df, ref_column).agg(F.count(F.lit(1)).alias("n"))
        )["n"]
    )


def anti_join(df: DataFrame, column: str, ref_df: DataFrame, ref_column: str) -> DataFrame:
    """Rows of `df` with a non-null `column` value absent from `ref_df.ref_column`."""
    ref = ref_df.select(qcol(ref_column).alias("__ref")).where(F.col("__ref").isNotNull())
    left = df.where(qcol(column).isNotNull())
    return left.join(ref, qcol(column) == F.col("__ref"), "left_anti")
