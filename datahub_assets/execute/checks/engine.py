"""evaluate_checks: every check of one target, with the column checks in ONE Spark job.

Jobs: one aggregation (count(*), failing counts of notNull / range / acceptedValues / regex /
expression, max of freshness columns, non-nullable violations of schema checks, duplicate
keys of the first unique check); one anti-join count per referential check; one grouping per
additional unique check with another key; one `limit(5)` sample per failing check. Driver
work (schema comparison, expression analysis) starts no job.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from pyspark.sql import DataFrame, SparkSession

from datahub_assets.engines.api import T
from datahub_assets.engines.columns import expr, type_string
from datahub_assets.execute.checks import aggregate as agg
from datahub_assets.execute.checks import results, samples
from datahub_assets.execute.checks.duration import parse_duration
from datahub_assets.execute.checks.outcome import CheckOutcome
from datahub_assets.execute.checks.predicates import any_null, check_columns, failing, qcol
from datahub_assets.execute.checks.schema import diff_for
from datahub_assets.execute.context import ExecContext
from datahub_assets.spec.models import TableRef


def _problem(check, df: DataFrame, columns: list[str]) -> str | None:
    """Why a check cannot run on this frame (checked on the driver), or None."""
    missing = [c for c in check_columns(check) if c not in columns]
    if missing:
        return f"column {', '.join(missing)} not in the target"
    if check.kind == "expression":
        try:
            dtype = df.select(expr(check.expr, df).alias("x")).schema.fields[0].dataType
        except Exception as exc:  # analysis error: bad column or syntax
            return f"expression ({check.expr}) is invalid: {str(exc).splitlines()[0][:300]}"
        if not isinstance(dtype, T.BooleanType):
            return f"expression ({check.expr}) is {type_string(dtype)}, not boolean"
    if check.kind == "freshness":
        try:
            parse_duration(check.max_age)
        except ValueError as exc:
            return str(exc)
    return None


def evaluate_checks(
    spark: SparkSession,
    df: DataFrame,
    checks: Sequence,
    ctx: ExecContext,
    read_table: Callable[[TableRef], DataFrame] | None = None,
    referenced: Mapping[str, TableRef] | None = None,
    now: datetime | None = None,
) -> list[CheckOutcome]:
    """One outcome per check, in order. `df` is the target's data as written (after masking);
    `referenced` maps a referential check's name to the referenced table, read with
    `read_table` (default ctx.read_table); `now` defaults to the local time."""
    del spark  # the frame carries its session; kept for a uniform call signature
    columns = df.columns
    problems = {i: _problem(c, df, columns) for i, c in enumerate(checks)}
    measures: list[agg.Measure] = []
    diffs = {}
    unique_at: int | None = None
    for i, check in enumerate(checks):
        if problems[i]:
            continue
        if check.kind == "schema":
            diffs[i] = diff_for(ctx.app_path(check.schema_ref), df.schema)
            if diffs[i].non_nullable:
                measures.append(agg.failing_count(f"f{i}", any_null(diffs[i].non_nullable)))
        elif check.kind == "unique":
            unique_at = i if unique_at is None else unique_at
        elif check.kind == "freshness":
            measures.append(agg.Measure(f"f{i}", qcol(check.column), "max"))
        elif check.kind not in ("rowCount", "referential"):
            measures.append(agg.failing_count(f"f{i}", failing(check)))
    values = agg.aggregate(
        df, measures, checks[unique_at].columns if unique_at is not None else None
    )
    total = int(values[agg.TOTAL])
    now = now or datetime.now()
    out = []
    for i, check in enumerate(checks):
        problem = problems[i]
        if problem:
            out.append(results.invalid(check, total, problem))
            continue
        outcome = _outcome(
            i,
            check,
            df,
            values,
            total,
            now,
            diffs,
            unique_at,
            read_table or ctx.read_table,
            referenced or {},
        )
        out.append(outcome)
    return out


def _outcome(i, check, df, values, total, now, diffs, unique_at, read_table, referenced):
    kind = check.kind
    if kind == "rowCount":
        return results.row_count(check, total)
    if kind == "freshness":
        outcome = results.freshness(check, values[f"f{i}"], total, now)
        return _with_sample(outcome, lambda: samples.newest_sample(df, check.column))
    if kind == "unique":
        dups = (
            (values[agg.DUP_ROWS], values[agg.DUP_KEYS])
            if i == unique_at
            else agg.unique_counts(df, check.columns)
        )
        outcome = results.unique(check, int(dups[0]), int(dups[1]), total)
        return _with_sample(outcome, lambda: samples.duplicate_sample(df, check.columns))
    if kind == "schema":
        diff = diffs[i]
        outcome = results.schema(check, diff, int(values.get(f"f{i}", 0)), total)
        if not outcome.failing_rows or not diff.non_nullable or diff.issues:
            return outcome
        pred = any_null(diff.non_nullable)
        return _with_sample(outcome, lambda: samples.where_sample(df, pred, diff.non_nullable))
    if kind == "referential":
        return _referential(check, df, total, read_table, referenced)
    outcome = results.row_level(check, int(values[f"f{i}"]), total)
    return _with_sample(
        outcome, lambda: samples.where_sample(df, failing(check), check_columns(check))
    )


def _referential(check, df, total, read_table, referenced) -> CheckOutcome:
    ref = referenced.get(check.check_name)
    if ref is None or read_table is None:
        raise ValueError(
            f"referential check {check.check_name}: no referenced table "
            "(pass `referenced` and `read_table`)"
        )
    ref_column = check.ref.rsplit(".", 1)[-1]
    ref_df = read_table(ref)
    if ref_column not in ref_df.columns:
        return results.invalid(check, total, f"column {ref_column} not in {ref}")
    n = agg.referential_count(df, check.column, ref_df, ref_column)
    outcome = results.referential(check, n, total, str(ref), ref_column)
    return _with_sample(
        outcome,
        lambda: samples.collect_sample(
            agg.anti_join(df, check.column, ref_df, ref_column),
            samples.sample_columns(df.columns, [check.column]),
        ),
    )


def _with_sample(outcome: CheckOutcome, take: Callable[[], list[dict]]) -> CheckOutcome:
    """Attach a sample (one small job) to a failing outcome; passing ones get none."""
    if outcome.passed or not outcome.failing_rows:
        return outcome
    return CheckOutcome(**{**outcome.__dict__, "sample": take()})
