"""schemaRef files -> Spark StructType: Avro records (`.avsc`) and JSON Schema (`.json`).

Avro: primitives; `["null", T]` unions -> nullable T; logical types date, timestamp-millis /
-micros (timestamp), local-timestamp-* (timestamp_ntz), decimal(precision, scale); records ->
structs, arrays, maps (string keys), enums (string), fixed (binary), named-type references.
JSON Schema: an object with `properties`; string (format date / date-time), integer (long),
number (double), boolean, object -> struct, array -> array; `["T", "null"]` types and
non-`required` properties are nullable; local `$ref`s (`#/definitions/x`, `#/$defs/x`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pyspark.sql import types as T


class SchemaError(ValueError):
    """A schema file cannot be turned into a Spark schema; names the file and the bad type."""


_AVRO_PRIMITIVES: dict[str, T.DataType] = {
    "boolean": T.BooleanType(),
    "int": T.IntegerType(),
    "long": T.LongType(),
    "float": T.FloatType(),
    "double": T.DoubleType(),
    "bytes": T.BinaryType(),
    "string": T.StringType(),
}
_AVRO_LOGICAL: dict[str, T.DataType] = {
    "date": T.DateType(),
    "timestamp-millis": T.TimestampType(),
    "timestamp-micros": T.TimestampType(),
    "local-timestamp-millis": T.TimestampNTZType(),
    "local-timestamp-micros": T.TimestampNTZType(),
}


class _Avro:
    def __init__(self, where: str) -> None:
        self.where = where
        self.named: dict[str, T.DataType] = {}

    def error(self, what: Any) -> SchemaError:
        return SchemaError(f"{self.where}: unsupported Avro type {json.dumps(what)}")

    def convert(self, t: Any) -> tuple[T.DataType, bool]:
        """(Spark type, nullable)."""
        if isinstance(t, list):
            rest = [x for x in t if x != "null"]
            if len(rest) != 1:
                raise self.error(t)
            return self.convert(rest[0])[0], len(rest) < len(t)
        if isinstance(t, str):
            if t in _AVRO_PRIMITIVES:
                return _AVRO_PRIMITIVES[t], False
            if t in self.named:
                return self.named[t], False
            raise self.error(t)
        if not isinstance(t, dict) or "type" not in t:
            raise self.error(t)
        logical = t.get("logicalType")
        if logical == "decimal":
            return T.DecimalType(int(t["precision"]), int(t.get("scale", 0))), False
        if logical in _AVRO_LOGICAL:
            return _AVRO_LOGICAL[logical], False
        kind = t["type"]
        if kind == "record":
            fields = []
            for f in t.get("fields", []):
                dtype, nullable = self.convert(f["type"])
                fields.append(T.StructField(f["name"], dtype, nullable))
            result: T.DataType = T.StructType(fields)
        elif kind == "array":
            item, null_items = self.convert(t["items"])
            result = T.ArrayType(item, null_items)
        elif kind == "map":
            value, null_values = self.convert(t["values"])
            result = T.MapType(T.StringType(), value, null_values)
        elif kind == "enum":
            result = T.StringType()
        elif kind == "fixed":
            result = T.BinaryType()
        else:
            return self.convert(kind)
        if "name" in t:
            self.named[t["name"]] = result
            self.named[f"{t.get('namespace', '')}.{t['name']}".lstrip(".")] = result
        return result, False


def avro_to_struct(doc: dict, where: str = "schema") -> T.StructType:
    """An Avro record schema (parsed .avsc) as a StructType."""
    if not isinstance(doc, dict) or doc.get("type") != "record":
        raise SchemaError(f"{where}: an .avsc schemaRef must be an Avro record")
    dtype, _ = _Avro(where).convert(doc)
    assert isinstance(dtype, T.StructType)
    return dtype


_JSON_SIMPLE: dict[str, T.DataType] = {
    "integer": T.LongType(),
    "number": T.DoubleType(),
    "boolean": T.BooleanType(),
}
_JSON_FORMATS: dict[str, T.DataType] = {"date": T.DateType(), "date-time": T.TimestampType()}


def _json_type(node: dict, root: dict, where: str) -> tuple[T.DataType, bool]:
    """(Spark type, nullable by type list) of a JSON Schema node."""
    if "$ref" in node:
        ref = node["$ref"]
        parts = ref.split("/")
        if parts[0] != "#":
            raise SchemaError(f"{where}: only local $ref are supported, got {ref!r}")
        target: Any = root
        for p in parts[1:]:
            target = target.get(p) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            raise SchemaError(f"{where}: $ref {ref!r} does not resolve")
        return _json_type(target, root, where)
    kind = node.get("type", "object" if "properties" in node else None)
    nullable = False
    if isinstance(kind, list):
        rest = [k for k in kind if k != "null"]
        if len(rest) != 1:
            raise SchemaError(f"{where}: unsupported JSON Schema type {json.dumps(kind)}")
        kind, nullable = rest[0], len(rest) < len(node["type"])
    if kind == "string":
        return _JSON_FORMATS.get(node.get("format", ""), T.StringType()), nullable
    if kind in _JSON_SIMPLE:
        return _JSON_SIMPLE[kind], nullable
    if kind == "object":
        required = set(node.get("required", []))
        fields = []
        for name, sub in node.get("properties", {}).items():
            dtype, null_type = _json_type(sub, root, where)
            fields.append(T.StructField(name, dtype, null_type or name not in required))
        return T.StructType(fields), nullable
    if kind == "array":
        item, null_items = _json_type(node.get("items", {"type": "string"}), root, where)
        return T.ArrayType(item, True), nullable
    raise SchemaError(f"{where}: unsupported JSON Schema type {json.dumps(kind)}")


def json_schema_to_struct(doc: dict, where: str = "schema") -> T.StructType:
    """A JSON Schema object (parsed .json) as a StructType."""
    dtype, _ = _json_type(doc, doc, where) if isinstance(doc, dict) else (None, False)
    if not isinstance(dtype, T.StructType):
        raise SchemaError(f"{where}: a JSON schemaRef must describe an object")
    return dtype


def parse_schema(text: str, name: str) -> T.StructType:
    """Schema text of file `name` (.avsc -> Avro, .json -> JSON Schema) as a StructType."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaError(f"{name}: not valid JSON ({exc})") from exc
    if name.endswith(".avsc"):
        return avro_to_struct(doc, name)
    if name.endswith(".json"):
        return json_schema_to_struct(doc, name)
    raise SchemaError(f"{name}: a schemaRef must be an Avro .avsc or a JSON Schema .json file")


def _read_s3_text(uri: str) -> str:
    import boto3

    bucket, _, key = uri.split("://", 1)[1].partition("/")
    try:
        body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"]
    except Exception as exc:  # noqa: BLE001 - botocore's errors: reported with the path
        raise SchemaError(f"schema file not readable: {uri} ({exc})") from None
    with body:
        return body.read().decode("utf-8")


def load_schema(path: str | Path) -> T.StructType:
    """Read a schema file (local, or `s3://` through boto3 and the AWS environment) and
    convert it (see `parse_schema`)."""
    if str(path).startswith(("s3://", "s3a://")):
        return parse_schema(_read_s3_text(str(path)), str(path))
    p = Path(path)
    if not p.is_file():
        raise SchemaError(f"schema file not found: {p}")
    return parse_schema(p.read_text(encoding="utf-8"), str(p))
