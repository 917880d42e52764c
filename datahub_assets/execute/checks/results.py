"""Outcome of each check kind from the aggregated values (pure Python, no Spark)."""

from __future__ import annotations

from datetime import date, datetime, time

from datahub_assets.execute.checks.duration import human, parse_duration
from datahub_assets.execute.checks.outcome import CheckOutcome, json_safe, num
from datahub_assets.execute.checks.schema import SchemaDiff


def make(
    check, failing: int, total: int, description: str, passed: bool | None = None, **metadata
) -> CheckOutcome:
    return CheckOutcome(
        name=check.check_name,
        kind=check.kind,
        severity=check.severity,
        passed=failing == 0 if passed is None else passed,
        failing_rows=int(failing),
        total_rows=int(total),
        sample=[],
        description=description,
        metadata=json_safe(metadata),
    )


def row_level(check, n: int, total: int) -> CheckOutcome:
    """notNull, range, acceptedValues, regex, expression."""
    head = f"{n} of {total} rows"
    if check.kind == "notNull":
        return make(
            check,
            n,
            total,
            f"{head} have a null in {', '.join(check.columns)}",
            columns=list(check.columns),
        )
    if check.kind == "range":
        lo = ("[" if check.min is not None else "(") + num(check.min, "-inf")
        hi = num(check.max, "+inf") + ("]" if check.max is not None else ")")
        return make(
            check,
            n,
            total,
            f"{head} have {check.column} outside {lo}, {hi}",
            min=check.min,
            max=check.max,
        )
    if check.kind == "acceptedValues":
        values = ", ".join(check.values)
        return make(
            check,
            n,
            total,
            f"{head} have {check.column} not in {{{values}}}",
            accepted=list(check.values),
        )
    if check.kind == "regex":
        return make(
            check,
            n,
            total,
            f"{head} have {check.column} not matching /{check.pattern}/",
            pattern=check.pattern,
        )
    return make(check, n, total, f"{head} have ({check.expr}) false or null", expr=check.expr)


def row_count(check, total: int) -> CheckOutcome:
    """Table-level: failing_rows is 0 when the count is within bounds, else the total."""
    ok = (check.min is None or total >= check.min) and (check.max is None or total <= check.max)
    bounds = [f"at least {check.min}"] if check.min is not None else []
    bounds += [f"at most {check.max}"] if check.max is not None else []
    expected = " and ".join(bounds) or "any count"
    return make(
        check,
        0 if ok else total,
        total,
        f"{total} rows, expected {expected}",
        passed=ok,
        rows=total,
        min=check.min,
        max=check.max,
    )


def _as_datetime(value, like: datetime) -> datetime:
    """A collected date/timestamp as a datetime comparable with `like` (naive = local)."""
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime.combine(value, time.min)
    if like.tzinfo is not None and value.tzinfo is None:
        value = value.astimezone()  # naive values are local time (as PySpark collects them)
    elif like.tzinfo is None and value.tzinfo is not None:
        value = value.astimezone().replace(tzinfo=None)
    return value


def freshness(check, newest, total: int, now: datetime) -> CheckOutcome:
    """Table-level: fails when the newest value is older than maxAge (or there is none);
    failing_rows is then the total (0 when fresh)."""
    limit = parse_duration(check.max_age)
    if newest is None:
        return make(
            check,
            total,
            total,
            f"{check.column} has no values (limit {check.max_age})",
            passed=False,
            newest=None,
            limit_s=limit.total_seconds(),
        )
    age = now - _as_datetime(newest, now)
    ok = age <= limit
    return make(
        check,
        0 if ok else total,
        total,
        f"newest {check.column} is {human(age)} old (limit {check.max_age})",
        passed=ok,
        newest=newest,
        max_age_s=round(age.total_seconds(), 3),
        limit_s=limit.total_seconds(),
    )


def unique(check, dup_rows: int, dup_keys: int, total: int) -> CheckOutcome:
    """failing_rows = rows whose (non-null) key occurs more than once (every copy counts)."""
    key = ", ".join(check.columns)
    return make(
        check,
        dup_rows,
        total,
        f"{dup_rows} of {total} rows share their ({key}) key "
        f"with another row ({dup_keys} duplicate keys)",
        duplicate_keys=dup_keys,
        columns=list(check.columns),
    )


def referential(check, n: int, total: int, ref_table: str, ref_column: str) -> CheckOutcome:
    return make(
        check,
        n,
        total,
        f"{n} of {total} rows have {check.column} not found in {ref_table}.{ref_column}",
        ref_table=ref_table,
        ref_column=ref_column,
    )


def schema(check, diff: SchemaDiff, nulls: int, total: int) -> CheckOutcome:
    """failing_rows = total on a structural issue, else rows with a null in a non-nullable
    field."""
    problems = list(diff.issues)
    if nulls:
        problems.append(
            f"{nulls} of {total} rows have a null in non-nullable {', '.join(diff.non_nullable)}"
        )
    text = "; ".join(problems) or f"matches {check.schema_ref}"
    return make(
        check,
        total if diff.issues else nulls,
        total,
        text,
        passed=not problems,
        issues=diff.issues,
        null_rows=nulls,
        non_nullable=diff.non_nullable,
        extra_columns=diff.extra,
    )


def invalid(check, total: int, reason: str) -> CheckOutcome:
    """A check that cannot run on this target (missing column, bad expression)."""
    return make(check, total, total, reason, passed=False, error=reason)
