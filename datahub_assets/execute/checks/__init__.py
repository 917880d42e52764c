"""Check evaluation engine (contract section 4.4): the ten check kinds computed on a target's
frame with as few Spark jobs as possible. No Dagster here: the asset-check wiring calls
`evaluate_checks` and maps each `CheckOutcome` to an AssetCheckResult.

Semantics (per kind, failing_rows):
- notNull: rows with a null in ANY listed column.
- unique: rows whose key (all listed columns) occurs more than once — every copy counts;
  keys with a null part never fail (SQL UNIQUE); metadata duplicate_keys.
- rowCount: table-level, 0 when min <= count <= max, else the total.
- range: non-null values outside [min, max] (inclusive; open side when a bound is absent).
- acceptedValues: non-null values not in the list, compared as strings.
- regex: non-null values (as strings) not matching the Java regex (Spark `rlike`, partial
  match: anchor with ^...$).
- freshness: table-level, fails when max(column) is older than now - maxAge (ISO-8601 W/D/H/M/S
  duration) or the column has no value; failing_rows then = total; metadata newest, max_age_s,
  limit_s. Naive timestamps are local time.
- expression: rows where the boolean expression is false OR null.
- referential: rows whose non-null value is absent from the referenced column (anti join).
- schema: schemaRef (.avsc / JSON Schema) vs the frame's schema: a missing column or a
  different type fails with failing_rows = total; otherwise rows with a null in a field the
  schema declares non-nullable. Extra columns pass.
A check whose column is missing (or whose expression does not analyse) fails with
failing_rows = total and says why.
"""

from datahub_assets.execute.checks.engine import evaluate_checks
from datahub_assets.execute.checks.outcome import CheckOutcome

__all__ = ["CheckOutcome", "evaluate_checks"]
