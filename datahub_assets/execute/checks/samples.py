"""Samples of failing rows: one small `limit(5)` job per FAILING check, taken from the frame
as given (the target's data after masking), so masked columns stay masked."""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame

from datahub_assets.engines.api import F, current
from datahub_assets.execute.checks.outcome import json_safe
from datahub_assets.execute.checks.predicates import qcol

SAMPLE_ROWS = 5
OTHER_COLUMNS = 5


def sample_columns(df_columns: Sequence[str], check_cols: Sequence[str]) -> list[str]:
    """The check's columns first, then up to 5 other columns of the target."""
    cols = [c for c in check_cols if c in df_columns]
    return cols + [c for c in df_columns if c not in cols][:OTHER_COLUMNS]


def collect_sample(frame: DataFrame, columns: Sequence[str]) -> list[dict]:
    picked = frame.select(*[qcol(c) for c in columns]).limit(SAMPLE_ROWS)
    return [{k: json_safe(v) for k, v in r.items()} for r in current().collect_dicts(picked)]


def where_sample(df: DataFrame, predicate: Column, check_cols: Sequence[str]) -> list[dict]:
    return collect_sample(df.where(predicate), sample_columns(df.columns, check_cols))


def newest_sample(df: DataFrame, column: str) -> list[dict]:
    """Freshness: the newest rows (they are all too old)."""
    frame = df.where(qcol(column).isNotNull()).orderBy(qcol(column).desc())
    return collect_sample(frame, sample_columns(df.columns, [column]))


def duplicate_sample(df: DataFrame, key: Sequence[str]) -> list[dict]:
    """Rows whose key occurs more than once (for a few duplicated keys)."""
    keys = (
        df.groupBy(*[qcol(k) for k in key])
        .agg(F.count(F.lit(1)).alias("__n"))
        .where(F.col("__n") > 1)
        .dropna(subset=list(key))
        .drop("__n")
        .limit(SAMPLE_ROWS)
    )
    frame = df.join(keys, on=list(key), how="inner")
    return collect_sample(frame, sample_columns(df.columns, key))
