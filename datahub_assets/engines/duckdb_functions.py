"""Column functions the pipeline code needs that sqlframe lacks (or gets wrong) on DuckDB.

Each function here works on both engines: on Spark it is the PySpark function, on DuckDB a
polyfill with Spark's result:
- `broadcast`: a hint; nothing on DuckDB (its optimiser picks the build side).
- `explode_outer`: UNNEST of the list, a null/empty list giving one null row.
- `row_order_id`: a number increasing with the input order (Spark's
  `monotonically_increasing_id`; DuckDB's `row_number() OVER ()`, order-preserving with
  `preserve_insertion_order`).
- `try_cast`: DuckDB's TRY_CAST to the Spark type.
- `map_entries`: DuckDB's `map_entries` (a list of key/value structs).
- `to_json`: Spark's JSON text (struct fields that are null left out, Spark's number and
  timestamp forms): DuckDB's `to_json` re-written by a Python function on the connection.
- `aes_gcm_token` / `aes_gcm_encrypt`: the mask step's AES-256-GCM on DuckDB, as Python
  functions registered on the run's connection (`cryptography`), byte-identical to Spark's
  `aes_encrypt(..., 'GCM', 'DEFAULT', iv)` for tokens.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from datahub_assets.engines.api import F, current

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

_IV_BYTES = 12
TOKENIZE_FN = "__datahub_aes_gcm_token"
ENCRYPT_FN = "__datahub_aes_gcm_encrypt"
SPARK_JSON_FN = "__datahub_spark_json"


def on_duckdb() -> bool:
    return current().is_duckdb


def _sqlframe_column(expression: Any) -> Column:
    from sqlframe.base.column import Column as SqlframeColumn

    return SqlframeColumn(expression)  # type: ignore[return-value]


def _anonymous(name: str, *args: Any) -> Column:
    from sqlframe.base.column import Column as SqlframeColumn

    return SqlframeColumn.invoke_anonymous_function(None, name, *args)  # type: ignore[return-value]


def broadcast(df: DataFrame) -> DataFrame:
    """Spark's broadcast hint; the frame itself on DuckDB."""
    return df if on_duckdb() else F.broadcast(df)


def explode_outer(col: Column) -> Column:
    """One row per element; a null or empty array gives one row with null."""
    if not on_duckdb():
        return F.explode_outer(col)
    return F.explode(F.when(F.size(col) > 0, col).otherwise(F.array(F.lit(None))))


def row_order_id() -> Column:
    """An id increasing with the rows' incoming order (not consecutive on Spark)."""
    if not on_duckdb():
        return F.monotonically_increasing_id()
    from sqlglot import exp

    return _sqlframe_column(exp.Window(this=exp.RowNumber()))


def try_cast(col: Column, dtype: Any) -> Column:
    """`col` as `dtype` (a DataType of the current engine), null when it does not convert."""
    if not on_duckdb():
        return col.try_cast(dtype)
    from sqlglot import exp

    to = exp.DataType.build(dtype.simpleString(), dialect="spark")
    return _sqlframe_column(exp.TryCast(this=col.expression, to=to))  # type: ignore[attr-defined]


def size(col: Column, dtype: Any) -> Column:
    """Elements of an array / entries of a map (`dtype`); null stays null."""
    if not on_duckdb():
        return F.when(col.isNotNull(), F.size(col))
    fn = "cardinality" if type(dtype).__name__ == "MapType" else "len"
    return F.when(col.isNotNull(), _anonymous(fn, col).cast("int"))  # DuckDB's is UBIGINT


_INTEGRAL = ("ByteType", "ShortType", "IntegerType", "LongType")


def aggregate(fn: str, col: Column, dtype: Any) -> Column:
    """`F.<fn>(col)` with Spark's result type (`dtype` is the column's type): on DuckDB
    sum of integers is HUGEINT and of decimal(p,s) decimal(38,s), avg of a decimal a double;
    Spark gives bigint, decimal(p+10,s) and decimal(p+4,s+4)."""
    out = getattr(F, fn)(col)
    if not on_duckdb() or fn not in ("sum", "avg"):
        return out
    kind = type(dtype).__name__
    if kind == "DecimalType":
        p, s = dtype.precision, dtype.scale
        extra = 10 if fn == "sum" else 4
        scale = s if fn == "sum" else min(38, s + 4)
        return out.cast(f"decimal({min(38, p + extra)},{scale})")
    if fn == "sum" and kind in _INTEGRAL:
        return out.cast("bigint")
    return out.cast("double")


def map_entries(col: Column) -> Column:
    """The map's entries as an array of (key, value) structs."""
    if not on_duckdb():
        return F.map_entries(col)
    return _anonymous("map_entries", col)


def to_json(col: Column, dtype: Any) -> Column:
    """Spark's `to_json` text of a struct/array/map column of type `dtype`."""
    if not on_duckdb():
        return F.to_json(col)
    ensure_functions()
    return _anonymous(
        SPARK_JSON_FN, _anonymous("to_json", col), F.lit(json.dumps(type_json(dtype)))
    )


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
    return dtype.simpleString()


# --- AES-256-GCM as Spark's aes_encrypt (mask tokenize / encrypt) --------------------------


def _seal(key: bytes, iv: bytes, data: bytes) -> bytes:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return iv + AESGCM(key).encrypt(iv, data, None)


def token_of(key: bytes, value: str) -> str:
    """`tok_` + base64(iv || ciphertext || tag), iv = sha256(key || value)[:12]."""
    data = value.encode()
    iv = hashlib.sha256(key + data).digest()[:_IV_BYTES]
    return "tok_" + base64.b64encode(_seal(key, iv, data)).decode()


def encrypted_of(key: bytes, value: str) -> str:
    """base64(iv || ciphertext || tag) with a random iv."""
    return base64.b64encode(_seal(key, os.urandom(_IV_BYTES), value.encode())).decode()


def _arrow_udf(fn: Callable[[bytes, str], str]) -> Callable[[Any, Any], Any]:
    def run(keys: Any, values: Any) -> Any:
        import pyarrow as pa

        out = [
            None if k is None or v is None else fn(k, v)
            for k, v in zip(keys.to_pylist(), values.to_pylist(), strict=True)
        ]
        return pa.array(out, pa.string())

    return run


def aes_gcm_token(key: Column, value: Column) -> Column:
    """Spark: see mask.py; DuckDB: the registered tokenize function (same bytes)."""
    ensure_functions()
    return _anonymous(TOKENIZE_FN, key, value)


def aes_gcm_encrypt(key: Column, value: Column) -> Column:
    ensure_functions()
    return _anonymous(ENCRYPT_FN, key, value)


# --- Spark's JSON text ------------------------------------------------------------------------


def _java_double(value: float) -> str:
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


def _spark_json(value: Any, dtype: Any) -> str:  # noqa: C901  (one branch per type)
    if value is None:
        return "null"
    if not isinstance(dtype, dict):
        dtype = {"type": dtype}
    name: str = dtype["type"]
    if name == "struct":
        fields = dtype["fields"]
        parts = [
            _json_key(f["name"]) + _spark_json(value.get(f["name"]), f["type"])
            for f in fields
            if value.get(f["name"]) is not None
        ]
        return "{" + ",".join(parts) + "}"
    if name == "array":
        elem = dtype["elementType"]  # type: ignore[index]
        return "[" + ",".join(_spark_json(v, elem) for v in value) + "]"
    if name == "map":
        vtype = dtype["valueType"]  # type: ignore[index]
        items = (
            value.items() if isinstance(value, dict) else ((e["key"], e["value"]) for e in value)
        )
        return (
            "{"
            + ",".join(
                f"{json.dumps(str(k), ensure_ascii=False)}:{_spark_json(v, vtype)}"
                for k, v in items
            )
            + "}"
        )
    if name in ("double", "float"):
        return _java_double(float(value))
    if name.startswith("decimal"):
        return str(Decimal(str(value)))
    if name in ("timestamp", "timestamp_ntz"):
        ts = datetime.fromisoformat(str(value))
        text = ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}"
        return json.dumps(text + ("Z" if name == "timestamp" else ""))
    if name == "boolean":
        return "true" if value else "false"
    if name in ("string", "date", "binary"):
        return json.dumps(str(value), ensure_ascii=False)
    return str(value)


def _spark_json_udf(texts: Any, types: Any) -> Any:
    import pyarrow as pa

    out = []
    for text, dtype in zip(texts.to_pylist(), types.to_pylist(), strict=True):
        if text is None:
            out.append(None)
            continue
        out.append(_spark_json(json.loads(text, parse_float=Decimal), json.loads(dtype)))
    return pa.array(out, pa.string())


def ensure_functions(conn: Any = None) -> None:
    """Register the Python functions on the run's DuckDB connection (once per connection)."""
    from duckdb import sqltypes

    conn = conn if conn is not None else current().connection
    known = {
        r[0]
        for r in conn.execute(
            "SELECT function_name FROM duckdb_functions() WHERE function_name LIKE '__datahub_%'"
        ).fetchall()
    }
    specs = [
        (TOKENIZE_FN, _arrow_udf(token_of), False),
        (ENCRYPT_FN, _arrow_udf(encrypted_of), True),
    ]
    for name, fn, side_effects in specs:
        if name not in known:
            conn.create_function(
                name,
                fn,
                [sqltypes.BLOB, sqltypes.VARCHAR],
                sqltypes.VARCHAR,
                type="arrow",
                null_handling="special",
                side_effects=side_effects,
            )
    if SPARK_JSON_FN not in known:
        conn.create_function(
            SPARK_JSON_FN,
            _spark_json_udf,
            [sqltypes.VARCHAR, sqltypes.VARCHAR],
            sqltypes.VARCHAR,
            type="arrow",
            null_handling="special",
        )


# --- types ------------------------------------------------------------------------------------


def engine_type(dtype: Any) -> Any:
    """`dtype` (a PySpark or sqlframe DataType) rebuilt from the running engine's `T`
    (the class names are the same in both)."""
    from datahub_assets.engines.api import T

    kind = type(dtype).__name__
    if kind == "StructType":
        return T.StructType(
            [T.StructField(f.name, engine_type(f.dataType), f.nullable) for f in dtype.fields]
        )
    if kind == "ArrayType":
        return T.ArrayType(engine_type(dtype.elementType), dtype.containsNull)
    if kind == "MapType":
        return T.MapType(
            engine_type(dtype.keyType), engine_type(dtype.valueType), dtype.valueContainsNull
        )
    if kind == "DecimalType":
        return T.DecimalType(dtype.precision, dtype.scale)
    if kind in ("CharType", "VarcharType"):
        return T.StringType()
    return getattr(T, kind)()
