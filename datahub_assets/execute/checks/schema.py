"""schema checks: a schemaRef (.avsc / JSON Schema) compared with the target's Spark schema.

Structure (names, types) is compared on the driver from `df.schema` (no Spark job);
nullability is checked on the data: rows with a null in a field the schema declares
non-nullable are counted in the shared aggregation (a column Spark merely *declares*
nullable but that holds no nulls passes). Extra columns in the target are allowed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from datahub_assets.engines.api import T
from datahub_assets.engines.columns import type_string
from datahub_assets.execute.schemas import load_schema


@dataclass
class SchemaDiff:
    issues: list[str] = field(default_factory=list)
    """Structural problems: missing columns, wrong types."""
    non_nullable: list[str] = field(default_factory=list)
    """Present columns the schema declares non-nullable (nulls in them fail rows)."""
    extra: list[str] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)


def _type(dtype: T.DataType) -> str:
    return type_string(dtype)


def compare(expected: T.StructType, actual: T.StructType) -> SchemaDiff:
    """Top-level fields by name (exact, case-sensitive); types by Spark type string (nested
    nullability not compared)."""
    have = {f.name: f for f in actual.fields}
    diff = SchemaDiff(expected=[f.name for f in expected.fields])
    for want in expected.fields:
        got = have.get(want.name)
        if got is None:
            diff.issues.append(f"column {want.name} missing")
        elif _type(got.dataType) != _type(want.dataType):
            diff.issues.append(
                f"column {want.name} is {_type(got.dataType)}, expected {_type(want.dataType)}"
            )
        elif not want.nullable:
            diff.non_nullable.append(want.name)
    names = set(diff.expected)
    diff.extra = [f.name for f in actual.fields if f.name not in names]
    return diff


def diff_for(path: str, actual: T.StructType) -> SchemaDiff:
    """Load `path` (resolved schemaRef) and compare it with `actual`."""
    return compare(load_schema(path), actual)
