"""Schema drift of a table target (onSchemaChange="evolve|freeze|fail", contract 4.3).

`detect_drift` compares the incoming frame's schema with the table's (both as Spark types;
the incoming one normalised through the Iceberg type mapping first, so e.g. short/int or
varchar/string are no drift). Nullability is ignored (the writer's `align` enforces it).
Nested struct fields are compared too and reported with dotted paths (`order.city`).

Type changes: `widening` when the table type can be promoted to the incoming one the way
Iceberg allows (int->bigint, float->double, decimal precision up at the same scale);
anything else is narrowing (bigint->int) or incompatible (string->int).

Policies (`apply_schema_policy`):
- evolve (default): added columns go through (the writer adds them), removed columns are left
  to the writer (written as null), widening retypes pass (the writer widens the table);
  narrowing or incompatible retypes raise SchemaDriftError: a narrowing never passes silently.
- freeze: the table schema does not change: added columns are dropped from the frame, removed
  columns are written as null, a retype is cast to the table type when that is lossless (the
  incoming type widens to the table's, e.g. int into a bigint column), else raises; nested
  struct changes cannot be frozen and raise.
- fail: any difference raises, naming every difference.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame

from datahub_assets.engines.api import F, T
from datahub_assets.engines.columns import type_string
from datahub_assets.iceberg.schema_evolution import (
    spark_type_widens,
    without_nullability,
)
from datahub_resources.iceberg import iceberg_to_spark_schema, spark_to_iceberg_schema

POLICIES = ("evolve", "freeze", "fail")


class SchemaDriftError(ValueError):
    """The incoming schema differs from the table's in a way the policy does not allow."""


@dataclass(frozen=True)
class Drift:
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    retyped: tuple[tuple[str, str, str, bool], ...] = ()  # (column, old, new, widening)
    new_table: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed or self.retyped)

    @property
    def narrowing(self) -> tuple[tuple[str, str, str, bool], ...]:
        """Retypes that are not widenings (narrowing or incompatible)."""
        return tuple(r for r in self.retyped if not r[3])

    def differences(self) -> list[str]:
        return (
            [f"added column {c}" for c in self.added]
            + [f"removed column {c}" for c in self.removed]
            + [
                f"column {c} changed type {o} -> {n} ({'widening' if w else 'narrowing'})"
                for c, o, n, w in self.retyped
            ]
        )

    def description(self) -> str:
        if self.new_table:
            return "new table: no schema to compare"
        return "; ".join(self.differences()) if self.changed else "no schema change"

    def check_passed(self, policy: str) -> bool:
        """The drift asset check: passed with no drift, or evolve with only added columns."""
        return not self.changed or (policy == "evolve" and not (self.removed or self.retyped))

    def as_metadata(self) -> dict:
        return {
            "changed": self.changed,
            "new_table": self.new_table,
            "added": list(self.added),
            "removed": list(self.removed),
            "retyped": [
                {"column": c, "old": o, "new": n, "widening": w} for c, o, n, w in self.retyped
            ],
            "description": self.description(),
        }


def widens(old: T.DataType, new: T.DataType) -> bool:
    """True when a column of type `old` can be promoted to `new` without loss (the writer's
    rule: int→bigint, float→double, decimal precision up at the same scale)."""
    return spark_type_widens(old, new)


def _normalise(schema: T.StructType) -> T.StructType:
    try:
        return iceberg_to_spark_schema(spark_to_iceberg_schema(schema))
    except TypeError:  # a type Iceberg cannot store: compare as is (the writer will refuse)
        return schema


def _diff(prefix: str, old: T.StructType, new: T.StructType, out: dict[str, list]) -> None:
    known = {f.name: f.dataType for f in old.fields}
    incoming = {f.name: f.dataType for f in new.fields}
    out["added"] += [prefix + n for n in incoming if n not in known]
    out["removed"] += [prefix + n for n in known if n not in incoming]
    for name, new_t in incoming.items():
        old_t = known.get(name)
        if old_t is None or without_nullability(old_t) == without_nullability(new_t):
            continue
        if isinstance(old_t, T.StructType) and isinstance(new_t, T.StructType):
            _diff(f"{prefix}{name}.", old_t, new_t, out)
        else:
            out["retyped"].append(
                (prefix + name, type_string(old_t), type_string(new_t), widens(old_t, new_t))
            )


def detect_drift(table_schema: T.StructType | None, incoming: T.StructType) -> Drift:
    """Differences from the table's schema to the incoming one (None: the table is new)."""
    if table_schema is None:
        return Drift(new_table=True)
    out: dict[str, list] = {"added": [], "removed": [], "retyped": []}
    _diff("", table_schema, _normalise(incoming), out)
    return Drift(tuple(out["added"]), tuple(out["removed"]), tuple(out["retyped"]))


def _raise(where: str, policy: str, problems: list[str]) -> None:
    raise SchemaDriftError(
        f"table {where}: schema drift not allowed by onSchemaChange="
        f'"{policy}": ' + "; ".join(problems)
    )


def _q(name: str):
    return F.col("`" + name.replace("`", "``") + "`")


def apply_schema_policy(
    df: DataFrame, drift: Drift, policy: str, table_schema: T.StructType | None, where: str
) -> DataFrame:
    """The frame to write under onSchemaChange=`policy` (see the module doc), or
    SchemaDriftError. Builds a projection only; runs no Spark job."""
    if policy not in POLICIES:
        raise ValueError(f'{where}: onSchemaChange="{policy}" is not one of ' + ", ".join(POLICIES))
    if table_schema is None or not drift.changed:
        return df
    if policy == "fail":
        _raise(where, policy, drift.differences())
    if policy == "evolve":
        if drift.narrowing:
            _raise(
                where,
                policy,
                [
                    f"column {c} changed type {o} -> {n} (narrowing or "
                    "incompatible; only int->bigint, float->double and decimal "
                    "precision widening evolve)"
                    for c, o, n, _ in drift.narrowing
                ],
            )
        return df
    frame = {f.name: f.dataType for f in df.schema.fields}
    top = {f.name for f in table_schema.fields} | set(frame)
    nested = [
        c for c in (*drift.added, *drift.removed, *(r[0] for r in drift.retyped)) if c not in top
    ]
    problems = [
        f"nested field {c} changed (freeze cannot drop or cast nested fields)" for c in nested
    ]
    retyped = {c: (o, n) for c, o, n, _ in drift.retyped}
    cols = []
    for f in table_schema.fields:
        if f.name not in frame:
            cols.append(F.lit(None).cast(f.dataType.simpleString()).alias(f.name))
        elif f.name in retyped:
            if not widens(frame[f.name], f.dataType):
                old, new = retyped[f.name]
                problems.append(
                    f"column {f.name} is {new}, the table's {old} cannot hold it without loss"
                )
            cols.append(_q(f.name).cast(f.dataType.simpleString()).alias(f.name))
        else:
            cols.append(_q(f.name))
    if problems:
        _raise(where, policy, problems)
    return df.select(*cols)


__all__ = ["Drift", "SchemaDriftError", "apply_schema_policy", "detect_drift", "widens"]
