"""The result of one check, and helpers to make values JSON-safe and readable."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pyspark.sql import Row


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    kind: str
    severity: str  # "error" | "warn"
    passed: bool
    failing_rows: int
    total_rows: int
    sample: list[dict] = field(default_factory=list)
    """Up to 5 failing rows, JSON-safe values (str/int/float/bool/None, lists, dicts)."""
    description: str = ""
    """One line a human reads in the UI."""
    metadata: dict = field(default_factory=dict)
    """Extra JSON-safe facts."""


def json_safe(value: Any) -> Any:
    """Spark values as JSON-safe values: dates, timestamps, decimals -> str, bytes -> hex,
    non-finite floats -> str, rows/structs -> dicts, arrays -> lists."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, datetime) and value.tzinfo is not None:
        # DuckDB collects an instant with its zone, Spark as naive local time: show both alike
        return str(value.astimezone().replace(tzinfo=None))
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    if isinstance(value, Row):
        return {k: json_safe(v) for k, v in value.asDict().items()}
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return str(value)


def num(value: float | int | None, missing: str) -> str:
    """0.0 -> "0", 2.5 -> "2.5", None -> `missing` (e.g. "+inf")."""
    if value is None:
        return missing
    return f"{value:g}" if isinstance(value, float) else str(value)
