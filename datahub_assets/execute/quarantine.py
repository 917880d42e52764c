"""Row-level validation on ingest (onInvalid="fail|quarantine|drop", contract 4.1 / 4.3).

`validate_rows` casts a frame to its declared schema and evaluates the row-level checks in ONE
projection: a `_checks` column holds an array of (rule, reason) structs built with `F.when` per
condition, compacted; valid rows have an empty array. No UDFs, Spark Connect only.

A row is invalid when
- a column is non-null in the input but null after `try_cast` to the declared type
  (`cast`: "column 'amount': value 'abc' is not decimal(12,2)");
- a field the schema declares non-nullable is null or absent in the input
  (`required`: "column 'id' is required");
- a row-level check fails (notNull, range, acceptedValues, regex, expression; semantics of
  `execute.checks.predicates.failing`, evaluated on the cast values):
  "<check_name>: <what failed>". The other check kinds are table-level and are ignored here.

Invalid rows keep their ORIGINAL values as strings (structs/arrays/maps as JSON) plus
`_reason` (every reason, "; "-joined) and `_rule` (first failing rule: "cast", "required" or a
check name); `with_lineage` adds `_run_id`, `_source` and `_quarantined_at`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pyspark.sql import Column, DataFrame

from datahub_assets.engines.api import F, T
from datahub_assets.engines.columns import array_field, engine_type, to_json, try_cast, type_string
from datahub_assets.execute.checks.predicates import failing, qcol
from datahub_assets.spec.models import (
    AcceptedValuesCheck,
    ExpressionCheck,
    NotNullCheck,
    RangeCheck,
    RegexCheck,
    TableRef,
)

ROW_LEVEL = (NotNullCheck, RangeCheck, AcceptedValuesCheck, RegexCheck, ExpressionCheck)
QUARANTINE_SUFFIX = "__quarantine"
_CHECKS = "__dh_checks"
_ORIG = "__dh_orig_"


class InvalidRowsError(ValueError):
    """onInvalid="fail" and some rows are invalid; the message shows the first reasons."""

    def __init__(self, where: str, count: int, reasons: list[str]) -> None:
        self.where, self.count, self.reasons = where, count, reasons
        shown = "\n".join(f"  - {r}" for r in reasons)
        super().__init__(
            f'{where}: {count} invalid row(s) (onInvalid="fail"); first {len(reasons)}:\n{shown}'
        )


def quarantine_ref(ref: TableRef) -> TableRef:
    """The quarantine table of `ref`: same app and layer, table `<table>__quarantine`."""
    return TableRef(app=ref.app, layer=ref.layer, table=f"{ref.table}{QUARANTINE_SUFFIX}")


def row_rules(checks: Sequence[Any]) -> list[Any]:
    """The checks `validate_rows` evaluates per row (the others are table-level)."""
    return [c for c in checks if isinstance(c, ROW_LEVEL)]


def _as_text(c: Column, dtype: T.DataType) -> Column:
    if isinstance(dtype, T.StructType | T.ArrayType | T.MapType):
        return to_json(c, dtype)
    return c.cast("string")


def _rule_reason(check: Any) -> Column:
    """The reason text of a failing row-level check (names the check)."""
    name = check.check_name
    if isinstance(check, NotNullCheck):
        nulls = [F.when(qcol(c).isNull(), F.lit(c)) for c in check.columns]
        return F.concat(F.lit(f"{name}: null in "), F.concat_ws(", ", *nulls))
    if isinstance(check, ExpressionCheck):
        return F.lit(f"{name}: ({check.expr}) is false or null")
    value = F.coalesce(qcol(check.column).cast("string"), F.lit("null"))
    if isinstance(check, RangeCheck):
        bounds = (
            f"[{'' if check.min is None else check.min}, {'' if check.max is None else check.max}]"
        )
        what = f"' is outside {bounds}"
    elif isinstance(check, AcceptedValuesCheck):
        what = f"' is not one of {', '.join(check.values)}"
    else:
        what = f"' does not match {check.pattern}"
    return F.concat(F.lit(f"{name}: column '{check.column}' value '"), value, F.lit(what))


def _entry(condition: Column, rule: str, reason: Column) -> Column:
    return F.when(condition, F.struct(F.lit(rule).alias("rule"), reason.alias("reason")))


def _reasons(checks: Column) -> Column:
    """The `reason` of each (rule, reason) struct of the array."""
    return array_field(checks, "reason")


def validate_rows(
    df: DataFrame, schema: T.StructType, rules: Sequence[Any] = ()
) -> tuple[DataFrame, DataFrame]:
    """(valid rows cast to `schema`, invalid rows with original values as text + _reason,
    _rule). Valid rows have the declared columns in declared order, then any input column
    the schema does not declare, unchanged (schema drift decides about those at the target).
    Both frames share one lazy plan; nothing runs here."""
    schema = engine_type(schema)  # a table's schema arrives as PySpark types
    fields = {f.name: f for f in df.schema.fields}
    index = {f.name: i for i, f in enumerate(df.schema.fields)}
    declared = {f.name for f in schema.fields}
    extras = [f.name for f in df.schema.fields if f.name not in declared]
    typed = [
        (
            try_cast(qcol(f.name), f.dataType, fields[f.name].dataType)
            if f.name in fields
            else F.lit(None).cast(f.dataType)
        ).alias(f.name)
        for f in schema.fields
    ]
    originals = [qcol(f.name).alias(f"{_ORIG}{i}") for i, f in enumerate(df.schema.fields)]
    staged = df.select(*typed, *[qcol(c) for c in extras], *originals)
    entries: list[Column] = []
    for f in schema.fields:  # on `staged`: the name is the cast value, __dh_orig_<i> the input
        orig = F.col(f"{_ORIG}{index[f.name]}") if f.name in fields else F.lit(None)
        if f.name in fields and fields[f.name].dataType != f.dataType:
            reason = F.concat(
                F.lit(f"column '{f.name}': value '"),
                _as_text(orig, fields[f.name].dataType),
                F.lit(f"' is not {type_string(f.dataType)}"),
            )
            entries.append(_entry(orig.isNotNull() & qcol(f.name).isNull(), "cast", reason))
        if not f.nullable:
            entries.append(
                _entry(orig.isNull(), "required", F.lit(f"column '{f.name}' is required"))
            )
    for check in row_rules(rules):
        entries.append(_entry(failing(check), check.check_name, _rule_reason(check)))
    array = (
        F.array_compact(F.array(*entries))
        if entries
        else F.array().cast("array<struct<rule:string,reason:string>>")
    )
    checked = staged.withColumn(_CHECKS, array)
    valid = checked.where(F.size(_CHECKS) == 0).select(
        *[qcol(f.name) for f in schema.fields], *[qcol(c) for c in extras]
    )
    invalid = checked.where(F.size(_CHECKS) > 0).select(
        *[
            _as_text(F.col(f"{_ORIG}{i}"), f.dataType).alias(f.name)
            for i, f in enumerate(df.schema.fields)
        ],
        F.array_join(_reasons(F.col(_CHECKS)), "; ").alias("_reason"),
        F.col(_CHECKS).getItem(0).getField("rule").alias("_rule"),
    )
    return valid, invalid


def with_lineage(invalid: DataFrame, run_id: str, source: str) -> DataFrame:
    """Quarantine rows as written: + `_run_id`, `_source` (where they came from) and
    `_quarantined_at` (timestamp of the write)."""
    kept = [c for c in invalid.columns if c not in ("_run_id", "_source", "_quarantined_at")]
    return invalid.select(  # a file drop's own `_run_id` lineage column is the same run
        *[qcol(c) for c in kept],
        F.lit(run_id).alias("_run_id"),
        F.lit(source).alias("_source"),
        F.current_timestamp().alias("_quarantined_at"),
    )


def apply_policy(
    policy: str, valid: DataFrame, invalid: DataFrame, where: str, limit: int = 5, run_id: str = ""
) -> tuple[DataFrame, DataFrame | None, int]:
    """(rows to write, quarantine rows or None, invalid count) under onInvalid=`policy`.

    Spark jobs (each scans the input once; the writes of the caller scan it again):
    - fail: `invalid.take(limit)` (one job, incremental: stops at the first `limit` bad
      rows); only when there are some, one `count()` for the message, then raises.
    - quarantine / drop: one `count()` of the invalid rows. quarantine returns None instead
      of the frame when the count is 0, so the caller writes no empty quarantine snapshot.
    Persisting the checked frame would save the re-scan at the price of caching the whole
    input; for ingest-sized data the extra scan is cheaper, so nothing is cached here."""
    if policy == "fail":
        first = invalid.select("_reason").take(limit)
        if not first:
            return valid, None, 0
        raise InvalidRowsError(where, invalid.count(), [r["_reason"] for r in first])
    if policy not in ("quarantine", "drop"):
        raise ValueError(f'{where}: onInvalid="{policy}" is not one of fail, quarantine, drop')
    count = invalid.count()
    if policy == "drop" or count == 0:
        return valid, None, count
    return valid, with_lineage(invalid, run_id, where), count


__all__ = [
    "InvalidRowsError",
    "apply_policy",
    "quarantine_ref",
    "row_rules",
    "validate_rows",
    "with_lineage",
]
