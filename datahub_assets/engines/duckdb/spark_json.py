"""Spark's JSON text on DuckDB: `to_json` of a struct, array or map as Spark writes it.

DuckDB's own `to_json` text is re-written by a Python function on the run's connection
(`engines.duckdb.udfs`, `SPARK_JSON_FN`) given the column's type in Spark's JSON form
(`type_json`): struct fields that are null are left out, doubles in Java's form (`1.0E20`),
decimals as written, timestamps to milliseconds (`Z` for an instant, in UTC).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from datahub_assets.engines.columns import type_string


def type_json(dtype: Any) -> Any:
    """Spark's JSON form of a type (`DataType.jsonValue`), for PySpark and sqlframe types."""
    kind = type(dtype).__name__
    if kind == "StructType":
        return {
            "type": "struct",
            "fields": [{"name": f.name, "type": type_json(f.dataType)} for f in dtype.fields],
        }
    if kind == "ArrayType":
        return {"type": "array", "elementType": type_json(dtype.elementType)}
    if kind == "MapType":
        return {"type": "map", "valueType": type_json(dtype.valueType)}
    return type_string(dtype)


def java_double(value: float) -> str:
    """Java's Double.toString (Spark's JSON form of a double): shortest digits, plain
    between 1e-3 and 1e7, else `d.dddE<n>`."""
    if value != value:
        return '"NaN"'
    if value in (float("inf"), float("-inf")):
        return '"Infinity"' if value > 0 else '"-Infinity"'
    if value == 0 or 1e-3 <= abs(value) < 1e7:
        text = repr(value)
        if "e" in text:  # repr uses exponents below 1e-4: write the digits out
            text = f"{value:.20f}".rstrip("0")
        return text if "." in text and not text.endswith(".") else text.rstrip(".") + ".0"
    sign = "-" if value < 0 else ""
    mant, _, ex = f"{abs(value):e}".partition("e")  # only for the exponent's magnitude
    digits = repr(abs(value))
    if "e" in digits:
        mant, _, ex = digits.partition("e")
        whole, _, frac = mant.partition(".")
        exponent = int(ex)
    else:
        whole, _, frac = digits.partition(".")
        exponent = int(ex)
        frac = (whole[1:] + frac) if whole != "0" else frac.lstrip("0")[1:]
        whole = digits.replace(".", "").lstrip("0")[0]
    frac = frac.rstrip("0") or "0"
    return f"{sign}{whole}.{frac}E{exponent}"


def _json_key(name: Any) -> str:
    return json.dumps(str(name), ensure_ascii=False) + ":"


def spark_json(value: Any, dtype: Any) -> str:  # noqa: C901  (one branch per type)
    """The JSON text Spark writes for `value` (parsed from DuckDB's JSON) of type `dtype`
    (Spark's JSON form of the type, `type_json`)."""
    if value is None:
        return "null"
    if not isinstance(dtype, dict):
        dtype = {"type": dtype}
    name: str = dtype["type"]
    if name == "struct":
        fields = dtype["fields"]
        parts = [
            _json_key(f["name"]) + spark_json(value.get(f["name"]), f["type"])
            for f in fields
            if value.get(f["name"]) is not None
        ]
        return "{" + ",".join(parts) + "}"
    if name == "array":
        elem = dtype["elementType"]  # type: ignore[index]
        return "[" + ",".join(spark_json(v, elem) for v in value) + "]"
    if name == "map":
        vtype = dtype["valueType"]  # type: ignore[index]
        items = (
            value.items() if isinstance(value, dict) else ((e["key"], e["value"]) for e in value)
        )
        return (
            "{"
            + ",".join(
                f"{json.dumps(str(k), ensure_ascii=False)}:{spark_json(v, vtype)}" for k, v in items
            )
            + "}"
        )
    if name in ("double", "float"):
        return java_double(float(value))
    if name.startswith("decimal"):
        return str(Decimal(str(value)))
    if name in ("timestamp", "timestamp_ntz"):
        ts = datetime.fromisoformat(str(value))
        if ts.tzinfo is not None:  # an instant: Spark writes it in the session zone (UTC)
            ts = ts.astimezone(UTC)
        text = ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}"
        return json.dumps(text + ("Z" if name == "timestamp" else ""))
    if name == "boolean":
        return "true" if value else "false"
    if name in ("string", "date", "binary"):
        return json.dumps(str(value), ensure_ascii=False)
    return str(value)


def spark_json_texts(texts: Any, types: Any) -> Any:
    """The Arrow function behind `SPARK_JSON_FN`: DuckDB's JSON texts (an Arrow array) with
    their types' JSON forms, as Spark's texts."""
    import pyarrow as pa

    out = []
    for text, dtype in zip(texts.to_pylist(), types.to_pylist(), strict=True):
        if text is None:
            out.append(None)
            continue
        out.append(spark_json(json.loads(text, parse_float=Decimal), json.loads(dtype)))
    return pa.array(out, pa.string())
