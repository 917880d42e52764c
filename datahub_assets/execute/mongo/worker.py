"""What runs on the Spark server's Python workers: read one `_id` range, emit Arrow batches.

`make_reader(config)` returns the function given to `DataFrame.mapInArrow`: its input is
the partition's range numbers (`spark.range(n, numPartitions=n)`: one range per task), it
opens pymongo, runs `find(query of that range)` and converts the documents to record
batches in the target Spark schema. A document that does not fit the schema becomes a row
of nulls carrying `__dh_reason`, `__dh_rule`, `__dh_id` and `__dh_doc` (the document as
relaxed extended JSON) — or, with `policy="fail"`, stops the task with the reason.

This module is pickled BY VALUE (`read.py` registers it), so a Spark cluster only needs
pymongo and pyarrow, not Data Hub: it imports nothing from `datahub_assets`.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

REASON, RULE, DOC_ID, DOC = "__dh_reason", "__dh_rule", "__dh_id", "__dh_doc"
EXTRA_COLUMNS = (REASON, RULE, DOC_ID, DOC)
BATCH_ROWS = 4096
_MISSING = object()
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)


class Misfit(Exception):  # noqa: N818 - control flow, not an error report
    def __init__(self, rule: str, reason: str) -> None:
        super().__init__(reason)
        self.rule, self.reason = rule, reason


class MongoDocumentError(RuntimeError):
    """A document does not fit the schema and onInvalid is fail (or unset)."""


class MongoReadError(RuntimeError):
    """The Mongo read failed; the message never holds the connection URI."""


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    return text


def _show(value: Any) -> str:
    text = _text(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _json(value: Any) -> str:
    from bson import json_util

    return json_util.dumps(value, json_options=json_util.RELAXED_JSON_OPTIONS)


def _text(value: Any) -> str:
    """Any BSON value as text (a string column takes every type: widened)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.isoformat().replace("+00:00", "Z")
    if isinstance(value, Mapping | list | tuple):
        return _json(value)
    if isinstance(value, bytes):
        return base64.b64encode(bytes(value)).decode("ascii")
    return str(value)  # ObjectId (hex), Decimal128, numbers, Regex, Code...


def _bad(path: str, value: Any, type_name: str) -> Misfit:
    return Misfit("cast", f"column '{path}': value '{_show(value)}' is not {type_name}")


def compile_converter(dtype: Any, path: str, defaults: Mapping[str, Any]) -> Callable:
    """value -> value in the Arrow form of Spark type `dtype`, or raise Misfit."""
    from pyspark.sql import types as T

    if isinstance(dtype, T.StringType):
        return lambda v: v if type(v) is str else _text(v)
    if isinstance(dtype, T.IntegerType | T.LongType | T.ShortType | T.ByteType):
        return _integral_converter(
            dtype, path, _INT32 if isinstance(dtype, T.IntegerType) else _INT64
        )
    if isinstance(dtype, T.DoubleType | T.FloatType):
        return _floating_converter(dtype, path)
    if isinstance(dtype, T.BooleanType):
        return _boolean_converter(path)
    if isinstance(dtype, T.TimestampType | T.TimestampNTZType):
        return _timestamp_converter(path)
    if isinstance(dtype, T.DateType):
        return _date_converter(path)
    if isinstance(dtype, T.DecimalType):
        return _decimal_converter(dtype, path)
    if isinstance(dtype, T.BinaryType):
        return _binary_converter(path)
    if isinstance(dtype, T.ArrayType):
        return _array_converter(dtype, path, defaults)
    if isinstance(dtype, T.MapType):
        return _map_converter(dtype, path, defaults)
    if isinstance(dtype, T.StructType):
        return _struct_converter(dtype, path, defaults)
    raise MongoReadError(f"column '{path}': type {dtype.simpleString()} is not supported")


def _integral_converter(dtype: Any, path: str, bounds: tuple[int, int]) -> Callable:
    lo, hi = bounds
    name = dtype.simpleString()

    def integral(v: Any) -> int:
        if isinstance(v, int) and not isinstance(v, bool):
            if lo <= v <= hi:
                return int(v)
        elif isinstance(v, float) and v.is_integer() and lo <= v <= hi:
            return int(v)
        raise _bad(path, v, name)

    return integral


def _floating_converter(dtype: Any, path: str) -> Callable:
    def floating(v: Any) -> float:
        if type(v).__name__ == "Decimal128":
            return float(v.to_decimal())
        if isinstance(v, float | int) and not isinstance(v, bool):
            return float(v)
        raise _bad(path, v, dtype.simpleString())

    return floating


def _boolean_converter(path: str) -> Callable:
    def boolean(v: Any) -> bool:
        if isinstance(v, bool):
            return v
        raise _bad(path, v, "boolean")

    return boolean


def _timestamp_converter(path: str) -> Callable:
    def timestamp(v: Any) -> datetime:
        if isinstance(v, datetime):
            return v
        if isinstance(v, date):
            return datetime(v.year, v.month, v.day)
        if isinstance(v, str):
            try:
                parsed = datetime.fromisoformat(v.replace("Z", "+00:00"))
            except ValueError:
                raise _bad(path, v, "timestamp") from None
            return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed
        raise _bad(path, v, "timestamp")

    return timestamp


def _date_converter(path: str) -> Callable:
    def day(v: Any) -> date:
        if isinstance(v, datetime):
            return v.date()
        if isinstance(v, date):
            return v
        if isinstance(v, str):
            try:
                return date.fromisoformat(v[:10])
            except ValueError:
                raise _bad(path, v, "date") from None
        raise _bad(path, v, "date")

    return day


def _decimal_converter(dtype: Any, path: str) -> Callable:
    quantum = Decimal(1).scaleb(-dtype.scale)
    digits = dtype.precision

    def decimal(v: Any) -> Decimal:
        try:
            if type(v).__name__ == "Decimal128":
                d = v.to_decimal()
            elif isinstance(v, bool):
                raise InvalidOperation
            elif isinstance(v, int | Decimal):
                d = Decimal(v)
            elif isinstance(v, float | str):
                d = Decimal(repr(v) if isinstance(v, float) else v)
            else:
                raise InvalidOperation
            q = d.quantize(quantum)
            if not q.is_finite() or len(q.as_tuple().digits) > digits:
                raise InvalidOperation
            return q
        except InvalidOperation:
            raise _bad(path, v, dtype.simpleString()) from None

    return decimal


def _binary_converter(path: str) -> Callable:
    def binary(v: Any) -> bytes:
        if isinstance(v, bytes):
            return bytes(v)
        if type(v).__name__ == "ObjectId":
            return v.binary
        raise _bad(path, v, "binary")

    return binary


def _array_converter(dtype: Any, path: str, defaults: Mapping[str, Any]) -> Callable:
    element = compile_converter(dtype.elementType, f"{path}[]", defaults)

    def array(v: Any) -> list:
        if isinstance(v, list | tuple):
            return [None if x is None else element(x) for x in v]
        raise _bad(path, v, dtype.simpleString())

    return array


def _map_converter(dtype: Any, path: str, defaults: Mapping[str, Any]) -> Callable:
    value_conv = compile_converter(dtype.valueType, f"{path}{{}}", defaults)

    def mapping(v: Any) -> list:
        if isinstance(v, Mapping):
            return [(str(k), None if x is None else value_conv(x)) for k, x in v.items()]
        raise _bad(path, v, dtype.simpleString())

    return mapping


def _struct_converter(dtype: Any, path: str, defaults: Mapping[str, Any]) -> Callable:
    fields = []
    for f in dtype.fields:
        sub = f"{path}.{f.name}" if path else f.name
        conv = compile_converter(f.dataType, sub, defaults)
        if sub in defaults:
            try:
                default = conv(defaults[sub]) if defaults[sub] is not None else None
            except Misfit as exc:
                raise MongoReadError(
                    f"column '{sub}': default {defaults[sub]!r} does not fit "
                    f"{f.dataType.simpleString()} ({exc.reason})"
                ) from None
            fields.append((f.name, conv, f.nullable, True, default, sub))
        else:
            fields.append((f.name, conv, f.nullable, False, None, sub))
    name = dtype.simpleString()

    def struct(v: Any) -> dict:
        if not isinstance(v, Mapping):
            raise _bad(path, v, name)
        out = {}
        for key, conv, nullable, has_default, default, sub in fields:
            x = v.get(key, _MISSING)
            if x is _MISSING:
                if has_default:
                    out[key] = default
                    continue
                x = None
            if x is None:
                if not nullable:
                    raise Misfit("required", f"column '{sub}' is required")
                out[key] = None
            else:
                out[key] = conv(x)
        return out

    return struct


def undot(doc: dict) -> dict:
    """`{"a.b": 1}` -> `{"a": {"b": 1}}` (some servers answer dotted projections flat)."""
    if not any("." in k for k in doc):
        return doc
    out: dict = {}
    for key, value in doc.items():
        parts = key.split(".")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                break
        else:
            node[parts[-1]] = value
    return out


def make_reader(config: dict[str, Any]) -> Callable[[Iterator[Any]], Iterator[Any]]:
    """The mapInArrow function of one read. `config` keys: uri, database, collection,
    queries (one per range), projection, schema (Spark StructType), arrow_schema,
    defaults ({dotted path: value}), policy (fail|drop|quarantine), source_id, undot."""
    secrets = tuple(config.get("secrets", ()))

    def read(batches: Iterator[Any]) -> Iterator[Any]:
        try:
            for batch in batches:
                for part in batch.column(0).to_pylist():
                    yield from _read_range(config, config["queries"][part])
        except (Misfit, MongoDocumentError):
            raise
        except MongoReadError as exc:
            raise MongoReadError(scrub(str(exc), secrets)) from None
        except Exception as exc:  # pymongo errors: never let the URI through
            raise MongoReadError(
                scrub(f"mongo source '{config['source_id']}': {type(exc).__name__}: {exc}", secrets)
            ) from None

    return read


def _read_range(config: dict[str, Any], query: dict) -> Iterator[Any]:
    import pyarrow as pa
    from pymongo import MongoClient

    schema, arrow_schema = config["schema"], config["arrow_schema"]
    convert = _struct_converter(schema, "", config.get("defaults", {}))
    policy, fix_dots = config.get("policy"), config.get("undot", False)
    names = [f.name for f in schema.fields]
    empty = dict.fromkeys(names)
    client = MongoClient(config["uri"], appname="datahub", **config.get("client_options", {}))
    try:
        cursor = client[config["database"]][config["collection"]].find(
            query, config.get("projection"), batch_size=config.get("batch_size", 2000)
        )
        rows: list[dict] = []
        for doc in cursor:
            if fix_dots:
                doc = undot(doc)
            try:
                row = convert(doc)
                row[REASON] = row[RULE] = row[DOC_ID] = row[DOC] = None
            except Misfit as m:
                doc_id = _text(doc.get("_id", ""))
                if policy in (None, "fail"):
                    raise MongoDocumentError(
                        f"mongo source '{config['source_id']}': document _id={doc_id}: "
                        f'{m.reason} (onInvalid="{policy or "fail"}"; pin a schemaRef and set '
                        'onInvalid="quarantine" or "drop" to keep such documents out)'
                    ) from None
                row = dict(empty)
                row[REASON], row[RULE], row[DOC_ID], row[DOC] = m.reason, m.rule, doc_id, _json(doc)
            rows.append(row)
            if len(rows) >= BATCH_ROWS:
                yield pa.RecordBatch.from_pylist(rows, schema=arrow_schema)
                rows = []
        if rows:
            yield pa.RecordBatch.from_pylist(rows, schema=arrow_schema)
    finally:
        client.close()
